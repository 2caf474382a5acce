"""Checks for notebook 03 (Sparse VD layers, the additive and local reparameterisations, Table 1):
one per exercise.

- ``check_theta_grad_variance``: the per-draw gradient of one weight's loss with respect to theta
  under the additive (theta, sigma) and the multiplicative (theta, alpha) parameterisation (eq. 15);
  the check also measures the variance ratio with the student's function (it should be 4 + 2 alpha).
- ``check_preactivation_moments``: the mean and variance of the pre-activations that the local
  reparameterisation trick samples (eq. 17), with a bias that must stay out of the variance.
- ``check_compression_sparsity``: total compression from per-layer sparsity and layer sizes.
- ``check_kl_share`` and ``check_train_size``: the KL term's share of the objective (eq. 3 divided
  by N) and the N it is divided by, the training set's size.

Each runs on fixed inputs in well under a second, names the known wrong answers, and prints one line
starting with ``OK:``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .common import _call, _fail, _ok
from .nb01 import _as_array, _as_number, _match

__all__ = [
    "check_theta_grad_variance",
    "check_preactivation_moments",
    "check_compression_sparsity",
    "check_kl_share",
    "check_train_size",
]


def _pair(what: str, out, n: int, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The student's two outputs as float arrays of length ``n``."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(what, f"expected two results, ({names[0]}, {names[1]}), as a tuple; got "
                    f"{type(out).__name__}")
    return tuple(_as_array(f"{what} ({name})", o, (n,)) for o, name in zip(out, names))


# --------------------------------------------------------------------------------------------------
# Exercise 1: the gradient with respect to theta under (theta, sigma) and under (theta, alpha)
# --------------------------------------------------------------------------------------------------

_GRAD_CASES = [(0.5, 0.2), (1.0, 1.0), (2.0, math.exp(3.0)), (0.3, math.exp(6.0))]  # (theta, alpha)


def check_theta_grad_variance(fn: Callable) -> None:
    """``fn(theta, alpha, eps)`` must return ``(g_sigma, g_alpha)``: for each draw eps (a 1-d
    tensor) the gradient dL/dtheta of L(w) = w^2 / 2 at the sample w = theta + sqrt(alpha) |theta| eps
    of q(w) = N(theta, alpha theta^2), with the sample written as w = theta + sigma eps and sigma a
    parameter of its own (eq. 15's additive reparameterisation: g_sigma), and as
    w = theta (1 + sqrt(alpha) eps) with alpha a parameter of its own (g_alpha). theta > 0 here."""
    what = "theta_gradients"
    eps = torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e = eps.numpy()
    ratios = []
    for theta, alpha in _GRAD_CASES:
        out = _call(what, fn, theta, alpha, eps.clone())
        g_sigma, g_alpha = _pair(what, out, len(e), ("g_sigma", "g_alpha"))
        s = math.sqrt(alpha)
        w = theta * (1.0 + s * e)
        right_sigma, right_alpha = w, w * (1.0 + s * e)
        at = f"theta = {theta:g}, alpha = {alpha:.4g}"
        for got, right, name, other in ((g_sigma, right_sigma, "g_sigma", right_alpha),
                                        (g_alpha, right_alpha, "g_alpha", right_sigma)):
            if np.allclose(got, right, rtol=1e-5, atol=1e-7):
                continue
            if name == "g_sigma":
                wrong = {
                    "w (1 + sqrt(alpha) eps), the (theta, alpha) gradient: with sigma a parameter of "
                    "its own, w = theta + sigma eps and dw/dtheta = 1": other,
                    "theta, the gradient without the noise: w is a sample, theta + sigma eps": theta
                    + 0 * e,
                    "1, only dw/dtheta: the chain rule needs dL/dw = w too": np.ones_like(e),
                }
            else:
                wrong = {
                    "w, the (theta, sigma) gradient: under (theta, alpha) the noise "
                    "sqrt(alpha) theta eps moves with theta, so dw/dtheta = 1 + sqrt(alpha) eps": other,
                    "w sqrt(alpha) eps: dw/dtheta = 1 + sqrt(alpha) eps, the 1 is missing": w * s * e,
                    "w (1 + alpha eps): the noise of q(w) has standard deviation sqrt(alpha) theta, "
                    "so dw/dtheta = 1 + sqrt(alpha) eps": w * (1.0 + alpha * e),
                    "1 + sqrt(alpha) eps, only dw/dtheta: the chain rule needs dL/dw = w too": 1.0 + s * e,
                    "w (1 + sqrt(alpha) eps)^2: one factor too many": w * (1.0 + s * e) ** 2,
                }
            pair_swapped = (np.allclose(g_sigma, right_alpha, rtol=1e-5)
                            and np.allclose(g_alpha, right_sigma, rtol=1e-5))
            if pair_swapped:
                _fail(what, f"the two gradients are swapped: g_sigma is the additive one, "
                            f"(theta, sigma); return (g_sigma, g_alpha)")
            hit = _match(got, wrong, rtol=1e-5, atol=1e-7)
            if hit:
                _fail(what, f"{name} at {at}: you computed {hit}")
            if np.all(np.isfinite(got)) and abs(np.var(got) / np.var(right) - 1) < 0.1:
                _fail(what, f"{name} at {at}: the right spread but other values: the result does not "
                            f"follow the eps passed in. use the argument eps, do not draw your own noise")
            i = int(np.nanargmax(np.abs(got - right)))
            _fail(what, f"{name} at {at}, eps = {e[i]:.4f}: expected {right[i]:.6g}, got {got[i]:.6g}. "
                        f"dL/dtheta = dL/dw * dw/dtheta with L = w^2 / 2 (eq. 15)")
        ratios.append(float(np.var(g_alpha) / np.var(g_sigma)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        other_eps = torch.randn(5, dtype=torch.float64)
    out = _call(what, fn, 1.0, 1.0, other_eps.clone())
    g_sigma, _ = _pair(what, out, 5, ("g_sigma", "g_alpha"))
    if not np.allclose(g_sigma, 1.0 + other_eps.numpy(), rtol=1e-5):
        _fail(what, "the result does not follow the eps passed in: use the argument eps, do not draw "
                    "your own noise")
    _ok(what, f"Var under (theta, alpha) / Var under (theta, sigma), measured with your function: "
              f"{ratios[1]:.2f} at alpha = 1, {ratios[2]:.1f} at log alpha = 3, {ratios[3]:.0f} at "
              f"log alpha = 6 (exactly 4 + 2 alpha: 6, {4 + 2 * math.exp(3):.1f}, "
              f"{4 + 2 * math.exp(6):.0f})")


# --------------------------------------------------------------------------------------------------
# Exercise 2: the moments the local reparameterisation trick samples (eq. 17)
# --------------------------------------------------------------------------------------------------

def _moment_inputs():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    x[0] = 0.0  # an all-zero input row: mean = bias, variance 0
    theta = 0.5 * torch.randn(4, 5, generator=g, dtype=torch.float64)
    log_sigma2 = torch.log(theta ** 2) + torch.empty(4, 5, dtype=torch.float64).uniform_(
        -3.0, 4.0, generator=g)
    bias = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    return x, theta, log_sigma2, bias


def check_preactivation_moments(fn: Callable) -> None:
    """``fn(x, theta, log_sigma2, bias)`` must return ``(mean, var)``, each of shape
    (batch, out_features): the mean and the variance of the pre-activations b = x W^T + bias under
    q(W) = N(theta, sigma^2) with independent weights, which the local reparameterisation trick
    samples directly (eq. 17)."""
    what = "preactivation_moments"
    x, theta, log_sigma2, bias = _moment_inputs()
    out = _call(what, fn, x.clone(), theta.clone(), log_sigma2.clone(), bias.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(what, f"expected two results, (mean, var), as a tuple; got {type(out).__name__}")
    shape = (x.shape[0], theta.shape[0])
    mean, var = (_as_array(f"{what} ({n})", o, shape) for o, n in zip(out, ("mean", "var")))
    xn, th, s2, b = x.numpy(), theta.numpy(), log_sigma2.exp().numpy(), bias.numpy()
    right_mean = xn @ th.T + b
    right_var = (xn * xn) @ s2.T
    if not np.allclose(mean, right_mean, rtol=1e-6, atol=1e-9):
        wrong = {"x theta^T without the bias: the bias shifts the mean": xn @ th.T}
        hit = _match(mean, wrong)
        if hit:
            _fail(what, f"the mean is {hit}")
        _fail(what, f"wrong mean: expected x theta^T + bias (E W = theta), e.g. {right_mean[1, 0]:.6g} "
                    f"for example 1, unit 0; got {mean[1, 0]:.6g}")
    if not np.allclose(var, right_var, rtol=1e-6, atol=1e-9):
        sigma = np.sqrt(s2)
        wrong = {
            "the bias added to the variance: the bias is not random, it shifts the mean only "
            "(pytorch_ard's Conv2dARD put it there, a known NaN bug)": right_var + b,
            "the squared bias added to the variance: the bias is not random": right_var + b ** 2,
            "x sigma^2^T with x not squared: Var(x_i w_i) = x_i^2 sigma_i^2": xn @ s2.T,
            "(x sigma^T)^2, the square of a sum: the variance of a sum of independent terms is the "
            "sum of their variances": (xn @ sigma.T) ** 2,
            "x^2 sigma^T, with the standard deviation sigma = exp(log_sigma2 / 2) in place of the "
            "variance sigma^2 = exp(log_sigma2)": (xn * xn) @ sigma.T,
            "x^2 log_sigma2^T: exponentiate log_sigma2 first": (xn * xn) @ log_sigma2.numpy().T,
            "x^2 (sigma^2 theta^2)^T: log_sigma2 is log sigma^2 itself, not log alpha "
            "(eq. 15: sigma^2 = alpha theta^2 is already the variance)": (xn * xn) @ (s2 * th ** 2).T,
            "x^2 (sigma^2 / theta^2)^T, that is x^2 alpha^T: the weights' variance is sigma^2, "
            "alpha = sigma^2 / theta^2 is only a ratio": (xn * xn) @ (s2 / th ** 2).T,
            "the standard deviation sqrt(x^2 sigma^2^T), not the variance": np.sqrt(right_var),
        }
        hit = _match(var, wrong)
        if hit:
            _fail(what, f"the variance is {hit}")
        _fail(what, f"wrong variance: expected {right_var[1, 0]:.6g} for example 1, unit 0, got "
                    f"{var[1, 0]:.6g}. Each b_j is a sum over i of independent x_i w_ji (eq. 17)")
    _ok(what, f"= (x theta^T + bias, x^2 sigma^2^T): an all-zero input row has mean = bias and "
              f"variance 0, so a square root of it needs a floor before sampling (A1 checks that)")


# --------------------------------------------------------------------------------------------------
# Exercise 4: compression from per-layer sparsity
# --------------------------------------------------------------------------------------------------

# (per-layer sparsity %, layer sizes): the paper's LeNet-300-100 and LeNet-5 rows, a dense net,
# and an uneven made-up net
_COMP_CASES = [
    ((98.9, 97.2, 62.0), (235200, 30000, 1000)),
    ((67.0, 98.0, 99.8, 95.0), (500, 25000, 400000, 5000)),
    ((0.0, 0.0, 0.0), (235200, 30000, 1000)),
    ((50.0, 90.0), (100, 900)),
]


def check_compression_sparsity(fn: Callable) -> None:
    """``fn(sparsity_percent, sizes)`` must return the compression (total weights / kept weights,
    Table 1) of a network whose layers have ``sizes[i]`` weights of which ``sparsity_percent[i]`` %
    are dropped. Both arguments are sequences of numbers, one per layer."""
    what = "compression"
    got, expected = [], []
    for sp, n in _COMP_CASES:
        out = _as_number(what, _call(what, fn, list(sp), list(n)))
        s, n_ = np.array(sp) / 100.0, np.array(n, dtype=float)
        expected.append(n_.sum() / (n_ * (1 - s)).sum())
        got.append(out)
    got, expected = np.array(got), np.array(expected)
    if not np.allclose(got, expected, rtol=1e-6):
        def per_case(f):
            vals = []
            for sp, n in _COMP_CASES:
                s, n_ = np.array(sp) / 100.0, np.array(n, dtype=float)
                with np.errstate(all="ignore"):
                    vals.append(f(s, n_))
            return np.array(vals, dtype=float)
        wrong = {
            "1 / (1 - mean sparsity), the sparsities averaged without weighting by the layer sizes: "
            "fc1 holds 88 % of LeNet-300-100's weights": per_case(lambda s, n: 1 / (1 - s.mean())),
            "the mean of the per-layer compressions: compressions do not average; count kept weights":
                per_case(lambda s, n: np.mean(1 / (1 - s))),
            "the size-weighted mean of the per-layer compressions: count the kept weights instead":
                per_case(lambda s, n: np.sum(n / (1 - s)) / n.sum()),
            "the total sparsity in %, not the compression: compression = total / kept = "
            "1 / (1 - sparsity)": per_case(lambda s, n: 100 * (1 - (n * (1 - s)).sum() / n.sum())),
            "the total sparsity as a fraction, not the compression": per_case(
                lambda s, n: 1 - (n * (1 - s)).sum() / n.sum()),
            "total / dropped weights; compression divides by the kept ones": per_case(
                lambda s, n: n.sum() / (n * s).sum()),
            "kept / total, the reciprocal of the compression": per_case(
                lambda s, n: (n * (1 - s)).sum() / n.sum()),
            "1 - s with s in % (e.g. 1 - 98.9): divide the sparsity by 100 first": per_case(
                lambda s, n: n.sum() / (n * (1 - 100 * s)).sum()),
        }
        hit = _match(got, wrong, rtol=1e-6)
        if hit:
            _fail(what, f"you computed {hit}")
        i = int(np.nanargmax(np.abs(got - expected) / expected))
        sp, n = _COMP_CASES[i]
        _fail(what, f"wrong value for sparsity {'-'.join(f'{v:g}' for v in sp)} % with layer sizes "
                    f"{list(n)}: expected {expected[i]:.4g}x, got {got[i]:.4g}. Count the kept weights "
                    f"of each layer, then divide the total by their sum")
    _ok(what, f"= total / kept: the paper's 98.9-97.2-62.0 gives {expected[0]:.1f}x (Table 1 says "
              f"68x, from unrounded sparsities), its LeNet-5 row {expected[1]:.0f}x (Table 1: 280x)")


# --------------------------------------------------------------------------------------------------
# Exercise 3: the KL's share of the objective as N shrinks
# --------------------------------------------------------------------------------------------------

# (summed KL, mean data loss per example, N, kl_weight)
_SHARE_CASES = [(20_000.0, 0.30, 55_000, 1.0), (20_000.0, 0.30, 4_000, 1.0),
                (8_000.0, 0.50, 1_000, 0.5), (150_000.0, 0.25, 60_000, 1.0)]


def check_kl_share(fn: Callable) -> None:
    """``fn(kl, data_loss, train_size, kl_weight)`` must return the KL term's share of the objective
    per example (eq. 3 divided by N): with ``kl_term = kl_weight * kl / train_size``, the fraction
    ``kl_term / (data_loss + kl_term)``, a number between 0 and 1. ``kl`` is the KL summed over all
    weights, ``data_loss`` the mean cross-entropy per example."""
    what = "kl_share"
    got = np.array([_as_number(what, _call(what, fn, kl, dl, n, w)) for kl, dl, n, w in _SHARE_CASES])

    def per_case(f):
        return np.array([f(kl, dl, n, w) for kl, dl, n, w in _SHARE_CASES], dtype=float)

    expected = per_case(lambda kl, dl, n, w: (w * kl / n) / (dl + w * kl / n))
    if not np.allclose(got, expected, rtol=1e-6):
        wrong = {
            "the KL not divided by N: per example the objective is data loss + kl_weight * KL / N "
            "(eq. 3 divided by N), so the summed KL must be divided by the training-set size":
                per_case(lambda kl, dl, n, w: w * kl / (dl + w * kl)),
            "the KL multiplied by N instead of divided by it":
                per_case(lambda kl, dl, n, w: w * kl * n / (dl + w * kl * n)),
            "the KL term against the data loss alone (kl_term / data_loss), a ratio that can exceed "
            "1; the share divides by the whole objective, data_loss + kl_term":
                per_case(lambda kl, dl, n, w: (w * kl / n) / dl),
            "the data term's share, data_loss / (data_loss + kl_term): the ratio is inverted":
                per_case(lambda kl, dl, n, w: dl / (dl + w * kl / n)),
            "data_loss / kl_term: the ratio is inverted (and not a share of the total)":
                per_case(lambda kl, dl, n, w: dl / (w * kl / n)),
            "the share without kl_weight: the KL term is kl_weight * KL / N (the warm-up scales it)":
                per_case(lambda kl, dl, n, w: (kl / n) / (dl + kl / n)),
            "the share in %, not as a fraction between 0 and 1":
                per_case(lambda kl, dl, n, w: 100 * (w * kl / n) / (dl + w * kl / n)),
        }
        hit = _match(got, wrong, rtol=1e-6)
        if hit:
            _fail(what, f"you computed {hit}")
        i = int(np.nanargmax(np.abs(got - expected)))
        kl, dl, n, w = _SHARE_CASES[i]
        _fail(what, f"wrong value for kl={kl:g}, data_loss={dl:g}, train_size={n}, kl_weight={w:g}: "
                    f"expected {expected[i]:.4g}, got {got[i]:.4g}. kl_term = kl_weight * kl / "
                    f"train_size; share = kl_term / (data_loss + kl_term)")
    _ok(what, f"= kl_term / (data_loss + kl_term): the same KL of {_SHARE_CASES[0][0]:g} is "
              f"{100 * expected[0]:.1f} % of the objective with N = 55,000 and "
              f"{100 * expected[1]:.1f} % with N = 4,000")


def check_train_size(n, result: dict) -> None:
    """``n`` must be the N of the SGVLB in the class run ``result`` (``class_run``'s return value):
    the number of examples it trained on, after the validation split was held out."""
    what = "N"
    n = _as_number(what, n)
    p = result["provenance"]
    train, val, test = int(p["train_size"]), int(p["validation_size"]), int(p["test_size"])
    batch = int(result["config"]["recipe"]["batch_size"])
    if n == train:
        _ok(what, f"= {train:,}: the examples the run trained on (the {val:,} validation examples "
                  f"were held out, the {test:,} test examples never seen)")
        return
    wrong = {test: "the size of the test set: N counts the examples the likelihood sums over, the "
                   "training examples",
             train + val: "the training set before the validation split was held out: the run "
                          "trained on fewer",
             val: "the size of the validation set: N is the training set's size",
             -(-train // batch): "the number of batches per epoch: dividing the KL by it instead "
                                 "of N is a bug seen in the wild",
             batch: "the batch size: the KL is counted once per pass over the whole training set, "
                    "so it is divided by the whole training set's size"}
    if n in wrong:
        _fail(what, f"{n:,} is {wrong[n]}")
    _fail(what, f"{n:g} is not the number of training examples of this run; read it from "
                f"result['provenance'] (the train_size)")
