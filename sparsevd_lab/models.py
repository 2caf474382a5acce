"""The paper's networks, each in dense and Sparse VD form, and ``from_dense`` for fine-tuning.

All models are ``nn.Sequential`` so that ``sparsevd_lab.compress`` can shrink them structurally.
Introduced in notebook 03.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import Conv2dSVDO, LinearSVDO

__all__ = ["lenet_300_100", "lenet5", "vgg_like", "mlp_regressor", "from_dense", "build_model"]


def _linear(svdo: bool, *args, **kwargs) -> nn.Module:
    return LinearSVDO(*args, **kwargs) if svdo else nn.Linear(*args, **kwargs)


def _conv(svdo: bool, *args, **kwargs) -> nn.Module:
    return Conv2dSVDO(*args, **kwargs) if svdo else nn.Conv2d(*args, **kwargs)


class InputCheck:
    """A forward pre-hook that says, before any layer runs, when an input does not have the shape a
    network was built for, and how to build one for it (a bare shape error from inside a layer
    names neither). A plain object, so the model still copies and pickles."""

    def __init__(self, network: str, shape: tuple[int, ...]) -> None:
        self.network, self.shape = network, tuple(shape)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if not torch.is_tensor(x):
            return
        got = tuple(x.shape[1:])
        if self.network == "lenet_300_100":
            numel = int(torch.Size(got).numel()) if x.dim() >= 2 else 0
            if x.dim() >= 2 and numel == self.shape[0]:
                return
            raise ValueError(
                f"lenet_300_100 was built for {self.shape[0]} input features per example; got an "
                f"input of shape {tuple(x.shape)}"
                + (f": build it with lenet_300_100(in_features={numel})" if numel else
                   ": give a batch, shape (N, ...)"))
        if x.dim() == 4 and got == self.shape:
            return
        c, side = self.shape[0], self.shape[1]
        fix = "give a batch of images, shape (N, C, H, W)"
        if x.dim() == 4:
            cin, h, w = got
            if h == w and h >= 16:
                fix = f"build it with lenet5(in_channels={cin}, image_size={h})"
            else:
                fix = (f"LeNet-5 needs square images of at least 16x16; for {h}x{w} images use "
                       f"lenet_300_100(in_features={cin * h * w})")
        raise ValueError(f"lenet5 was built for images of shape (N, {c}, {side}, {side}); got "
                         f"{tuple(x.shape)}: {fix}")


def lenet_300_100(svdo: bool = True, in_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """LeNet-300-100: a 784-300-100-10 MLP with ReLU (paper Table 1)."""
    model = nn.Sequential(
        nn.Flatten(),
        _linear(svdo, in_features, 300), nn.ReLU(),
        _linear(svdo, 300, 100), nn.ReLU(),
        _linear(svdo, 100, num_classes),
    )
    model.register_forward_pre_hook(InputCheck("lenet_300_100", (in_features,)))
    return model


def lenet5(svdo: bool = True, in_channels: int = 1, image_size: int = 28,
           num_classes: int = 10) -> nn.Sequential:
    """LeNet-5-Caffe: conv 20-5x5, max-pool, conv 50-5x5, max-pool, fc 800-500, fc 500-10."""
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"image_size={image_size} is too small for LeNet-5 (needs >= 16)")
    model = nn.Sequential(
        _conv(svdo, in_channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        _conv(svdo, 20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        _linear(svdo, 50 * side * side, 500), nn.ReLU(),
        _linear(svdo, 500, num_classes),
    )
    model.register_forward_pre_hook(InputCheck("lenet5", (in_channels, image_size, image_size)))
    return model


# VGG-like for CIFAR-10 (Zagoruyko's "cifar.torch" net used by the paper): conv widths x k.
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg_like(svdo: bool = True, k: float = 1.0, num_classes: int = 10, in_channels: int = 3,
             image_size: int = 32) -> nn.Sequential:
    """VGG-like net with batch norm and width factor ``k`` (paper fig. 3), for 32x32 images."""
    if k <= 0:
        raise ValueError(f"width factor k must be > 0; got {k}")
    layers: list[nn.Module] = []
    c = in_channels
    side = image_size
    for v in _VGG_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            side //= 2
            continue
        width = max(1, int(round(v * k)))
        layers += [_conv(svdo, c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        c = width
    if side < 1:
        raise ValueError(f"image_size={image_size} is too small for VGG-like (needs >= 32)")
    hidden = max(1, int(round(512 * k)))
    layers += [nn.Flatten(), _linear(svdo, c * side * side, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
               _linear(svdo, hidden, num_classes)]
    return nn.Sequential(*layers)


def mlp_regressor(in_features: int, svdo: bool = True, hidden: int = 150) -> nn.Sequential:
    """One hidden layer of 150 ReLU units and one output, as in the pytorch_ard Boston example."""
    return nn.Sequential(_linear(svdo, in_features, hidden), nn.ReLU(), _linear(svdo, hidden, 1))


_BUILDERS = {"lenet300": lenet_300_100, "lenet5": lenet5, "vgg_like": vgg_like,
             "mlp_regressor": mlp_regressor}


def build_model(name: str, svdo: bool = True, **kwargs) -> nn.Sequential:
    """Build a model by name: one of ``lenet300``, ``lenet5``, ``vgg_like``, ``mlp_regressor``."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name](svdo=svdo, **kwargs)


def _svdo_twin(module: nn.Module, log_sigma2_init: float, threshold: float) -> nn.Module | None:
    if type(module) not in (nn.Linear, nn.Conv2d):
        return None
    factory = {"device": module.weight.device, "dtype": module.weight.dtype}
    if type(module) is nn.Linear:
        twin = LinearSVDO(module.in_features, module.out_features, bias=module.bias is not None,
                          threshold=threshold, log_sigma2_init=log_sigma2_init, **factory)
    elif type(module) is nn.Conv2d:
        if module.padding_mode != "zeros":
            raise ValueError(f"Conv2dSVDO supports zero padding only; got padding_mode="
                             f"{module.padding_mode!r}")
        twin = Conv2dSVDO(module.in_channels, module.out_channels, module.kernel_size,
                          module.stride, module.padding, module.dilation, module.groups,
                          bias=module.bias is not None, threshold=threshold,
                          log_sigma2_init=log_sigma2_init, **factory)
    with torch.no_grad():
        twin.weight.copy_(module.weight)
        if module.bias is not None:
            twin.bias.copy_(module.bias)
    twin.train(module.training)
    return twin


def from_dense(model: nn.Module, log_sigma2_init: float = -10.0, threshold: float = 3.0) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` / ``nn.Conv2d`` replaced by its Sparse VD twin.

    theta is copied from the trained dense weights and log_sigma2 set to ``log_sigma2_init`` (the
    authors used -15 when starting VGG-like from a pretrained net); the input model is untouched.
    This is the fine-tuning path the seeds recommend.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"from_dense expects an nn.Module, got {type(model).__name__}")
    model = copy.deepcopy(model)

    def _replace(parent: nn.Module) -> int:
        n = 0
        for name, child in parent.named_children():
            twin = _svdo_twin(child, log_sigma2_init, threshold)
            if twin is not None:
                setattr(parent, name, twin)
                n += 1
            else:
                n += _replace(child)
        return n

    if isinstance(model, (nn.Linear, nn.Conv2d)):
        return _svdo_twin(model, log_sigma2_init, threshold)
    if _replace(model) == 0:
        raise ValueError("from_dense found no nn.Linear or nn.Conv2d layer to convert")
    return model
