"""Argument checks of the Sparse VD layers: a clear error, saying what to do, for a bad size,
threshold, padding or input. Kept apart so that ``layers.py`` reads like the paper."""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

__all__ = ["check_threshold", "check_size", "check_pair", "check_padding", "check_log_sigma2_init",
           "check_input"]


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float; a clear error for None, a string or a non-finite number."""
    if torch.is_tensor(threshold) and threshold.numel() == 1:
        threshold = threshold.item()
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number (the paper uses 3.0: weights with "
                        f"log alpha >= 3 are dropped); got {threshold!r}")
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number (the paper uses 3.0, i.e. alpha ~ 20); "
                         f"got {threshold}")
    return threshold


def check_size(name: str, value) -> int:
    """A layer size (features, channels, kernel side): a whole number >= 1, as nn.Linear needs."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {value!r}"
                         + (f" (int({value!r}) = {int(value)}?)" if isinstance(value, float) and value >= 1
                            else ""))
    return int(value)


def check_log_sigma2_init(value: float) -> float:
    """The starting log sigma^2: a finite number."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"log_sigma2_init must be a finite number (the paper starts at -10, almost "
                         f"no noise); got {value}")
    return value


def check_input(layer: nn.Module, x: Tensor) -> None:
    """A layer's input: a floating-point tensor of the layer's dtype, on the layer's device."""
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        what = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"{type(layer).__name__} expects a floating-point tensor, got {what}; "
                        f"convert it first, e.g. x.float() (images: x.float() / 255)")
    if x.dtype != layer.weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{type(layer).__name__} has {layer.weight.dtype} weights but the input is "
                        f"{x.dtype}; convert the input (x.to({layer.weight.dtype})) or the layer "
                        f"(layer.to({x.dtype}))")
    if x.device != layer.weight.device:
        raise RuntimeError(f"{type(layer).__name__} is on {layer.weight.device} but the input on "
                           f"{x.device}; move one of them, e.g. x.to('{layer.weight.device}')")


def check_pair(name: str, value) -> None:
    """kernel_size, stride, dilation: >= 1 in each direction."""
    if min(_pair(value)) < 1:
        raise ValueError(f"{name} must be >= 1 in each direction (e.g. {name}=3); got {value}")


def check_padding(padding, stride) -> None:
    """torch.nn.Conv2d's rules, checked at construction as there: "same" keeps the size, which a
    stride cannot."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid' or numbers; got {padding!r}")
        if padding == "same" and max(_pair(stride)) > 1:
            raise ValueError("padding='same' is not supported for strided convolutions (as in "
                             "torch.nn.Conv2d); use stride=1, or numeric padding such as "
                             "padding=kernel_size // 2")
    elif min(_pair(padding)) < 0:
        raise ValueError(f"padding must be >= 0 in each direction; got {padding}")
