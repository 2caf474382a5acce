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
# 3. explain why a weight with a large $\alpha$ can be removed.
#
# **Time on CPU:** under 10 seconds (default and fast mode alike; nothing is trained).
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (the paper this lab follows); Kingma, Salimans, Welling,
# [*Variational Dropout and the Local Reparameterization Trick*](https://arxiv.org/abs/1506.02557), NeurIPS 2015;
# Louizos, Ullrich, Welling, [*Bayesian Compression for Deep Learning*](https://arxiv.org/abs/1705.08665), NeurIPS 2017.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sparsevd_lab import plots, theory, widgets

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
# ## 2. The posterior: a weight with its own dropout rate
#
# Sparse VD gives every weight a Gaussian posterior whose variance is tied to the mean:
#
# $$q(w_{ij}) = \mathcal N\left(\theta_{ij},\ \alpha_{ij}\theta_{ij}^2\right)
#   \iff w_{ij} = \theta_{ij}\left(1 + \sqrt{\alpha_{ij}}\,\varepsilon_{ij}\right),\quad \varepsilon_{ij}\sim\mathcal N(0, 1).$$
#
# That is Gaussian dropout: multiplicative noise $1 + \sqrt\alpha\,\varepsilon$ has the mean and variance of
# Bernoulli dropout with keep probability $1 - p$ rescaled by $1/(1-p)$ when $\alpha = p/(1-p)$, i.e.
#
# $$p = \frac{\alpha}{1+\alpha}.$$
#
# With the log-uniform prior, $\mathrm{KL}(q\,\|\,p)$ depends on $\alpha$ alone (not on $\theta$): the
# prior cannot tell scales apart. The KL falls as $\alpha$ grows, so it pushes every $\alpha$ up;
# only the data term resists. When $\alpha \to \infty$ the dropout rate goes to 1: the weight is pure noise
# and the network does better without it. The paper drops weights with $\log\alpha \ge 3$
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
# ## 3. Explore: slide $\theta$ and $\alpha$
#
# The table under the sliders gives the posterior's standard deviation $\sqrt\alpha\,|\theta|$, the
# dropout rate, the chance that a sample has the opposite sign of $\theta$, and the KL to the prior.
# Moving $\theta$ rescales the curve but leaves the dropout rate and the KL unchanged.

# %%
widgets.prior_widget(THETA, ALPHA)

# %% [markdown]
# **Static copy** (for GitHub and nbviewer, where widgets do not run): the same render for three settings.

# %%
tables = widgets.static_fallback(widgets.prior_render, [
    {"theta": 1.0, "alpha": 0.1}, {"theta": 1.0, "alpha": 1.0}, {"theta": 0.5, "alpha": 20.0}],
    save_as=["01_posterior_alpha0.1.png", "01_posterior_alpha1.png", "01_posterior_alpha20.png"])

# %% [markdown]
# With $\alpha = 0.1$ the posterior is a narrow bump around $\theta$ (dropout rate 0.09). With $\alpha = 1$
# it is as wide as it is far from zero (rate 0.5) and 16 % of samples flip sign. With $\alpha = 20$
# ($\log\alpha \approx 2.996$, just under the paper's threshold of 3) the noise swamps the mean: 41 % of samples have the wrong sign.
# Such a weight carries no information, and setting it to zero changes nothing on average.
# The full grid over $\alpha$ is the table in section 2; $\theta$ does not enter the dropout rate or the KL.
#
# ## What to remember
# - Log-uniform prior: flat in $\log|w|$, improper, scale invariant; its KL depends on $\alpha$ only.
# - $q(w) = \mathcal N(\theta, \alpha\theta^2)$ is Gaussian dropout with rate $\alpha/(1+\alpha)$ per weight.
# - The KL term pushes $\alpha$ up; weights with $\log\alpha \ge 3$ are dropped.
#
# Next: [02 · the KL approximation](02_kl_approximation.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
