"""Sparse Variational Dropout layers: ``LinearSVDO`` and ``Conv2dSVDO``.

Each weight has the posterior q(w) = N(theta, sigma^2) with sigma^2 = alpha * theta^2 (paper, sec. 4.1).
We store ``weight`` (theta) and ``log_sigma2`` (the additive reparameterisation, eq. 15) and derive
``log_alpha``. Train mode samples pre-activations with the local reparameterisation trick (eq. 17);
eval mode is deterministic: theta masked by ``log_alpha < threshold``.

The math lives in the functional counterparts (``linear_svdo``, ``conv2d_svdo``, ``kl_approx``),
as ``torch.nn.functional`` does for ``torch.nn``. Introduced in notebook 03.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from . import kernels
from .kernels import fused_kl, fused_kl_enabled

__all__ = [
    "K1",
    "K2",
    "K3",
    "kl_approx",
    "compute_log_alpha",
    "linear_svdo",
    "conv2d_svdo",
    "SVDOMixin",
    "LinearSVDO",
    "Conv2dSVDO",
    "svdo_layers",
    "kl_sum",
]

# Paper eq. 14: constants of the sigmoid approximation of -KL(q || log-uniform prior).
K1, K2, K3 = 0.63576, 1.87320, 1.48695
# Keeps log(theta^2) finite when a weight is exactly zero.
EPS = 1e-8
# Conv kernels can return tiny negative variances for non-negative inputs (pytorch issue 30934);
# sqrt of a negative is NaN, so the variance is clamped at this floor before the sqrt.
VAR_FLOOR = 1e-16


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(
            f"threshold must be a finite number (the paper uses 3.0, i.e. alpha ~ 20); got {threshold}"
        )
    return threshold


def compute_log_alpha(weight: Tensor, log_sigma2: Tensor) -> Tensor:
    """log alpha = log sigma^2 - log theta^2 (eq. 15: alpha is derived, never a free parameter)."""
    return log_sigma2 - torch.log(weight * weight + EPS)


class _KLApprox(torch.autograd.Function):
    """Elementwise KL approximation with a hand-written backward.

    One pass forward, one pass backward and no saved intermediates but log_alpha itself: autograd
    would otherwise store sigmoid and softplus outputs and launch a kernel for each op.
    """

    @staticmethod
    def forward(ctx, log_alpha: Tensor) -> Tensor:  # noqa: D401
        ctx.save_for_backward(log_alpha)
        # eq. 14 rewritten: k1 - k1*sigmoid(z) == k1*sigmoid(-z) (no cancellation, always >= 0), and
        # 0.5*log1p(1/alpha) == 0.5*softplus(-log_alpha) (stable for very negative log_alpha).
        return K1 * torch.sigmoid(-(K2 + K3 * log_alpha)) + 0.5 * F.softplus(-log_alpha)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (log_alpha,) = ctx.saved_tensors
        s = torch.sigmoid(K2 + K3 * log_alpha)
        # d/dla [k1*sigmoid(-z)] = -k1*k3*s*(1-s);  d/dla [0.5*softplus(-la)] = -0.5*sigmoid(-la)
        dkl = -(K1 * K3) * s * (1.0 - s) - 0.5 * torch.sigmoid(-log_alpha)
        return grad * dkl


# Beyond log sigma^2 = 80 a weight's noise is astronomically larger than any theta; clamping there
# keeps exp() finite in float32 (it overflows at 88.7) and changes nothing measurable.
LOG_SIGMA2_MAX = 80.0


def _variance(log_sigma2: Tensor) -> tuple[Tensor, Tensor]:
    """(c, sigma^2) with c = min(log_sigma2, LOG_SIGMA2_MAX) and sigma^2 = exp(c), no gradient."""
    with torch.no_grad():
        c = torch.clamp(log_sigma2, max=LOG_SIGMA2_MAX)
        return c, torch.exp(c)


# Why hand-written autograd Functions below: on CPU a LeNet-300-100 training step at batch 100 is
# dominated by per-operation overhead and by passes over the weights, not by arithmetic. Autograd
# would run ~25 small ops per layer for the LRT and ~20 per layer for the KL; these Functions run
# about a third of that, and the KL of all layers goes through torch._foreach_* ops at once.


class _KLSum(torch.autograd.Function):
    """Sum over layers of the KL approximation (eq. 14) as a function of (theta, log_sigma2).

    Inputs: L, then L weights, L log_sigma2, and L pairs (c, sigma^2) without gradient (from the
    layers' forward pass when available, so exp() is not computed twice). The same value and
    gradient as ``sum(kl_approx(compute_log_alpha(w, ls2)).sum())``; three transcendental passes
    (two logs and a sigmoid: softplus is slow on CPU); the backward needs no transcendental.
    """

    @staticmethod
    def forward(ctx, n: int, *tensors: Tensor) -> Tensor:  # noqa: D401
        ws, ls2, cs, sigma2 = (list(tensors[i * n:(i + 1) * n]) for i in range(4))
        t = torch._foreach_mul(ws, ws)
        torch._foreach_add_(t, EPS)  # theta^2 + eps
        u = torch._foreach_add(sigma2, t)  # sigma^2 + theta^2 = theta^2 (1 + alpha)
        q = torch._foreach_div(t, u)  # 1 / (1 + alpha), for the backward pass
        r = torch._foreach_div(ws, t)  # theta / (theta^2 + eps): d log_alpha / d theta = -2 r
        # 0.5 log1p(1/alpha) = 0.5 (log(sigma^2 + theta^2) - log sigma^2)   (eq. 14, second term)
        torch._foreach_log_(u)
        torch._foreach_sub_(u, cs)
        # s = sigmoid(k2 + k3 log alpha), log alpha = log sigma^2 - log theta^2   (eqs. 14, 15)
        torch._foreach_log_(t)
        torch._foreach_sub_(t, ls2)
        torch._foreach_mul_(t, -K3)
        torch._foreach_add_(t, K2)
        torch._foreach_sigmoid_(t)
        s = t
        # eq. 14 with C = -k1: KL = k1 (1 - s) + 0.5 log1p(1/alpha); summed as 0.5 (u - 2 k1 s) + k1
        torch._foreach_add_(u, s, alpha=-2.0 * K1)
        total = sum(x.numel() for x in ws)
        kl = torch.stack([x.sum() for x in u]).sum().mul_(0.5).add_(K1 * total)
        ctx.n = n
        ctx.save_for_backward(*r, *s, *q)
        return kl

    @staticmethod
    def backward(ctx, grad: Tensor):
        n = ctx.n
        saved = ctx.saved_tensors
        r, s, q = saved[:n], saved[n:2 * n], saved[2 * n:]
        # dKL/dla = -k1 k3 s (1 - s) - 0.5 / (1 + alpha) = -0.5 * base
        base = torch._foreach_addcmul(s, s, s, value=-1.0)
        torch._foreach_mul_(base, 2.0 * K1 * K3)
        torch._foreach_add_(base, q)
        grad_ls2 = torch._foreach_mul(base, grad * -0.5)  # dla/dlog_sigma2 = 1
        torch._foreach_mul_(base, r)  # dla/dtheta = -2 theta / (theta^2 + eps)
        torch._foreach_mul_(base, grad)
        return (None, *base, *grad_ls2, *([None] * (2 * n)))


class _KLSumFused(torch.autograd.Function):
    """``_KLSum`` through the compiled single-pass CPU kernel of ``sparsevd_lab.kernels``.

    ``grad_scale`` is the gradient the caller expects to flow into the KL (SGVLB's kl_weight / N):
    the kernel writes gradients already multiplied by it, so the usual backward costs no extra pass.
    ``precomputed`` = (total, grads of theta, grads of log_sigma2) when the layers' forward pass ran
    the kernel already (on the same parameter values, with gradients scaled by ``grad_scale``).
    """

    @staticmethod
    def forward(ctx, n: int, grad_scale: float, precomputed, *tensors: Tensor) -> Tensor:  # noqa: D401
        if precomputed is None:
            total, grad_w, grad_ls2 = fused_kl(list(tensors[:n]), list(tensors[n:]), grad_scale)
        else:
            total, grad_w, grad_ls2 = precomputed
        ctx.grad_scale = grad_scale
        ctx.save_for_backward(*grad_w, *grad_ls2)
        return torch.tensor(total, dtype=tensors[0].dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved = ctx.saved_tensors
        factor = float(grad) / ctx.grad_scale
        # The incoming gradient is grad_scale rounded to the loss's float32, so the factor is 1 up
        # to rounding; rescaling then would cost a pass over every weight and change nothing.
        if abs(factor - 1.0) > 1e-6:
            saved = [g * factor for g in saved]
        return (None, None, None, *saved)


def _param_key(m) -> tuple:
    """Identifies the current values of a layer's theta and log_sigma2 (an in-place update, such as
    an optimiser step, bumps ``_version``)."""
    w, p = m.weight, m.log_sigma2
    return (w.data_ptr(), w._version, p.data_ptr(), p._version)


def kl_sum(layers, grad_scale: float = 1.0) -> Tensor:
    """Summed KL approximation (eq. 14) of the given Sparse VD layers, in one fused pass: the
    compiled CPU kernel when it applies (``sparsevd_lab.kernels``), else torch._foreach_* ops.
    ``grad_scale`` (the weight the KL will get in the loss) only makes the CPU kernel faster.

    On the CPU a layer's train-mode forward already runs the kernel (it needs exp(log_sigma2) for the
    LRT); the KL and gradients it computed are used here, once, if the parameters have not changed
    since. The layers remember ``grad_scale`` so that the next forward pre-scales the same way."""
    layers = list(layers)
    params = [m.weight for m in layers] + [m.log_sigma2 for m in layers]
    grad_scale = float(grad_scale) or 1.0
    for m in layers:
        m._kl_scale_hint = grad_scale
    if fused_kl_enabled(params):
        taken = [m.__dict__.pop("_kl_cache", None) for m in layers]
        precomputed = None
        if all(c is not None and c[0] == _param_key(m) and c[4] == grad_scale for c, m in zip(taken, layers)):
            precomputed = (sum(c[1] for c in taken), [c[2] for c in taken], [c[3] for c in taken])
        return _KLSumFused.apply(len(layers), grad_scale, precomputed, *params)
    cached = [m._cached_variance() for m in layers]
    return _KLSum.apply(len(layers), *(m.weight for m in layers), *(m.log_sigma2 for m in layers),
                        *(c for c, _ in cached), *(v for _, v in cached))


class _LRT(torch.autograd.Function):
    """Train-mode forward of a Sparse VD layer with the local reparameterisation trick (eq. 17).

    mu = op(x, theta) + b, var = op(x*x, sigma^2) with no bias, out = mu + sqrt(var) * eps, where op
    is F.linear or F.conv2d. Returns (out, sigma^2); sigma^2 carries no gradient and lets the
    layer's KL reuse the exponential. At var below VAR_FLOOR the sqrt is taken of the floor and the
    gradient passes straight through (var is clamped only against tiny negative round-off).
    """

    @staticmethod
    def forward(ctx, x, weight, log_sigma2, bias, conv_args):  # noqa: D401
        ctx.set_materialize_grads(False)
        sigma2 = torch.clamp(log_sigma2, max=LOG_SIGMA2_MAX).exp_()
        x2 = x * x
        if conv_args is None:
            mu = F.linear(x, weight, bias)
            var = F.linear(x2, sigma2)
        else:
            mu = F.conv2d(x, weight, bias, *conv_args)
            var = F.conv2d(x2, sigma2, None, *conv_args)
        std = var.clamp_(min=VAR_FLOOR).sqrt_()
        eps = torch.randn_like(mu)
        out = mu.addcmul_(std, eps)
        coef = eps.div_(std)  # d out / d var = eps / (2 std); the 1/2 is applied in backward
        ctx.conv_args = conv_args
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, x2, weight, sigma2, coef)
        ctx.mark_non_differentiable(sigma2)
        return out, sigma2

    @staticmethod
    def backward(ctx, grad, _grad_sigma2):
        x, x2, weight, sigma2, coef = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None
        need_x, need_w, need_ls2, need_b, _ = ctx.needs_input_grad
        grad_var = torch.mul(grad, coef).mul_(0.5)
        gx = gw = gls2 = gb = None
        if ctx.conv_args is None:
            g2, v2 = grad.reshape(-1, grad.shape[-1]), grad_var.reshape(-1, grad.shape[-1])
            if need_x:
                gx = torch.addcmul(grad.matmul(weight), x, grad_var.matmul(sigma2), value=2.0)
            if need_w:
                gw = g2.t().mm(x.reshape(-1, x.shape[-1]))
            if need_ls2:
                gls2 = v2.t().mm(x2.reshape(-1, x2.shape[-1])).mul_(sigma2)
            if need_b and ctx.has_bias:
                gb = g2.sum(0)
        else:
            stride, padding, dilation, groups = ctx.conv_args
            from torch.nn.grad import conv2d_input, conv2d_weight

            if need_x:
                gx = torch.addcmul(
                    conv2d_input(x.shape, weight, grad, stride, padding, dilation, groups), x,
                    conv2d_input(x.shape, sigma2, grad_var, stride, padding, dilation, groups), value=2.0)
            if need_w:
                gw = conv2d_weight(x, weight.shape, grad, stride, padding, dilation, groups)
            if need_ls2:
                gls2 = conv2d_weight(x2, weight.shape, grad_var, stride, padding, dilation,
                                     groups).mul_(sigma2)
            if need_b and ctx.has_bias:
                gb = grad.sum((0, 2, 3)) if grad.dim() == 4 else grad.sum((1, 2))
        return gx, gw, gls2, gb, None


def _compiled_args(conv_args) -> bool:
    """The compiled functions take linear layers and convolutions with numeric padding (not 'same')."""
    return conv_args is None or not isinstance(conv_args[1], str)


def _lrt(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None, conv_args) -> tuple[Tensor, Tensor]:
    """(out, sigma^2) of the LRT forward (eq. 17): the compiled C++ Function on the CPU when it is
    available (``sparsevd_lab.kernels``: no Python in the forward or backward pass), else ``_LRT``.
    Both run the same tensor operations in the same order."""
    if _compiled_args(conv_args) and kernels.lrt_enabled(x, weight):
        return kernels.lrt(x, weight, log_sigma2, bias, conv_args)
    return _LRT.apply(x, weight, log_sigma2, bias, conv_args)


def kl_approx(log_alpha: Tensor) -> Tensor:
    """Elementwise approximation of KL(q(w) || log-uniform prior) as a function of log alpha.

    Paper eq. 14: -KL ~= k1 * sigmoid(k2 + k3 * log_alpha) - 0.5 * log1p(1/alpha) - k1.
    The result is >= 0, decreases monotonically in log_alpha, and is finite for log_alpha in
    [-50, 50] in float32 (about 5.64 at -10, 0.43 at 0, ~0 beyond 8). Introduced in notebook 02.
    """
    if not torch.is_tensor(log_alpha):
        log_alpha = torch.as_tensor(log_alpha, dtype=torch.get_default_dtype())
    return _KLApprox.apply(log_alpha)




def linear_svdo(
    x: Tensor,
    weight: Tensor,
    log_sigma2: Tensor,
    bias: Tensor | None = None,
    *,
    training: bool = True,
    threshold: float = 3.0,
) -> Tensor:
    """Functional Sparse VD linear layer.

    training=True: local reparameterisation trick (eq. 17),
        mu = x theta^T + b,  var = (x*x) sigma^2^T  (no bias in the variance),  out ~ N(mu, var).
    training=False: F.linear(x, theta * (log_alpha < threshold), b), deterministic.
    """
    if training:
        # eq. 17: mu = x theta^T + b, var = (x*x) sigma^2^T (no bias in the variance)
        return _lrt(x, weight, log_sigma2, bias, None)[0]
    mask = compute_log_alpha(weight, log_sigma2) < threshold
    return F.linear(x, weight * mask, bias)


def conv2d_svdo(
    x: Tensor,
    weight: Tensor,
    log_sigma2: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    training: bool = True,
    threshold: float = 3.0,
) -> Tensor:
    """Functional Sparse VD 2-d convolution.

    training=True: mu = conv(x, theta) + b and var = conv(x*x, sigma^2) with NO bias. This treats the
    kernel as drawn independently at every position: an approximation (the paper does the same).
    training=False: F.conv2d with theta * (log_alpha < threshold), deterministic.
    """
    if training:
        # eq. 17: mu = conv(x, theta) + b, var = conv(x*x, sigma^2) with NO bias
        conv_args = (_pair(stride), padding if isinstance(padding, str) else _pair(padding),
                     _pair(dilation), groups)
        return _lrt(x, weight, log_sigma2, bias, conv_args)[0]
    mask = compute_log_alpha(weight, log_sigma2) < threshold
    return F.conv2d(x, weight * mask, bias, stride, padding, dilation, groups)


class SVDOMixin:
    """What every Sparse VD layer shares: ``log_alpha``, ``kl()``, the mask and the threshold."""

    weight: nn.Parameter
    log_sigma2: nn.Parameter

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = _check_threshold(value)

    @property
    def log_alpha(self) -> Tensor:
        """log alpha = log sigma^2 - log theta^2, unclamped (clamping would kill the gradient)."""
        return compute_log_alpha(self.weight, self.log_sigma2)

    def kl(self) -> Tensor:
        """Summed KL approximation (eq. 14) over this layer's weights. Bias has no prior."""
        return kl_sum([self])

    def _train_forward(self, x: Tensor, conv_args) -> Tensor:
        w, p = self.weight, self.log_sigma2
        fused = (torch.is_grad_enabled() and _compiled_args(conv_args) and x.device.type == "cpu"
                 and fused_kl_enabled([w, p]))
        if fused:
            # One compiled pass gives exp(log_sigma2) for the LRT and the KL with its gradients,
            # which kl_sum() then takes instead of a second pass (see kl_sum).
            scale = self.__dict__.get("_kl_scale_hint", 1.0)
            out, sigma2, gw, gls2, total = kernels.train_forward(x, w, p, self.bias, scale, conv_args)
            self._kl_cache = (_param_key(self), total, gw, gls2, scale)
            return out
        out, sigma2 = _lrt(x, w, p, self.bias, conv_args)
        # remembered until log_sigma2 changes, so that kl() in the same step reuses the exponential
        self._variance_cache = ((p.data_ptr(), p._version, p.dtype, p.device), sigma2)
        return out

    def _cached_variance(self) -> tuple[Tensor, Tensor]:
        cache = getattr(self, "_variance_cache", None)
        p = self.log_sigma2
        if cache is not None and cache[0] == (p.data_ptr(), p._version, p.dtype, p.device):
            with torch.no_grad():
                return torch.clamp(p, max=LOG_SIGMA2_MAX), cache[1]
        return _variance(p)

    def mask(self, threshold: float | None = None) -> Tensor:
        """Boolean mask of the weights kept at ``threshold`` (default: the layer's own)."""
        t = self._threshold if threshold is None else _check_threshold(threshold)
        with torch.no_grad():
            return self.log_alpha < t

    def masked_weight(self, threshold: float | None = None) -> Tensor:
        with torch.no_grad():
            return self.weight * self.mask(threshold)

    def _reset_log_sigma2(self) -> None:
        nn.init.constant_(self.log_sigma2, self.log_sigma2_init)


class LinearSVDO(SVDOMixin, nn.Module):
    """Sparse VD twin of ``nn.Linear``: y = x theta^T + b with theta ~ N(theta, alpha theta^2).

    Parameters: ``weight`` (out_features, in_features), ``log_sigma2`` (same shape), ``bias``
    (out_features) or None. Weights with log_alpha >= threshold are dropped in eval mode.
    """

    __constants__ = ["in_features", "out_features"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        threshold: float = 3.0,
        log_sigma2_init: float = -10.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.threshold = threshold
        self.log_sigma2_init = float(log_sigma2_init)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.log_sigma2 = nn.Parameter(torch.empty(out_features, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # theta: the same init as nn.Linear, so from-scratch training matches the dense baseline.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)
        self._reset_log_sigma2()

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() < 1 or input.shape[-1] != self.in_features:
            raise ValueError(
                f"LinearSVDO expected input of shape (..., {self.in_features}), got "
                f"{tuple(input.shape)}; flatten images first (e.g. nn.Flatten())"
            )
        if self.training:
            return self._train_forward(input, None)
        return linear_svdo(input, self.weight, self.log_sigma2, self.bias, training=False,
                           threshold=self._threshold)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, threshold={self._threshold}"
        )


class Conv2dSVDO(SVDOMixin, nn.Module):
    """Sparse VD twin of ``nn.Conv2d`` (zero padding), with optional bias and groups."""

    __constants__ = ["in_channels", "out_channels", "kernel_size", "stride", "padding",
                     "dilation", "groups"]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        threshold: float = 3.0,
        log_sigma2_init: float = -10.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        factory = {"device": device, "dtype": dtype}
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = int(groups)
        self.threshold = threshold
        self.log_sigma2_init = float(log_sigma2_init)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.log_sigma2 = nn.Parameter(torch.empty(shape, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the same init as nn.Conv2d
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)
        self._reset_log_sigma2()

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() not in (3, 4) or input.shape[-3] != self.in_channels:
            raise ValueError(
                f"Conv2dSVDO expected input of shape (N, {self.in_channels}, H, W) or "
                f"({self.in_channels}, H, W), got {tuple(input.shape)}"
            )
        if self.training:
            return self._train_forward(input, (self.stride, self.padding, self.dilation, self.groups))
        return conv2d_svdo(input, self.weight, self.log_sigma2, self.bias, self.stride, self.padding,
                           self.dilation, self.groups, training=False, threshold=self._threshold)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + f", bias={self.bias is not None}, threshold={self._threshold}"


def svdo_layers(model: nn.Module) -> list[tuple[str, SVDOMixin]]:
    """The (name, module) pairs of every Sparse VD layer in ``model``, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SVDOMixin)]
