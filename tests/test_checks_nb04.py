"""Tests of sparsevd_lab.checks.nb04 (notebook 04's exercises): each check accepts the right answer
(numpy and torch, a vector or a 28x28 map, booleans or counts), prints an OK line, runs fast, and
rejects each known wrong answer with a message that names the mistake."""
import time

import numpy as np
import pytest
import torch

from sparsevd_lab import checks
from sparsevd_lab.checks import CheckFailed


def right_pixels(log_alpha, threshold):
    return (log_alpha < threshold).any(axis=0)


def right_alive(la1, la2, threshold):
    return (la1 < threshold).any(axis=1) & (la2 < threshold).any(axis=0)


RIGHT = [
    (checks.check_pixels_used, right_pixels, "OK: pixels_used"),
    (checks.check_pixels_used, lambda la, t: torch.as_tensor(la).lt(t).sum(0), "OK: pixels_used"),
    (checks.check_pixels_used, lambda la, t: (la < t).any(0).reshape(28, 28), "OK: pixels_used"),
    (checks.check_alive_units, right_alive, "OK: alive_units"),
    (checks.check_alive_units, lambda a, b, t: list(((a < t).sum(1) > 0) & ((b < t).sum(0) > 0)),
     "OK: alive_units"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


WRONG = [
    (checks.check_pixels_used, lambda la, t: (la < t).all(0), "all instead of any"),
    (checks.check_pixels_used, lambda la, t: (la >= t).any(0), "dropped side"),
    (checks.check_pixels_used, lambda la, t: ~(la < t).any(0), "unused pixels"),
    (checks.check_pixels_used, lambda la, t: (la <= t).any(0), "exactly at the threshold"),
    (checks.check_pixels_used, lambda la, t: (la < 3.0).any(0), "use the threshold argument"),
    (checks.check_pixels_used, lambda la, t: (la < t).any(1), "wrong axis"),
    (checks.check_pixels_used, lambda la, t: (la < t).sum(), "wrong axis"),
    (checks.check_pixels_used, lambda la, t: (la < t - 1).any(0), "values are wrong"),
    (checks.check_alive_units, lambda a, b, t: (a < t).any(1), "incoming weight only"),
    (checks.check_alive_units, lambda a, b, t: (b < t).any(0), "outgoing weight only"),
    (checks.check_alive_units, lambda a, b, t: (a < t).any(1) | (b < t).any(0), "OR outgoing"),
    (checks.check_alive_units, lambda a, b, t: (a < t).all(1) & (b < t).all(0), "all instead of any"),
    (checks.check_alive_units, lambda a, b, t: ~right_alive(a, b, t), "dead units"),
    (checks.check_alive_units, lambda a, b, t: (a >= t).any(1) & (b >= t).any(0), "dropped side"),
    (checks.check_alive_units, lambda a, b, t: (a <= t).any(1) & (b <= t).any(0), "exactly at the"),
    (checks.check_alive_units, lambda a, b, t: right_alive(a, b, 3.0), "use the threshold argument"),
    (checks.check_alive_units, lambda a, b, t: (b < t).any(1), "wrong axis"),
    (checks.check_alive_units, lambda a, b, t: right_alive(a, b, t - 4), "values are wrong"),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    with pytest.raises(CheckFailed) as err:
        check(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


@pytest.mark.parametrize("check", [checks.check_pixels_used, checks.check_alive_units])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)
    with pytest.raises(CheckFailed, match="True/False"):
        check(lambda *args: np.array(["a"] * 784 if check is checks.check_pixels_used else ["a"] * 24))


def test_the_checks_agree_with_the_shipped_model():
    """The rules the checks teach, on the trained Fashion-MNIST LeNet-300-100: the used pixels are
    the ones compress keeps (IndexSelect), the alive fc1 units at least the units it keeps."""
    from sparsevd_lab import experiments

    model = experiments.load_model("lenet300", "fashion-mnist")
    la = {n: m.log_alpha.detach().numpy() for n, m in zip(("fc1", "fc2", "fc3"),
                                                          [m for m in model if hasattr(m, "log_alpha")])}
    used = right_pixels(la["fc1"], 3.0)
    alive = right_alive(la["fc1"], la["fc2"], 3.0)
    assert 0 < used.sum() < 784 and 0 < alive.sum() < 300
    assert alive.sum() <= (la["fc1"] < 3).any(1).sum()
