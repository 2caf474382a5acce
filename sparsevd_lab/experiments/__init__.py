"""Experiments of the paper, runnable from the command line, and the results shipped with the package.

    python -m sparsevd_lab.experiments NAME [--dataset D] [--epochs N] [--seed S] [--out DIR] [--fast]

Experiments (``EXPERIMENTS``): ``lenet300`` and ``lenet5`` (Table 1 rows: dense, magnitude pruning,
Sparse VD), ``random-labels``, ``regression-sweep`` (pytorch_ard's Boston table on diabetes),
``classification-sweep`` (reg factor x threshold grid for notebook sliders), ``vgg-like`` (CIFAR-10;
needs the network, ``synthetic-cifar`` tests the path offline).

Shipped results live in ``sparsevd_lab/results/`` and load with no network::

    from sparsevd_lab.experiments import load_result, sweep_point
    res = load_result("classification-sweep", dataset="offline-digits")
    sweep_point(res, kl_weight=1.0, threshold=3.0)["error_%"]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from .common import (RESULTS_DIR, SCHEMA_VERSION, ResultSchemaError, SnapshotRecorder,
                     atomic_save_npz, atomic_write_json, model_filename, result_filename,
                     upgrade_result, validate_result)
from .classrun import CLASS_RECIPE, class_run
from .runners import (ARD_BOSTON_TABLE, EXPERIMENTS, PAPER_TABLE1, dropout_mlp, load_experiment_data,
                      run_experiment, synthetic_cifar, threshold_sweep)

__all__ = [
    "EXPERIMENTS",
    "RESULTS_DIR",
    "SCHEMA_VERSION",
    "PAPER_TABLE1",
    "ARD_BOSTON_TABLE",
    "ResultSchemaError",
    "run_experiment",
    "class_run",
    "CLASS_RECIPE",
    "load_result",
    "load_snapshots",
    "list_results",
    "validate_result",
    "result_frame",
    "sweep_point",
    "load_model",
    "threshold_sweep",
    "synthetic_cifar",
    "dropout_mlp",
    "load_experiment_data",
    "atomic_write_json",
    "atomic_save_npz",
    "SnapshotRecorder",
]


def _root(root) -> Path:
    return RESULTS_DIR if root is None else Path(root)


def list_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per result file in ``root`` (default: the shipped results): experiment, dataset,
    epochs, fast, wall time, file."""
    rows = []
    for path in sorted(_root(root).glob("*.json")):
        try:
            obj = validate_result(json.loads(path.read_text()))
        except (ValueError, json.JSONDecodeError):
            continue
        p = obj["provenance"]
        rows.append({"experiment": obj["experiment"], "dataset": obj["dataset"],
                     "epochs": p["epochs"], "fast": p["fast"], "wall_time_s": p["wall_time_s"],
                     "date": p["date"], "file": path.name})
    return pd.DataFrame(rows, columns=["experiment", "dataset", "epochs", "fast", "wall_time_s",
                                       "date", "file"])


def load_result(name: str, dataset: str | None = None, root: str | os.PathLike | None = None,
                fast: bool = False) -> dict:
    """Load and validate a result: ``<root>/<name>_<dataset>[_fast].json``. ``root`` defaults to the
    results shipped with the package; ``dataset`` to the experiment's default data set.

    Raises ``ValueError`` for an unknown experiment and ``FileNotFoundError`` (listing what exists)
    when there is no such result.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    dataset = dataset or EXPERIMENTS[name].default_dataset
    path = _root(root) / result_filename(name, dataset, fast)
    if not path.exists():
        have = sorted(p.name for p in _root(root).glob(f"{name}_*.json"))
        raise FileNotFoundError(
            f"no result {path.name} in {_root(root)}; available for {name}: {have or 'none'}. "
            f"Produce it with: python -m sparsevd_lab.experiments {name} --dataset {dataset} "
            f"--out {_root(root)}")
    obj = validate_result(json.loads(path.read_text()))
    obj.setdefault("files", {})["result"] = path.name
    obj["_root"] = str(_root(root))
    return obj


def load_snapshots(result: dict, key: str = "snapshots") -> dict[str, np.ndarray]:
    """The weight snapshots of a loaded result, as {array name: float32 array} (``epoch`` int)."""
    rel = result.get("files", {}).get(key)
    if rel is None:
        raise KeyError(f"result {result.get('experiment')}/{result.get('dataset')} has no "
                       f"{key!r} file; it has {sorted(result.get('files', {}))}")
    root = Path(result.get("_root", RESULTS_DIR))
    with np.load(root / rel) as npz:
        return {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in npz.items()}


def _num(v):
    return float(v) if isinstance(v, str) else v  # "inf" / "nan" written by jsonable


def result_frame(result: dict) -> pd.DataFrame:
    """The main table of a result as a DataFrame: Table 1 rows, regression rows, sweep points,
    or (random labels) the per-epoch history of both models side by side."""
    res = result["results"]
    if result["experiment"] == "classification-sweep":
        df = pd.DataFrame(res["points"])
    elif result["experiment"] == "random-labels":
        parts = []
        for model, h in res["history"].items():
            parts.append(pd.DataFrame(h).assign(model=model))
        df = pd.concat(parts, ignore_index=True)
    else:
        df = pd.DataFrame(res["rows"])
    for col in ("compression", "error_%", "sparsity_%", "test_mse", "train_mse"):
        if col in df:
            df[col] = df[col].map(_num).astype(float)
    return df


def sweep_point(result: dict, kl_weight: float, threshold: float) -> dict:
    """The classification-sweep point nearest to (kl_weight, threshold): KL weights are matched on
    a log scale, thresholds linearly. Returns the point dict (error_%, per-layer sparsity, ...)."""
    if result.get("experiment") != "classification-sweep":
        raise ValueError("sweep_point needs a classification-sweep result")
    res = result["results"]
    kws, ths = res["kl_weights"], res["thresholds"]
    kw = min(kws, key=lambda r: abs(np.log10(max(r, 1e-12)) - np.log10(max(kl_weight, 1e-12))))
    th = min(ths, key=lambda t: abs(t - threshold))
    return res["points"][kws.index(kw) * len(ths) + ths.index(th)]


def load_model(experiment: str, dataset: str | None = None, method: str = "sparse-vd",
               root: str | os.PathLike | None = None, fast: bool = False) -> nn.Module:
    """A trained model shipped with a result (``results/models/...safetensors``), in eval mode:
    LinearSVDO / Conv2dSVDO layers for ``method="sparse-vd"``, plain layers for ``"dense"``.

    The file holds plain named float32 tensors (any safetensors tool reads it); nothing in it is
    executed. Raises ``FileNotFoundError`` (saying which models exist and how to make one) or
    ``ValueError`` when the tensors do not fit the architecture.
    """
    from safetensors.torch import load_file

    from .runners import _build_lenet

    if experiment not in ("lenet300", "lenet5"):
        raise ValueError(f"load_model knows the Table 1 experiments lenet300 and lenet5; got "
                         f"{experiment!r}")
    result = load_result(experiment, dataset, root=root, fast=fast)
    rel = result["files"].get(f"model_{method}")
    if rel is None:
        have = sorted(k[len("model_"):] for k in result["files"] if k.startswith("model_"))
        raise FileNotFoundError(
            f"result {result['files']['result']} ships no {method!r} model (it has: {have or 'none'}); "
            f"rerun python -m sparsevd_lab.experiments {experiment} --dataset {result['dataset']} "
            f"to produce one")
    cfg = result["config"]
    model = _build_lenet(experiment, tuple(cfg["input_shape"]), svdo=method == "sparse-vd",
                         num_classes=cfg["num_classes"])
    state = load_file(str(Path(result["_root"]) / rel))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{rel} does not fit the {experiment} architecture: {err}") from None
    return model.eval()
