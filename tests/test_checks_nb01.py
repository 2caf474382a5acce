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
