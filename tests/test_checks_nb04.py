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


# --------------------------------------------------------------------------------------------------
# check_kl_gradient: the KL's gradient in the (log|theta|, log sigma^2) plane
# --------------------------------------------------------------------------------------------------

import torch.nn.functional as F  # noqa: E402

from sparsevd_lab.layers import K1, K2, K3  # noqa: E402


def _kl_torch(la):
    return K1 * torch.sigmoid(-(K2 + K3 * la)) + 0.5 * F.softplus(-la)


def right_kl_gradient_autograd(u, ls2):
    """The student's likely route: autograd through the layer's own formula."""
    u = torch.tensor(u, dtype=torch.float64, requires_grad=True)
    ls2 = torch.tensor(ls2, dtype=torch.float64, requires_grad=True)
    la = ls2 - torch.log(torch.exp(2 * u) + 1e-8)
    _kl_torch(la).sum().backward()
    return u.grad, ls2.grad


def _by_hand(u, ls2, factor, eps=1e-8, dkl=None, swap=False, sign=1.0):
    t2 = np.exp(2 * u)
    la = ls2 - np.log(t2 + eps)
    s = 1 / (1 + np.exp(-(K2 + K3 * la)))
    g = dkl(la, s) if dkl else -K1 * K3 * s * (1 - s) - 0.5 / (1 + np.exp(la))
    a, b = sign * g * factor(u, t2, eps), sign * g
    return (b, a) if swap else (a, b)


WRONG_KL_GRAD = [
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e), sign=-1.0), "sign is flipped"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e), swap=True), "swapped"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2.0), "without the 1e-8"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2.0, eps=0.0), "which makes the wall"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -t2 / (t2 + e)), "is 2, not 1"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * np.exp(u) / (t2 + e)), "not log|theta|"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e),
                           dkl=lambda la, sg: -0.5 / (1 + np.exp(la))), "has a derivative too"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e),
                           dkl=lambda la, sg: -K1 * K3 * sg * (1 - sg)), "only the sigmoid term"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e),
                           dkl=lambda la, sg: -K1 * K3 * sg * (1 - sg) - 0.5 / (1 + np.exp(-la))),
     "not -0.5 sigmoid(log alpha)"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e))[0], "return a pair"),
    (lambda u, s: (u, s, u), "return a pair"),
    (lambda u, s: (u[:3], s), "shape"),
    (lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e), eps=1e-6), "is wrong at"),
]


def test_check_kl_gradient_accepts_by_hand_and_autograd(capsys):
    checks.check_kl_gradient(checks.kl_gradient_reference)
    checks.check_kl_gradient(right_kl_gradient_autograd)
    checks.check_kl_gradient(lambda u, s: _by_hand(u, s, lambda u, t2, e: -2 * t2 / (t2 + e)))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("OK: kl_gradient") for line in out)


@pytest.mark.parametrize("fn,words", WRONG_KL_GRAD, ids=[w for _, w in WRONG_KL_GRAD])
def test_check_kl_gradient_names_the_slip(fn, words):
    with pytest.raises(CheckFailed, match=words.replace("|", r"\|").replace("(", r"\(").replace(")", r"\)")):
        checks.check_kl_gradient(fn)


def test_kl_gradient_reference_matches_autograd_and_the_wall():
    u = np.linspace(-14, -1, 27)
    s = np.full_like(u, -9.0)
    ru, rs = checks.kl_gradient_reference(u, s)
    au, as_ = right_kl_gradient_autograd(u, s)
    assert np.allclose(ru, au.numpy(), rtol=1e-6, atol=1e-12) and np.allclose(rs, as_.numpy())
    assert np.all(ru > 0) and np.all(rs < 0)  # descent lowers log|theta|, raises log sigma^2
    assert abs(ru[0] / rs[0]) < 1e-3 and abs(ru[-1] / rs[-1] + 2) < 1e-6  # the wall; far from it -2
