"""Checks for the assignment notebooks (``notebooks/assignments/``): one per exercise.

Each check runs the student's function on tiny seeded inputs (well under a second), compares it with
the reference implementation of this package, and either prints one line starting with ``OK:`` or
raises ``CheckFailed`` (an ``AssertionError``) that says in words what is wrong: a shape, a mean, a
variance, a sign, a missing ``train_size``. Known wrong answers get their own explanation (for
instance log(2|theta|) instead of 2 log|theta|). A function that still raises NotImplementedError
(an unfilled ``# YOUR CODE HERE``) is reported as such and the NotImplementedError is re-raised.

The checks never disturb the caller's random state (``torch.random.fork_rng``).
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import LOG_ALPHA_CLAMP, CheckFailed, _as_tensor, _call, _close, _fail, _ok, _seeded
from ..layers import K1, K2, K3, LinearSVDO, compute_log_alpha, kl_approx, linear_svdo

__all__ = [
    "CheckFailed",
    "OUTCOME_THRESHOLDS",
    "check_log_alpha",
    "check_lrt_linear",
    "check_eval_mask",
    "check_kl",
    "check_sgvlb",
    "check_compression_ratio",
    "check_layer",
    "check_train_step",
    "check_training_outcome",
    "LOG_ALPHA_CLAMP",
]


# --------------------------------------------------------------------------------------------------
# Exercise 1: log alpha from (theta, log_sigma2)
# --------------------------------------------------------------------------------------------------

@_seeded
def check_log_alpha(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(theta, log_sigma2)`` must return log alpha = log sigma^2 - log theta^2 (paper eq. 15),
    elementwise, finite when theta = 0, differentiable in both arguments."""
    what = "log_alpha"
    theta = torch.tensor([[0.5, -2.0, 0.1], [3.0, -0.05, 1.5]], requires_grad=True)
    log_sigma2 = torch.tensor([[-4.0, 1.0, -8.0], [0.0, -3.0, 2.0]], requires_grad=True)
    theta_before, ls_before = theta.detach().clone(), log_sigma2.detach().clone()
    out = _as_tensor(what, _call(what, fn, theta, log_sigma2), theta.shape)
    if not (torch.equal(theta.detach(), theta_before) and torch.equal(log_sigma2.detach(), ls_before)):
        _fail(what, "it changed its inputs in place (e.g. `theta.abs_()` or `+=`); compute a new "
                    "tensor instead")
    expected = log_sigma2 - torch.log(theta * theta)
    if not _close(out, expected, rtol=1e-4, atol=1e-4):
        t, s = theta.detach(), log_sigma2.detach()
        wrong = {
            "log(2|theta|) instead of log(theta^2) = 2 log|theta|":
                s - torch.log(2 * t.abs()),
            "log|theta| instead of log(theta^2) = 2 log|theta| (the square is missing)":
                s - torch.log(t.abs()),
            "-log alpha (the sign is flipped: log theta^2 - log sigma^2)":
                torch.log(t * t) - s,
            "exp(log_sigma2) where log_sigma2 itself is already log sigma^2":
                torch.exp(s) - torch.log(t * t),
            "log(log_sigma2 / theta^2): log_sigma2 is already a log, subtract logs instead":
                torch.log(s.abs() / (t * t)),
        }
        for name, value in wrong.items():
            if _close(out, value, rtol=1e-3, atol=1e-3):
                _fail(what, f"you computed {name}. log alpha = log sigma^2 - log theta^2 "
                            f"= log_sigma2 - 2 log|theta| (eq. 15)")
        i = int((out.detach() - expected.detach()).abs().argmax())
        _fail(what, f"wrong values: for theta={theta.detach().flatten()[i]:.3g}, "
                    f"log_sigma2={log_sigma2.detach().flatten()[i]:.3g} expected "
                    f"{expected.detach().flatten()[i]:.4g}, got {out.detach().flatten()[i]:.4g}. "
                    f"log alpha = log_sigma2 - log(theta^2)")
    if not out.requires_grad:
        _fail(what, "the result carries no gradient; do not use .detach(), .item(), numpy or math "
                    "(gradients must reach theta and log_sigma2)")
    out.sum().backward()
    if theta.grad is None or log_sigma2.grad is None or not torch.isfinite(theta.grad).all():
        _fail(what, "no finite gradient reaches theta and log_sigma2")
    zero = _as_tensor(what, _call(what, fn, torch.zeros(3), torch.full((3,), -5.0)), (3,))
    if not torch.isfinite(zero).all():
        _fail(what, f"theta = 0 gives {zero[0].item()}: log(0) = -inf. Add a small eps inside the "
                    f"log, log(theta^2 + 1e-8), so that pruned weights stay finite")
    _ok(what, "= log_sigma2 - log(theta^2 + eps): shape, values, gradients and theta = 0 all fine")


# --------------------------------------------------------------------------------------------------
# Exercise 2: the local reparameterisation trick (train mode)
# --------------------------------------------------------------------------------------------------

def _as_linear_fn(fn_or_class, train: bool):
    """A function (x, theta, log_sigma2, bias[, threshold]) from a function or a layer class."""
    if inspect.isclass(fn_or_class) and issubclass(fn_or_class, nn.Module):
        cls = fn_or_class

        def run(x, theta, log_sigma2, bias, threshold=3.0):
            layer = cls(theta.shape[1], theta.shape[0])
            for name in ("weight", "log_sigma2", "bias"):
                if not isinstance(getattr(layer, name, None), torch.Tensor):
                    _fail(cls.__name__, f"the layer needs a parameter named `{name}` (the same "
                                        f"names as sparsevd_lab.LinearSVDO)")
            with torch.no_grad():
                layer.weight.copy_(theta)
                layer.log_sigma2.copy_(log_sigma2)
                layer.bias.copy_(bias)
            if hasattr(layer, "threshold"):
                layer.threshold = threshold
            layer.train(train)
            run.layer = layer
            return layer(x)

        run.__name__ = cls.__name__
        return run
    return fn_or_class


@_seeded
def check_lrt_linear(fn_or_class) -> None:
    """``fn(x, theta, log_sigma2, bias)`` (or a layer class in train mode) must sample the
    pre-activations with the local reparameterisation trick (eq. 17): independently for every
    example and unit, with mean gamma = x theta^T + b and variance delta = (x*x) sigma^2^T (no bias
    in the variance), with finite gradients for an all-zero input row."""
    what = "lrt_linear"
    fn = _as_linear_fn(fn_or_class, train=True)
    n_in, n_out, reps = 4, 3, 4000
    theta = torch.tensor([[0.5, -1.0, 0.2, 0.0], [1.5, 0.3, -0.7, 0.4], [-0.2, 0.8, 0.1, -1.2]])
    log_sigma2 = torch.tensor([[-1.0, -2.0, 0.0, -3.0], [-0.5, -1.5, -1.0, 0.5], [0.3, -2.5, -0.2, -1.0]])
    bias = torch.tensor([0.5, -1.0, 2.0])
    rows = torch.tensor([[1.0, -2.0, 0.5, 1.0], [0.2, 0.1, -1.5, 2.0]])
    x = rows.repeat_interleave(reps, dim=0)  # every row repeated: its outputs must still differ
    out = _as_tensor(what, _call(what, fn, x, theta, log_sigma2, bias), (len(x), n_out))
    if not torch.isfinite(out).all():
        _fail(what, "the output has NaN or inf: is the variance negative somewhere (use x*x, "
                    "not x), or did you take sqrt of log sigma^2 instead of sigma^2 = exp(log_sigma2)?")
    samples = out.detach().double().view(len(rows), reps, n_out)
    mean, var = samples.mean(1), samples.var(1)
    mu = F.linear(rows, theta, bias).double()
    s2 = F.linear(rows * rows, log_sigma2.exp()).double()
    if float(var.max()) < 1e-10:
        _fail(what, "identical inputs gave identical outputs: there is no noise, or one noise draw / "
                    "one weight sample is shared by the whole batch. Draw eps with the shape of mu "
                    "(torch.randn_like(mu)): one draw per example and unit")
    # standard errors with a wide margin (5 sigma) so that a correct answer never fails
    se_mean = (s2 / reps).sqrt()
    if not bool(((mean - mu).abs() <= 5 * se_mean + 1e-4).all()):
        if bool(((mean - (mu - bias.double())).abs() <= 5 * se_mean + 1e-4).all()):
            _fail(what, "the mean is off by exactly the bias: add the bias to mu = x theta^T + b")
        if bool(((mean + mu).abs() <= 5 * se_mean + 1e-4).all()):
            _fail(what, "the mean has the wrong sign: mu = x theta^T + b")
        _fail(what, f"wrong mean: expected mu = x theta^T + b = {mu[0].numpy().round(3)} for the "
                    f"first input, got {mean[0].numpy().round(3)} on average")
    se_var = s2 * math.sqrt(2.0 / (reps - 1))
    if not bool(((var - s2).abs() <= 6 * se_var + 1e-4).all()):
        b2 = bias.double() ** 2
        candidates = {
            "the bias is inside the variance: the bias is not random, var = (x*x) sigma^2^T with no "
            "bias (F.linear(x * x, sigma2) without the bias argument)": (s2 + b2, s2 + bias.double()),
            "the standard deviation has no square root: out = gamma + sqrt(delta) * eps, not "
            "gamma + delta * eps":
                (s2 ** 2,),
            "the variance uses x instead of x*x (or |x|): Var(sum x_i w_i) = sum x_i^2 sigma_i^2":
                (F.linear(rows.abs(), log_sigma2.exp()).double() ** 2,
                 F.linear(rows.abs(), log_sigma2.exp()).double()),
            "sigma^2 was taken as log_sigma2 itself or as exp(log_sigma2 / 2): sigma^2 = exp(log_sigma2)":
                (F.linear(rows * rows, (log_sigma2 / 2).exp()).double(),),
        }
        for name, values in candidates.items():
            for v in values:
                if bool(((var - v).abs() <= 6 * v * math.sqrt(2.0 / (reps - 1)) + 1e-4).all()):
                    _fail(what, f"wrong variance: {name}")
        _fail(what, f"wrong variance: expected (x*x) sigma^2^T = {s2[0].numpy().round(3)} for the "
                    f"first input, got {var[0].numpy().round(3)}")
    x_small = rows.clone().requires_grad_(True)
    theta_g = theta.clone().requires_grad_(True)
    ls_g = log_sigma2.clone().requires_grad_(True)
    g_out = _call(what, fn, x_small, theta_g, ls_g, bias)
    if not getattr(g_out, "requires_grad", False):
        _fail(what, "the output carries no gradient: sample with mu + std * eps (the "
                    "reparameterisation trick), not torch.normal, and do not detach")
    g_out.sum().backward()
    if hasattr(fn, "layer"):  # a layer class: its own parameters get the gradients
        theta_g, ls_g = fn.layer.weight, fn.layer.log_sigma2
    if ls_g.grad is None or theta_g.grad is None or float(ls_g.grad.abs().sum()) == 0.0:
        _fail(what, "no gradient reaches log_sigma2 (or theta): sample with mu + std * eps "
                    "(the reparameterisation trick), not torch.normal, and do not detach")
    # an all-zero input row: delta = 0 there, and d sqrt(delta) / d delta = 1 / (2 sqrt(delta)) is
    # infinite at 0; times the zero derivative of delta, autograd gives 0 * inf = NaN
    x_zero = torch.cat([torch.zeros(1, n_in), rows]).requires_grad_(True)
    theta_z = theta.clone().requires_grad_(True)
    ls_z = log_sigma2.clone().requires_grad_(True)
    z_out = _call(what, fn, x_zero, theta_z, ls_z, bias)
    z_out.sum().backward()
    if hasattr(fn, "layer"):
        theta_z, ls_z = fn.layer.weight, fn.layer.log_sigma2
    grads = [g for g in (x_zero.grad, theta_z.grad, ls_z.grad) if g is not None]
    if not torch.isfinite(z_out).all() or not all(torch.isfinite(g).all() for g in grads):
        _fail(what, "an all-zero input row (a black image, a dead ReLU unit of the layer before) "
                    "gives NaN gradients: there the pre-activation variance delta is 0, and "
                    "sqrt has an infinite derivative at 0. Add a small floor inside the root: "
                    "torch.sqrt(delta + 1e-8)")
    _ok(what, "samples gamma + sqrt(delta) * eps per example: mean gamma = x theta^T + b and variance "
              "delta = (x*x) sigma^2^T match, gradients reach theta and log_sigma2, and an all-zero "
              "input row gives finite gradients")


# --------------------------------------------------------------------------------------------------
# Exercise 3: eval-mode masking
# --------------------------------------------------------------------------------------------------

@_seeded
def check_eval_mask(fn_or_class) -> None:
    """``fn(x, theta, log_sigma2, bias, threshold)`` (or a layer class in eval mode) must be
    deterministic: F.linear(x, theta * (log_alpha < threshold), bias)."""
    what = "eval_linear"
    fn = _as_linear_fn(fn_or_class, train=False)
    theta = torch.tensor([[0.5, -1.0, 0.01, 2.0], [1.5, 0.3, -0.7, 0.002], [-0.2, 0.8, 0.1, -1.2]])
    log_sigma2 = torch.tensor([[-6.0, 2.5, -6.0, -6.0], [-6.0, -6.0, -6.0, -6.0], [-6.0, 0.0, -1.0, 1.0]])
    bias = torch.tensor([0.5, -1.0, 2.0])
    x = torch.tensor([[1.0, -2.0, 0.5, 1.0], [0.2, 0.1, -1.5, 2.0], [0.0, 1.0, 1.0, 1.0]])
    la = compute_log_alpha(theta, log_sigma2)

    def ref(t):
        return F.linear(x, theta * (la < t), bias)

    out = _as_tensor(what, _call(what, fn, x, theta, log_sigma2, bias, 3.0), (3, 3))
    again = _call(what, fn, x, theta, log_sigma2, bias, 3.0)
    if not torch.equal(out.detach(), torch.as_tensor(again).detach()):
        _fail(what, "two calls with the same input differ: eval mode must be deterministic "
                    "(no noise: use theta itself, masked)")
    if not _close(out, ref(3.0)):
        candidates = {
            "the mask is inverted: keep the weights with log_alpha < threshold (small noise), "
            "drop those with log_alpha >= threshold": F.linear(x, theta * (la >= 3.0), bias),
            "nothing is masked: multiply theta by (log_alpha < threshold)": F.linear(x, theta, bias),
            "the bias is missing": F.linear(x, theta * (la < 3.0)),
            "the threshold was compared with alpha, not log alpha (the paper's threshold 3 is on "
            "log alpha, i.e. alpha ~ 20)": F.linear(x, theta * (la.exp() < 3.0), bias),
            "the mask was applied to the output units or the bias; it applies to the weights theta":
                F.linear(x, theta * (la < 3.0), bias * 0),
        }
        for name, value in candidates.items():
            if _close(out, value):
                _fail(what, name)
        _fail(what, f"wrong values: expected F.linear(x, theta * (log_alpha < threshold), bias) = "
                    f"{ref(3.0)[0].numpy().round(3)} for the first input, got "
                    f"{out.detach()[0].numpy().round(3)}")
    other = _call(what, fn, x, theta, log_sigma2, bias, 0.5)
    if not _close(torch.as_tensor(other), ref(0.5)):
        _fail(what, "the result ignores the `threshold` argument (it is right for threshold=3 but "
                    "not for 0.5): compare log_alpha with `threshold`, not with the number 3")
    _ok(what, "is deterministic and keeps exactly the weights with log_alpha < threshold")


# --------------------------------------------------------------------------------------------------
# Exercise 4: the KL approximation (eq. 14)
# --------------------------------------------------------------------------------------------------

@_seeded
def check_kl(fn: Callable[[Tensor], Tensor]) -> None:
    """``fn(log_alpha)`` must return the elementwise KL approximation of eq. 14:
    KL ~= k1 - k1 sigmoid(k2 + k3 log_alpha) + 0.5 log1p(1/alpha), >= 0, decreasing, finite."""
    what = "kl_approx"
    la = torch.tensor([-8.0, -3.0, -1.0, 0.0, 0.5, 2.0, 4.0, 10.0], requires_grad=True)
    out = _call(what, fn, la)
    out = _as_tensor(what, out)
    if out.dim() == 0 or out.numel() == 1:
        _fail(what, f"it returned one number ({float(out.detach().flatten()[0]):.4g}) for "
                    f"{la.numel()} weights: return the KL of each weight (elementwise, same shape "
                    f"as log_alpha) and sum it later")
    out = _as_tensor(what, out, la.shape)
    expected = kl_approx(la.detach())
    if not _close(out, expected, rtol=1e-3, atol=1e-4):
        l = la.detach()
        s = torch.sigmoid(K2 + K3 * l)
        sp = 0.5 * torch.log1p(torch.exp(-l))
        candidates = {
            "the sign is flipped: eq. 14 gives -KL; the KL itself is >= 0, "
            "KL = k1 - k1 sigmoid(k2 + k3 log_alpha) + 0.5 log1p(1/alpha)": -expected,
            "the constant k1 is missing: without it the KL goes to -k1 = -0.636 instead of 0 "
            "for large log_alpha": sp - K1 * s,
            "log1p(alpha) instead of log1p(1/alpha) = log1p(exp(-log_alpha))":
                K1 - K1 * s + 0.5 * torch.log1p(torch.exp(l)),
            "the factor 0.5 in front of log1p(1/alpha) is missing": K1 - K1 * s + 2 * sp,
            "sigmoid(k2 - k3 log_alpha): the sign inside the sigmoid is wrong, it is k2 + k3 log_alpha":
                K1 - K1 * torch.sigmoid(K2 - K3 * l) + sp,
            "sigmoid(k2 + k3 * alpha): the sigmoid takes log alpha, not alpha":
                K1 - K1 * torch.sigmoid(K2 + K3 * l.exp()) + sp,
        }
        for name, value in candidates.items():
            if _close(out, value, rtol=1e-3, atol=1e-4):
                _fail(what, name)
        if bool((out.detach() < -1e-6).any()):
            _fail(what, "some values are negative: a KL divergence is never negative (check the sign)")
        i = int((out.detach() - expected).abs().argmax())
        _fail(what, f"wrong value at log_alpha={l[i]:.1f}: expected {expected[i]:.4f}, got "
                    f"{out.detach()[i]:.4f}. Use k1, k2, k3 = {K1}, {K2}, {K3}")
    if not out.requires_grad:
        _fail(what, "the result carries no gradient; use torch functions (torch.sigmoid, "
                    "torch.log1p, torch.exp), not math or numpy")
    far = _call(what, fn, torch.tensor([-50.0, 50.0]))
    if not torch.isfinite(torch.as_tensor(far)).all():
        _fail(what, "not finite at log_alpha = -50 or 50: use F.softplus(-log_alpha) for "
                    "log1p(exp(-log_alpha))")
    _ok(what, "matches eq. 14: >= 0, about 5.6 at log_alpha = -10 (an informative weight) and "
              "~0 beyond 8 (a pruned one)")


# --------------------------------------------------------------------------------------------------
# Exercise 5: the SGVLB objective
# --------------------------------------------------------------------------------------------------

@_seeded
def check_sgvlb(fn: Callable) -> None:
    """``fn(output, target, kl, train_size, kl_weight)`` must return the negative SGVLB per
    training example: cross_entropy(output, target) (mean over the batch) + kl_weight * kl / train_size
    (paper eq. 3 divided by N)."""
    what = "sgvlb"
    output = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -0.4], [-1.0, 2.0, 0.0], [0.5, 0.5, 3.0]],
                          requires_grad=True)
    target = torch.tensor([0, 2, 1, 2])
    kl = torch.tensor(1234.5, requires_grad=True)
    n, w, batch = 6000, 0.5, len(target)
    out = _call(what, fn, output, target, kl, n, w)
    out = _as_tensor(what, out)
    if out.numel() != 1:
        _fail(what, f"it returned a tensor of shape {tuple(out.shape)}; the loss is one number "
                    f"(average the data term over the batch)")
    got = float(out.detach())
    ce_mean = float(F.cross_entropy(output.detach(), target))
    ce_sum = ce_mean * batch
    k = float(kl.detach())
    expected = ce_mean + w * k / n
    if not math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
        candidates = {
            "the sign is flipped: minimise the NEGATIVE SGVLB, data loss + kl_weight * KL / N":
                [-expected],
            "the KL is not divided by train_size: loss = data + kl_weight * KL / train_size "
            "(train_size is missing)": [ce_mean + w * k, ce_sum + w * k],
            "this is train_size times the expected loss: divide everything by N, i.e. "
            "loss = mean data loss + kl_weight * KL / train_size": [n * ce_mean + w * k],
            "the data term is summed over the batch; use the MEAN cross-entropy (the data term "
            "N/M sum over the batch, divided by N, is the batch mean)": [ce_sum + w * k / n],
            "the data term was multiplied by train_size but the KL was not: both are divided by N "
            "(the per-example loss is mean data loss + kl_weight * KL / train_size)":
                [n * ce_mean + w * k / n],
            "the KL was divided by the number of batches (train_size / batch size), not by "
            "train_size": [ce_mean + w * k / (n / batch), ce_mean + w * k / math.ceil(n / batch)],
            "kl_weight is ignored: multiply the KL term by kl_weight (the warm-up)":
                [ce_mean + k / n],
            "kl_weight multiplies the data term instead of the KL": [w * ce_mean + k / n],
        }
        for name, values in candidates.items():
            if any(math.isclose(got, v, rel_tol=1e-4, abs_tol=1e-6) for v in values):
                _fail(what, name)
        _fail(what, f"wrong value: expected cross_entropy + kl_weight * kl / train_size = "
                    f"{ce_mean:.4f} + {w} * {k} / {n} = {expected:.4f}, got {got:.4f}")
    # the other arguments must be used, not constants that happen to match
    for args, name in [((output, target, kl, 100, w), "train_size"),
                       ((output, target, kl, n, 0.0), "kl_weight")]:
        v = float(torch.as_tensor(_call(what, fn, *args)).detach())
        e = ce_mean + args[4] * k / args[3]
        if not math.isclose(v, e, rel_tol=1e-4, abs_tol=1e-6):
            _fail(what, f"right for one setting but wrong when {name} changes: use the {name} "
                        f"argument, not a fixed number")
    if not out.requires_grad:
        _fail(what, "the loss carries no gradient: use torch operations (F.cross_entropy), not .item()")
    out.backward()
    if output.grad is None or kl.grad is None:
        _fail(what, "no gradient reaches the network output or the KL: do not detach them")
    _ok(what, "= cross_entropy(output, target) + kl_weight * KL / train_size (eq. 3 divided by N)")


# --------------------------------------------------------------------------------------------------
# Exercise 6: the compression ratio
# --------------------------------------------------------------------------------------------------

def _toy_model() -> nn.Module:
    """Two Sparse VD layers with known kept counts and a dense layer that must not be counted."""
    a, b = LinearSVDO(10, 6), LinearSVDO(6, 2)
    with torch.no_grad():
        for layer, kept in ((a, 30), (b, 1)):
            layer.weight.fill_(0.5)
            ls = torch.full_like(layer.log_sigma2, 10.0)  # log alpha ~ 11.4: dropped
            ls.view(-1)[:kept] = -10.0  # log alpha ~ -8.6: kept
            layer.log_sigma2.copy_(ls)
        # one weight with log alpha = 2: kept at threshold 3, dropped at 1.5
        a.log_sigma2.view(-1)[-1] = math.log(0.25) + 2.0
    return nn.Sequential(a, nn.ReLU(), b, nn.ReLU(), nn.Linear(2, 5))


@_seeded
def check_compression_ratio(fn: Callable[..., float]) -> None:
    """``fn(model, threshold=3.0)`` must return (all Sparse VD weights) / (kept weights) over every
    layer with a ``log_sigma2``, biases and dense layers not counted (the paper's Table 1 figure)."""
    what = "compression_ratio"
    model = _toy_model()
    total, kept = 60 + 12, 31 + 1  # 30 + 1 (log alpha = 2) kept in a, 1 in b
    expected = total / kept
    got = _call(what, fn, model, 3.0)
    try:
        got = float(got)
    except (TypeError, ValueError):
        _fail(what, f"expected a number, got {type(got).__name__}")
    if not math.isclose(got, expected, rel_tol=1e-6):
        with_bias = (total + 6 + 2) / (kept + 6 + 2)
        candidates = {
            "this is kept / total, the inverse: compression = all weights / kept weights (>= 1)":
                [kept / total],
            "this is the sparsity (the fraction dropped), not the compression ratio": [
                1 - kept / total, 100 * (1 - kept / total)],
            "the biases were counted; the paper counts the weights theta only": [with_bias],
            "the dense nn.Linear layer was counted; count only layers with a log_sigma2":
                [(total + 10) / (kept + 10), (total + 10 + 5) / (kept + 10 + 5)],
            "log_sigma2 was counted as weights too; it is a training-time parameter":
                [(2 * total) / kept],
            "the per-layer ratios were averaged: sum the weights and the kept weights over all "
            "layers first, then divide": [(60 / 31 + 12 / 1) / 2],
            "the mask is inverted: kept weights have log_alpha < threshold":
                [total / (total - kept)],
        }
        for name, values in candidates.items():
            if any(math.isclose(got, v, rel_tol=1e-6) for v in values):
                _fail(what, name)
        _fail(what, f"wrong value: the test model has {total} Sparse VD weights of which {kept} have "
                    f"log_alpha < 3, so the ratio is {expected:.4f}; got {got:.4f}")
    other = float(_call(what, fn, model, 1.5))
    if not math.isclose(other, total / (kept - 1), rel_tol=1e-6):
        _fail(what, f"the `threshold` argument is ignored: at threshold 1.5 one more weight is "
                    f"dropped ({total / (kept - 1):.4f}); got {other:.4f}")
    everything = _toy_model()
    with torch.no_grad():
        for m in everything.modules():
            if hasattr(m, "log_sigma2"):
                m.log_sigma2.fill_(10.0)
    try:
        none_kept = float(_call(what, fn, everything, 3.0))
    except ZeroDivisionError:
        _fail(what, "division by zero when every weight is dropped: return float('inf') then")
    if not math.isinf(none_kept):
        _fail(what, f"when every weight is dropped the ratio is infinite; got {none_kept}")
    _ok(what, f"= all weights / kept weights ({total} / {kept} = {expected:.2f}x on the test model; "
              f"biases and dense layers not counted)")


# --------------------------------------------------------------------------------------------------
# Exercise 5: the layer module (parameters, initialisation, log alpha unclamped, kl)
# --------------------------------------------------------------------------------------------------

def _layer_log_alpha(layer) -> Tensor:
    la = getattr(layer, "log_alpha", None)
    if callable(la) and not torch.is_tensor(la):
        la = la()
    return la


@_seeded
def check_layer(cls) -> None:
    """``cls(in_features, out_features, threshold=3.0, log_sigma2_init=-10.0)`` must be an
    ``nn.Module`` with parameters ``weight`` (theta, shape (out, in), nn.Linear's initialisation),
    ``log_sigma2`` (filled with ``log_sigma2_init``) and ``bias``; a ``log_alpha`` property, eq. 15
    unclamped as in ``sparsevd_lab.LinearSVDO`` (tested down to theta = 0.01, so that a clamp on
    log alpha or on log_sigma2 shows); and ``kl()``, the sum of eq. 14 over its weights.
    ``sparsevd_lab.LinearSVDO`` itself passes."""
    what = getattr(cls, "__name__", "the layer")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        _fail(what, "pass the class itself, a subclass of nn.Module")
    n_in, n_out = 50, 20
    layer = _call(what, cls, n_in, n_out)
    params = dict(layer.named_parameters())
    for name, shape in (("weight", (n_out, n_in)), ("log_sigma2", (n_out, n_in)), ("bias", (n_out,))):
        if name not in params:
            if torch.is_tensor(getattr(layer, name, None)):
                _fail(what, f"`{name}` is a tensor but not an nn.Parameter: wrap it, "
                            f"nn.Parameter(...), or the optimiser never trains it")
            _fail(what, f"the layer needs a parameter named `{name}` (the names of "
                        f"sparsevd_lab.LinearSVDO: weight = theta, log_sigma2, bias)")
        if tuple(params[name].shape) != shape:
            _fail(what, f"`{name}` has shape {tuple(params[name].shape)}; for in_features={n_in}, "
                        f"out_features={n_out} it must be {shape} (as nn.Linear: (out, in))")
    ls, w = params["log_sigma2"].detach(), params["weight"].detach()
    if not bool((ls == -10.0).all()):
        if bool((ls == 0).all()):
            _fail(what, "log_sigma2 starts at 0, i.e. sigma^2 = 1: every weight starts as pure "
                        "noise (log alpha ~ 8, pruned before training). Fill it with log_sigma2_init")
        _fail(what, "log_sigma2 must start at log_sigma2_init (-10 by default) for every weight")
    other = _call(what, cls, n_in, n_out, log_sigma2_init=-6.0)
    if not bool((other.log_sigma2.detach() == -6.0).all()):
        _fail(what, "the log_sigma2_init argument is ignored (log_sigma2 should start at -6 here)")
    if getattr(other, "threshold", 3.0) != 3.0 or getattr(_call(what, cls, n_in, n_out, threshold=2.0),
                                                          "threshold", None) != 2.0:
        _fail(what, "store the threshold argument as self.threshold (eval mode compares with it)")
    bound = 1 / math.sqrt(n_in)
    if float(w.abs().max()) == 0.0:
        _fail(what, "the weights start at 0: then log alpha = log sigma^2 - log(0 + eps) is huge "
                    "and every weight is pruned from the start. Initialise theta like nn.Linear: "
                    "nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))")
    if float(w.abs().max()) > 1.01 * bound:
        _fail(what, f"the weights start too large (largest |theta| {float(w.abs().max()):.2f}); "
                    f"nn.Linear draws theta from U(-1/sqrt(in), 1/sqrt(in)) = +-{bound:.3f}: use "
                    f"nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))")
    if float(w.std()) < 0.3 * bound / math.sqrt(3):
        _fail(what, f"the weights start too small (std {float(w.std()):.4f}; nn.Linear's is about "
                    f"{bound / math.sqrt(3):.3f}); use nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))")
    # log alpha over a wide range: theta = 1 (log alpha = log_sigma2) and theta = 0.01 (log alpha
    # = log_sigma2 + 9.2), log_sigma2 from -30 to 30. A clamp on log alpha, or on log_sigma2 before
    # log alpha is computed (the small theta carries log alpha past 10 all the same), shows here.
    with torch.no_grad():
        theta = torch.ones(n_out, n_in)
        theta[1::2] = 0.01
        layer.weight.copy_(theta)
        layer.log_sigma2.copy_(torch.linspace(-30, 30, n_in * n_out).view(n_out, n_in))
    before = layer.log_sigma2.detach().clone()
    try:
        la = _layer_log_alpha(layer)
    except NotImplementedError:
        raise NotImplementedError(f"{what}.log_alpha is not written yet: replace `raise "
                                  f"NotImplementedError` under `# YOUR CODE HERE`") from None
    if not torch.is_tensor(la):
        _fail(what, "the layer needs a `log_alpha` property (@property def log_alpha(self): ...) "
                    "returning a tensor")
    if not torch.equal(layer.log_sigma2.detach(), before):
        _fail(what, "log_alpha changed log_sigma2 in place (e.g. clamp_): compute a new tensor, "
                    "the parameters stay as they are")
    la = _as_tensor(what, la, (n_out, n_in))
    log_theta2 = torch.log(theta * theta + 1e-8)
    expected = before - log_theta2  # eq. 15, unclamped: the package's choice (sparsevd_lab.LinearSVDO)
    low, high = LOG_ALPHA_CLAMP  # the authors' clamp, recognised to name it
    if not _close(la, expected, rtol=1e-4, atol=1e-3):
        got = la.detach()
        if _close(got, expected.clamp(low, high), rtol=1e-4, atol=1e-3):
            _fail(what, f"log_alpha is clamped to [{low:g}, {high:g}], as in the authors' code. This "
                        f"assignment follows sparsevd_lab.LinearSVDO: no clamp (exercise 5 says why, "
                        f"and what each choice costs). Return log_alpha(self.weight, self.log_sigma2)")
        if _close(got, before.clamp(low, high) - log_theta2, rtol=1e-4, atol=1e-3):
            _fail(what, f"log_sigma2 is clamped to [{low:g}, {high:g}] before log alpha is computed: "
                        f"that limits a parameter, not log alpha (with theta = 0.01, log alpha = "
                        f"log_sigma2 - log theta^2 still reaches {float(got.max()):.1f}). Clamp "
                        f"neither: return log_alpha(self.weight, self.log_sigma2)")
        if float(got.max()) < float(expected.max()) - 1 or float(got.min()) > float(expected.min()) + 1:
            _fail(what, f"log_alpha stops at [{float(got.min()):.1f}, {float(got.max()):.1f}] where "
                        f"log sigma^2 - log theta^2 spans [{float(expected.min()):.1f}, "
                        f"{float(expected.max()):.1f}] here: something is clamped. Return "
                        f"log_alpha(self.weight, self.log_sigma2), unclamped")
        i = int((got - expected).abs().argmax())
        _fail(what, f"log_alpha should be your log_alpha(self.weight, self.log_sigma2) (eq. 15); at "
                    f"theta = {float(theta.flatten()[i]):g}, log_sigma2 = {float(before.flatten()[i]):.2f} "
                    f"expected {float(expected.flatten()[i]):.3f}, got {float(got.flatten()[i]):.3f}")
    kl = _call(what, getattr(layer, "kl", None) or (lambda: None))
    kl = _as_tensor(what, kl)
    if kl.numel() != 1:
        _fail(what, f"kl() must return one number (the sum over the layer's weights); got shape "
                    f"{tuple(kl.shape)}")
    want = kl_approx(expected).sum()
    if not _close(kl, want, rtol=1e-3, atol=1e-2):
        if _close(kl, kl_approx(expected.clamp(low, high)).sum(), rtol=1e-3, atol=1e-2):
            _fail(what, f"kl() uses log alpha clamped to [{low:g}, {high:g}]; use self.log_alpha, "
                        f"unclamped")
        if _close(kl, -want, rtol=1e-3, atol=1e-2):
            _fail(what, "kl() has the wrong sign: the KL is >= 0")
        if _close(kl, kl_approx(expected).mean(), rtol=1e-3, atol=1e-3):
            _fail(what, "kl() is the mean over the weights; the SGVLB needs the sum")
        _fail(what, f"kl() should be kl_approx(self.log_alpha).sum() = {float(want):.2f}; got "
                    f"{float(kl.detach()):.2f}")
    if not kl.requires_grad:
        _fail(what, "kl() carries no gradient: no .item(), .detach() or numpy inside")
    _ok(what, f"parameters weight, log_sigma2, bias; nn.Linear's initialisation, log_sigma2 = "
              f"log_sigma2_init; log alpha = log sigma^2 - log theta^2, unclamped, from "
              f"{float(expected.min()):.0f} to {float(expected.max()):.0f} here; kl() sums eq. 14")


# Exercise 8 and the training run live in a1_training (split by job); re-exported here so that
# ``a1.__all__`` and ``from sparsevd_lab.checks.a1 import ...`` are unchanged.
from .a1_training import OUTCOME_THRESHOLDS, check_train_step, check_training_outcome  # noqa: E402
