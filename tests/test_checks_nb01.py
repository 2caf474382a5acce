"""Tests of sparsevd_lab.checks.nb01 (notebook 01's exercises): each check accepts the right answer
(numpy, torch and float inputs), prints an OK line, runs fast, and rejects each known wrong answer
with a message that names the mistake."""
import math
import time

import numpy as np
import pytest
import torch
from scipy.stats import norm

from sparsevd_lab import checks, theory
from sparsevd_lab.checks import CheckFailed


def right_dropout_rate(alpha):
    return alpha / (1 + alpha)


def right_snr(alpha):
    return 1 / np.sqrt(alpha)


def right_sign_flip(alpha):
    return norm.cdf(-1 / np.sqrt(alpha))


def right_share(a, b, lo, hi):
    return math.log(b / a) / math.log(hi / lo)


RIGHT = [
    (checks.check_dropout_rate, right_dropout_rate, "OK: dropout_rate"),
    (checks.check_dropout_rate, theory.dropout_rate, "OK: dropout_rate"),
    (checks.check_dropout_rate, lambda a: torch.as_tensor(a) / (1 + torch.as_tensor(a)),
     "OK: dropout_rate"),
    (checks.check_signal_to_noise, right_snr, "OK: signal_to_noise"),
    (checks.check_signal_to_noise, lambda a: torch.as_tensor(a).rsqrt(), "OK: signal_to_noise"),
    (checks.check_sign_flip, right_sign_flip, "OK: sign_flip_probability"),
    (checks.check_log_uniform_share, right_share, "OK: log_uniform_share"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: np.log10(b / a) / np.log10(hi / lo),
     "OK: log_uniform_share"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


WRONG = [
    # dropout rate
    (checks.check_dropout_rate, lambda a: a, "alpha itself"),
    (checks.check_dropout_rate, lambda a: 1 / (1 + a), "keep probability"),
    (checks.check_dropout_rate, lambda a: np.sqrt(a) / (1 + np.sqrt(a)), "no square"),
    (checks.check_dropout_rate, lambda a: np.divide(a, 1 - a, out=np.full_like(a, np.inf), where=a != 1),
     "read backwards"),
    (checks.check_dropout_rate, lambda a: a / (2 + a), "wrong value at alpha"),
    (checks.check_dropout_rate, lambda a: float(np.mean(a / (1 + a))), "wrong shape"),
    # signal-to-noise ratio
    (checks.check_signal_to_noise, np.sqrt, "noise-to-signal"),
    (checks.check_signal_to_noise, lambda a: 1 / a, "1 / alpha"),
    (checks.check_signal_to_noise, lambda a: a, "not of the standard deviation"),
    (checks.check_signal_to_noise, lambda a: a / (1 + a), "dropout rate"),
    (checks.check_signal_to_noise, lambda a: 2 / np.sqrt(a), "wrong value at alpha"),
    # sign flip
    (checks.check_sign_flip, lambda a: norm.cdf(-np.sqrt(a)), "Phi(-sqrt(alpha))"),
    (checks.check_sign_flip, lambda a: norm.cdf(-1 / a), "Phi(-1 / alpha)"),
    (checks.check_sign_flip, lambda a: norm.cdf(1 / np.sqrt(a)), "sign is kept"),
    (checks.check_sign_flip, lambda a: 2 * norm.cdf(-1 / np.sqrt(a)), "two-sided"),
    (checks.check_sign_flip, lambda a: a / (1 + a), "dropout rate"),
    (checks.check_sign_flip, lambda a: norm.pdf(1 / np.sqrt(a)), "density"),
    (checks.check_sign_flip, lambda a: norm.cdf(-1 / np.sqrt(a)) + 0.004, "Monte Carlo"),
    (checks.check_sign_flip, lambda a: np.full_like(a, 0.3), "wrong value at alpha"),
    # log-uniform share
    (checks.check_log_uniform_share, lambda a, b, lo, hi: (b - a) / (hi - lo), "uniform in w"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: math.log(b / a), "not the share"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: math.log10(b / a), "number of decades"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: (1 / a - 1 / b) / (1 / lo - 1 / hi),
     "1/w^2"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: math.log(hi / lo) / math.log(b / a),
     "upside down"),
    (checks.check_log_uniform_share, lambda a, b, lo, hi: 0.5, "wrong value for a="),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    with pytest.raises(CheckFailed, match=None) as err:
        check(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


@pytest.mark.parametrize("check", [checks.check_dropout_rate, checks.check_signal_to_noise,
                                   checks.check_sign_flip, checks.check_log_uniform_share])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)


def test_scalar_input_must_work():
    def array_only(alpha):
        return np.asarray(alpha) / (1 + np.asarray(alpha)) if np.ndim(alpha) else 0.25

    with pytest.raises(CheckFailed, match="single number"):
        checks.check_dropout_rate(array_only)


# ------------------------------------------------------------------ the sign-flip rate by sampling

def _rate(draw):
    """A sign_flip_rate built from ``draw(rng, theta, alpha, n) -> (w, theta)``: the share of w whose
    sign differs from theta's."""
    def sign_flip_rate(theta, alpha, n, seed):
        rng = np.random.default_rng(seed)
        w, ref = draw(rng, theta, alpha, n)
        return float(np.mean(np.sign(w) != np.sign(ref)))
    return sign_flip_rate


def right_flip_rate(theta, alpha, n, seed):
    eps = np.random.default_rng(seed).standard_normal(n)
    w = theta * (1 + np.sqrt(alpha) * eps)  # w ~ N(theta, alpha theta^2)
    return np.mean(np.sign(w) != np.sign(theta))


def torch_flip_rate(theta, alpha, n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.normal(theta, math.sqrt(alpha) * abs(theta), (n,), generator=g, dtype=torch.float64)
    return (w * theta < 0).double().mean()


@pytest.mark.parametrize("fn", [right_flip_rate, torch_flip_rate,
                                _rate(lambda r, t, a, n: (r.normal(t, np.sqrt(a) * abs(t), n), t))])
def test_sign_flip_rate_accepts_right_answers(fn, capsys):
    start = time.process_time()
    checks.check_sign_flip_rate(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith("OK: sign_flip_rate measures the sign flips") and out.count("\n") == 1


_global_rng = np.random.default_rng(0)
WRONG_FLIP = [
    (_rate(lambda r, t, a, n: (r.normal(t, np.sqrt(a) * abs(t), n), 1.0)), "whatever the sign of theta"),
    (lambda t, a, n, s: 1 - right_flip_rate(t, a, n, s), "keep the sign"),
    (_rate(lambda r, t, a, n: (np.where(np.abs(r.normal(0, np.sqrt(a) * abs(t), n)) > abs(t), -t, t), t)),
     "two-sided"),
    (_rate(lambda r, t, a, n: (r.normal(t, a * abs(t), n), t)), "alpha used as the standard deviation"),
    (_rate(lambda r, t, a, n: (r.normal(t, a * t ** 2, n), t)), "variance alpha theta^2 used"),
    (_rate(lambda r, t, a, n: (r.normal(t, np.sqrt(a), n), t)), "std = sqrt(alpha) without |theta|"),
    (_rate(lambda r, t, a, n: (r.normal(t, a, n), t)), "std = alpha without |theta|"),
    (_rate(lambda r, t, a, n: (r.normal(t, np.sqrt(a) * t, n), t)), "negative standard deviation"),
    (lambda t, a, n, s: n * right_flip_rate(t, a, n, s), "a count? Divide it by n"),
    (lambda t, a, n, s: right_flip_rate(t, a, 100_000, s), "with n = 8 samples"),
    (lambda t, a, n, s: norm.cdf(-1 / np.sqrt(a)), "the formula Phi(-1/sqrt(alpha)) itself"),
    (lambda t, a, n, s: right_flip_rate(t, a, n, None), "two calls with seed 0"),
    (lambda t, a, n, s: float(np.mean(_global_rng.standard_normal(n) < -1 / np.sqrt(a))),
     "two calls with seed 0"),
    (lambda t, a, n, s: 0.25, "seeds 0 to 4 all gave"),
    (lambda t, a, n, s: right_flip_rate(t, a, n, s) * 0.9, "more than 5 standard errors"),
]


@pytest.mark.parametrize("fn,fragment", WRONG_FLIP, ids=[f for _, f in WRONG_FLIP])
def test_sign_flip_rate_names_each_slip(fn, fragment, capsys):
    with pytest.raises(CheckFailed) as err:
        checks.check_sign_flip_rate(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


def test_sign_flip_rate_cases_tell_every_slip_apart():
    """Each wrong answer is at least 10 standard errors from the right one (and from every other
    wrong one) in some case, so that the check can name it and a right answer never matches it."""
    from sparsevd_lab.checks import nb01

    theta = np.array([c[0] for c in nb01._FLIP_CASES])
    alpha = np.array([c[1] for c in nb01._FLIP_CASES])
    right = norm.cdf(-1 / np.sqrt(alpha))
    values = [right, *nb01._flip_wrong(theta, alpha).values()]
    se = np.sqrt(0.25 / nb01._FLIP_N)
    for i in range(len(values)):
        for j in range(i):
            assert np.max(np.abs(values[i] - values[j])) > 10 * se, (i, j)


def test_sign_flip_rate_stub_and_none():
    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        checks.check_sign_flip_rate(lambda *a: (_ for _ in ()).throw(NotImplementedError))
    with pytest.raises(CheckFailed, match="return"):
        checks.check_sign_flip_rate(lambda *a: None)
