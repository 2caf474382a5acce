"""Tests of sparsevd_lab.checks.nb03 (notebook 03's exercises): each check accepts the right answer
(torch, numpy and autograd versions), prints one OK line, runs fast, and rejects each known wrong
answer with a message that names the mistake."""
import math
import time

import numpy as np
import pytest
import torch

from sparsevd_lab import checks, layers
from sparsevd_lab.checks import CheckFailed


def right_grads(theta, alpha, eps):
    w = theta + math.sqrt(alpha) * abs(theta) * eps
    return w, w * (1 + math.sqrt(alpha) * eps)


def autograd_grads(theta, alpha, eps):
    th = torch.full_like(eps, theta, requires_grad=True)
    sigma = math.sqrt(alpha) * abs(theta)
    (g_sigma,) = torch.autograd.grad((0.5 * (th + sigma * eps) ** 2).sum(), th)
    th = torch.full_like(eps, theta, requires_grad=True)
    (g_alpha,) = torch.autograd.grad((0.5 * (th * (1 + math.sqrt(alpha) * eps)) ** 2).sum(), th)
    return g_sigma, g_alpha


def right_moments(x, theta, log_sigma2, bias):
    return x @ theta.T + bias, (x * x) @ torch.exp(log_sigma2).T


def right_compression(sparsity, sizes):
    kept = sum(n * (1 - s / 100) for s, n in zip(sparsity, sizes))
    return sum(sizes) / kept


RIGHT = [
    (checks.check_theta_grad_variance, right_grads, "OK: theta_gradients"),
    (checks.check_theta_grad_variance, autograd_grads, "OK: theta_gradients"),
    (checks.check_theta_grad_variance,
     lambda t, a, e: tuple(v.numpy() for v in right_grads(t, a, e)), "OK: theta_gradients"),
    (checks.check_theta_grad_variance,
     lambda t, a, e: tuple(v.float() for v in right_grads(t, a, e)), "OK: theta_gradients"),
    (checks.check_preactivation_moments, right_moments, "OK: preactivation_moments"),
    (checks.check_preactivation_moments,
     lambda x, t, ls2, b: (layers.linear_svdo(x, t, ls2, b, training=False, threshold=1e9),
                           (x * x) @ ls2.exp().T), "OK: preactivation_moments"),
    (checks.check_compression_sparsity, right_compression, "OK: compression"),
    (checks.check_compression_sparsity,
     lambda s, n: float(np.sum(n) / np.sum(np.array(n) * (1 - np.array(s) / 100))), "OK: compression"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


def _grads(f_sigma, f_alpha):
    def fn(theta, alpha, eps):
        s = math.sqrt(alpha)
        w = theta * (1 + s * eps)
        return f_sigma(w, s, eps, theta), f_alpha(w, s, eps, theta)
    return fn


def _moments(f):
    def fn(x, theta, log_sigma2, bias):
        mu, var = right_moments(x, theta, log_sigma2, bias)
        return f(x, theta, log_sigma2, bias, mu, var)
    return fn


def _comp(f):
    def fn(s, n):
        with np.errstate(divide="ignore"):  # total / dropped is inf for a dense net, as a student's would be
            return f(np.array(s, float) / 100, np.array(n, float))
    return fn


WRONG = [
    # gradients under the two parameterisations
    (checks.check_theta_grad_variance, _grads(lambda w, s, e, t: w, lambda w, s, e, t: w),
     "moves with theta"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: w * (1 + s * e), lambda w, s, e, t: w * (1 + s * e)), "sigma a parameter of its own"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: w * (1 + s * e), lambda w, s, e, t: w), "swapped"),
    (checks.check_theta_grad_variance, _grads(lambda w, s, e, t: w, lambda w, s, e, t: w * s * e),
     "the 1 is missing"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: w, lambda w, s, e, t: w * (1 + s * s * e)), "(1 + alpha eps)"),
    (checks.check_theta_grad_variance, _grads(lambda w, s, e, t: w, lambda w, s, e, t: 1 + s * e),
     "only dw/dtheta"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: w, lambda w, s, e, t: w * (1 + s * e) ** 2), "one factor too many"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: torch.full_like(e, t), lambda w, s, e, t: w * (1 + s * e)),
     "without the noise"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: torch.ones_like(e), lambda w, s, e, t: w * (1 + s * e)),
     "the chain rule needs dL/dw"),
    (checks.check_theta_grad_variance,
     _grads(lambda w, s, e, t: 2 * w, lambda w, s, e, t: w * (1 + s * e)), "expected"),
    (checks.check_theta_grad_variance, lambda t, a, e: right_grads(t, a, e)[0], "two results"),
    (checks.check_theta_grad_variance,
     lambda t, a, e: right_grads(t, a, torch.randn(len(e), dtype=torch.float64)), "use the argument eps"),
    # pre-activation moments
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (x @ t.T, var)),
     "without the bias"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, var + b)),
     "the bias added to the variance"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, var + b ** 2)),
     "squared bias"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, x @ l.exp().T)),
     "x not squared"),
    (checks.check_preactivation_moments,
     _moments(lambda x, t, l, b, mu, var: (mu, (x @ (0.5 * l).exp().T) ** 2)), "square of a sum"),
    (checks.check_preactivation_moments,
     _moments(lambda x, t, l, b, mu, var: (mu, (x * x) @ (0.5 * l).exp().T)), "standard deviation sigma"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, (x * x) @ l.T)),
     "exponentiate"),
    (checks.check_preactivation_moments,
     _moments(lambda x, t, l, b, mu, var: (mu, (x * x) @ (l.exp() * t ** 2).T)), "not log alpha"),
    (checks.check_preactivation_moments,
     _moments(lambda x, t, l, b, mu, var: (mu, (x * x) @ (l.exp() / t ** 2).T)), "only a ratio"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, var.sqrt())),
     "not the variance"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, var.T)),
     "wrong shape"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu, 2 * var)),
     "wrong variance"),
    (checks.check_preactivation_moments, _moments(lambda x, t, l, b, mu, var: (mu + 1, var)),
     "wrong mean"),
    # compression from sparsity
    (checks.check_compression_sparsity, _comp(lambda s, n: 1 / (1 - s.mean())), "without weighting"),
    (checks.check_compression_sparsity, _comp(lambda s, n: np.mean(1 / (1 - s))),
     "mean of the per-layer compressions"),
    (checks.check_compression_sparsity, _comp(lambda s, n: np.sum(n / (1 - s)) / n.sum()),
     "size-weighted mean"),
    (checks.check_compression_sparsity, _comp(lambda s, n: 100 * (1 - (n * (1 - s)).sum() / n.sum())),
     "total sparsity in %"),
    (checks.check_compression_sparsity, _comp(lambda s, n: np.divide(n.sum(), (n * s).sum())),
     "total / dropped"),
    (checks.check_compression_sparsity, _comp(lambda s, n: (n * (1 - s)).sum() / n.sum()),
     "reciprocal"),
    (checks.check_compression_sparsity, lambda s, n: sum(n) / sum(k * (1 - v) for v, k in zip(s, n)),
     "divide the sparsity by 100"),
    (checks.check_compression_sparsity, _comp(lambda s, n: 2 * n.sum() / (n * (1 - s)).sum()),
     "wrong value for sparsity"),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    with pytest.raises(CheckFailed) as err:
        check(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


@pytest.mark.parametrize("check", [checks.check_theta_grad_variance, checks.check_preactivation_moments,
                                   checks.check_compression_sparsity])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)


def test_the_ok_line_reports_the_measured_ratio(capsys):
    checks.check_theta_grad_variance(right_grads)
    out = capsys.readouterr().out
    assert "at alpha = 1" in out and "4 + 2 alpha" in out
    ratio = float(out.split("measured with your function: ")[1].split(" at alpha")[0])
    assert ratio == pytest.approx(6.0, rel=0.05)


# --------------------------------------------------------------------------------------------------
# Exercise 4: the KL's share of the objective, and the N it is divided by
# --------------------------------------------------------------------------------------------------

def right_share(kl, data_loss, train_size, kl_weight=1.0):
    term = kl_weight * kl / train_size
    return term / (data_loss + term)


def test_kl_share_accepts_the_right_answer(capsys):
    checks.check_kl_share(right_share)
    checks.check_kl_share(lambda kl, dl, n, w: float(torch.tensor(right_share(kl, dl, n, w))))
    assert capsys.readouterr().out.startswith("OK: kl_share")


@pytest.mark.parametrize("wrong, needle", [
    (lambda kl, dl, n, w: w * kl / (dl + w * kl), "not divided by N"),
    (lambda kl, dl, n, w: w * kl * n / (dl + w * kl * n), "multiplied by N"),
    (lambda kl, dl, n, w: (w * kl / n) / dl, "against the data loss alone"),
    (lambda kl, dl, n, w: dl / (dl + w * kl / n), "inverted"),
    (lambda kl, dl, n, w: dl / (w * kl / n), "inverted"),
    (lambda kl, dl, n, w: (kl / n) / (dl + kl / n), "without kl_weight"),
    (lambda kl, dl, n, w: 100 * right_share(kl, dl, n, w), "in %"),
    (lambda kl, dl, n, w: right_share(kl, dl, n, w) + 0.01, "expected"),
])
def test_kl_share_names_each_slip(wrong, needle):
    with pytest.raises(CheckFailed, match=needle):
        checks.check_kl_share(wrong)


def _run(train=55_000, val=5_000, test=10_000, batch=500):
    return {"provenance": {"train_size": train, "validation_size": val, "test_size": test},
            "config": {"recipe": {"batch_size": batch}}}


def test_train_size_accepts_the_training_set(capsys):
    checks.check_train_size(55_000, _run())
    checks.check_train_size(500, _run(500, 100, 200, 100))
    assert "OK: N = 55,000" in capsys.readouterr().out


@pytest.mark.parametrize("n, needle", [(10_000, "test set"), (60_000, "before the validation split"),
                                       (5_000, "validation set"), (110, "number of batches"),
                                       (500, "batch size"), (1234, "not the number")])
def test_train_size_names_each_slip(n, needle):
    with pytest.raises(CheckFailed, match=needle):
        checks.check_train_size(n, _run())
