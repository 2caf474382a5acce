"""The small computations behind notebooks 01-03: priors, the posterior's dropout rate, the exact KL
to the log-uniform prior and a refit of the paper's approximation (eq. 14), and the local
reparameterisation trick against explicit weight sampling (Kingma et al. 2015).

None of this is needed to train a model; it is here so the notebooks stay thin and it stays tested.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import optimize, special, stats

from .layers import K1, K2, K3, linear_svdo

__all__ = [
    "EULER_GAMMA",
    "KL_LIMIT",
    "PAPER_K",
    "log_uniform_density",
    "gaussian_density",
    "laplace_density",
    "dropout_rate",
    "posterior_std",
    "neg_kl_exact",
    "neg_kl_mc",
    "neg_kl_sigmoid",
    "fit_kl_constants",
    "lrt_moments",
    "gradient_variance",
    "theta_grad_variance",
    "theta_grad_variance_layer",
]

EULER_GAMMA = float(np.euler_gamma)
# lim_{alpha -> inf} of 0.5 log alpha - E log|1 + sqrt(alpha) eps|, = (gamma + log 2) / 2 = 0.6352
KL_LIMIT = 0.5 * (EULER_GAMMA + math.log(2.0))
PAPER_K = (K1, K2, K3)


# --------------------------------------------------------------------------------------------------
# Priors and the posterior (paper sec. 3-4)
# --------------------------------------------------------------------------------------------------

def log_uniform_density(w, scale: float = 1.0) -> np.ndarray:
    """Unnormalised log-uniform density p(|w|) = scale / |w| (eq. 11). It has no normaliser: the
    integral of 1/|w| diverges at 0 and at infinity (an improper prior); inf at w = 0."""
    w = np.abs(np.asarray(w, dtype=float))
    with np.errstate(divide="ignore"):
        return scale / w


def gaussian_density(w, sigma: float = 1.0) -> np.ndarray:
    """N(0, sigma^2) density (the prior behind L2 weight decay)."""
    return stats.norm.pdf(np.asarray(w, dtype=float), scale=sigma)


def laplace_density(w, b: float = 1.0) -> np.ndarray:
    """Laplace(0, b) density (the prior behind L1 regularisation)."""
    return stats.laplace.pdf(np.asarray(w, dtype=float), scale=b)


def dropout_rate(alpha) -> np.ndarray:
    """The Gaussian dropout rate p with alpha = p / (1 - p), i.e. p = alpha / (1 + alpha) (sec. 3)."""
    alpha = np.asarray(alpha, dtype=float)
    if np.any(alpha < 0):
        raise ValueError("alpha is a variance ratio and must be >= 0")
    return alpha / (1.0 + alpha)


def posterior_std(theta, alpha) -> np.ndarray:
    """Standard deviation of q(w) = N(theta, alpha theta^2): sqrt(alpha) |theta| (eq. 15)."""
    return np.sqrt(np.asarray(alpha, dtype=float)) * np.abs(np.asarray(theta, dtype=float))


# --------------------------------------------------------------------------------------------------
# KL(q || log-uniform) as a function of log alpha (eq. 14)
# --------------------------------------------------------------------------------------------------

def _as_grid(log_alpha) -> np.ndarray:
    return np.atleast_1d(np.asarray(log_alpha, dtype=np.float64))


def neg_kl_exact(log_alpha) -> np.ndarray:
    """-KL(q || log-uniform prior) to about 1e-10, deterministic, with the constant
    C = -(gamma + log 2) / 2, the exact limit, so that -KL -> 0 as alpha -> inf (the paper's eq. 14
    uses C = -k1 = -0.63576 for its approximation, 0.0006 away):

        -KL = 0.5 log alpha - E log|1 + sqrt(alpha) eps| + C,   eps ~ N(0, 1).

    With m = 1 / sqrt(alpha), (eps + m)^2 is a noncentral chi-square with 1 degree of freedom and
    noncentrality m^2: a Poisson(m^2 / 2) mixture of chi-square(1 + 2J). Hence
    E log (eps + m)^2 = log 2 + E psi(1/2 + J), and -KL = -(log 2 + E psi(1/2 + J)) / 2 + C.
    """
    la = _as_grid(log_alpha)
    if not np.all(np.isfinite(la)):
        raise ValueError("log_alpha must be finite")
    lam = 0.5 * np.exp(-la)  # Poisson mean m^2 / 2 = 1 / (2 alpha)
    out = np.empty_like(la)
    for i, mu in enumerate(lam):
        if mu > 1e8:  # E psi(1/2 + J) = log mu + O(1 / mu): the series would need 1e5+ terms
            e_psi = math.log(mu)
        else:
            half = 12.0 * math.sqrt(mu) + 30.0
            j = np.arange(max(0, int(mu - half)), int(mu + half) + 1, dtype=np.float64)
            pmf = stats.poisson.pmf(j, mu)
            e_psi = float(np.sum(pmf * special.digamma(0.5 + j)) / np.sum(pmf))
        out[i] = -0.5 * (math.log(2.0) + e_psi)
    return out - KL_LIMIT


def neg_kl_mc(log_alpha, n_samples: int = 100_000, seed: int = 0, chunk: int = 64) -> np.ndarray:
    """Monte Carlo estimate of -KL (same constant as ``neg_kl_exact``): the same fixed-seed draws
    eps_1..eps_S are used for every alpha (common random numbers), so the curve is smooth and the
    result is reproducible. Standard error about 1 / sqrt(n_samples) per point."""
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2")
    la = _as_grid(log_alpha)
    eps = np.random.default_rng(seed).standard_normal(int(n_samples))
    out = np.empty_like(la)
    for start in range(0, len(la), chunk):
        s = np.exp(0.5 * la[start:start + chunk])[:, None]
        out[start:start + chunk] = 0.5 * la[start:start + chunk] - np.log(np.abs(1.0 + s * eps)).mean(1)
    return out - KL_LIMIT


def neg_kl_sigmoid(log_alpha, k=PAPER_K) -> np.ndarray:
    """The paper's approximation (eq. 14) with constants ``k = (k1, k2, k3)``:
    -KL ~= k1 sigmoid(k2 + k3 log alpha) - 0.5 log1p(1 / alpha) - k1."""
    k1, k2, k3 = (float(v) for v in k)
    la = _as_grid(log_alpha)
    return k1 * special.expit(k2 + k3 * la) - 0.5 * np.logaddexp(0.0, -la) - k1


def fit_kl_constants(log_alpha, target, x0=(0.6, 2.0, 1.5), maxiter: int = 4000) -> tuple[float, ...]:
    """Fit (k1, k2, k3) of eq. 14 to ``target`` (-KL values on the ``log_alpha`` grid) by least
    squares with Nelder-Mead, as the authors did. Deterministic for fixed inputs."""
    la, y = _as_grid(log_alpha), _as_grid(target)
    if la.shape != y.shape:
        raise ValueError(f"log_alpha and target differ in shape: {la.shape} vs {y.shape}")

    def loss(k):
        return float(np.mean((neg_kl_sigmoid(la, k) - y) ** 2))

    res = optimize.minimize(loss, np.asarray(x0, dtype=float), method="Nelder-Mead",
                            options={"xatol": 1e-8, "fatol": 1e-14, "maxiter": maxiter,
                                     "maxfev": 2 * maxiter})
    return tuple(float(v) for v in res.x)


# --------------------------------------------------------------------------------------------------
# Local reparameterisation trick (eq. 17; Kingma, Salimans, Welling 2015)
# --------------------------------------------------------------------------------------------------

def _weight_sample_outputs(x, weight, sigma, n, generator, per_example: bool):
    if per_example:  # one weight draw per example: (n, B, out, in)
        w = weight + sigma * torch.randn((n, x.shape[0], *weight.shape), generator=generator)
        return torch.einsum("bi,nboi->nbo", x, w)
    w = weight + sigma * torch.randn((n, *weight.shape), generator=generator)
    return torch.einsum("bi,noi->nbo", x, w)


@torch.no_grad()
def lrt_moments(x: torch.Tensor, weight: torch.Tensor, log_sigma2: torch.Tensor,
                n_samples: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Mean and variance of the pre-activations x W^T under q(W), three ways, for the first example
    of ``x`` and every output unit: analytic (mu = x theta^T, var = x^2 sigma^2^T), explicit weight
    sampling (W = theta + sigma eps), and the local reparameterisation trick (``linear_svdo``)."""
    x = x[:1].double()
    weight, sigma2 = weight.double(), torch.exp(log_sigma2.double())
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    ws = _weight_sample_outputs(x, weight, sigma2.sqrt(), n_samples, g, False)[:, 0, :]
    lrt = linear_svdo(x.expand(n_samples, -1), weight, log_sigma2.double(), training=True)
    return pd.DataFrame({
        "unit": np.arange(weight.shape[0]),
        "mean (analytic)": (x @ weight.T)[0].numpy(),
        "mean (weight sampling)": ws.mean(0).numpy(),
        "mean (LRT)": lrt.mean(0).numpy(),
        "var (analytic)": ((x * x) @ sigma2.T)[0].numpy(),
        "var (weight sampling)": ws.var(0).numpy(),
        "var (LRT)": lrt.var(0).numpy(),
    }).set_index("unit")


def gradient_variance(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                      log_sigma2: torch.Tensor, n_repeats: int = 200, seed: int = 0) -> pd.DataFrame:
    """Variance across repeated draws of the minibatch gradient of the cross-entropy of a Sparse VD
    linear classifier (softmax(x W^T)) with respect to theta and log sigma^2, for three estimators:
    the local reparameterisation trick, one weight sample per example, and one weight sample shared
    by the whole minibatch. Returns the mean (over parameters) of the per-parameter variance."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rows = []
    for name in ("local reparameterisation", "weight sample per example",
                 "weight sample shared by the batch"):
        grads_t, grads_s = [], []
        for _ in range(n_repeats):
            w = weight.detach().clone().requires_grad_(True)
            ls2 = log_sigma2.detach().clone().requires_grad_(True)
            if name == "local reparameterisation":
                out = linear_svdo(x, w, ls2, training=True)
            else:
                sigma = torch.exp(0.5 * ls2)
                out = _weight_sample_outputs(x, w, sigma, 1, g, name.endswith("example"))[0]
            loss = F.cross_entropy(out, y)
            gt, gs = torch.autograd.grad(loss, (w, ls2))
            grads_t.append(gt.flatten())
            grads_s.append(gs.flatten())
        rows.append({"estimator": name,
                     "grad variance, theta": float(torch.stack(grads_t).var(0).mean()),
                     "grad variance, log sigma2": float(torch.stack(grads_s).var(0).mean())})
    df = pd.DataFrame(rows).set_index("estimator")
    df["relative to LRT (theta)"] = df["grad variance, theta"] / df["grad variance, theta"].iloc[0]
    df["relative to LRT (log sigma2)"] = (df["grad variance, log sigma2"]
                                          / df["grad variance, log sigma2"].iloc[0])
    return df


# --------------------------------------------------------------------------------------------------
# The additive reparameterisation (eq. 15): train (theta, log sigma^2), not (theta, alpha)
# --------------------------------------------------------------------------------------------------

def _log_alpha_grid(log_alpha) -> np.ndarray:
    la = _as_grid(log_alpha)
    if not np.all(np.isfinite(la)):
        raise ValueError("log_alpha must be finite")
    return la


def theta_grad_variance(log_alpha, theta: float = 1.0, n_samples: int = 100_000,
                        seed: int = 0) -> pd.DataFrame:
    """Variance of the gradient with respect to theta of one weight's loss L(w) = w^2 / 2, with
    w ~ q(w) = N(theta, alpha theta^2) sampled two ways (eq. 15):

    - (theta, sigma), the additive reparameterisation: w = theta + sigma eps with sigma a parameter
      of its own, so dL/dtheta = L'(w);
    - (theta, alpha), the multiplicative one: w = theta (1 + sqrt(alpha) eps) with alpha a parameter,
      so the noise scales with theta and dL/dtheta = L'(w) (1 + sqrt(alpha) eps).

    Measured by Monte Carlo with autograd (the same ``n_samples`` draws of eps for every alpha, one
    gradient per draw), beside the exact values: Var = alpha theta^2 under (theta, sigma) and
    theta^2 (4 alpha + 2 alpha^2) under (theta, alpha), a ratio of 4 + 2 alpha.
    """
    la = _log_alpha_grid(log_alpha)
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2")
    if theta == 0:
        raise ValueError("theta must be non-zero: alpha = sigma^2 / theta^2 is undefined at 0")
    eps = torch.randn(int(n_samples), generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)
    rows = []
    for log_a in la:
        alpha = math.exp(log_a)
        grads = {}
        for name in ("(theta, sigma)", "(theta, alpha)"):
            th = torch.full_like(eps, theta).requires_grad_(True)  # one copy per draw
            if name == "(theta, sigma)":
                sigma = math.sqrt(alpha) * abs(theta)  # a parameter of its own: no path to theta
                w = th + sigma * eps
            else:
                w = th * (1.0 + math.sqrt(alpha) * eps)  # sigma = sqrt(alpha) |theta| moves with theta
            (g,) = torch.autograd.grad((0.5 * w ** 2).sum(), th)
            grads[name] = float(g.var())
        rows.append({"log_alpha": float(log_a), "alpha": alpha,
                     "var (theta, sigma)": grads["(theta, sigma)"],
                     "var (theta, alpha)": grads["(theta, alpha)"],
                     "var (theta, sigma), exact": alpha * theta ** 2,
                     "var (theta, alpha), exact": theta ** 2 * (4 * alpha + 2 * alpha ** 2)})
    df = pd.DataFrame(rows)
    df["ratio"] = df["var (theta, alpha)"] / df["var (theta, sigma)"]
    df["ratio, exact 4 + 2 alpha"] = 4.0 + 2.0 * df["alpha"]
    return df


def theta_grad_variance_layer(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, log_alpha,
                              n_repeats: int = 50, seed: int = 0) -> pd.DataFrame:
    """The same comparison in a Sparse VD softmax classifier (softmax(x W^T), cross-entropy on the
    minibatch ``x, y``, the local reparameterisation trick of eq. 17) with every weight at the same
    alpha: the variance across ``n_repeats`` draws of the minibatch gradient with respect to theta
    (averaged over the weights) when the layer is parameterised by (theta, log sigma^2) and by
    (theta, log alpha). The two share their noise draws, so they differ only in the
    parameterisation: under (theta, alpha), sigma^2 = alpha theta^2 moves with theta and the
    gradient picks up the noise term."""
    la = _log_alpha_grid(log_alpha)
    if n_repeats < 2:
        raise ValueError("n_repeats must be >= 2")
    x, theta = x.detach().double().flatten(1), weight.detach().double()
    if theta.shape[1] != x.shape[1]:
        raise ValueError(f"weight has {theta.shape[1]} inputs but x has {x.shape[1]} features")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for log_a in la:
        eps = torch.randn((n_repeats, x.shape[0], theta.shape[0]), generator=g, dtype=torch.float64)
        var_of = {}
        for name in ("(theta, sigma)", "(theta, alpha)"):
            th = theta.expand(n_repeats, *theta.shape).clone().requires_grad_(True)
            if name == "(theta, sigma)":
                log_sigma2 = float(log_a) + torch.log(theta ** 2)  # a parameter: no path to theta
            else:
                log_sigma2 = float(log_a) + torch.log(th ** 2)  # sigma^2 = alpha theta^2
            mu = torch.einsum("bi,roi->rbo", x, th)
            var = torch.einsum("bi,roi->rbo", x * x, torch.exp(log_sigma2).expand_as(th))
            out = mu + torch.sqrt(var.clamp_min(1e-16)) * eps  # eq. 17
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(n_repeats),
                                   reduction="sum") / x.shape[0]  # the sum of the repeats' means
            (grad,) = torch.autograd.grad(loss, th)
            var_of[name] = float(grad.var(0).mean())
        rows.append({"log_alpha": float(log_a), "alpha": math.exp(log_a),
                     "var (theta, sigma)": var_of["(theta, sigma)"],
                     "var (theta, alpha)": var_of["(theta, alpha)"]})
    df = pd.DataFrame(rows)
    df["ratio"] = df["var (theta, alpha)"] / df["var (theta, sigma)"]
    return df
