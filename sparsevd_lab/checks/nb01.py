"""Checks for notebook 01 (the log-uniform prior and the posterior of Sparse VD): one per exercise.

Each check calls the student's function on a few fixed values of alpha (no randomness, well under a
second), compares it with the exact answer, names the known wrong answers (alpha instead of
alpha / (1 + alpha), the keep probability, Phi(-sqrt(alpha)) instead of Phi(-1/sqrt(alpha)), a
share uniform in w instead of in log|w|, ...) and prints one line starting with ``OK:``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.stats import norm

from .common import _call, _fail, _ok

__all__ = [
    "check_dropout_rate",
    "check_signal_to_noise",
    "check_sign_flip",
    "check_log_uniform_share",
    "check_sign_flip_rate",
]

# alpha = 0 (no noise), small, 1 (rate 1/2), the paper's threshold exp(3) ~ 20.09, very large
ALPHAS = np.array([0.0, 0.05, 0.5, 1.0, 3.0, math.exp(3.0), 1e4])
POSITIVE_ALPHAS = ALPHAS[1:]


def _as_array(what: str, out, shape) -> np.ndarray:
    """The student's output as a float numpy array of ``shape`` (numpy, torch, or a float)."""
    if hasattr(out, "detach"):  # a torch tensor
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        _fail(what, f"expected numbers (a numpy array or a float), got {type(out).__name__}")
    if arr.shape != tuple(shape):
        _fail(what, f"wrong shape: for an input of shape {tuple(shape)} expected the same shape "
                    f"(one value per alpha, elementwise), got {arr.shape}")
    return arr


def _as_number(what: str, out) -> float:
    """The student's output as one float (a float, a 0-d or one-element array or tensor)."""
    arr = _as_array(what, out, np.shape(out.detach() if hasattr(out, "detach") else out))
    if arr.size != 1:
        _fail(what, f"expected one number, got an array of shape {arr.shape}")
    return float(arr.reshape(-1)[0])


def _match(out: np.ndarray, wrong: dict, rtol: float = 1e-6, atol: float = 1e-9):
    """The name of the first known wrong answer that ``out`` equals, else None."""
    for name, value in wrong.items():
        with np.errstate(all="ignore"):
            if np.allclose(out, value, rtol=rtol, atol=atol, equal_nan=True):
                return name
    return None


def _scalar_call(what: str, fn: Callable, value: float, expected: float) -> None:
    """The function must also work on a single float (a student's first test)."""
    out = _call(what, fn, value)
    if not np.isclose(_as_number(what, out), expected, rtol=1e-6, atol=1e-9):
        _fail(what, f"on the single number alpha = {value:g} expected {expected:.6g}, got {out!r}")


# --------------------------------------------------------------------------------------------------
# Exercise 1: the dropout rate of the posterior
# --------------------------------------------------------------------------------------------------

def check_dropout_rate(fn: Callable) -> None:
    """``fn(alpha)`` must return the Gaussian-dropout rate p with alpha = p / (1 - p) (sec. 3 of
    the paper), elementwise on a numpy array, and on a single float."""
    what = "dropout_rate"
    out = _as_array(what, _call(what, fn, ALPHAS.copy()), ALPHAS.shape)
    expected = ALPHAS / (1.0 + ALPHAS)
    if not np.allclose(out, expected, rtol=1e-6, atol=1e-9):
        a = ALPHAS
        with np.errstate(all="ignore"):
            wrong = {
                "alpha itself: alpha is the variance ratio of the noise, the dropout rate is a "
                "probability (it must stay in [0, 1] however large alpha is)": a,
                "1 / (1 + alpha), the keep probability 1 - p, not the dropout rate p": 1.0 / (1.0 + a),
                "sqrt(alpha) / (1 + sqrt(alpha)): alpha is already a variance ratio, no square "
                "root is needed": np.sqrt(a) / (1.0 + np.sqrt(a)),
                "alpha / (1 - alpha): that is alpha = p / (1 - p) read backwards": a / (1.0 - a),
                "(1 + alpha) / alpha, the reciprocal of the rate": (1.0 + a) / a,
            }
        name = _match(out, wrong)
        if name:
            _fail(what, f"you computed {name}. Solve alpha = p / (1 - p) for p")
        i = int(np.nanargmax(np.abs(out - expected)))
        _fail(what, f"wrong value at alpha = {ALPHAS[i]:.4g}: expected {expected[i]:.6g}, got "
                    f"{out[i]:.6g}. Solve alpha = p / (1 - p) for p")
    _scalar_call(what, fn, 1.0, 0.5)
    _ok(what, f"= alpha / (1 + alpha): alpha = 1 drops half, the threshold alpha = e^3 drops "
              f"{expected[5]:.3f}, alpha = 1e4 drops {expected[6]:.4f}")


# --------------------------------------------------------------------------------------------------
# Exercise 2: the signal-to-noise ratio of a weight
# --------------------------------------------------------------------------------------------------

def check_signal_to_noise(fn: Callable) -> None:
    """``fn(alpha)`` must return |E w| / std(w) under q(w) = N(theta, alpha theta^2): 1 / sqrt(alpha),
    the same for every theta != 0."""
    what = "signal_to_noise"
    a = POSITIVE_ALPHAS
    out = _as_array(what, _call(what, fn, a.copy()), a.shape)
    expected = 1.0 / np.sqrt(a)
    if not np.allclose(out, expected, rtol=1e-6, atol=1e-9):
        wrong = {
            "sqrt(alpha), the noise-to-signal ratio std / |mean| (upside down)": np.sqrt(a),
            "1 / alpha: alpha is the ratio of the variance to theta^2, so the standard deviation "
            "is sqrt(alpha) |theta|": 1.0 / a,
            "alpha, the ratio of the variance to theta^2, not of the standard deviation to the "
            "mean": a,
            "the dropout rate alpha / (1 + alpha)": a / (1.0 + a),
            "1 / (1 + alpha)": 1.0 / (1.0 + a),
        }
        name = _match(out, wrong)
        if name:
            _fail(what, f"you computed {name}. The mean of q(w) is theta and its standard "
                        f"deviation sqrt(alpha) |theta|: divide the first by the second")
        i = int(np.nanargmax(np.abs(out - expected)))
        _fail(what, f"wrong value at alpha = {a[i]:.4g}: expected {expected[i]:.6g}, got "
                    f"{out[i]:.6g}. Divide |E w| = |theta| by std(w) = sqrt(alpha) |theta|")
    _scalar_call(what, fn, 4.0, 0.5)
    _ok(what, f"= 1 / sqrt(alpha): at the threshold log alpha = 3 the mean is {expected[4]:.3f} "
              f"standard deviations from 0")


# --------------------------------------------------------------------------------------------------
# Exercise 3: the probability that a sample of w has the opposite sign of theta
# --------------------------------------------------------------------------------------------------

def check_sign_flip(fn: Callable) -> None:
    """``fn(alpha)`` must return P(sign w != sign theta) for w = theta (1 + sqrt(alpha) eps),
    eps ~ N(0, 1): Phi(-1 / sqrt(alpha)), exactly (the normal CDF, not a Monte Carlo estimate)."""
    what = "sign_flip_probability"
    a = POSITIVE_ALPHAS
    out = _as_array(what, _call(what, fn, a.copy()), a.shape)
    expected = norm.cdf(-1.0 / np.sqrt(a))
    if not np.allclose(out, expected, rtol=1e-5, atol=1e-7):
        wrong = {
            "Phi(-sqrt(alpha)): the sign flips when eps < -1 / sqrt(alpha), not when "
            "eps < -sqrt(alpha)": norm.cdf(-np.sqrt(a)),
            "Phi(-1 / alpha): the standard deviation of the noise is sqrt(alpha), not alpha":
                norm.cdf(-1.0 / a),
            "Phi(+1 / sqrt(alpha)) = 1 - P(flip), the probability that the sign is kept":
                norm.cdf(1.0 / np.sqrt(a)),
            "2 Phi(-1 / sqrt(alpha)), a two-sided tail: only one side of 0 flips the sign":
                2.0 * norm.cdf(-1.0 / np.sqrt(a)),
            "the dropout rate alpha / (1 + alpha), which is not a probability of a sign flip":
                a / (1.0 + a),
            "the normal density phi(1 / sqrt(alpha)) instead of the CDF Phi(-1 / sqrt(alpha))":
                norm.pdf(1.0 / np.sqrt(a)),
        }
        name = _match(out, wrong, rtol=1e-4, atol=1e-6)
        if name:
            _fail(what, f"you computed {name}. 1 + sqrt(alpha) eps < 0 is the event; its "
                        f"probability is a normal CDF (scipy.stats.norm.cdf)")
        if np.all(np.isfinite(out)) and np.max(np.abs(out - expected)) < 0.02:
            _fail(what, f"close but not exact (largest difference {np.max(np.abs(out - expected)):.1e}): "
                        f"a Monte Carlo estimate? The event 1 + sqrt(alpha) eps < 0 has an exact "
                        f"probability; use scipy.stats.norm.cdf")
        i = int(np.nanargmax(np.abs(out - expected)))
        _fail(what, f"wrong value at alpha = {a[i]:.4g}: expected {expected[i]:.6g}, got "
                    f"{out[i]:.6g}. Write the event 'w has the other sign' in terms of eps")
    _scalar_call(what, fn, 1.0, float(norm.cdf(-1.0)))
    _ok(what, f"= Phi(-1 / sqrt(alpha)): alpha = 1 flips {expected[2]:.3f} of the samples, the "
              f"threshold alpha = e^3 flips {expected[4]:.3f}, alpha = 1e4 flips {expected[5]:.3f}")


# --------------------------------------------------------------------------------------------------
# Exercise 4: the log-uniform prior is flat in log|w|
# --------------------------------------------------------------------------------------------------

_SHARE_CASES = [  # (a, b, lo, hi): the share of [lo, hi]'s mass that lies in [a, b]
    (1e-3, 1e-2, 1e-6, 1.0),
    (0.5, 2.0, 0.01, 100.0),
    (1e-5, 1e-1, 1e-6, 1.0),
    (1.0, 10.0, 1.0, 10.0),
]


def check_log_uniform_share(fn: Callable) -> None:
    """``fn(a, b, lo, hi)`` must return the share of the mass of the log-uniform prior (sec. 3),
    truncated to lo <= |w| <= hi, that lies in a <= |w| <= b: log(b / a) / log(hi / lo)."""
    what = "log_uniform_share"
    cases = np.array(_SHARE_CASES)
    a, b, lo, hi = cases.T
    out = np.array([_as_number(what, _call(what, fn, *map(float, c))) for c in cases])
    expected = np.log(b / a) / np.log(hi / lo)
    if not np.allclose(out, expected, rtol=1e-6, atol=1e-9):
        wrong = {
            "(b - a) / (hi - lo), the share under a prior uniform in w, not in log|w|":
                (b - a) / (hi - lo),
            "log(b / a) without dividing by log(hi / lo): the mass, not the share of the truncated "
            "prior's mass": np.log(b / a),
            "log10(b / a), the number of decades, without dividing by the decades in [lo, hi]":
                np.log10(b / a),
            "(1/a - 1/b) / (1/lo - 1/hi): that integrates 1/w^2; the density is proportional to "
            "1/|w|, whose integral is a logarithm": (1 / a - 1 / b) / (1 / lo - 1 / hi),
            "log(hi / lo) / log(b / a), the share upside down": np.log(hi / lo) / np.log(b / a),
        }
        name = _match(out, wrong)
        if name:
            _fail(what, f"you computed {name}. The density of log|w| is constant (sec. 3)")
        i = int(np.nanargmax(np.abs(out - expected)))
        _fail(what, f"wrong value for a={a[i]:g}, b={b[i]:g}, lo={lo[i]:g}, hi={hi[i]:g}: expected "
                    f"{expected[i]:.6g}, got {out[i]:.6g}. The density of log|w| is constant (sec. 3)")
    _ok(what, f"= log(b/a) / log(hi/lo): one decade of the six in [1e-6, 1] holds {expected[0]:.4f} "
              f"of the mass, as much as any other decade")


# --------------------------------------------------------------------------------------------------
# The sign-flip rate measured by sampling w from q (notebook 01, exercise 3a)
# --------------------------------------------------------------------------------------------------

# (theta, alpha): a negative theta (the sign of theta matters), |theta| != 1 (it must scale the std),
# alpha below and above 1 (alpha is a variance ratio, not a std), the threshold log alpha = 3 last.
# No case has |theta| = 1, alpha = 1, |theta| = sqrt(alpha) or 1/sqrt(alpha), where slips coincide
# (tests/test_checks_nb01.py checks that every pair of answers differs by > 10 standard errors).
_FLIP_CASES = [(-0.5, 2.0), (2.0, 0.5), (0.3, math.exp(3.0))]
_FLIP_N = 100_000


def _flip_wrong(theta: np.ndarray, alpha: np.ndarray) -> dict:
    """The sign-flip rates the typical slips measure, case by case (their expected values)."""
    t, a = np.abs(theta), alpha
    right = norm.cdf(-1.0 / np.sqrt(a))
    return {
        "the rate of w < 0 whatever the sign of theta: for a negative theta that counts the samples "
        "that keep their sign. Compare the sign of each sample with the sign of theta":
            np.where(theta < 0, 1.0 - right, right),
        "the share of samples that keep the sign of theta, 1 - P(flip)": 1.0 - right,
        "a two-sided count (|w - theta| > |theta|): only the samples beyond 0, on one side, flip":
            2.0 * right,
        "alpha used as the standard deviation, std = alpha |theta|: alpha is the ratio of the "
        "variance to theta^2, so std = sqrt(alpha) |theta|": norm.cdf(-1.0 / a),
        "the variance alpha theta^2 used as the standard deviation: std = sqrt(alpha) |theta|":
            norm.cdf(-1.0 / (a * t)),
        "std = sqrt(alpha) without |theta|: q(w) = N(theta, alpha theta^2) scales with theta, "
        "std = sqrt(alpha) |theta|": norm.cdf(-t / np.sqrt(a)),
        "std = alpha without |theta|: std = sqrt(alpha) |theta|": norm.cdf(-t / a),
    }


def check_sign_flip_rate(fn: Callable) -> None:
    """``fn(theta, alpha, n, seed)`` must draw ``n`` weights from q(w) = N(theta, alpha theta^2)
    with ``np.random.default_rng(seed)`` and return the fraction whose sign differs from the sign of
    theta: a measurement (it varies with the seed by its standard error, within a few standard
    errors of Phi(-1/sqrt(alpha))), reproducible for a given seed. Names the usual slips: alpha as
    the standard deviation, the rate of w < 0 whatever theta's sign, a two-sided count, ..."""
    what = "sign_flip_rate"

    def call(theta, alpha, n, seed):
        try:
            out = _call(what, fn, theta, alpha, n, seed)
        except ValueError as err:
            if "scale" in str(err):
                _fail(what, f"numpy refused a negative standard deviation at theta = {theta:g} "
                            f"({err}): the std of q(w) is sqrt(alpha) |theta|, never negative")
            raise
        value = _as_number(what, out)
        if not 0.0 <= value <= 1.0:
            _fail(what, f"with n = {n} it returned {value:g}, not a fraction between 0 and 1"
                        + (": a count? Divide it by n" if value > 1 else ""))
        return value

    # a measurement: reproducible for a seed, different across seeds. Two settings of 100,000 draws
    # each: unseeded draws give the same two shares by chance with probability about 4e-6
    for theta, alpha in ((1.0, 1.0), (-1.0, 20.0)):
        first, again = call(theta, alpha, 100_000, 0), call(theta, alpha, 100_000, 0)
        if first != again:
            _fail(what, f"two calls with seed 0 gave {first:g} and {again:g}: make the draws with "
                        f"np.random.default_rng(seed), so that a seed fixes the result")
    by_seed = [call(1.0, 1.0, 1000, s) for s in range(5)]
    if len(set(by_seed)) == 1:
        if abs(by_seed[0] - norm.cdf(-1.0)) < 1e-9:
            _fail(what, "it returned the formula Phi(-1/sqrt(alpha)) itself: this exercise measures "
                        "the rate by drawing n samples of w (the formula is part b)")
        _fail(what, f"seeds 0 to 4 all gave {by_seed[0]:g}: use the seed argument "
                    f"(np.random.default_rng(seed)) for the draws")
    # a fraction of n samples: k / n for an integer k
    small = call(1.0, 1.0, 8, 0)
    if abs(small * 8 - round(small * 8)) > 1e-9:
        _fail(what, f"with n = 8 samples the fraction must be one of 0, 1/8, ..., 1; got {small:g}. "
                    f"Draw exactly n samples and return the share that flipped")
    theta = np.array([c[0] for c in _FLIP_CASES])
    alpha = np.array([c[1] for c in _FLIP_CASES])
    out = np.array([call(t, a, _FLIP_N, 0) for t, a in _FLIP_CASES])
    expected = norm.cdf(-1.0 / np.sqrt(alpha))

    def agrees(value):  # within 5 binomial standard errors of n samples (and 1e-4 for p near 0)
        se = np.sqrt(np.clip(value * (1.0 - value), 0.0, None) / _FLIP_N)
        return np.abs(out - value) <= 5.0 * se + 1e-4

    if not agrees(expected).all():
        for name, value in _flip_wrong(theta, alpha).items():
            if agrees(value).all():
                _fail(what, f"you measured {name}")
        i = int(np.argmax(np.abs(out - expected) / np.sqrt(expected * (1 - expected) / _FLIP_N)))
        _fail(what, f"at theta = {theta[i]:g}, alpha = {alpha[i]:.4g} with n = {_FLIP_N:,} samples "
                    f"it returned {out[i]:.4f}, more than 5 standard errors from the expected "
                    f"{expected[i]:.4f}. Draw w = theta (1 + sqrt(alpha) eps) and compare the sign of "
                    f"each w with the sign of theta")
    se = math.sqrt(expected[-1] * (1 - expected[-1]) / _FLIP_N)
    _ok(what, f"measures the sign flips: at theta = 0.3, log alpha = 3 it counted {out[-1]:.4f} of "
              f"{_FLIP_N:,} samples (the standard error of such a count is {se:.4f})")
