"""Sparsity reports: per-layer kept weights, sparsity and compression, in the paper's format.

Introduced in notebook 03.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .layers import svdo_layers

__all__ = ["METHOD_NAMES", "sparsity_report", "compression_ratio", "layer_sparsity", "sparsity_string"]

# One name per method, everywhere a table or a legend shows one (result files key rows by the key).
METHOD_NAMES = {
    "dense": "dense",
    "sparse-vd": "Sparse VD",
    "pruning-matched": "magnitude pruning, one-shot to Sparse VD's sparsity",
    "pruning-iterative": "magnitude pruning, iterative (Han et al.), own operating point",
}


def _layers_or_raise(model: nn.Module):
    layers = svdo_layers(model)
    if not layers:
        raise ValueError(
            "model has no Sparse VD layers (LinearSVDO / Conv2dSVDO), so there is no sparsity to "
            "report; build it with svdo=True or convert it with sparsevd_lab.from_dense(model)"
        )
    return layers


@torch.no_grad()
def layer_sparsity(model: nn.Module, threshold: float | None = None) -> list[tuple[str, int, int]]:
    """(name, weights, kept) for every Sparse VD layer; ``threshold`` overrides the layers' own."""
    out = []
    for name, m in _layers_or_raise(model):
        mask = m.mask(threshold)
        out.append((name, mask.numel(), int(mask.sum())))
    return out


def sparsity_string(model: nn.Module, threshold: float | None = None) -> str:
    """The paper's per-layer string, e.g. "98.9-97.2-62.0" (sparsity % of each layer, 1 decimal)."""
    return "-".join(f"{100.0 * (1 - kept / n):.1f}" for _, n, kept in layer_sparsity(model, threshold))


def compression_ratio(model: nn.Module, threshold: float | None = None) -> float:
    """Total Sparse VD weights divided by the kept ones (the paper's "compression", Table 1).

    Counted: the ``weight`` (theta) entries of every LinearSVDO / Conv2dSVDO layer; a weight is kept
    when log_alpha < threshold. Not counted: biases, batch-norm parameters, dense layers and
    ``log_sigma2`` (a training-time parameter). ``inf`` when every weight is dropped.
    """
    rows = layer_sparsity(model, threshold)
    total = sum(n for _, n, _ in rows)
    kept = sum(k for _, _, k in rows)
    return float("inf") if kept == 0 else total / kept


def _display_names(model: nn.Module, names: list[str]) -> list[str]:
    """Layer names for people: a layer that has only an ``nn.Sequential`` index for a name ("1",
    "features.3") is named by kind and position among the model's weight layers, counted from the
    input: conv1, conv2, ... and fc1, fc2, ... (the glossary's names). Named layers keep their name."""
    counts = {"conv": 0, "fc": 0}
    by_module = {}
    for name, m in model.named_modules():
        kind = ("conv" if isinstance(m, nn.Conv2d) or type(m).__name__.startswith("Conv")
                else "fc" if isinstance(m, nn.Linear) or type(m).__name__.startswith("Linear")
                else None)
        if kind and hasattr(m, "weight"):
            counts[kind] += 1
            by_module[name] = f"{kind}{counts[kind]}"
    return [by_module.get(n, n) if n.split(".")[-1].isdigit() else n for n in names]


def sparsity_report(model: nn.Module, threshold: float | None = None) -> pd.DataFrame:
    """One row per Sparse VD layer plus a ``total`` row: weights, kept, sparsity %, compression x.
    Rows are named conv1, ..., fc1, ... when the model's layers have only ``nn.Sequential`` indices.

    ``df.attrs["paper_string"]`` holds the paper's per-layer string (e.g. "98.9-97.2-62.0"),
    which also stands in the ``per_layer`` column of the total row.
    """
    rows = layer_sparsity(model, threshold)
    records = []
    for name, (_, n, kept) in zip(_display_names(model, [r[0] for r in rows]), rows):
        records.append({"layer": name, "weights": n, "kept": kept,
                        "sparsity_%": 100.0 * (1 - kept / n),
                        "compression": float("inf") if kept == 0 else n / kept})
    total = sum(r["weights"] for r in records)
    kept = sum(r["kept"] for r in records)
    paper = "-".join(f"{r['sparsity_%']:.1f}" for r in records)
    records.append({"layer": "total", "weights": total, "kept": kept,
                    "sparsity_%": 100.0 * (1 - kept / total),
                    "compression": float("inf") if kept == 0 else total / kept})
    df = pd.DataFrame.from_records(records).set_index("layer")
    df["per_layer"] = ""
    df.loc["total", "per_layer"] = paper
    df.attrs["paper_string"] = paper
    return df
