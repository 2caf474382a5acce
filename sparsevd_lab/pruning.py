"""Magnitude pruning, the baseline Sparse VD is compared with (Han et al. 2015 in paper Table 1).

``magnitude_prune`` zeroes the smallest-magnitude weights of every ``nn.Linear`` / ``nn.Conv2d``
with ``torch.nn.utils.prune``: one global amount (the smallest weights over all layers) or one
amount per layer (a list, e.g. ``match_svdo_sparsity(dense, svdo)`` to copy a Sparse VD model's
per-layer sparsity). With ``permanent=False`` the masks stay attached (``weight_orig`` and
``weight_mask``), so fine-tuning with ``sparsevd_lab.fit`` keeps pruned weights at zero; then
``make_permanent(model)`` bakes them in and leaves a plain model. Used by the experiments' pruning
baselines (``python -m sparsevd_lab.experiments lenet300``; docs/results.md).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from .layers import svdo_layers
from .reports import layer_sparsity

__all__ = ["prunable_layers", "magnitude_prune", "make_permanent", "match_svdo_sparsity",
           "pruned_sparsity"]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs of every ``nn.Linear`` / ``nn.Conv2d`` of ``model``, in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _check_amount(a, what: str) -> float:
    try:
        a = float(a)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number in [0, 1]; got {a!r}") from None
    if not math.isfinite(a) or not 0.0 <= a <= 1.0:
        raise ValueError(f"{what} must be a fraction in [0, 1] (0.9 prunes 90% of the weights); "
                         f"got {a}")
    return a


def magnitude_prune(model: nn.Module, sparsity: float | Sequence[float], *, copy_model: bool = True,
                    permanent: bool = True) -> nn.Module:
    """Prune the smallest-|w| weights of every Linear / Conv2d layer to ``sparsity``.

    ``sparsity``: a fraction in [0, 1] pruned globally (the smallest weights over all layers
    together, ``prune.global_unstructured``), or a list with one fraction per layer, in the order of
    ``prunable_layers(model)`` (``prune.l1_unstructured`` per layer). Biases are not pruned.
    ``copy_model=True`` (default) leaves the input model untouched. ``permanent=True`` removes the
    re-parametrisation (``prune.remove``): a plain model with zeros in its weights. With
    ``permanent=False`` the masks stay for fine-tuning; call ``make_permanent`` afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"magnitude_prune expects an nn.Module, got {type(model).__name__}")
    if svdo_layers(model):
        raise ValueError("magnitude_prune is the baseline for dense models; this model has Sparse VD "
                         "layers (their sparsity comes from log_alpha: use sparsevd_lab.compress)")
    if copy_model:
        model = copy.deepcopy(model)
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("magnitude_prune found no nn.Linear or nn.Conv2d layer to prune")
    for name, m in layers:
        if prune.is_pruned(m):
            raise ValueError(f"layer {name!r} already carries a pruning mask; call "
                             f"make_permanent(model) first")
    if isinstance(sparsity, (list, tuple)):
        if len(sparsity) != len(layers):
            raise ValueError(f"got {len(sparsity)} per-layer amounts for {len(layers)} layers "
                             f"({', '.join(n for n, _ in layers)})")
        amounts = [_check_amount(a, f"sparsity of layer {n!r}") for (n, _), a in zip(layers, sparsity)]
        for (_, m), a in zip(layers, amounts):
            prune.l1_unstructured(m, "weight", amount=int(round(a * m.weight.numel())))
    else:
        amount = _check_amount(sparsity, "sparsity")
        total = sum(m.weight.numel() for _, m in layers)
        prune.global_unstructured([(m, "weight") for _, m in layers],
                                  pruning_method=prune.L1Unstructured,
                                  amount=int(round(amount * total)))
    if permanent:
        make_permanent(model)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Bake every pruning mask into its weight (``prune.remove``): a plain model, in place."""
    for _, m in model.named_modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
    return model


def match_svdo_sparsity(dense_model: nn.Module, svdo_model: nn.Module,
                        threshold: float | None = None) -> list[float]:
    """Per-layer fractions of dropped weights of ``svdo_model``, for ``magnitude_prune(dense, ...)``.

    The two models must have the same layers in the same order (e.g. ``lenet5(svdo=False)`` and
    ``lenet5(svdo=True)``).
    """
    rows = layer_sparsity(svdo_model, threshold)
    layers = prunable_layers(dense_model)
    if len(rows) != len(layers) or any(m.weight.numel() != n for (_, m), (_, n, _) in
                                       zip(layers, rows)):
        raise ValueError(
            f"the dense model's layers ({[tuple(m.weight.shape) for _, m in layers]}) do not match "
            f"the Sparse VD model's ({[(name, n) for name, n, _ in rows]}); build both with the same "
            f"architecture (svdo=False / svdo=True)")
    return [1.0 - kept / n for _, n, kept in rows]


@torch.no_grad()
def pruned_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in every Linear / Conv2d layer, plus "total" (masks included)."""
    out, zeros, total = {}, 0, 0
    for name, m in prunable_layers(model):
        w = m.weight  # with a mask attached this is weight_orig * weight_mask
        z = int((w == 0).sum())
        out[name] = z / w.numel()
        zeros += z
        total += w.numel()
    if not out:
        raise ValueError("pruned_sparsity found no nn.Linear or nn.Conv2d layer")
    out["total"] = zeros / total
    return out
