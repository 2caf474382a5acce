# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A1 · Sparse Variational Dropout from scratch (assignment)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/solutions/A1_sparse_vd_from_scratch.ipynb)
#
# **Learning goals.** After this assignment you have written, and tested, every piece of Sparse VD:
# 1. $\log\alpha$ from the parameters $(\theta, \log\sigma^2)$;
# 2. the local reparameterisation trick (train mode) and the masked deterministic layer (eval mode);
# 3. the KL approximation of the paper (eq. 14) and the SGVLB objective (eq. 3);
# 4. the compression ratio of Table 1, and a short training run of LeNet-300-100 that shows it.
#
# **How to work.** Each exercise is a function with a gap marked `# YOUR CODE HERE`. Replace
# `raise NotImplementedError` with your code, run the cell, then run the check cell under it: it
# prints a line starting with `OK:` or says what is wrong. Do not rename the functions or their
# arguments; the checks and the later exercises call them by name.
#
# **Time on CPU:** the checks take under a second each. The training exercise (30 epochs) takes about
# 5 minutes in default mode (the whole notebook: 5 min 35 s on 2 CPU cores); fast mode
# (`SPARSEVD_FAST=1`: 3 epochs on 1,000 digits) takes seconds.
#
# **Paper.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (equation numbers below are the paper's). Notebooks 01-03 of this lab explain the ideas;
# here you build them yourself.

# %%
# Setup: on Colab, install the package first; anywhere else, use the installed one.
import sys

MIN_VERSION = "0.1.0"
if "google.colab" in sys.modules:
    get_ipython().run_line_magic(  # noqa: F821  (this is %pip install)
        "pip", 'install -q "sparsevd-lab @ git+https://github.com/sparsevd-lab/sparsevd-lab"')
try:
    from sparsevd_lab import notebook as nb
except ImportError as err:
    raise ImportError(
        f"sparsevd_lab is missing or older than {MIN_VERSION} ({err}). Install it with "
        '`pip install "sparsevd-lab @ git+https://github.com/sparsevd-lab/sparsevd-lab"` '
        "(or `pip install -e .` in a clone of the repository), then restart the kernel.") from None
nb.require(MIN_VERSION)

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import sparsevd_lab
from sparsevd_lab import checks

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). The fast (CI) mode trains on a subset for a few epochs.
FAST = nb.mode() == "fast"
EPOCHS = 3 if FAST else 30  # training epochs in exercise 7
N_TRAIN = 1000 if FAST else None  # training digits (None: all 4,000)
SEED = 0

# %% [markdown]
# ## 1. $\log\alpha$ from $(\theta, \log\sigma^2)$
#
# Each weight has the posterior $q(w) = \mathcal N(\theta, \sigma^2)$ with $\sigma^2 = \alpha\,\theta^2$.
# We train $\theta$ and $\log\sigma^2$ (the *additive reparameterisation*, eq. 15) and derive
#
# $$\log\alpha = \log\sigma^2 - \log\theta^2 .$$
#
# Careful: $\log\theta^2 = 2\log|\theta|$, which is **not** $\log(2|\theta|)$. Add a small
# $\varepsilon = 10^{-8}$ inside the log so that a weight at exactly zero gives a finite value.

# %%
def log_alpha(theta, log_sigma2):
    """log alpha = log sigma^2 - log theta^2 (eq. 15), elementwise, finite at theta = 0."""
    ### BEGIN SOLUTION
    return log_sigma2 - torch.log(theta * theta + 1e-8)
    ### END SOLUTION


# %%
checks.check_log_alpha(log_alpha)

# %% [markdown]
# ## 2. The local reparameterisation trick (train mode)
#
# For a linear layer $b = x\,W^\top + \text{bias}$ with independent Gaussian weights, each
# pre-activation $b_{mj}$ is Gaussian (eq. 17):
#
# $$\mu_{mj} = \sum_i x_{mi}\theta_{ji} + \text{bias}_j, \qquad
#   \sigma^2_{mj} = \sum_i x_{mi}^2\,\sigma^2_{ji}, \qquad b_{mj} = \mu_{mj} + \sqrt{\sigma^2_{mj}}\;\varepsilon_{mj}.$$
#
# Sample $b$ directly, with one $\varepsilon_{mj} \sim \mathcal N(0,1)$ per example $m$ and unit $j$.
# The bias is not random, so it is not in the variance. `F.linear(x, W, bias)` computes $x W^\top + \text{bias}$.

# %%
def lrt_linear(x, theta, log_sigma2, bias):
    """Train-mode Sparse VD linear layer: a sample of the pre-activations (eq. 17).

    x: (batch, in); theta, log_sigma2: (out, in); bias: (out,). Returns (batch, out).
    """
    ### BEGIN SOLUTION
    mu = F.linear(x, theta, bias)
    var = F.linear(x * x, torch.exp(log_sigma2))
    return mu + torch.sqrt(var + 1e-16) * torch.randn_like(mu)
    ### END SOLUTION


# %%
checks.check_lrt_linear(lrt_linear)

# %% [markdown]
# ## 3. Eval mode: drop the weights with large $\alpha$
#
# At test time the layer is deterministic: it uses the means $\theta$, with every weight whose
# $\log\alpha \ge$ `threshold` set to zero (the paper uses 3, i.e. $\alpha \approx 20$: such a weight
# is mostly noise).

# %%
def eval_linear(x, theta, log_sigma2, bias, threshold=3.0):
    """Eval-mode Sparse VD linear layer: x (theta * mask)^T + bias, mask = log_alpha < threshold."""
    ### BEGIN SOLUTION
    mask = log_alpha(theta, log_sigma2) < threshold
    return F.linear(x, theta * mask, bias)
    ### END SOLUTION


# %%
checks.check_eval_mask(eval_linear)

# %% [markdown]
# ## 4. The KL term (eq. 14)
#
# The KL divergence from $q(w)$ to the log-uniform prior depends on $\alpha$ only. The paper fits
#
# $$-\mathrm{KL} \approx k_1\,\sigma(k_2 + k_3\log\alpha) - 0.5\,\log(1 + \alpha^{-1}) - k_1,
#   \qquad k_1 = 0.63576,\; k_2 = 1.87320,\; k_3 = 1.48695 .$$
#
# Return the KL itself (it is $\ge 0$), one value per weight. Hint: $\log(1+\alpha^{-1})$ is
# `F.softplus(-log_alpha)`, which stays finite for very negative $\log\alpha$.

# %%
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def kl_approx(la):
    """Elementwise KL(q || log-uniform prior) ~ k1 - k1 sigmoid(k2 + k3 la) + 0.5 log1p(1/alpha)."""
    ### BEGIN SOLUTION
    return K1 - K1 * torch.sigmoid(K2 + K3 * la) + 0.5 * F.softplus(-la)
    ### END SOLUTION


# %%
checks.check_kl(kl_approx)

# %% [markdown]
# ## Your layer
#
# Nothing to write here: this layer puts your four functions together, with the same parameter
# names as `sparsevd_lab.LinearSVDO` (`weight` is $\theta$). The two checks run your layer class.

# %%
class MyLinearSVDO(nn.Module):
    def __init__(self, in_features, out_features, threshold=3.0, log_sigma2_init=-10.0):
        super().__init__()
        self.threshold = threshold
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.log_sigma2 = nn.Parameter(torch.full((out_features, in_features), log_sigma2_init))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Linear
        nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))

    def forward(self, x):
        if self.training:
            return lrt_linear(x, self.weight, self.log_sigma2, self.bias)
        return eval_linear(x, self.weight, self.log_sigma2, self.bias, self.threshold)

    def kl(self):
        return kl_approx(log_alpha(self.weight, self.log_sigma2)).sum()


def my_lenet_300_100(log_sigma2_init=-10.0):
    return nn.Sequential(nn.Flatten(),
                         MyLinearSVDO(784, 300, log_sigma2_init=log_sigma2_init), nn.ReLU(),
                         MyLinearSVDO(300, 100, log_sigma2_init=log_sigma2_init), nn.ReLU(),
                         MyLinearSVDO(100, 10, log_sigma2_init=log_sigma2_init))


# %%
checks.check_lrt_linear(MyLinearSVDO)
checks.check_eval_mask(MyLinearSVDO)

# %% [markdown]
# ## 5. The objective: SGVLB (eq. 3)
#
# With $N$ training examples and a minibatch of $M$, the variational lower bound is estimated by
#
# $$\mathcal L_{\text{SGVB}} = \frac{N}{M}\sum_{m=1}^{M}\log p(y_m \mid x_m, w_m) - \mathrm{KL}(q\,\|\,p).$$
#
# We minimise its negative **divided by $N$**, so that the loss has the scale of an ordinary
# cross-entropy: mean cross-entropy over the batch $+$ `kl_weight` $\cdot\,\mathrm{KL} / N$.
# `train_size` is $N$, the size of the whole training set (not the number of batches).
# `kl_weight` goes from 0 to 1 during a warm-up.

# %%
def sgvlb(output, target, kl, train_size, kl_weight=1.0):
    """Negative SGVLB per training example: cross_entropy(output, target) + kl_weight * kl / N."""
    ### BEGIN SOLUTION
    return F.cross_entropy(output, target) + kl_weight * kl / train_size
    ### END SOLUTION


# %%
checks.check_sgvlb(sgvlb)

# %% [markdown]
# ## 6. The compression ratio (Table 1)
#
# The paper reports $|W| / |W_{\ne 0}|$: all weights $\theta$ of the Sparse VD layers divided by the
# weights that are kept ($\log\alpha <$ `threshold`). Biases and layers without `log_sigma2` are not
# counted. Loop over `model.modules()` and use the modules that have a `log_sigma2` attribute. Return
# `float("inf")` when every weight is dropped.

# %%
def compression_ratio(model, threshold=3.0):
    """All Sparse VD weights / kept weights (log_alpha < threshold), over the whole model."""
    ### BEGIN SOLUTION
    total = kept = 0
    for m in model.modules():
        if hasattr(m, "log_sigma2"):
            mask = log_alpha(m.weight, m.log_sigma2) < threshold
            total += mask.numel()
            kept += int(mask.sum())
    return float("inf") if kept == 0 else total / kept
    ### END SOLUTION


# %%
checks.check_compression_ratio(compression_ratio)

# %% [markdown]
# ## 7. Train LeNet-300-100 with your layer
#
# The data: 5,000 real MNIST digits shipped with the package (no download), 4,000 for training.
# Fill in one training step: forward pass, the KL of the whole model (the sum of each layer's
# `kl()`), your `sgvlb` (call the result `loss`: it is logged), then `zero_grad`, `backward`,
# `step`. The KL weight warms up linearly (`sparsevd_lab.kl_warmup`). After each epoch we measure
# test accuracy (eval mode) and your
# compression ratio. The check at the end asks for a test accuracy and a compression that a correct
# solution reaches with room to spare; its thresholds are lower in fast mode.

# %%
data = sparsevd_lab.load_offline_digits()
if N_TRAIN is not None:
    data = data.subset(N_TRAIN, 500)


def train_sparse_vd(model, data, epochs, lr=1e-3, batch_size=100, max_kl_weight=1.0, seed=SEED):
    """Train ``model`` with the SGVLB; return a per-epoch history (test_acc, compression, ...)."""
    sparsevd_lab.set_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_loader, test_loader = data.loaders(batch_size, seed=seed)
    train_size = data.train_size
    warm_start, warm_end = (0, max(1, epochs // 2)) if FAST else (2, epochs // 2)
    history = []
    for epoch in range(epochs):
        kl_weight = sparsevd_lab.kl_warmup(epoch, warm_start, warm_end, max_kl_weight)
        model.train()
        for x, y in train_loader:
            ### BEGIN SOLUTION
            output = model(x)
            kl = sum(m.kl() for m in model.modules() if isinstance(m, MyLinearSVDO))
            loss = sgvlb(output, y, kl, train_size, kl_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ### END SOLUTION
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test_loader)
        history.append({"epoch": epoch + 1, "kl_weight": kl_weight, "loss": float(loss.detach()),
                        "test_acc": correct / len(data.x_test),
                        "compression": compression_ratio(model)})
    return pd.DataFrame(history)


# %%
model = my_lenet_300_100()
history = train_sparse_vd(model, data, EPOCHS)
print(history.tail(3).round(3).to_string(index=False))
checks.check_training_outcome(history, nb.mode())

# %% [markdown]
# ## Research questions (optional)
#
# Open questions for the end of the day; there is no check. Each one is a small experiment with the
# functions above (use `FAST = False` and enough epochs to see a trend).
#
# 1. **The maximum KL weight.** Train with `max_kl_weight` in 0.1, 0.3, 1, 3. How do the
#    compression and the test accuracy depend on it? Which value is the true ELBO?
# 2. **The initial $\log\sigma^2$.** Build the model with `my_lenet_300_100(log_sigma2_init=...)` at
#    -12, -10, -6, -3. What happens to early accuracy and final sparsity, and why (think of $\alpha$
#    at initialisation)?
# 3. **Monte Carlo KL against the approximation.** Replace `kl_approx` by a Monte Carlo estimate
#    of the KL (`sparsevd_lab.theory.neg_kl_mc` shows the estimator; notebook 02). Where on the
#    $\log\alpha$ axis is the approximation worst, and does it change the trained sparsity?
# 4. **Does the LRT lower the gradient variance?** Compare the variance of the gradient of one
#    minibatch under `lrt_linear` and under one weight sample shared by the batch
#    (`sparsevd_lab.theory.gradient_variance`; notebook 03). How does the gap change with the batch size?

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
