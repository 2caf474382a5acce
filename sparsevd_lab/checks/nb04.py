"""Checks for notebook 04 (what the weights look like).

``check_kl_gradient`` (exercise 1) gives the student's ``kl_gradient(log_abs_theta, log_sigma2)``
points on both sides of the threshold and of the theta^2 = 1e-8 wall and compares the pair
(d KL / d log|theta|, d KL / d log sigma^2) with ``kl_gradient_reference``; each known slip (the sign
of -KL, swapped components, the 1e-8 forgotten, a factor 1 for 2, d/d theta instead of d/d log|theta|,
one term of eq. 14 missing, the softplus's derivative with the wrong sign) is named.

``check_pixels_used`` and ``check_alive_units`` (exercise 2) read a trained model's ``log_alpha``
arrays (torch's layout: one row per output unit, one column per input) and decide what survives the
threshold (kept: log alpha < threshold, the paper's rule and ``LinearSVDO``'s mask). The checks run
the student's function on small seeded arrays built so that every known wrong answer gives a
different result (dropped instead of kept, ``all`` instead of ``any``, the wrong axis, ``<=`` at the
threshold, a hard-coded threshold, only the incoming or only the outgoing weights of a unit), name
the mistake, and print one line starting with ``OK:``."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .common import _call, _fail, _ok

__all__ = ["check_pixels_used", "check_alive_units", "check_kl_gradient", "kl_gradient_reference"]


def _as_bool(what: str, out, n: int, axis_hint: str) -> np.ndarray:
    """The student's answer as a boolean vector of length ``n`` (numpy, torch, a list; a 28x28 map
    is flattened; counts are read as "at least one")."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out)
    except (TypeError, ValueError):
        _fail(what, f"expected an array with one value per {axis_hint}, got {type(out).__name__}")
    if arr.size != n:
        _fail(what, f"expected one value per {axis_hint} ({n} values), got shape {arr.shape}: "
                    f"did you reduce over the wrong axis? log_alpha has one row per output unit and "
                    f"one column per input")
    if arr.dtype.kind not in "biuf":
        _fail(what, f"expected True/False values, got dtype {arr.dtype}")
    return arr.reshape(-1) != 0


def _name_mistake(what: str, out: np.ndarray, expected: np.ndarray, wrong: dict, hint: str) -> None:
    if np.array_equal(out, expected):
        return
    for name, value in wrong.items():
        if np.array_equal(out, value):
            _fail(what, f"you computed {name}. {hint}")
    bad = np.flatnonzero(out != expected)
    _fail(what, f"{len(bad)} of {len(expected)} values are wrong (first at index {bad[0]}: expected "
                f"{bool(expected[bad[0]])}, got {bool(out[bad[0]])}). {hint}")


# --------------------------------------------------------------------------------------------------
# Exercise 1: which input pixels does the first layer still read?
# --------------------------------------------------------------------------------------------------

def _fc1_case(seed: int, n_out: int = 40, n_in: int = 784, threshold: float = 3.0) -> np.ndarray:
    """fc1-like log alpha: most columns wholly dropped, some with one kept weight, some with many,
    a few weights exactly at the threshold (dropped: the rule is log alpha < threshold)."""
    rng = np.random.default_rng(seed)
    la = rng.uniform(threshold + 0.5, threshold + 12.0, size=(n_out, n_in))
    used = rng.random(n_in) < 0.4
    for j in np.flatnonzero(used):
        k = rng.integers(1, max(2, n_out // 2))
        la[rng.choice(n_out, size=k, replace=False), j] = rng.uniform(-6.0, threshold - 0.5, size=k)
    at = rng.choice(np.flatnonzero(~used), size=5, replace=False)
    la[0, at] = threshold  # exactly at the threshold: dropped
    la[:, :2] = rng.uniform(-6.0, threshold - 0.5, size=(n_out, 2))  # two pixels every unit reads
    return la


def check_pixels_used(fn: Callable) -> None:
    """``fn(log_alpha, threshold)`` with fc1's log alpha (out x in: 300 x 784 for LeNet-300-100) must
    return, for every input pixel (column), whether at least one of its weights is kept
    (log alpha < threshold): a boolean vector of 784 (or a 28x28 map)."""
    what = "pixels_used"
    hint = ("A pixel is used when at least one of its weights (its column of log_alpha) is kept, "
            "and a weight is kept when log_alpha < threshold")
    for seed, t in ((0, 3.0), (1, 0.0)):
        la = _fc1_case(seed, threshold=t)
        out = _as_bool(what, _call(what, fn, la.copy(), t), la.shape[1], "input pixel (column)")
        kept = la < t
        wrong = {
            "the pixels whose weights are all kept (all instead of any)": kept.all(0),
            "the pixels with a dropped weight (log_alpha >= threshold is the dropped side)":
                (la >= t).any(0),
            "the pixels whose weights are all dropped (the unused pixels, not the used ones)":
                ~kept.any(0),
            "log_alpha <= threshold: a weight exactly at the threshold is dropped (log_alpha < "
            "threshold is kept)": (la <= t).any(0),
        }
        other = 3.0 if t != 3.0 else 0.0
        wrong[f"the answer for threshold {other:g}, not {t:g} (use the threshold argument)"] = \
            (la < other).any(0)
        _name_mistake(what, out, kept.any(0), wrong, hint)
    n = int(kept.any(0).sum())
    _ok(what, f"a pixel is used when any of its weights has log alpha < threshold ({n} of "
              f"{la.shape[1]} in the test case)")


# --------------------------------------------------------------------------------------------------
# Exercise 2: how many fc1 units are still alive?
# --------------------------------------------------------------------------------------------------

def _alive_case(seed: int, threshold: float, n_in: int = 30, n_hidden: int = 24, n_out: int = 8):
    """fc1 (hidden x in) and fc2 (out x hidden) log alpha in which hidden units come in four kinds:
    both incoming and outgoing weights kept, only incoming, only outgoing, none."""
    rng = np.random.default_rng(seed)
    la1 = rng.uniform(threshold + 0.5, threshold + 10.0, size=(n_hidden, n_in))
    la2 = rng.uniform(threshold + 0.5, threshold + 10.0, size=(n_out, n_hidden))
    kind = np.arange(n_hidden) % 4  # 0 both, 1 in only, 2 out only, 3 none
    rng.shuffle(kind)
    for u in range(n_hidden):
        if kind[u] in (0, 1):
            k = rng.integers(1, n_in // 3)
            la1[u, rng.choice(n_in, size=k, replace=False)] = rng.uniform(-5.0, threshold - 0.5, size=k)
        if kind[u] in (0, 2):
            k = rng.integers(1, n_out)
            la2[rng.choice(n_out, size=k, replace=False), u] = rng.uniform(-5.0, threshold - 0.5, size=k)
    both = np.flatnonzero(kind == 0)
    la1[both[0], :] = rng.uniform(-5.0, threshold - 0.5, size=n_in)  # one unit keeps every input
    la1[both[1], 0] = threshold  # an extra weight exactly at the threshold (dropped)
    la1[np.flatnonzero(kind == 3)[0], 1] = threshold  # the only 'kept' weight of a dead unit is at it
    la1[np.flatnonzero(kind == 2)[0], 1] = threshold  # an out-only unit whose one input is at it
    return la1, la2


def check_alive_units(fn: Callable) -> None:
    """``fn(log_alpha_fc1, log_alpha_fc2, threshold)`` must return, for every fc1 unit (a row of fc1,
    a column of fc2), whether it is alive: at least one kept incoming weight *and* at least one kept
    outgoing weight (kept: log alpha < threshold). A boolean vector, one value per fc1 unit."""
    what = "alive_units"
    hint = ("A unit of fc1 is alive when it receives at least one kept weight (its row of fc1) and "
            "passes its output on through at least one kept weight (its column of fc2)")
    for seed, t in ((0, 3.0), (1, 1.0)):
        la1, la2 = _alive_case(seed, t)
        out = _as_bool(what, _call(what, fn, la1.copy(), la2.copy(), t), la1.shape[0],
                       "fc1 unit (a row of fc1, a column of fc2)")
        k1, k2 = la1 < t, la2 < t
        inc, outg = k1.any(1), k2.any(0)
        wrong = {
            "the units with a kept incoming weight only: a unit whose outgoing weights are all "
            "dropped is read by nobody": inc,
            "the units with a kept outgoing weight only: a unit that receives nothing outputs a "
            "constant": outg,
            "incoming OR outgoing: a unit needs both": inc | outg,
            "the units whose weights are all kept (all instead of any)": k1.all(1) & k2.all(0),
            "the dead units, not the alive ones": ~(inc & outg),
            "the units with dropped weights (log_alpha >= threshold is the dropped side)":
                (la1 >= t).any(1) & (la2 >= t).any(0),
            "log_alpha <= threshold: a weight exactly at the threshold is dropped":
                (la1 <= t).any(1) & (la2 <= t).any(0),
        }
        other = 3.0 if t != 3.0 else 1.0
        wrong["the answer for another threshold (use the threshold argument)"] = \
            (la1 < other).any(1) & (la2 < other).any(0)
        _name_mistake(what, out, inc & outg, wrong, hint)
    _ok(what, f"a unit is alive with a kept incoming and a kept outgoing weight ({int((inc & outg).sum())} "
              f"of {la1.shape[0]} in the test case)")


# --------------------------------------------------------------------------------------------------
# Exercise 1: the KL's gradient in the (log|theta|, log sigma^2) plane
# --------------------------------------------------------------------------------------------------

_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695  # eq. 14
_EPS = 1e-8  # log alpha = log sigma^2 - log(theta^2 + 1e-8), as in sparsevd_lab.layers


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _dkl_dla(la):
    """d KL / d log alpha of eq. 14 (KL = k1 sigmoid(-(k2 + k3 la)) + 0.5 softplus(-la))."""
    s = _sigmoid(_K2 + _K3 * la)
    return -_K1 * _K3 * s * (1 - s) - 0.5 * _sigmoid(-la)


def kl_gradient_reference(log_abs_theta, log_sigma2, eps: float = _EPS):
    """The reference answer: (d KL / d log|theta|, d KL / d log sigma^2) of one weight's KL (eq. 14)
    at log alpha = log sigma^2 - log(theta^2 + eps), elementwise on numpy arrays."""
    u = np.asarray(log_abs_theta, dtype=float)
    ls2 = np.asarray(log_sigma2, dtype=float)
    t2 = np.exp(2 * u)
    la = ls2 - np.log(t2 + eps)
    g = _dkl_dla(la)
    return g * (-2 * t2 / (t2 + eps)), g


def _kl_grad_cases():
    """Points on both sides of the threshold and of the theta^2 = 1e-8 wall (log|theta| = -9.21)."""
    u = np.array([-2.0, -4.0, -6.0, -8.0, -9.0, -9.21, -9.5, -11.0, -14.0, -3.0, -5.0, -1.0])
    ls2 = np.array([-10.0, -10.0, -8.0, -12.0, -16.0, -18.0, -5.0, -9.0, -20.0, -4.0, -20.0, -1.0])
    return u, ls2


def check_kl_gradient(fn: Callable) -> None:
    """``fn(log_abs_theta, log_sigma2)`` (numpy arrays of one shape) must return the pair
    (d KL / d log|theta|, d KL / d log sigma^2) of eq. 14's KL of each weight, with
    log alpha = log sigma^2 - log(theta^2 + 1e-8): the gradient of the KL itself (not of -KL), in
    those two coordinates."""
    what = "kl_gradient"
    u, ls2 = _kl_grad_cases()
    out = _call(what, fn, u.copy(), ls2.copy())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(what, f"return a pair (d KL / d log|theta|, d KL / d log sigma^2); got {type(out).__name__}")
    got = []
    for name, v in zip(("d KL / d log|theta|", "d KL / d log sigma^2"), out):
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        v = np.asarray(v, dtype=float)
        if v.shape != u.shape:
            _fail(what, f"{name} has shape {v.shape}; expected one value per point, shape {u.shape}")
        got.append(v)
    gu, gs = got
    ru, rs = kl_gradient_reference(u, ls2)

    def close(a, b):
        return np.allclose(a, b, rtol=2e-3, atol=1e-7)

    if close(gu, ru) and close(gs, rs):
        t2 = np.exp(2 * u)
        la = ls2 - np.log(t2 + _EPS)
        _ok(what, f"the KL pulls log|theta| down and log sigma^2 up everywhere (both raise log alpha); "
                  f"at the wall (log|theta| = -11) the log|theta| component is "
                  f"{abs(ru[7] / rs[7]):.2g} of the log sigma^2 one, against 2 far from it")
        return
    la_noeps = ls2 - 2 * u
    g_noeps = _dkl_dla(la_noeps)
    t2 = np.exp(2 * u)
    la = ls2 - np.log(t2 + _EPS)
    g = _dkl_dla(la)
    s = _sigmoid(_K2 + _K3 * la)
    wrong = [
        ((-ru, -rs), "the gradient of -KL (the sign is flipped): eq. 14 approximates -KL; its "
                     "gradient points the other way"),
        ((rs, ru), "the two components swapped: return (d KL / d log|theta|, d KL / d log sigma^2)"),
        ((-rs, ru), "the two components swapped: return (d KL / d log|theta|, d KL / d log sigma^2)"),
        ((g * (-2.0), g), "d log alpha / d log|theta| = -2, without the 1e-8: log alpha = log sigma^2 - "
                          "log(theta^2 + 1e-8), so the factor is -2 theta^2 / (theta^2 + 1e-8), which "
                          "goes to 0 at the wall theta^2 << 1e-8"),
        ((g_noeps * (-2.0), g_noeps), "log alpha = log sigma^2 - 2 log|theta| without the 1e-8: the "
                                      "layer computes log(theta^2 + 1e-8), which makes the wall"),
        ((g * (-t2 / (t2 + _EPS)), g), "a factor -theta^2/(theta^2 + eps): d log(theta^2) / d log|theta| "
                                       "is 2, not 1"),
        ((g * (-2 * np.exp(u) / (t2 + _EPS)), g), "the derivative with respect to theta, not log|theta|: "
                                                  "multiply by d theta / d log|theta| = theta"),
        ((-0.5 * _sigmoid(-la) * (-2 * t2 / (t2 + _EPS)), -0.5 * _sigmoid(-la)),
         "only the 0.5 log(1 + 1/alpha) term: the sigmoid term k1 sigmoid(k2 + k3 log alpha) has a "
         "derivative too"),
        ((-_K1 * _K3 * s * (1 - s) * (-2 * t2 / (t2 + _EPS)), -_K1 * _K3 * s * (1 - s)),
         "only the sigmoid term: 0.5 log(1 + 1/alpha) = 0.5 softplus(-log alpha) has the derivative "
         "-0.5 sigmoid(-log alpha)"),
    ]
    sp_wrong = -_K1 * _K3 * s * (1 - s) - 0.5 * _sigmoid(la)
    wrong.append(((sp_wrong * (-2 * t2 / (t2 + _EPS)), sp_wrong),
                  "d/d log alpha of 0.5 softplus(-log alpha) is -0.5 sigmoid(-log alpha), not "
                  "-0.5 sigmoid(log alpha)"))
    for (wu, ws), message in wrong:
        if close(gu, wu) and close(gs, ws):
            _fail(what, f"you computed {message}")
    bad = "d KL / d log|theta|" if not close(gu, ru) else "d KL / d log sigma^2"
    i = int(np.flatnonzero(~np.isclose(gu, ru, rtol=2e-3, atol=1e-7) if bad.endswith("theta|")
                           else ~np.isclose(gs, rs, rtol=2e-3, atol=1e-7))[0])
    _fail(what, f"{bad} is wrong at log|theta| = {u[i]:g}, log sigma^2 = {ls2[i]:g} (log alpha "
                f"{la[i]:.2f}): expected {(ru if bad.endswith('theta|') else rs)[i]:.4g}, got "
                f"{(gu if bad.endswith('theta|') else gs)[i]:.4g}. Chain rule: d KL / d x = "
                f"KL'(log alpha) * d log alpha / d x, with log alpha = log sigma^2 - log(theta^2 + 1e-8)")
