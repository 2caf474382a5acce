"""The SGVLB objective (paper eq. 3 with eq. 14) and the KL warm-up schedule.

Introduced in notebook 03.
"""
from __future__ import annotations

import math
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import kl_sum, svdo_layers

__all__ = ["SGVLB", "model_kl", "kl_warmup"]


def model_kl(model: nn.Module) -> Tensor:
    """Sum of the KL approximations of every Sparse VD layer of ``model``."""
    layers = svdo_layers(model)
    if not layers:
        raise ValueError("model has no Sparse VD layers (LinearSVDO / Conv2dSVDO); "
                         "convert it with sparsevd_lab.from_dense(model)")
    return kl_sum(m for _, m in layers)


class SGVLB(nn.Module):
    """Negative SGVLB divided by the number of training examples N (paper eq. 3):

        loss = mean_data_loss + kl_weight * KL / N

    which equals (N * mean_data_loss + kl_weight * KL) / N, so the gradient has the direction of the
    true negative ELBO when kl_weight = 1. ``train_size`` is N, the size of the whole training set,
    never the number of batches (dividing by that is a bug seen in the wild).

    ``loss`` is the per-example data loss: ``F.cross_entropy`` for classification, ``F.mse_loss``
    for regression (a Gaussian likelihood with unit noise, up to a constant). After each call the
    attributes ``data_term`` and ``kl_term`` hold the last values (detached floats) for logging.
    """

    def __init__(
        self,
        model: nn.Module,
        train_size: int,
        kl_weight: float = 1.0,
        loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    ) -> None:
        super().__init__()
        if isinstance(train_size, bool) or not float(train_size).is_integer() or train_size < 1:
            raise ValueError(
                f"train_size must be the number of training examples, an integer >= 1; "
                f"got {train_size!r} (pass len(train_dataset))"
            )
        self.train_size = int(train_size)
        self.kl_weight = kl_weight
        self.loss = loss
        self._layers = [m for _, m in svdo_layers(model)]
        if not self._layers:
            raise ValueError("SGVLB needs a model with Sparse VD layers (LinearSVDO / Conv2dSVDO); "
                             "convert a dense model with sparsevd_lab.from_dense(model)")
        self._last: tuple[Tensor, Tensor] | None = None

    @property
    def kl_weight(self) -> float:
        return self._kl_weight

    @kl_weight.setter
    def kl_weight(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"kl_weight must be a finite number >= 0 (1 is the true ELBO); got {value}")
        self._kl_weight = value

    @property
    def data_term(self) -> float:
        """The mean data loss of the last call (NaN before the first)."""
        return float(self._last[0]) if self._last is not None else float("nan")

    @property
    def kl_term(self) -> float:
        """The summed KL of the last call, before the kl_weight / N scaling (NaN before the first)."""
        return float(self._last[1]) if self._last is not None else float("nan")

    @property
    def last_terms(self) -> tuple[Tensor, Tensor] | None:
        """(mean data loss, summed KL) of the last call as detached tensors on the model's device
        (None before the first): a training loop can add them up without a device sync per step."""
        return self._last

    def kl(self) -> Tensor:
        """Summed KL of all Sparse VD layers (one fused pass)."""
        return kl_sum(self._layers)

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        data = self.loss(output, target)
        scale = self._kl_weight / self.train_size
        kl = kl_sum(self._layers, grad_scale=scale)
        # kept as tensors: converting to float here would force a GPU sync on every step
        self._last = (data.detach(), kl.detach())
        # eq. 3 divided by N: mean data loss + kl_weight * KL / N
        return data + scale * kl

    def extra_repr(self) -> str:
        name = getattr(self.loss, "__name__", type(self.loss).__name__)
        return f"train_size={self.train_size}, kl_weight={self._kl_weight}, loss={name}"


def kl_warmup(epoch: int, start: int = 5, end: int = 20, max_weight: float = 1.0) -> float:
    """KL weight for a (0-based) epoch: 0 before ``start``, linear to ``max_weight`` at ``end``.

    The authors' default: 0 for the first 5 epochs, then linear to 1 by epoch 20.
    """
    if end < start:
        raise ValueError(f"warm-up end ({end}) must be >= start ({start})")
    if epoch < start:
        return 0.0
    if epoch >= end or end == start:
        return float(max_weight)
    return float(max_weight) * (epoch - start) / (end - start)
