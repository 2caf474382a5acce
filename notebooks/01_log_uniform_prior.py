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
# 2. read the posterior $q(w) = \mathcal N(\theta, \alpha\theta^2)$ as Gaussian dropout with rate
#    $\alpha / (1+\alpha)$;
# 3. explain why a weight with a large $\alpha$ can be removed (its signal-to-noise ratio $1/\sqrt\alpha$), and
#    compute its dropout rate and the chance that a sample flips its sign.
#
# **Time on CPU:** under 30 seconds (default and fast mode alike; nothing is trained), plus about
# 40 minutes for the four exercises.
#
# **Exercises.** Four short ones (5-10 minutes each), marked **Exercise**: write a function, then run
# the cell after it, which checks it with `sparsevd_lab.checks` and prints a line starting with `OK:`
# (or says what is wrong). Questions marked **Predict** are for you to answer before you run the next
# cell. Words such as *compression*, *sparsity*, *KL weight* and *threshold* are defined in the
# [glossary](../docs/glossary.md).
#
# > **What is new in this paper** (Molchanov et al. 2017, against Kingma et al. 2015)
# > - **One $\alpha$ per weight, unbounded.** Kingma et al. learned dropout rates too, but kept
# >   $\alpha \le 1$ (a dropout rate of at most 1/2): their KL approximation holds only there, and the
# >   gradients grow too noisy beyond it. Here every weight has its own $\alpha$, free to go to infinity.
# > - **The additive reparameterisation (eq. 15).** Train $\theta$ and $\log\sigma^2$ instead of
# >   $\theta$ and $\alpha$: the gradient with respect to $\theta$ then no longer carries the noise of a large
# >   $\alpha$ (notebook 03 measures it).
# > - **A KL approximation valid for every $\alpha$ (eq. 14)**, fitted once by the authors (notebook 02).
# > - **Sparsification.** Weights whose $\alpha$ grows large are removed after training: 68x fewer weights
# >   in LeNet-300-100 and 280x in LeNet-5 at about the dense network's error (the paper's Table 1).
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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm  # norm.cdf is the standard normal CDF Phi

from sparsevd_lab import checks, plots, theory, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). Where the widget starts:
THETA = 1.0  # the posterior mean theta of one weight
ALPHA = 0.5  # its variance ratio alpha = sigma^2 / theta^2

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
# The log-uniform prior is **scale invariant**: it puts the same mass on $[0.001, 0.01]$ as on
# $[1, 10]$, one decade each. It is also **improper**: $\int_\varepsilon^M \frac{dw}{w} = \log\frac{M}{\varepsilon}$
# grows without bound as $\varepsilon \to 0$ or $M \to \infty$, so no constant normalises it.

# %%
fig = plots.plot_priors()
nb.savefig(fig, "01_priors.png")
plt.show()

# %% [markdown]
# *Left:* over $w$ the log-uniform density (green, scaled to meet the Gaussian at $|w| = 1$) has an
# infinite spike at 0 and a heavy tail: it likes weights that are exactly zero *and* tolerates large
# ones. *Right:* over $\log_{10}|w|$ it is flat, one unit of density per decade, while the Gaussian and
# Laplace priors fall off on both sides.
#
# The mass between $\varepsilon$ and $1$ shows the divergence (one decade adds $\ln 10 \approx 2.303$):

# %%
# NBVAL_CHECK_OUTPUT
eps = 10.0 ** -np.arange(1, 7)
mass = pd.DataFrame({"epsilon": eps, "integral of 1/w from epsilon to 1": np.log(1 / eps)})
print(mass.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

# %% [markdown]
# Truncated to $[\text{lo}, \text{hi}]$ the prior becomes proper, and then it has shares that can be compared.
#
# **Predict.** Truncate the log-uniform prior to $10^{-6} \le |w| \le 1$. What share of its mass lies
# in $10^{-3} \le |w| \le 10^{-2}$? What share would a prior uniform in $w$ on the same range put there?
#
# **Exercise 1 (code, 5-10 min).** Write `log_uniform_share(a, b, lo, hi)`: the share of the mass of the
# log-uniform prior (sec. 3), truncated to $\text{lo} \le |w| \le \text{hi}$, that lies in $a \le |w| \le b$.
# Use what the prior of sec. 3 says about the density of $\log|w|$, not a numerical integral. Then compare with your
# prediction.

# %%
def log_uniform_share(a, b, lo, hi):
    """Share of the log-uniform prior's mass on [lo, hi] that lies in [a, b] (sec. 3)."""
    ### BEGIN SOLUTION
    # p(log|w|) = const (sec. 3): the mass of an interval is proportional to its length in log|w|
    return np.log(b / a) / np.log(hi / lo)
    ### END SOLUTION


# %%
checks.check_log_uniform_share(log_uniform_share)

# %% [markdown]
# ## 2. The posterior: a weight with its own dropout rate
#
# Sparse VD gives every weight a Gaussian posterior whose variance is tied to the mean:
#
# $$q(w_{ij}) = \mathcal N\left(\theta_{ij},\ \alpha_{ij}\theta_{ij}^2\right)
#   \iff w_{ij} = \theta_{ij}\left(1 + \sqrt{\alpha_{ij}}\,\varepsilon_{ij}\right),\quad \varepsilon_{ij}\sim\mathcal N(0, 1).$$
#
# That is Gaussian dropout (sec. 3 of the paper): multiplicative noise $1 + \sqrt\alpha\,\varepsilon$ has the
# mean and variance of Bernoulli dropout with rate $p$ (keep probability $1 - p$, kept units rescaled by
# $1/(1-p)$) when
#
# $$\alpha = \frac{p}{1-p}.$$
#
# **Exercise 2 (code, 5 min).** Write `dropout_rate(alpha)`: the dropout rate $p$ of a weight with variance
# ratio $\alpha$, from the relation above (sec. 3), elementwise on a numpy array and on a single float.

# %%
def dropout_rate(alpha):
    """The Gaussian-dropout rate p of a weight with variance ratio alpha (sec. 3)."""
    ### BEGIN SOLUTION
    alpha = np.asarray(alpha, dtype=float)
    return alpha / (1.0 + alpha)  # alpha = p / (1 - p), solved for p
    ### END SOLUTION


# %%
checks.check_dropout_rate(dropout_rate)

# %% [markdown]
# With the log-uniform prior, $\mathrm{KL}(q\,\|\,p)$ depends on $\alpha$ alone (not on $\theta$).
#
# **But the prior penalises $\log|w|$: how can the KL ignore $\theta$?** The KL has two parts. The
# prior's part is $\mathbb E_q[-\log p(w)] = \mathbb E_q\log|w| + \text{const}$, and with
# $w = \theta(1 + \sqrt\alpha\,\varepsilon)$ that is $\log|\theta| + \mathbb E\log|1 + \sqrt\alpha\,\varepsilon| + \text{const}$: it
# does depend on $\theta$, and it favours small $|\theta|$. The other part is minus the entropy of $q$,
# $-\tfrac12\log(2\pi e\,\alpha\theta^2) = -\log|\theta| - \tfrac12\log\alpha + \text{const}$, which favours large $|\theta|$
# (a wide posterior). The two $\log|\theta|$ cancel exactly: scaling $\theta$ scales the whole posterior, and a
# scale-invariant prior cannot tell scales apart. What is left, $\mathbb E\log|1+\sqrt\alpha\,\varepsilon| - \tfrac12\log\alpha$,
# rewards a large *relative* noise $\alpha$, not a small weight (notebook 02 computes it).
#
# The KL falls as $\alpha$ grows, so it pushes every $\alpha$ up; only the data term resists. When
# $\alpha \to \infty$ the dropout rate goes to 1. The paper drops weights with $\log\alpha \ge 3$
# ($\alpha \approx 20$, $p \ge 0.953$).

# %%
# NBVAL_CHECK_OUTPUT
rates = pd.DataFrame({"log alpha": [-4.0, -2.0, 0.0, 2.0, 3.0, 5.0, 8.0]})
rates["alpha"] = np.exp(rates["log alpha"])
rates["dropout rate alpha/(1+alpha)"] = theory.dropout_rate(rates["alpha"])
rates["KL (eq. 14, nats)"] = -theory.neg_kl_sigmoid(rates["log alpha"])
rates["dropped (log alpha >= 3)"] = rates["log alpha"] >= 3
print(rates.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# ## 3. Why a weight with a large $\alpha$ can go
#
# A large $\alpha$ does **not** make the weight zero on average: $\mathbb E_q[w] = \theta$ whatever $\alpha$ is, so
# setting $w$ to 0 does change the mean. The argument is the **signal-to-noise ratio** $|\mathbb E w| / \operatorname{std} w$:
# a network trained with this much noise on a weight cannot rely on the weight's exact value.
#
# **Exercise 3 (code, 5 min).** Write `signal_to_noise(alpha)`: $|\mathbb E w| / \operatorname{std}(w)$ under
# $q(w) = \mathcal N(\theta, \alpha\theta^2)$ (sec. 3), for $\theta \ne 0$.

# %%
def signal_to_noise(alpha):
    """|E w| / std(w) for q(w) = N(theta, alpha theta^2), any theta != 0 (sec. 3)."""
    ### BEGIN SOLUTION
    # mean theta, standard deviation sqrt(alpha) |theta|: theta cancels
    return 1.0 / np.sqrt(np.asarray(alpha, dtype=float))
    ### END SOLUTION


# %%
checks.check_signal_to_noise(signal_to_noise)

# %% [markdown]
# **Predict.** At the paper's threshold, $\log\alpha = 3$, what share of the samples of $w$ has the opposite
# sign of $\theta$: about 5 %, about 25 %, or about 40 %?
#
# **Exercise 4 (code, 10 min).** Write `sign_flip_probability(alpha)`: the probability that a sample
# $w = \theta(1 + \sqrt\alpha\,\varepsilon)$ (sec. 3) has the opposite sign of $\theta$. Write the event in terms of
# $\varepsilon$ and use `norm.cdf` (the standard normal CDF $\Phi$, imported in the first cell); no sampling.

# %%
def sign_flip_probability(alpha):
    """P(sign of w != sign of theta) for w = theta (1 + sqrt(alpha) eps), eps ~ N(0, 1) (sec. 3)."""
    ### BEGIN SOLUTION
    # the sign flips when 1 + sqrt(alpha) eps < 0, i.e. eps < -1 / sqrt(alpha)
    return norm.cdf(-1.0 / np.sqrt(np.asarray(alpha, dtype=float)))
    ### END SOLUTION


# %% [markdown]
# The check also prints the share at the threshold: compare it with your prediction.

# %%
checks.check_sign_flip(sign_flip_probability)

# %% [markdown]
# At $\log\alpha = 3$ the mean $\theta$ lies 0.22 standard deviations from 0 and 41 % of the samples have
# the wrong sign: during training the network saw this weight as mostly noise, and its loss already
# allowed for that. Replacing such weights by 0 changes the mean of each layer's output a little; in
# practice the test error barely moves (notebooks 03 and 06 measure it on trained networks).
#
# ## 4. Explore: slide $\theta$ and $\alpha$
#
# The table under the sliders gives the posterior's standard deviation $\sqrt\alpha\,|\theta|$, the
# dropout rate, the chance that a sample has the opposite sign of $\theta$, and the KL to the prior.
#
# **Predict** (before you move the $\theta$ slider or run the static copy below). At a fixed $\alpha$, halve $\theta$
# from 1 to 0.5. Which of the standard deviation, the dropout rate, the sign-flip probability and the KL change?

# %%
widgets.prior_widget(THETA, ALPHA)

# %% [markdown]
# **Static copy** (for GitHub and nbviewer, where widgets do not run): the same render for four settings,
# the last two with the same $\alpha = 20$ and $\theta = 1$, then $0.5$.

# %%
tables = widgets.static_fallback(widgets.prior_render, [
    {"theta": 1.0, "alpha": 0.1}, {"theta": 1.0, "alpha": 1.0}, {"theta": 1.0, "alpha": 20.0},
    {"theta": 0.5, "alpha": 20.0}],
    save_as=["01_posterior_alpha0.1.png", "01_posterior_alpha1.png", "01_posterior_alpha20.png",
             "01_posterior_alpha20_theta0.5.png"])

# %% [markdown]
# With $\alpha = 0.1$ the posterior is a narrow bump around $\theta$ (dropout rate 0.09). With $\alpha = 1$
# it is as wide as it is far from zero (rate 0.5) and 16 % of samples flip sign. With $\alpha = 20$
# ($\log\alpha \approx 2.996$, just under the paper's threshold of 3) the noise swamps the mean: 41 % of samples have the wrong sign.
# Such a weight carries little information: its signal-to-noise ratio $1/\sqrt\alpha$ is 0.22. Halving $\theta$ (the last
# two settings) halves the standard deviation $\sqrt\alpha\,|\theta|$ and narrows the curve; the dropout rate, the
# sign-flip probability and the KL stay the same: they depend on $\alpha$ alone. The full grid over $\alpha$ is
# the table in section 2.
#
# **A caveat on "Bayesian".** The log-uniform prior is improper, and Hron, Matthews and Ghahramani
# ([*Variational Bayesian dropout: pitfalls and fixes*](https://arxiv.org/abs/1807.01969), ICML 2018) show
# that with it the true posterior is generally improper or pathological, and that the variational objective
# is ill-defined for the approximations of this family: the method "still works only because the variational
# formulation annuls some of the pathologies". Read Sparse VD as a well-behaved penalised objective
# (data term + KL weight x KL, with an arbitrary constant in the KL) motivated by Bayesian reasoning, not
# as exact Bayesian inference.
#
# ## What to remember
# - Log-uniform prior: flat in $\log|w|$ (one decade holds as much mass as any other), improper, scale
#   invariant; its penalty $\log|w|$ and the posterior's entropy cancel in $\theta$, so its KL depends on $\alpha$ only.
# - $q(w) = \mathcal N(\theta, \alpha\theta^2)$ is Gaussian dropout with rate $\alpha/(1+\alpha)$ per weight.
# - The KL term pushes $\alpha$ up; weights with $\log\alpha \ge 3$ are dropped: their mean is within
#   $1/\sqrt\alpha \approx 0.22$ standard deviations of 0 (not zero on average), and 41 % of their samples flip sign.
#
# Next: [02 · the KL approximation](02_kl_approximation.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
