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
# # 01 · The log-uniform prior and the posterior of Sparse VD
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/01_log_uniform_prior.ipynb)
#
# **Learning goals.** After this notebook you can
# 1. write down the log-uniform prior, say why it is *improper*, and compare it with the Gaussian
#    (L2) and Laplace (L1) priors;
# 2. read the posterior $q(w) = \mathcal N(\theta, \alpha\theta^2)$ as Gaussian dropout and derive its
#    dropout rate;
# 3. sample weights from $q$, measure how often a sample flips its sign, derive the exact probability,
#    and say why a weight with a large $\alpha$ can be removed.
#
# **Time on CPU:** under 30 seconds (nothing is trained), plus about 35 minutes for the three exercises.
#
# **Exercises:** write a function; the cell after it checks it and prints `OK:` or names the slip.
# **Predict:** write your guess into the `MY_...` variable and run the cell (it is saved in
# `predictions.json`); a later cell prints it beside the measured value. Terms: [glossary](../docs/glossary.md).
#
# > **What is new in this paper** (Molchanov et al. 2017, against Kingma et al. 2015): one $\alpha$ per
# > weight, free to go to infinity (Kingma et al. kept $\alpha \le 1$); the additive reparameterisation
# > (eq. 15, notebook 03); a KL approximation valid for every $\alpha$ (eq. 14, notebook 02); and
# > removing the weights whose $\alpha$ grows large: 68x fewer weights in LeNet-300-100 and 280x in
# > LeNet-5 at about the dense network's error (the paper's Table 1).
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (the paper this lab follows); Kingma, Salimans, Welling,
# [*Variational Dropout and the Local Reparameterization Trick*](https://arxiv.org/abs/1506.02557), NeurIPS 2015;
# Louizos, Ullrich, Welling, [*Bayesian Compression for Deep Learning*](https://arxiv.org/abs/1705.08665), NeurIPS 2017.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm  # norm.cdf is the standard normal CDF Phi

from sparsevd_lab import checks, plots, predictions, theory, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). Where the widget starts:
THETA = 1.0  # the posterior mean theta of one weight
ALPHA = 0.5  # its variance ratio alpha = sigma^2 / theta^2
SEED = 0  # the seed of the sampled weights (section 3)

# %% [markdown]
# ## 1. Three priors over a weight
#
# A prior over a weight $w$ is a regulariser in disguise: the negative log prior is added to the loss.
#
# | prior | density | penalty $-\log p(w)$ |
# |---|---|---|
# | Gaussian | $\mathcal N(w \mid 0, \sigma^2)$ | $w^2 / 2\sigma^2$ (L2, weight decay) |
# | Laplace | $\frac{1}{2b} e^{-\lvert w\rvert / b}$ | $\lvert w\rvert / b$ (L1) |
# | log-uniform | $p(\log\lvert w\rvert) = \text{const} \iff p(\lvert w\rvert) \propto \dfrac{1}{\lvert w\rvert}$ | $\log \lvert w\rvert$ |
#
# The log-uniform prior is **scale invariant** (flat in $\log|w|$) and **improper**:
# $\int_\varepsilon^M \frac{dw}{w} = \log\frac{M}{\varepsilon}$ grows without bound as $\varepsilon \to 0$ or $M \to \infty$.

# %%
fig = plots.plot_priors()
nb.savefig(fig, "01_priors.png")
plt.show()

# %% [markdown]
# *Left:* over $w$ the log-uniform density (green, scaled to meet the Gaussian at $|w| = 1$) has an
# infinite spike at 0 and a heavy tail: it likes weights that are exactly zero *and* tolerates large
# ones. *Right:* over $\log_{10}|w|$ it is flat, while the Gaussian and Laplace priors fall off on both
# sides. The mass between $\varepsilon$ and 1 grows without bound:

# %%
# NBVAL_CHECK_OUTPUT
eps = 10.0 ** -np.arange(1, 7)
mass = pd.DataFrame({"epsilon": eps, "integral of 1/w from epsilon to 1": np.log(1 / eps)})
print(mass.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %% [markdown]
# Truncated to $\text{lo} \le |w| \le \text{hi}$ the prior becomes proper, and its shares can be compared.
#
# **Predict.** Truncate the log-uniform prior to $10^{-6} \le |w| \le 1$. What share of its mass lies in
# $10^{-3} \le |w| \le 10^{-2}$? Write a fraction (e.g. `0.05`) into `MY_SHARE`, then run the cell.

# %%
MY_SHARE = None  # your prediction: a fraction between 0 and 1
predictions.ask("01-share", "The log-uniform prior truncated to 1e-6 <= |w| <= 1: what share of its "
                "mass lies in 1e-3 <= |w| <= 1e-2?", prediction=MY_SHARE)

# %% [markdown]
# **Exercise 1 (code, about 5 min).** Write `log_uniform_share(a, b, lo, hi)`: the share of the mass of
# the truncated prior that lies in $a \le |w| \le b$. Use what the prior says about the density of
# $\log|w|$, not a numerical integral.

# %%
def log_uniform_share(a, b, lo, hi):
    """Share of the log-uniform prior's mass on [lo, hi] that lies in [a, b] (sec. 3)."""
    ### BEGIN SOLUTION
    # p(log|w|) = const (sec. 3): the mass of an interval is proportional to its length in log|w|
    return np.log(b / a) / np.log(hi / lo)
    ### END SOLUTION


# %%
checks.check_log_uniform_share(log_uniform_share)

# %%
predictions.reveal("01-share", log_uniform_share(1e-3, 1e-2, 1e-6, 1.0))
print(f"a prior uniform in w on the same range would put {(1e-2 - 1e-3) / (1 - 1e-6):.4f} there")

# %% [markdown]
# ## 2. The posterior: a weight with its own dropout rate
#
# Sparse VD gives every weight a Gaussian posterior whose variance is tied to its mean:
#
# $$q(w_{ij}) = \mathcal N\left(\theta_{ij},\ \alpha_{ij}\theta_{ij}^2\right)
#   \iff w_{ij} = \theta_{ij}\left(1 + \sqrt{\alpha_{ij}}\,\varepsilon_{ij}\right),\quad \varepsilon_{ij}\sim\mathcal N(0, 1).$$
#
# That is Gaussian dropout (sec. 3 of the paper): the weight is multiplied by noise $\xi = 1 + \sqrt\alpha\,\varepsilon$ of
# mean 1 and variance $\alpha$. Binary dropout with rate $p$ multiplies by $\xi = m / (1-p)$, $m \sim \text{Bernoulli}(1-p)$
# (the kept units rescaled), also of mean 1.
#
# **Exercise 2 (reasoning, then code, about 10 min).** Compute the variance of the binary-dropout noise
# $m/(1-p)$ on paper, set it equal to $\alpha$, and solve for $p$. Then write `dropout_rate(alpha)`: the rate
# $p$ of a weight with variance ratio $\alpha$, elementwise on a numpy array and on a single float.

# %%
def dropout_rate(alpha):
    """The Gaussian-dropout rate p of a weight with variance ratio alpha (sec. 3)."""
    ### BEGIN SOLUTION
    # Var[m / (1 - p)] = (1 - p) p / (1 - p)^2 = p / (1 - p) = alpha, solved for p
    alpha = np.asarray(alpha, dtype=float)
    return alpha / (1.0 + alpha)
    ### END SOLUTION


# %%
checks.check_dropout_rate(dropout_rate)

# %% [markdown]
# With the log-uniform prior, $\mathrm{KL}(q\,\|\,p)$ depends on $\alpha$ alone: the prior's penalty contributes
# $\mathbb E_q\log|w| = \log|\theta| + \mathbb E\log|1 + \sqrt\alpha\,\varepsilon|$, the entropy of $q$ contributes $-\log|\theta| - \tfrac12\log\alpha$ (up
# to constants), and the two $\log|\theta|$ cancel: a scale-invariant prior cannot tell scales apart.
# The KL falls as $\alpha$ grows, so it pushes every $\alpha$ up and only the data term resists. The paper
# drops weights with $\log\alpha \ge 3$:

# %%
# NBVAL_CHECK_OUTPUT
rates = pd.DataFrame({"log alpha": [-4.0, -2.0, 0.0, 2.0, 3.0, 5.0, 8.0]})
rates["alpha"] = np.exp(rates["log alpha"])
rates["dropout rate alpha/(1+alpha)"] = theory.dropout_rate(rates["alpha"])
rates["KL (eq. 14, nats)"] = -theory.neg_kl_sigmoid(rates["log alpha"])
rates["dropped (log alpha >= 3)"] = rates["log alpha"] >= 3
print(rates.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# ## 3. Sign flips: how much of a weight is noise?
#
# A large $\alpha$ does **not** make the weight zero on average: $\mathbb E_q[w] = \theta$ whatever $\alpha$ is.
# What it does is make the samples the network trains with unreliable, down to their sign.
#
# **Predict.** At the paper's threshold, $\log\alpha = 3$ ($\alpha \approx 20$), what fraction of the samples
# $w \sim q$ has the opposite sign of $\theta$? Write it into `MY_FLIP` and run the cell.

# %%
MY_FLIP = None  # your prediction: a fraction between 0 and 1
predictions.ask("01-flip", "At log alpha = 3, what fraction of the samples w ~ N(theta, alpha theta^2) "
                "has the opposite sign of theta?", prediction=MY_FLIP)

# %% [markdown]
# **Exercise 3a (code, about 10 min).** Write `sign_flip_rate(theta, alpha, n, seed)`: draw `n` weights
# from $q(w) = \mathcal N(\theta, \alpha\theta^2)$ with `np.random.default_rng(seed)` and return the fraction whose sign
# differs from the sign of $\theta$ (any $\theta \ne 0$, negative ones too). The check calls it with several
# $\theta$, $\alpha$, seeds and sample sizes.

# %%
def sign_flip_rate(theta, alpha, n, seed):
    """Fraction of n samples w ~ N(theta, alpha theta^2) whose sign differs from theta's (sec. 3)."""
    ### BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n)
    w = theta * (1.0 + np.sqrt(alpha) * eps)  # w ~ N(theta, alpha theta^2): std sqrt(alpha) |theta|
    flipped = np.sign(w) != np.sign(theta)  # compare with theta's sign, not with 0
    return float(flipped.mean())
    ### END SOLUTION


# %%
checks.check_sign_flip_rate(sign_flip_rate)

# %%
predictions.reveal("01-flip", sign_flip_rate(1.0, math.exp(3.0), 100_000, SEED))

# %% [markdown]
# **Exercise 3b (reasoning, then code, about 5 min).** Now the exact value. Write the event "$w$ has the other
# sign than $\theta$" in terms of $\varepsilon$ (with $w = \theta(1 + \sqrt\alpha\,\varepsilon)$), and write
# `sign_flip_probability(alpha)`, elementwise, with `norm.cdf` (the standard normal CDF $\Phi$); no sampling.

# %%
def sign_flip_probability(alpha):
    """P(sign of w != sign of theta) for w = theta (1 + sqrt(alpha) eps), eps ~ N(0, 1) (sec. 3)."""
    ### BEGIN SOLUTION
    # the sign flips when 1 + sqrt(alpha) eps < 0, i.e. eps < -1 / sqrt(alpha)
    return norm.cdf(-1.0 / np.sqrt(np.asarray(alpha, dtype=float)))
    ### END SOLUTION


# %%
checks.check_sign_flip(sign_flip_probability)

# %% [markdown]
# Your measurement against your formula, with the standard error of a share of $n$ samples:

# %%
n = 100_000
flips = pd.DataFrame({"log alpha": [-2.0, 0.0, 2.0, 3.0, 5.0]})
alphas = np.exp(flips["log alpha"])
flips["measured (n = 100,000)"] = [sign_flip_rate(1.0, a, n, SEED) for a in alphas]
flips["exact"] = sign_flip_probability(alphas)
flips["standard error"] = np.sqrt(flips["exact"] * (1 - flips["exact"]) / n)
print(flips.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

# %% [markdown]
# $\alpha$ enters only through $1/\sqrt\alpha = |\mathbb E w| / \operatorname{std}(w)$, the weight's **signal-to-noise
# ratio**. At $\log\alpha = 3$ it is 0.22 and 41 % of the samples have the wrong sign: the network trained with
# this weight as mostly noise, so setting it to 0 barely moves the test error (notebooks 03 and 06 measure it).
#
# ## 4. Explore: slide $\theta$ and $\alpha$
#
# The widget draws 20,000 samples of $w$ over the density of $q$ on a fixed frame, the other sign in orange.
#
# **Predict** (before you move the $\theta$ slider). Keep $\alpha = 1$ and halve $\theta$ from 1 to 0.5. What happens
# to the curve of $q(w)$?

# %%
HALVE_CHOICES = ["it moves towards 0 and keeps its shape", "it moves towards 0, narrower and taller",
                 "it moves towards 0, wider and lower", "it does not change"]
MY_HALVE = None  # your prediction: copy one of HALVE_CHOICES
predictions.ask("01-halve", "At alpha = 1, theta goes from 1 to 0.5: what happens to the curve of q(w)?",
                kind="choice", choices=HALVE_CHOICES, prediction=MY_HALVE)

# %%
widgets.prior_widget(THETA, ALPHA)

# %% [markdown]
# **Static copy** (for GitHub and nbviewer, where widgets do not run): the same render for four settings on
# the same axes: $\alpha = 0.1$ and $1$ at $\theta = 1$, then $\theta = 0.5$ at $\alpha = 1$, then $\alpha = 20$.

# %%
tables = widgets.static_fallback(widgets.prior_render, [
    {"theta": 1.0, "alpha": 0.1}, {"theta": 1.0, "alpha": 1.0}, {"theta": 0.5, "alpha": 1.0},
    {"theta": 1.0, "alpha": 20.0}],
    save_as=["01_posterior_alpha0.1.png", "01_posterior_alpha1.png", "01_posterior_alpha1_theta0.5.png",
             "01_posterior_alpha20.png"])

# %%
std = "std sqrt(alpha)|theta|"
ratio = tables[2].loc[std, "value"] / tables[1].loc[std, "value"]  # theta 0.5 against theta 1
print(f"halving theta at alpha = 1 multiplies the std by {ratio:.2f} and the peak height by {1 / ratio:.2f}")
predictions.reveal("01-halve", HALVE_CHOICES[0 if np.isclose(ratio, 1) else 1 if ratio < 1 else 2])

# %% [markdown]
# Halving $\theta$ halves the standard deviation $\sqrt\alpha\,|\theta|$: the curve is half as wide and twice as tall,
# yet the dropout rate, the flip share and the KL stay the same (they depend on $\alpha$ alone). At $\alpha = 20$,
# just under the threshold, the samples spread far beyond the frame and 41 % have the wrong sign.
#
# **A caveat on "Bayesian".** With this improper prior the true posterior is improper or pathological
# (Hron, Matthews, Ghahramani, [ICML 2018](https://arxiv.org/abs/1807.01969)): read Sparse VD as a penalised
# objective (data term + KL weight x KL) motivated by Bayesian reasoning, not as exact inference.
#
# ## What to remember
# - Log-uniform prior: flat in $\log|w|$ (every decade holds the same mass), improper, scale invariant; its KL
#   to $q$ depends on $\alpha$ only.
# - $q(w) = \mathcal N(\theta, \alpha\theta^2)$ is Gaussian dropout with rate $\alpha/(1+\alpha)$ per weight.
# - The KL pushes $\alpha$ up; weights with $\log\alpha \ge 3$ are dropped: their signal-to-noise ratio $1/\sqrt\alpha$
#   is below 0.22, and 41 % of their samples flip sign.
#
# Next: [02 · the KL approximation](02_kl_approximation.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
