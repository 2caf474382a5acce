"""What the experiments share: the paper's reference tables, the run ``Context`` and small helpers."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from .. import data as _data
from ..data import DataBundle, TensorLoader
from ..layers import svdo_layers
from ..objective import kl_warmup
from ..train import evaluate, fit
from .common import atomic_write_bytes, model_filename

__all__ = ["PAPER_TABLE1", "ARD_BOSTON_TABLE", "IMAGE_DATASETS", "Context"]

# Paper Table 1 (MNIST), kept beside our numbers in every lenet result.
PAPER_TABLE1 = {
    "lenet300": {
        "dense": {"error_%": 1.64, "sparsity_per_layer": "", "compression": 1},
        "pruning": {"error_%": 1.59, "sparsity_per_layer": "92.0-91.0-74.0", "compression": 12},
        "sparse-vd": {"error_%": 1.92, "sparsity_per_layer": "98.9-97.2-62.0", "compression": 68},
    },
    "lenet5": {
        "dense": {"error_%": 0.80, "sparsity_per_layer": "", "compression": 1},
        "pruning": {"error_%": 0.77, "sparsity_per_layer": "34-88-92.0-81", "compression": 12},
        "sparse-vd": {"error_%": 0.75, "sparsity_per_layer": "67-98-99.8-95", "compression": 280},
    },
}
# pytorch_ard README, Boston housing (reference notes): reg factor -> (train MSE, test MSE, compression %)
ARD_BOSTON_TABLE = {
    "dense": (1.751, 22.580, 0.0), "0": (1.626, 16.229, 0.38), "0.0001": (1.587, 15.957, 52.95),
    "0.001": (1.962, 8.416, 64.19), "0.1": (17.167, 25.695, 97.29), "1": (33.682, 30.231, 99.29),
}

IMAGE_DATASETS = _data.dataset_names(shape=(1, 28, 28))  # offline-digits, mnist, fashion-mnist


# --------------------------------------------------------------------------------------------------
# Context and helpers
# --------------------------------------------------------------------------------------------------

@dataclass
class Context:
    """What a runner gets: the data, the settings, and where to put extra files."""

    name: str
    dataset: str
    data: DataBundle
    epochs: int
    seed: int
    fast: bool
    device: torch.device
    progress: bool
    out: Path | None
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    checkpoint_dir: Path | None = None
    files: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    def fit(self, model, phase: str | None = None, **kwargs) -> pd.DataFrame:
        """``fit`` on the run's data; with ``--resume`` each ``phase`` has its own checkpoint file
        (a finished phase returns its history at once, with the model restored)."""
        kwargs.setdefault("seed", self.seed)
        kwargs.setdefault("device", self.device)
        kwargs.setdefault("progress", self.progress)
        if phase is not None and self.checkpoint_dir is not None:
            path = self.checkpoint_path(phase)
            if path.exists():
                self.log(f"[{self.name}] {phase}: resuming from {path}")
            kwargs["checkpoint"] = path
        return fit(model, self.data, **kwargs)

    def checkpoint_path(self, phase: str) -> Path:
        return self.checkpoint_dir / f"{phase}.pt"

    def snapshot_path(self, tag: str) -> tuple[Path | None, str]:
        rel = f"snapshots/{self.name}_{self.dataset}{'_fast' if self.fast else ''}_{tag}.npz"
        return (None if self.out is None else self.out / rel), rel

    def save_model(self, method: str, model: nn.Module) -> None:
        """The trained model as plain named float32 tensors (safetensors), for notebooks that
        re-mask or compress it live (``experiments.load_model``)."""
        if self.out is None:
            return
        from safetensors.torch import save as st_save

        rel = f"models/{model_filename(self.name, self.dataset, method, self.fast)}"
        state = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
        blob = st_save(state, metadata={"experiment": self.name, "dataset": self.dataset,
                                        "method": method})
        atomic_write_bytes(self.out / rel, lambda fh: fh.write(blob))
        self.files[f"model_{method}"] = rel


def _frame(df: pd.DataFrame, columns: list[str] | None = None) -> dict[str, list]:
    """DataFrame -> {column: list}, NaN -> None (JSON null); floats rounded to 6 significant digits."""
    out = {}
    for col in columns or list(df.columns):
        if col not in df:
            continue
        vals = []
        for v in df[col].tolist():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                vals.append(None)
            elif isinstance(v, float):
                vals.append(float(f"{v:.6g}"))
            else:
                vals.append(v)
        out[col] = vals
    return out


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers with a prunable weight: Linear/Conv2d and their Sparse VD twins, in order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d)) or m in dict(svdo_layers(model)).values()]


def _loaders(ctx: Context, batch_size: int = 100) -> tuple[TensorLoader, TensorLoader]:
    return ctx.data.loaders(batch_size, seed=ctx.seed, device=ctx.device)


def _table_row(method: str, model: nn.Module, test: TensorLoader, per_layer: list[tuple[str, int, int]],
               extra: dict | None = None) -> dict:
    acc = evaluate(model, test)["acc"]
    total, kept = sum(n for _, n, _ in per_layer), sum(k for _, _, k in per_layer)
    sp = [100.0 * (1 - k / n) for _, n, k in per_layer]
    row = {"method": method, "error_%": round(100.0 * (1 - acc), 3), "test_acc": acc,
           "sparsity_per_layer": "-".join(f"{s:.1f}" for s in sp),
           "layer_sparsity_%": [round(s, 3) for s in sp],
           "layers": [name for name, _, _ in per_layer],
           "sparsity_%": round(100.0 * (1 - kept / total), 3),
           "compression": (total / kept) if kept else float("inf"),
           "weights": int(total), "kept": int(kept)}
    if extra:
        row.update(extra)
    return row


def _dense_counts(model: nn.Module) -> list[tuple[str, int, int]]:
    out = []
    for name, m in _weight_layers(model):
        w = m.weight.detach()
        out.append((name, w.numel(), int((w != 0).sum())))
    return out


def _warmup(epochs: int, max_weight: float = 1.0) -> tuple[Callable[[int], float], dict]:
    """The authors' warm-up (0 until epoch 5, linear to ``max_weight`` by 20) when the run is long
    enough (>= 40 epochs). Shorter runs keep the KL off for the first ~10 % of the run and ramp it
    up until half of it: squeezing the authors' ramp into a short run (full KL after one or two
    epochs) pruned LeNet-5 on the 4,000 offline digits to a constant predictor in 10 epochs."""
    if epochs >= 40:
        start, end = 5, 20
    else:
        start = max(1, int(round(0.1 * epochs))) if epochs > 1 else 0
        end = max(start + 1, int(round(0.5 * epochs)))
    return (functools.partial(kl_warmup, start=start, end=end, max_weight=max_weight),
            {"kl_warmup_start": start, "kl_warmup_end": end, "kl_weight_max": max_weight})


def _pruning_module():
    try:
        from .. import pruning
    except ImportError as err:  # pragma: no cover - depends on the sibling module being present
        raise RuntimeError("sparsevd_lab.pruning (the magnitude-pruning baseline) is missing; "
                           "the lenet experiments need it") from err
    return pruning
