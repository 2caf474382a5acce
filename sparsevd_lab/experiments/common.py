"""Shared machinery of the experiments: provenance, atomic writes, weight snapshots, the result schema.

Every experiment returns one JSON-able dict with the same top level (see ``validate_result``):

    {"schema_version": 1, "experiment": ..., "dataset": ..., "provenance": {...},
     "config": {...}, "results": {...}, "files": {...}}

Files are written to a temporary name in the destination folder and renamed into place with
``os.replace`` by ``sparsevd_lab.files`` (docs/CONVENTIONS.md), so an interrupted run never leaves a half-written result.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..files import atomic_write

__all__ = [
    "SCHEMA_VERSION",
    "RESULTS_DIR",
    "ResultSchemaError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save_npz",
    "provenance",
    "versions",
    "result_filename",
    "model_filename",
    "validate_result",
    "upgrade_result",
    "SnapshotRecorder",
    "jsonable",
]

SCHEMA_VERSION = 1
# Results shipped with the package (loaded by notebooks with no network).
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


class ResultSchemaError(ValueError):
    """A result dict does not follow the experiments' schema; the message names the bad field."""


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it onto ``path``
    (``sparsevd_lab.files.atomic_write``). If anything raises, ``path`` is left untouched."""
    return atomic_write(path, write, mode)


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: numpy/torch scalars to Python, non-finite floats to strings
    ("inf", "-inf", "nan") so the file stays strict JSON (``json.loads`` in any language)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented strict JSON, atomically."""
    text = json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n"
    return atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path``, atomically."""
    return atomic_write_bytes(path, lambda fh: np.savez_compressed(fh, **arrays))


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    from .. import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "sparsevd_lab": __version__}


def provenance(*, dataset: str, source: str, epochs: int | dict, paper_epochs: int | dict | None,
               epochs_note: str, seed: int, device: str, started: float, fast: bool,
               command: str | None = None, extra: dict | None = None) -> dict:
    """The provenance block of a result: where the data came from, how long it ran, on what."""
    out = {
        "dataset": dataset,
        "dataset_source": source,
        "epochs": epochs,
        "paper_epochs": paper_epochs,
        "epochs_note": epochs_note,
        "seed": int(seed),
        "fast": bool(fast),
        "versions": versions(),
        "device": device,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "wall_time_s": round(time.time() - started, 2),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else "python -m sparsevd_lab.experiments "
                                                       + " ".join(sys.argv[1:]),
    }
    if extra:
        out.update(extra)
    return out


def model_filename(experiment: str, dataset: str, method: str, fast: bool = False) -> str:
    """``<experiment>_<dataset>[_fast]_<method>.safetensors``: a trained model of a result."""
    return f"{experiment}_{dataset}{'_fast' if fast else ''}_{method}.safetensors"


def result_filename(experiment: str, dataset: str, fast: bool = False) -> str:
    """``<experiment>_<dataset>[_fast].json``, e.g. ``lenet300_offline-digits.json``."""
    return f"{experiment}_{dataset}{'_fast' if fast else ''}.json"


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------

_TOP = {"schema_version": int, "experiment": str, "dataset": str, "provenance": dict,
        "config": dict, "results": dict, "files": dict}
_PROVENANCE = {"dataset": str, "dataset_source": str, "epochs": (int, dict), "epochs_note": str,
               "seed": int, "fast": bool, "versions": dict, "device": str,
               "wall_time_s": (int, float), "date": str, "command": str}
_NUM = (int, float, str)  # str: "inf" / "nan" written by ``jsonable``
_TABLE_ROW = {"method": str, "error_%": _NUM, "sparsity_per_layer": str, "layer_sparsity_%": list,
              "compression": _NUM, "weights": int, "kept": int}
_RESULTS = {
    "lenet300": {"rows": list, "history": dict},
    "lenet5": {"rows": list, "history": dict},
    "random-labels": {"history": dict, "summary": dict},
    "regression-sweep": {"rows": list},
    "classification-sweep": {"kl_weights": list, "thresholds": list, "points": list,
                             "layers": list, "history": dict},
    "vgg-like": {"rows": list, "history": dict},
    "class-run": {"rows": list, "history": dict},
}
_POINT = {"kl_weight": (int, float), "threshold": (int, float), "error_%": _NUM,
          "layer_sparsity_%": list, "sparsity_per_layer": str, "sparsity_%": _NUM,
          "compression": _NUM}
_REG_ROW = {"model": str, "kl_weight": (int, float, type(None)), "train_mse": _NUM,
            "test_mse": _NUM, "sparsity_%": _NUM}


def _need(obj: dict, spec: dict, where: str) -> None:
    if not isinstance(obj, dict):
        raise ResultSchemaError(f"{where} must be an object, got {type(obj).__name__}")
    for key, typ in spec.items():
        if key not in obj:
            raise ResultSchemaError(f"{where} lacks the field {key!r} (required: {', '.join(spec)})")
        value = obj[key]
        if isinstance(value, bool) and typ is not bool and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            raise ResultSchemaError(f"{where}.{key} must be {typ}, got a bool")
        if not isinstance(value, typ):
            raise ResultSchemaError(f"{where}.{key} must be {typ}, got {type(value).__name__}")


def upgrade_result(obj: Any) -> Any:
    """Rename the words of older result files to today's, in place (one word per concept):
    ``reg_factor(s)`` -> ``kl_weight(s)``; the regression table's ``compression_%`` (a share of
    dropped weights) -> ``sparsity_%``; the Table 1 row ``pruning`` (one-shot to Sparse VD's
    sparsity) -> ``pruning-matched``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), dict):
        return obj
    res = obj["results"]
    if "reg_factors" in res:
        res["kl_weights"] = res.pop("reg_factors")
    for key in ("points", "rows"):
        for item in res.get(key, []) if isinstance(res.get(key), list) else []:
            if isinstance(item, dict):
                if "reg_factor" in item:
                    item["kl_weight"] = item.pop("reg_factor")
                if "compression_%" in item:
                    item["sparsity_%"] = item.pop("compression_%")
                ard = item.get("ard_boston")
                if isinstance(ard, dict) and "compression_%" in ard:
                    ard["sparsity_%"] = ard.pop("compression_%")
                if item.get("method") == "pruning":
                    item["method"] = "pruning-matched"
    if isinstance(res.get("history"), dict) and "pruning-finetune" in res["history"]:
        res["history"]["pruning-matched"] = res["history"].pop("pruning-finetune")
    # per-layer numbers keyed by nn.Sequential indices ("1", "3", ...) -> the layer names
    cfg = obj.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("pruned_sparsity"), dict) \
            and isinstance(cfg.get("layers"), list):
        ps = cfg["pruned_sparsity"]
        indexed = [k for k in ps if str(k).isdigit()]
        if indexed and len(indexed) == len(cfg["layers"]):
            named = dict(zip(cfg["layers"], (ps[k] for k in sorted(indexed, key=int))))
            cfg["pruned_sparsity"] = {**named, **{k: v for k, v in ps.items() if k not in indexed}}
    return obj


def validate_result(obj: Any) -> dict:
    """Check a result dict (as loaded from JSON) against the schema; return it, or raise
    ``ResultSchemaError`` naming the first bad field. Older files are upgraded first
    (``upgrade_result``)."""
    obj = upgrade_result(obj)
    _need(obj, _TOP, "result")
    if obj["schema_version"] != SCHEMA_VERSION:
        raise ResultSchemaError(f"result.schema_version is {obj['schema_version']}, this package "
                                f"reads version {SCHEMA_VERSION}")
    name = obj["experiment"]
    if name not in _RESULTS:
        raise ResultSchemaError(f"result.experiment {name!r} is unknown; valid: {', '.join(_RESULTS)}")
    _need(obj["provenance"], _PROVENANCE, "result.provenance")
    _need(obj["provenance"]["versions"], {"python": str, "torch": str, "sparsevd_lab": str},
          "result.provenance.versions")
    res = obj["results"]
    _need(res, _RESULTS[name], "result.results")
    if name in ("lenet300", "lenet5", "vgg-like", "class-run"):
        methods = []
        for i, row in enumerate(res["rows"]):
            _need(row, _TABLE_ROW, f"result.results.rows[{i}]")
            methods.append(row["method"])
        for m in ("dense", "sparse-vd"):
            if m not in methods:
                raise ResultSchemaError(f"result.results.rows has no {m!r} row (has {methods})")
    elif name == "regression-sweep":
        for i, row in enumerate(res["rows"]):
            _need(row, _REG_ROW, f"result.results.rows[{i}]")
    elif name == "classification-sweep":
        n = len(res["kl_weights"]) * len(res["thresholds"])
        if len(res["points"]) != n:
            raise ResultSchemaError(f"result.results.points has {len(res['points'])} entries, "
                                    f"expected kl_weights x thresholds = {n}")
        for i, p in enumerate(res["points"]):
            _need(p, _POINT, f"result.results.points[{i}]")
    elif name == "random-labels":
        for model in ("dense", "sparse-vd"):
            if model not in res["history"]:
                raise ResultSchemaError(f"result.results.history lacks {model!r}")
            _need(res["history"][model], {"epoch": list, "train_acc": list, "test_acc": list},
                  f"result.results.history[{model!r}]")
    for key, rel in obj["files"].items():
        if not isinstance(rel, str):
            raise ResultSchemaError(f"result.files.{key} must be a relative path string")
    return obj


# --------------------------------------------------------------------------------------------------
# Weight snapshots for the visualisation notebook
# --------------------------------------------------------------------------------------------------

class SnapshotRecorder:
    """A ``fit`` callback that keeps small float16 slices of chosen layers every few epochs.

    ``layers`` maps a short name to (module, slice) where the slice picks a part of the weight
    (e.g. ``(slice(0, 8),)`` for the first 8 rows). For Sparse VD layers ``log_alpha`` is kept too.
    A third element ``"kept"`` stores only the mask of kept weights (log_alpha < the layer's
    threshold) as booleans: a whole 500x800 layer per snapshot costs a few kilobytes compressed.
    ``save(path)`` writes one compressed ``.npz``: ``epoch`` (S,), ``<name>_weight`` and
    ``<name>_log_alpha`` (S, *slice shape), or ``<name>_kept``. ``restore(path)`` reads a partial
    file back, so a resumed run (``fit(..., checkpoint=...)``) keeps its earlier snapshots.
    """

    def __init__(self, layers: dict[str, tuple], every: int, epochs: int,
                 autosave: str | os.PathLike | None = None) -> None:
        self.layers = layers
        self.every = max(1, int(every))
        self.epochs = int(epochs)
        self.autosave = autosave
        self.epoch: list[int] = []
        self.arrays: dict[str, list[np.ndarray]] = {}

    def take(self, epoch: int) -> None:
        if int(epoch) in self.epoch:  # a resumed run may reach an epoch it already stored
            return
        self.epoch.append(int(epoch))
        with torch.no_grad():
            for name, spec in self.layers.items():
                module, sl = spec[0], spec[1]
                if len(spec) > 2 and spec[2] == "kept":
                    kept = module.mask()[sl].detach().cpu().numpy().astype(bool)
                    self.arrays.setdefault(f"{name}_kept", []).append(kept)
                    continue
                w = module.weight[sl].detach().cpu().float().numpy().astype(np.float16)
                self.arrays.setdefault(f"{name}_weight", []).append(w)
                if hasattr(module, "log_alpha"):
                    la = module.log_alpha[sl].detach().cpu().float().clamp(-30, 30).numpy()
                    self.arrays.setdefault(f"{name}_log_alpha", []).append(la.astype(np.float16))
        if self.autosave is not None:
            self.save(self.autosave)

    def __call__(self, epoch: int, model: nn.Module, row: dict) -> None:
        done = epoch + 1
        if done % self.every == 0 or done == self.epochs:
            self.take(done)

    def restore(self, path: str | os.PathLike) -> bool:
        """Load the snapshots of a partial run from ``path``; False when there is no such file."""
        path = Path(path)
        if not path.exists():
            return False
        try:
            with np.load(path) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as err:
            raise ValueError(f"snapshot file {path} cannot be read ({err}); delete it and the "
                             f"checkpoints beside it to start fresh") from None
        self.epoch = [int(e) for e in arrays.pop("epoch")]
        self.arrays = {k: list(v) for k, v in arrays.items()}
        return True

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {k: np.stack(v) for k, v in self.arrays.items()}
        return atomic_save_npz(path, epoch=np.asarray(self.epoch, dtype=np.int32), **arrays)
