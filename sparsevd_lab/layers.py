"""Sparse Variational Dropout layers (Molchanov, Ashukha, Vetrov, ICML 2017): the reference.

Each weight has the posterior q(w) = N(theta, sigma^2) with sigma^2 = alpha * theta^2 (sec. 4.1). A
layer stores ``weight`` (theta) and ``log_sigma2`` (the additive reparameterisation, eq. 15) and
derives ``log_alpha``. Train mode samples pre-activations with the local reparameterisation trick
(eq. 17); eval mode is deterministic: theta masked by ``log_alpha < threshold`` (sec. 4.3). The KL
to the log-uniform prior is the approximation of eq. 14.

As in ``torch.nn``, the math lives in functions (``linear_svdo``, ``conv2d_svdo``, ``kl_approx``)
and the modules hold the parameters and call them, in train and eval mode alike. Everything here is
plain PyTorch with autograd. Speed lives beside it, in ``sparsevd_lab.kernels``: compiled CPU code
for the same two formulas (eq. 17 and the summed eq. 14), tested equal to this file in values and
gradients (tests/test_kernels.py). The only place it is chosen is ``_fast_path`` below; set
``SPARSEVD_KERNELS=0`` (or use ``with sparsevd_lab.kernels.disabled():``) and every line of this
file runs. Introduced in notebook 03.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from . import kernels
from .arguments import (check_input, check_log_sigma2_init, check_padding, check_pair, check_size,
                        check_threshold)

__all__ = ["K1", "K2", "K3", "kl_approx", "compute_log_alpha", "linear_svdo", "conv2d_svdo",
           "SVDOMixin", "LinearSVDO", "Conv2dSVDO", "svdo_layers", "kl_sum", "check_threshold"]

# eq. 14: constants of the sigmoid approximation of -KL(q || log-uniform prior).
K1, K2, K3 = 0.63576, 1.87320, 1.48695
# Keeps log(theta^2) finite when a weight is exactly zero.
EPS = 1e-8
# Beyond log sigma^2 = 80 a weight's noise dwarfs any theta; clamping there keeps exp() finite in
# float32 (it overflows at 88.7) and changes nothing measurable.
LOG_SIGMA2_MAX = 80.0
# conv2d can return tiny negative variances for non-negative inputs (pytorch issue 30934); the
# variance is clamped at this floor before its square root.
VAR_FLOOR = 1e-16


def compute_log_alpha(weight: Tensor, log_sigma2: Tensor) -> Tensor:
    """log alpha = log sigma^2 - log theta^2 (eq. 15: alpha is derived, never a free parameter)."""
    return log_sigma2 - torch.log(weight * weight + EPS)


def kl_approx(log_alpha: Tensor) -> Tensor:
    """Elementwise approximation of KL(q(w) || log-uniform prior) as a function of log alpha.

    Paper eq. 14: -KL ~= k1 * sigmoid(k2 + k3 * log_alpha) - 0.5 * log1p(1/alpha) - k1.
    The result is >= 0, decreases monotonically in log_alpha, and is finite for log_alpha in
    [-50, 50] in float32 (about 5.64 at -10, 0.43 at 0, ~0 beyond 8). Introduced in notebook 02.
    """
    if not torch.is_tensor(log_alpha):
        log_alpha = torch.as_tensor(log_alpha, dtype=torch.get_default_dtype())
    # eq. 14 with C = -k1, written without cancellation: k1 - k1 sigmoid(z) = k1 sigmoid(-z), and
    # 0.5 log1p(1/alpha) = 0.5 softplus(-log alpha) (stable for very negative log alpha)
    return K1 * torch.sigmoid(-(K2 + K3 * log_alpha)) + 0.5 * F.softplus(-log_alpha)


def _sigma2(log_sigma2: Tensor) -> Tensor:
    return torch.exp(torch.clamp(log_sigma2, max=LOG_SIGMA2_MAX))  # sigma^2 (eq. 15)


def _sample(mu: Tensor, var: Tensor) -> Tensor:
    return mu + torch.sqrt(torch.clamp(var, min=VAR_FLOOR)) * torch.randn_like(mu)  # eq. 17: ~ N(mu, var)


def _fast_path(x: Tensor, *params: Tensor) -> bool:
    """True where the compiled kernels of ``sparsevd_lab.kernels`` compute the formula at hand (the
    same values and gradients, faster): CPU tensors, not switched off by SPARSEVD_KERNELS=0."""
    return kernels.applies(x, *params)


def linear_svdo(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None = None, *,
                training: bool = True, threshold: float = 3.0) -> Tensor:
    """Functional Sparse VD linear layer.

    training=True: local reparameterisation trick (eq. 17), out ~ N(mu, var) with
        mu = x theta^T + b,  var = (x*x) sigma^2^T  (no bias in the variance).
    training=False: F.linear(x, theta * (log_alpha < threshold), b), deterministic (sec. 4.3).
    """
    if not training:
        threshold = check_threshold(threshold)
        mask = compute_log_alpha(weight, log_sigma2) < threshold  # sec. 4.3: drop log alpha >= t
        return F.linear(x, weight * mask, bias)  # sec. 4.3: theta * mask, no noise
    if _fast_path(x, weight, log_sigma2):
        return kernels.lrt(x, weight, log_sigma2, bias)  # eq. 17, compiled
    mu = F.linear(x, weight, bias)  # eq. 17: mean x theta^T + b
    var = F.linear(x * x, _sigma2(log_sigma2))  # eq. 17: variance (x*x) sigma^2^T, no bias
    return _sample(mu, var)


def conv2d_svdo(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None = None,
                stride=1, padding=0, dilation=1, groups: int = 1, *, training: bool = True,
                threshold: float = 3.0) -> Tensor:
    """Functional Sparse VD 2-d convolution.

    training=True: mu = conv(x, theta) + b and var = conv(x*x, sigma^2) with NO bias. This treats the
    kernel as drawn independently at every position: an approximation (the paper does the same).
    training=False: F.conv2d with theta * (log_alpha < threshold), deterministic.
    """
    if not training:
        threshold = check_threshold(threshold)
        mask = compute_log_alpha(weight, log_sigma2) < threshold  # sec. 4.3: drop log alpha >= t
        return F.conv2d(x, weight * mask, bias, stride, padding, dilation, groups)  # sec. 4.3
    if not isinstance(padding, str) and _fast_path(x, weight, log_sigma2):
        conv_args = (_pair(stride), _pair(padding), _pair(dilation), groups)
        return kernels.lrt(x, weight, log_sigma2, bias, conv_args)  # eq. 17, compiled
    mu = F.conv2d(x, weight, bias, stride, padding, dilation, groups)  # eq. 17: mean
    var = F.conv2d(x * x, _sigma2(log_sigma2), None, stride, padding, dilation, groups)  # eq. 17
    return _sample(mu, var)


def kl_sum(layers, grad_scale: float = 1.0) -> Tensor:
    """Summed KL approximation (eq. 14) over all weights of the given Sparse VD layers (biases have
    no prior). ``grad_scale``: the weight the caller gives this KL in its loss (SGVLB: kl_weight/N).
    The value and the gradient do not depend on it; the compiled kernel writes its gradients already
    multiplied by it, which saves a pass over the weights in the backward."""
    layers = list(layers)
    params = [p for m in layers for p in (m.weight, m.log_sigma2)]
    if params and _fast_path(*params):
        return kernels.kl_sum(params[0::2], params[1::2], grad_scale)  # eq. 14 summed, compiled
    return sum(kl_approx(m.log_alpha).sum() for m in layers)  # eq. 14 summed over every weight


class SVDOMixin:
    """What every Sparse VD layer shares: ``log_alpha``, ``kl()``, the mask and the threshold."""

    weight: nn.Parameter
    log_sigma2: nn.Parameter

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = check_threshold(value)

    @property
    def log_alpha(self) -> Tensor:
        """log alpha = log sigma^2 - log theta^2 (eq. 15), unclamped. The authors' code clamps it to
        [-10, 10] before the KL, which zeroes the KL's gradient outside that range; here eq. 14 is
        written to stay finite without a clamp (docs/glossary.md, "clamp": one run each, no
        measurable difference)."""
        return compute_log_alpha(self.weight, self.log_sigma2)

    def kl(self) -> Tensor:
        """Summed KL approximation (eq. 14) over this layer's weights. Bias has no prior."""
        return kl_sum([self])

    def mask(self, threshold: float | None = None) -> Tensor:
        """Boolean mask of the weights kept at ``threshold`` (default: the layer's own)."""
        t = self._threshold if threshold is None else check_threshold(threshold)
        with torch.no_grad():
            return self.log_alpha < t

    def masked_weight(self, threshold: float | None = None) -> Tensor:
        with torch.no_grad():
            return self.weight * self.mask(threshold)

    def _reset_log_sigma2(self) -> None:
        nn.init.constant_(self.log_sigma2, self.log_sigma2_init)


class LinearSVDO(SVDOMixin, nn.Module):
    """Sparse VD twin of ``nn.Linear``: y = x w^T + b with w ~ N(theta, alpha theta^2).

    Parameters: ``weight`` (out_features, in_features), ``log_sigma2`` (same shape), ``bias``
    (out_features) or None. Weights with log_alpha >= threshold are dropped in eval mode.
    """

    __constants__ = ["in_features", "out_features"]

    def __init__(self, in_features: int, out_features: int, bias: bool = True, threshold: float = 3.0,
                 log_sigma2_init: float = -10.0, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features = check_size("in_features", in_features)
        self.out_features = check_size("out_features", out_features)
        self.threshold = threshold
        self.log_sigma2_init = check_log_sigma2_init(log_sigma2_init)
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
        check_input(self, input)
        if input.dim() < 1 or input.shape[-1] != self.in_features:
            raise ValueError(f"LinearSVDO expected input of shape (..., {self.in_features}), got "
                             f"{tuple(input.shape)}; flatten images first (e.g. nn.Flatten())")
        return linear_svdo(input, self.weight, self.log_sigma2, self.bias, training=self.training,
                           threshold=self._threshold)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, threshold={self._threshold}")


class Conv2dSVDO(SVDOMixin, nn.Module):
    """Sparse VD twin of ``nn.Conv2d`` (zero padding), with optional bias and groups."""

    __constants__ = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                     "groups"]

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, threshold: float = 3.0,
                 log_sigma2_init: float = -10.0, device=None, dtype=None) -> None:
        super().__init__()
        in_channels = check_size("in_channels", in_channels)
        out_channels = check_size("out_channels", out_channels)
        groups = check_size("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                             f"be divisible by groups ({groups})")
        for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
            check_pair(name, value)
        check_padding(padding, stride)
        factory = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.groups = int(groups)
        self.threshold = threshold
        self.log_sigma2_init = check_log_sigma2_init(log_sigma2_init)
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
        check_input(self, input)
        if input.dim() not in (3, 4) or input.shape[-3] != self.in_channels:
            raise ValueError(f"Conv2dSVDO expected input of shape (N, {self.in_channels}, H, W) or "
                             f"({self.in_channels}, H, W), got {tuple(input.shape)}")
        return conv2d_svdo(input, self.weight, self.log_sigma2, self.bias, self.stride, self.padding,
                           self.dilation, self.groups, training=self.training,
                           threshold=self._threshold)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
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
