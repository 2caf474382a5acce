"""Reports on a compressed model: multiply-adds per layer (``flops_report``) and bytes on disk
(``file_size_report``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from ..layers import Conv2dSVDO, LinearSVDO, SVDOMixin
from .fileformat import save_compressed
from .layout import model_device
from .modules import SparseConv2d, SparseLinear, SparseMLP
from .shrink import compress

__all__ = ["flops_report", "file_size_report"]

_COUNTED = (LinearSVDO, Conv2dSVDO, nn.Linear, nn.Conv2d, SparseLinear, SparseConv2d)


@torch.no_grad()
def _madds(model: nn.Module, x: Tensor, threshold: float | None) -> dict[str, dict]:
    """Per weight layer: multiply-adds for one example (dense, kept-only, as executed)."""
    out: dict[str, dict] = {}
    hooks = []

    def hook_for(name: str):
        def hook(m, inputs, output):
            positions = output.numel() // (x.shape[0] * output.shape[1 if output.dim() > 2 else -1])
            if isinstance(m, SVDOMixin):
                numel, kept, executed = m.weight.numel(), int(m.mask(threshold).sum()), None
            elif isinstance(m, (SparseLinear, SparseConv2d)):
                numel = kept = executed = int(m.weight.values().numel())
            else:
                numel, kept = m.weight.numel(), int(m.weight.ne(0).sum())
                executed = numel
            key = getattr(m, "source_name", "") or name
            out[key] = {"type": type(m).__name__, "shape": tuple(
                m.dense_weight().shape if isinstance(m, (SparseLinear, SparseConv2d))
                else m.weight.shape),
                "dense": numel * positions, "kept": kept * positions,
                "executed": None if executed is None else executed * positions}
        return hook

    for name, m in model.named_modules():
        if isinstance(m, _COUNTED):
            hooks.append(m.register_forward_hook(hook_for(name)))
    mlps = [m for m in model.modules() if isinstance(m, SparseMLP)]
    for m in mlps:  # run its layers one by one, so that the hooks see each
        m.use_kernel = False
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for m in mlps:
            m.use_kernel = True
        for h in hooks:
            h.remove()
    return out


def flops_report(model: nn.Module, input_shape: tuple[int, ...], compressed: nn.Module | None = None,
                 threshold: float | None = None) -> pd.DataFrame:
    """Multiply-adds per example for every weight layer: the dense model, the Sparse VD model's kept
    weights only, and what the compressed model executes (``compressed``, default
    ``compress(model, threshold, storage="dense")``; a dense-stored layer runs all its entries).

    ``input_shape`` is one example's shape (no batch dimension), e.g. (1, 28, 28). The last row is
    the total; ``df.attrs["flop_ratio"]`` is dense / compressed.
    """
    if compressed is None:
        compressed = compress(model, threshold, storage="dense")
    x = torch.zeros(1, *input_shape, device=model_device(model))
    before = _madds(model, x, threshold)
    after = _madds(compressed, x.to(model_device(compressed)), threshold)
    rows = []
    for name, r in before.items():
        c = after.get(name)
        rows.append({"layer": name, "type": r["type"], "shape": r["shape"],
                     "dense_madds": r["dense"], "kept_madds": r["kept"],
                     "compressed_shape": c["shape"] if c else (),
                     "compressed_madds": c["executed"] if c else 0,
                     "compressed_storage": (c["type"] if c else "removed")})
    df = pd.DataFrame.from_records(rows).set_index("layer")
    total = {"type": "", "shape": (), "dense_madds": int(df["dense_madds"].sum()),
             "kept_madds": int(df["kept_madds"].sum()), "compressed_shape": (),
             "compressed_madds": int(df["compressed_madds"].sum()), "compressed_storage": ""}
    df.loc["total"] = pd.Series(total)
    df["ratio_x"] = df["dense_madds"] / df["compressed_madds"].where(df["compressed_madds"] > 0)
    df.attrs["flop_ratio"] = float(df.loc["total", "ratio_x"]) if total["compressed_madds"] else \
        float("inf")
    return df


def _dense_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state_dict of the dense twin: Sparse VD layers without log_sigma2."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("log_sigma2")}


def file_size_report(model: nn.Module, compressed: nn.Module | None = None, *,
                     threshold: float | None = None, values_dtype: str = "float32",
                     directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Bytes on disk: the dense model's state_dict (weights and biases, safetensors), the Sparse VD
    state_dict (with log_sigma2), and the ``save_compressed`` file; ``ratio_x`` = dense / row.
    ``df.attrs["size_ratio"]`` is dense / compressed."""
    from safetensors.torch import save_file

    if compressed is None:
        compressed = compress(model, threshold, storage="dense")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tmp = Path(tmp)
        dense = {k: v.detach().cpu().contiguous() for k, v in _dense_state_dict(model).items()}
        save_file(dense, tmp / "dense.safetensors")
        full = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(full, tmp / "svdo.safetensors")
        save_compressed(compressed, tmp / "compressed.safetensors", values_dtype=values_dtype)
        sizes = {name: (tmp / f"{f}.safetensors").stat().st_size for name, f in [
            ("dense state_dict", "dense"), ("Sparse VD state_dict (with log_sigma2)", "svdo"),
            (f"compressed ({values_dtype})", "compressed")]}
    base = sizes["dense state_dict"]
    df = pd.DataFrame({"bytes": sizes}).rename_axis("file")
    df["ratio_x"] = base / df["bytes"]
    df.attrs["size_ratio"] = base / sizes[f"compressed ({values_dtype})"]
    return df
