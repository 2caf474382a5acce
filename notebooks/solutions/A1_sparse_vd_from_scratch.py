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
# 4. the layer module itself: its parameters, their initialisation, why $\log\alpha$ is not clamped;
# 5. one training step, checked on one batch, then a short training run of LeNet-300-100 beside a
#    dense twin, with the compression ratio of Table 1.
#
# **Symbols** (one per quantity, as in the paper): a weight has the posterior
# $\mathcal N(\theta, \sigma^2)$ with $\sigma^2 = \alpha\theta^2$; a pre-activation $b_{mj}$ (example $m$,
# unit $j$) has mean $\gamma_{mj}$ and variance $\delta_{mj}$ under the local reparameterisation (eq. 17).
# $N$ is the number of training examples, $M$ the batch size.
#
# **How to work.** Each exercise is a function with a gap marked `# YOUR CODE HERE`. Replace
# `raise NotImplementedError` with your code, run the cell, then run the check cell under it: it
# prints a line starting with `OK:` or says what is wrong. Do not rename the functions or their
# arguments; the checks and the later exercises call them by name.
#
# **Time on CPU:** the checks take under a second each, the one-batch check of exercise 8 a few
# seconds. The training (the class recipe on the full Fashion-MNIST: your Sparse VD LeNet-300-100, then
# its dense twin, 90 epochs each) takes about 5 minutes on a quiet 2-core machine (a median 2.3 s per
# Sparse VD epoch, under a second per dense one; the committed run took 15 on a busy machine); fast mode (`SPARSEVD_FAST=1`: 3 epochs on
# 1,000 images) takes seconds.
#
# **Paper.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (equation numbers below are the paper's). Notebooks 01-03 of this lab explain the ideas;
# here you build them yourself.

# %%
# Setup: on Colab, install the package first; anywhere else, use the installed one.
import sys

MIN_VERSION = "0.2.0"
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
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import sparsevd_lab
import sparsevd_lab.experiments
from sparsevd_lab import checks

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). The fast (CI) mode trains on a subset for a few epochs.
FAST = nb.mode() == "fast"
RECIPE = dict(sparsevd_lab.experiments.CLASS_RECIPE)  # the class run's recipe (notebook 03)
if FAST:
    RECIPE.update(epochs=3, batch_size=100, kl_warmup_start=0, kl_warmup_end=1)
EPOCHS = RECIPE["epochs"]  # training epochs in section 9
DATASET = "fashion-mnist"  # the class run's data (Debian folder or download; else the offline digits)
N_TRAIN = 1000 if FAST else None  # training images (None: all, less the validation split)
SEED = 0

# %% [markdown]
# ## 1. $\log\alpha$ from $(\theta, \log\sigma^2)$
#
# Each weight has the posterior $q(w) = \mathcal N(\theta, \sigma^2)$ with $\sigma^2 = \alpha\,\theta^2$.
# We train $\theta$ and $\log\sigma^2$ (the *additive reparameterisation*, eq. 15) and derive
# $\log\alpha$ from them: solve $\sigma^2 = \alpha\theta^2$ for $\log\alpha$.
#
# **Exercise 1** (5 minutes). Write `log_alpha(theta, log_sigma2)`, elementwise. A weight at exactly
# $\theta = 0$ must give a finite value: add $\varepsilon = 10^{-8}$ where the logarithm needs it.

# %%
def log_alpha(theta, log_sigma2):
    """log alpha of each weight from theta and log sigma^2 (sec. 4.2, eq. 15); finite at theta = 0."""
    ### BEGIN SOLUTION
    return log_sigma2 - torch.log(theta * theta + 1e-8)
    ### END SOLUTION


# %%
checks.check_log_alpha(log_alpha)

# %% [markdown]
# ## 2. The local reparameterisation trick (train mode)
#
# For a linear layer $b = x\,W^\top + \text{bias}$ with independent Gaussian weights, each
# pre-activation $b_{mj}$ is Gaussian with mean $\gamma_{mj}$ and variance $\delta_{mj}$ (eq. 17; the
# paper writes the input as $a$). Instead of sampling the weights, sample $b$ directly, with one
# $\varepsilon_{mj} \sim \mathcal N(0,1)$ per example $m$ and unit $j$ (eq. 4 and sec. 2.2 say why).
#
# **Exercise 2** (10 minutes). Write `lrt_linear`. Work out $\gamma$ and $\delta$ from eq. 17 (the
# variance of a sum of independent terms is the sum of their variances; the bias is not random).
# `F.linear(x, W, bias)` computes $x W^\top + \text{bias}$. Take care of a row of $x$ that is all
# zeros (a black image, or a layer after a ReLU that is off everywhere): there $\delta = 0$, and the
# derivative of $\sqrt{\delta}$ at 0 is infinite, so the gradients become NaN unless the root gets a
# small floor. The check feeds such a row.

# %%
def lrt_linear(x, theta, log_sigma2, bias):
    """Train-mode Sparse VD linear layer: one sample of the pre-activations (eq. 17).

    x: (batch, in); theta, log_sigma2: (out, in); bias: (out,). Returns (batch, out).
    """
    ### BEGIN SOLUTION
    gamma = F.linear(x, theta, bias)
    delta = F.linear(x * x, torch.exp(log_sigma2))
    return gamma + torch.sqrt(delta + 1e-8) * torch.randn_like(gamma)
    ### END SOLUTION


# %%
checks.check_lrt_linear(lrt_linear)

# %% [markdown]
# ## 3. Eval mode: drop the weights with large $\alpha$
#
# At test time the layer is deterministic: it uses the means $\theta$, with every weight whose
# $\log\alpha \ge$ `threshold` set to zero (sec. 4.3; the paper uses 3, i.e. $\alpha \approx 20$:
# such a weight is mostly noise).
#
# **Exercise 3** (5 minutes). Write `eval_linear`, using your `log_alpha`.

# %%
def eval_linear(x, theta, log_sigma2, bias, threshold=3.0):
    """Eval-mode Sparse VD linear layer: the means theta, weights with log alpha >= threshold dropped (sec. 4.3)."""
    ### BEGIN SOLUTION
    mask = log_alpha(theta, log_sigma2) < threshold
    return F.linear(x, theta * mask, bias)
    ### END SOLUTION


# %%
checks.check_eval_mask(eval_linear)

# %% [markdown]
# ## 4. The KL term (eq. 14)
#
# The KL divergence from $q(w)$ to the log-uniform prior depends on $\alpha$ only; the paper fits
# $-\mathrm{KL}$ with a sigmoid and three constants (eq. 14):
#
# $$-\mathrm{KL}\big(q(w)\,\|\,p(w)\big) \approx k_1\,\mathrm{sigmoid}(k_2 + k_3\log\alpha) - \tfrac12\log\left(1 + \alpha^{-1}\right) + C,
# \qquad k_1 = 0.63576,\ k_2 = 1.87320,\ k_3 = 1.48695,\ C = -k_1,$$
#
# with $\mathrm{sigmoid}(z) = 1/(1 + e^{-z})$. $C = -k_1$ makes the KL go to 0 as $\alpha$ grows (the sigmoid
# goes to 1 and $\log(1 + \alpha^{-1})$ to 0). Notebook 02 derives it.
#
# **Exercise 4** (5 minutes). Write `kl_approx(la)`: the KL itself (it is $\ge 0$), one value per
# weight, from eq. 14. Hint: $\log(1+\alpha^{-1})$ is `F.softplus(-la)`, which stays finite for very
# negative $\log\alpha$.

# %%
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def kl_approx(la):
    """Elementwise KL(q || log-uniform prior) from log alpha: minus the right side of eq. 14, C = -k1."""
    ### BEGIN SOLUTION
    return K1 - K1 * torch.sigmoid(K2 + K3 * la) + 0.5 * F.softplus(-la)
    ### END SOLUTION


# %%
checks.check_kl(kl_approx)

# %% [markdown]
# ## 5. Your layer
#
# Now the module that puts the four functions together, with the parameter names of
# `sparsevd_lab.LinearSVDO` (`weight` is $\theta$, `log_sigma2`, `bias`).
#
# **Exercise 5** (15 minutes). Write `MyLinearSVDO`:
# - `__init__`: the three parameters (as `nn.Parameter`, shapes as in `nn.Linear`); $\theta$ and the
#   bias initialised as `nn.Linear` does (`nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))`, the
#   bias uniform in $\pm 1/\sqrt{\text{in}}$); `log_sigma2` filled with `log_sigma2_init`. Think about
#   what $\alpha$ a weight starts with: $\log\sigma^2 = -10$ makes every weight nearly deterministic.
# - `log_alpha` (a property): your `log_alpha` of the parameters, **not clamped**, as in
#   `sparsevd_lab.LinearSVDO`. Clamp neither $\log\alpha$ nor `log_sigma2`.
# - `forward`: `lrt_linear` in training mode (`self.training`), else `eval_linear`.
# - `kl()`: the sum of `kl_approx` over the layer's weights, at `self.log_alpha`.
#
# *The authors' clamp.* The authors' PyTorch code clamps $\log\alpha$ to [-10, 10] before the KL and
# the mask. What each choice costs:
# - **Clamped.** Outside the range the KL's gradient is exactly zero. Above 10 that changes little,
#   because eq. 14 is flat there anyway. Below -10 it removes the KL's push of about 0.5 per unit of
#   $\log\alpha$, and then only the data term moves that weight. In exchange, a naive
#   `log1p(exp(-log_alpha))` cannot overflow.
# - **Unclamped.** The package's choice needs a formula that stays finite: `softplus`, or your
#   `log1p` for $\log\alpha$ down to about -80. The $\log\alpha$ of a dropped weight also keeps
#   climbing as $\theta \to 0$; notebook 04 shows it piling up at 12-14. Nothing is lost by that: the
#   weight is dropped either way.
# - **Measured.** One run each on Fashion-MNIST (LeNet-300-100, 20 epochs, same seed) gave 11.10 %
#   test error unclamped and 11.07 % clamped, at 14.2x compression in both runs (docs/glossary.md,
#   "clamp", gives the command). In neither run did a weight's $\log\alpha$ go below -7.7, so the
#   lower end of the clamp never acted. The difference costs nothing measurable; the package keeps
#   the formula of eq. 15 as it is.

# %%
class MyLinearSVDO(nn.Module):
    """A Sparse VD linear layer (sec. 4): parameters theta (weight), log sigma^2 and bias."""

    def __init__(self, in_features, out_features, threshold=3.0, log_sigma2_init=-10.0):
        super().__init__()
        self.threshold = threshold
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.log_sigma2 = nn.Parameter(torch.full((out_features, in_features), log_sigma2_init))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Linear
        nn.init.uniform_(self.bias, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))
        ### END SOLUTION

    @property
    def log_alpha(self):
        """log alpha of every weight (eq. 15), unclamped."""
        ### BEGIN SOLUTION
        return log_alpha(self.weight, self.log_sigma2)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        if self.training:
            return lrt_linear(x, self.weight, self.log_sigma2, self.bias)
        return eval_linear(x, self.weight, self.log_sigma2, self.bias, self.threshold)
        ### END SOLUTION

    def kl(self):
        """KL(q || prior) of the layer: eq. 14 summed over its weights."""
        ### BEGIN SOLUTION
        return kl_approx(self.log_alpha).sum()
        ### END SOLUTION


def my_lenet_300_100(log_sigma2_init=-10.0):
    return nn.Sequential(nn.Flatten(),
                         MyLinearSVDO(784, 300, log_sigma2_init=log_sigma2_init), nn.ReLU(),
                         MyLinearSVDO(300, 100, log_sigma2_init=log_sigma2_init), nn.ReLU(),
                         MyLinearSVDO(100, 10, log_sigma2_init=log_sigma2_init))


# %%
checks.check_layer(MyLinearSVDO)
checks.check_lrt_linear(MyLinearSVDO)
checks.check_eval_mask(MyLinearSVDO)

# %% [markdown]
# ## 6. The objective: SGVLB (eq. 3)
#
# The variational lower bound of eq. 3 is estimated on a minibatch of $M$ of the $N$ training
# examples (eq. 3 with the data term scaled by $N/M$). We minimise its negative **divided by $N$**, so
# that the loss has the scale of an ordinary cross-entropy, and multiply the KL term by `kl_weight`,
# which goes from 0 to 1 during a warm-up.
#
# **Exercise 6** (5 minutes). Write `sgvlb`. `train_size` is $N$, the size of the whole training set
# (not the number of batches); `kl` is the KL of the whole model.

# %%
def sgvlb(output, target, kl, train_size, kl_weight=1.0):
    """Negative SGVLB (eq. 3) divided by N = train_size, with the KL term times kl_weight."""
    ### BEGIN SOLUTION
    return F.cross_entropy(output, target) + kl_weight * kl / train_size
    ### END SOLUTION


# %%
checks.check_sgvlb(sgvlb)

# %% [markdown]
# ## 7. The compression ratio (Table 1)
#
# The paper reports $|W| / |W_{\ne 0}|$: all weights $\theta$ of the Sparse VD layers divided by the
# weights that are kept ($\log\alpha <$ `threshold`). Biases and layers without `log_sigma2` are not
# counted.
#
# **Exercise 7** (5 minutes). Write `compression_ratio(model, threshold)`: loop over
# `model.modules()` and use those with a `log_sigma2`. Return `float("inf")` when every weight is dropped.

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
# ## 8. One training step, checked on one batch
#
# The data: the class run's (notebook 03): the full Fashion-MNIST, 55,000 training images after the
# class run's 5,000 validation images are held out, 10,000 test images. Without the data set (no
# Debian package, no network) the offline digits stand in, with a printed line saying why Sparse VD
# loses accuracy there. Before a run of minutes, check the step itself in seconds.
#
# **Exercise 8** (10 minutes). Write `train_step(model, optimizer, x, y, train_size, kl_weight)`: the
# forward pass, the KL of the whole model (the sum of `kl()` over the modules that have one), your
# `sgvlb`, then `zero_grad`, `backward`, `step`; return the loss. The check runs it on one random batch
# with a fresh `my_lenet_300_100()`: the loss must be cross-entropy + `kl_weight` $\cdot$ KL / N, the
# optimiser calls must come in a working order, and 25 steps on the same batch must bring the
# cross-entropy down. A dense model has no `kl()`: its KL is 0 and the step is plain cross-entropy.

# %%
data, DATASET_USED, _ = sparsevd_lab.experiments.classrun.load_class_data(DATASET)
if N_TRAIN is not None:
    data = data.subset(N_TRAIN, 500)
else:  # the class run's split: the validation images stay out of training
    data, _ = sparsevd_lab.experiments.runners.hold_out(
        data, sparsevd_lab.experiments.runners.VAL_SIZES[DATASET_USED], SEED)


def train_step(model, optimizer, x, y, train_size, kl_weight):
    """One SGVLB step (eq. 3 / N): forward, KL of the whole model, loss, zero_grad, backward, step."""
    ### BEGIN SOLUTION
    output = model(x)
    kl = sum(m.kl() for m in model.modules() if hasattr(m, "log_sigma2"))
    loss = sgvlb(output, y, kl, train_size, kl_weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss
    ### END SOLUTION


# %%
checks.check_train_step(train_step, my_lenet_300_100)

# %% [markdown]
# ## 9. Train LeNet-300-100 with your layer, beside a dense twin
#
# The loop below calls your `train_step` with the class run's recipe (`RECIPE`: epochs, batch size,
# Adam's learning rate flat for a part of the run then linear to 0, the KL weight's warm-up,
# `sparsevd_lab.kl_warmup`). After each epoch it prints and records test accuracy (eval mode) and your
# compression ratio. The same loop
# trains a dense LeNet-300-100 (`nn.Linear` layers: no KL) on the same data, so that the Sparse VD
# accuracy can be read against what the architecture reaches without any compression. The check at
# the end asks for a test accuracy and a compression that a correct solution reaches with room to
# spare; its thresholds are lower in fast mode.

# %%
def train(model, data, recipe=RECIPE, max_kl_weight=1.0, seed=SEED):
    """Train ``model`` with your train_step; return a per-epoch history (test_acc, compression, ...)."""
    sparsevd_lab.set_seed(seed)
    epochs = recipe["epochs"]
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # flat, then linear to 0 (the authors' schedule)
        optimizer, lambda e: sparsevd_lab.lr_factor(e, epochs, recipe["lr_flat_fraction"]))
    train_loader, test_loader = data.loaders(recipe["batch_size"], seed=seed)
    sparse = any(hasattr(m, "log_sigma2") for m in model.modules())
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        kl_weight = sparsevd_lab.kl_warmup(epoch, recipe["kl_warmup_start"],
                                           recipe["kl_warmup_end"], max_kl_weight)
        model.train()
        for x, y in train_loader:
            loss = train_step(model, optimizer, x, y, data.train_size, kl_weight)
        scheduler.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test_loader)
        history.append({"epoch": epoch + 1, "kl_weight": kl_weight,
                        "loss": float(torch.as_tensor(loss).detach()),
                        "test_acc": correct / len(data.x_test),
                        "compression": compression_ratio(model) if sparse else 1.0,
                        "seconds": time.perf_counter() - start})
        print(f"{'Sparse VD' if sparse else 'dense'} epoch {epoch + 1}/{epochs}: test accuracy "
              f"{history[-1]['test_acc']:.4f}, compression {history[-1]['compression']:.1f}x "
              f"({history[-1]['seconds']:.1f} s)", flush=True)
    return pd.DataFrame(history)


# %%
model = my_lenet_300_100()
history = train(model, data)
print(history.tail(3).round(3).to_string(index=False))
outcome = checks.check_training_outcome(history, nb.mode())

# %% [markdown]
# Your run, drawn: the test accuracy and your compression ratio after every epoch (the KL weight
# warms up over the first half), and the $\log\alpha$ of every weight of your trained layers, with the
# threshold 3 that your `eval_linear` applies.

# %%
import matplotlib.pyplot as plt  # noqa: E402  (figures only from here on)

from sparsevd_lab import plots  # noqa: E402

plots.use_style()
fig, (ax_acc, ax_comp) = plt.subplots(1, 2, figsize=(9.5, 3.4))
ax_acc.plot(history["epoch"], 100 * history["test_acc"], "o-", label="test accuracy")
ax_kl = ax_acc.twinx()
ax_kl.plot(history["epoch"], history["kl_weight"], "--", color="0.5", label="KL weight")
ax_kl.set(ylabel="KL weight (unitless)", ylim=(0, 1.05))
ax_kl.grid(False)
ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Your Sparse VD LeNet-300-100")
ax_acc.legend(ax_acc.get_lines() + ax_kl.get_lines(), ["test accuracy", "KL weight (right axis)"],
              loc="lower left", fontsize="small")
ax_comp.plot(history["epoch"], history["compression"], "o-", color=plots.PALETTE[1])
log_axis = history["compression"].max() > 10 * history["compression"].min()  # a long run spans decades
ax_comp.set(xlabel="epoch", ylabel="compression (x" + (", log scale)" if log_axis else ")"),
            yscale="log" if log_axis else "linear", title="Your compression_ratio after each epoch")
ax_comp.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))  # 1.5, 20, not 2x10^1
for ax in (ax_acc, ax_comp):
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # whole epochs
fig.tight_layout()
plt.show()

my_log_alpha = {f"fc{i + 1}": m.log_alpha.detach().numpy()
                for i, m in enumerate(m for m in model.modules() if hasattr(m, "log_sigma2"))}
fig = plots.plot_log_alpha_hist(my_log_alpha, threshold=3.0)
fig.axes[0].set_title("log alpha of your trained layers")
plt.show()
print({name: f"{100 * (la >= 3).mean():.1f} % dropped" for name, la in my_log_alpha.items()})

# %%
sparsevd_lab.set_seed(SEED)
dense = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                      nn.Linear(100, 10))
dense_history = train(dense, data)
pd.DataFrame({"test accuracy": [dense_history.test_acc.iloc[-1], history.test_acc.iloc[-1]],
              "compression (x)": [1.0, history.compression.iloc[-1]]},
             index=["dense LeNet-300-100", "your Sparse VD LeNet-300-100"]).round(3)

# %% [markdown]
# ## Research questions (optional)
#
# Open questions for the end of the day; there is no check. Each one is a small experiment with the
# functions above (use `FAST = False` and enough epochs to see a trend).
#
# 1. **The maximum KL weight.** Train with `train(..., max_kl_weight=...)` in 0.1, 0.3, 1, 3. How do the
#    compression and the test accuracy depend on it? Which value is the true ELBO?
# 2. **The initial $\log\sigma^2$.** Build the model with `my_lenet_300_100(log_sigma2_init=...)` at
#    -12, -10, -6, -3. What happens to early accuracy and final sparsity, and why (think of $\alpha$
#    at initialisation)?
# 3. **Monte Carlo KL against the approximation.** The cell after these questions measures it: the Monte Carlo
#    $-\mathrm{KL}$ (`sparsevd_lab.theory.neg_kl_mc`, notebook 02) against your `kl_approx` (eq. 14) and
#    against Kingma et al.'s (2015) polynomial, $-\mathrm{KL} \approx \tfrac12\log\alpha + c_1\alpha + c_2\alpha^2 + c_3\alpha^3 + C$
#    ($c_1 = 1.16145124$, $c_2 = -1.50204118$, $c_3 = 0.58629921$, fitted for $\alpha \le 1$; its constant is
#    not given, so the cell fits it on $\log\alpha \le 0$). Where is each approximation worst? Would a
#    Monte Carlo KL in training change the trained sparsity (try it: replace `kl_approx` inside your layer)?
# 4. **Does the LRT lower the gradient variance?** Compare the variance of the gradient of one
#    minibatch under `lrt_linear` and under one weight sample shared by the batch
#    (`sparsevd_lab.theory.gradient_variance`; notebook 03). How does the gap change with the batch size?


# %%
from sparsevd_lab import theory  # noqa: E402

grid = torch.linspace(-6.0, 8.0, 57, dtype=torch.float64)
mc = theory.neg_kl_mc(grid.numpy(), n_samples=20_000 if FAST else 200_000, seed=SEED)
eq14 = -kl_approx(grid).numpy()  # your eq. 14
alpha = torch.exp(grid).numpy()
kingma = 0.5 * grid.numpy() + 1.16145124 * alpha - 1.50204118 * alpha ** 2 + 0.58629921 * alpha ** 3
low = grid.numpy() <= 0.0  # Kingma et al.'s fit covers alpha <= 1 only; fit its constant there
kingma += (mc[low] - kingma[low]).mean()
kl_errors = pd.DataFrame({
    "eq. 14 (Molchanov)": [abs(eq14 - mc)[low].max(), abs(eq14 - mc)[~low].max()],
    "polynomial (Kingma)": [abs(kingma - mc)[low].max(), abs(kingma - mc)[~low].max()]},
    index=["largest |error| for log alpha <= 0", "largest |error| for 0 < log alpha <= 8"])
worst = grid.numpy()[abs(eq14 - mc).argmax()]
print(f"Monte Carlo reference: {len(grid)} values of log alpha, standard error about "
      f"{1 / math.sqrt(20_000 if FAST else 200_000):.4f}; eq. 14 is worst at log alpha = {worst:.2f}")
kl_errors.map(lambda v: f"{v:.3g}")  # nats; the polynomial's error explodes beyond alpha = 1

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
