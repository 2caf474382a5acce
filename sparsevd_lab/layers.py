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


def kl_approx(log_alpha: Tensor) -> Tensor:
    """Elementwise approximation of KL(q(w) || log-uniform prior) as a function of log alpha.

    Paper eq. 14: -KL ~= k1 * sigmoid(k2 + k3 * log_alpha) - 0.5 * log1p(1/alpha) - k1.
    The result is >= 0, decreases monotonically in log_alpha, and is finite for log_alpha in
    [-50, 50] in float32 (about 5.64 at -10, 0.43 at 0, ~0 beyond 8). Introduced in notebook 02.
    """
    if not torch.is_tensor(log_alpha):
        log_alpha = torch.as_tensor(log_alpha, dtype=torch.get_default_dtype())
    return _KLApprox.apply(log_alpha)


def _sample_lrt(mu: Tensor, var: Tensor) -> Tensor:
    # eq. 17: b = mu + sqrt(var) * eps, eps ~ N(0, 1), one draw per example and unit.
    std = torch.sqrt(torch.clamp(var, min=VAR_FLOOR))
    return torch.addcmul(mu, std, torch.randn_like(mu))


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
        mu = F.linear(x, weight, bias)
        var = F.linear(x * x, torch.exp(log_sigma2))
        return _sample_lrt(mu, var)
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
        mu = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        var = F.conv2d(x * x, torch.exp(log_sigma2), None, stride, padding, dilation, groups)
        return _sample_lrt(mu, var)
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
        return kl_approx(self.log_alpha).sum()

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
        return linear_svdo(
            input, self.weight, self.log_sigma2, self.bias,
            training=self.training, threshold=self._threshold,
        )

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
        return conv2d_svdo(
            input, self.weight, self.log_sigma2, self.bias,
            self.stride, self.padding, self.dilation, self.groups,
            training=self.training, threshold=self._threshold,
        )

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
