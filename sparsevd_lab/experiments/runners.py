"""The experiments themselves: each ``run_<name>(ctx)`` trains, measures and returns the ``results``
block of a result dict (see ``common.validate_result``); ``run_experiment`` wraps it with provenance
and writes the files.

Recipes follow the authors' code (``sparsevd_lab.train.RECIPES``, reference notes): Adam, batch 100,
KL weight 0 for 5 epochs then linear to 1 by epoch 20; the paper's epoch counts are the defaults and
every cut is written into the provenance.

The experiments live in ``lenet`` (Table 1) and ``sweeps`` (the others), sharing ``context``; this
module is their registry (``EXPERIMENTS``) and driver (``run_experiment``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import data as _data
from .. import settings as _settings
from ..data import DataBundle
from ..train import resolve_device
from .common import SCHEMA_VERSION, atomic_write_json, provenance, result_filename, validate_result
from .context import ARD_BOSTON_TABLE, IMAGE_DATASETS, PAPER_TABLE1, Context, _warmup  # noqa: F401
from .lenet import PHASES, _build_lenet, run_lenet  # noqa: F401  (_build_lenet: experiments.load_model)
from .classrun import run_class_run
from .sweeps import (dropout_mlp, run_classification_sweep, run_random_labels,  # noqa: F401
                     run_regression_sweep, run_vgg_like, synthetic_cifar, threshold_sweep)

__all__ = ["EXPERIMENTS", "Experiment", "run_experiment", "synthetic_cifar", "PAPER_TABLE1",
           "ARD_BOSTON_TABLE"]

# --------------------------------------------------------------------------------------------------
# Registry and the driver
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Experiment:
    name: str
    runner: Callable[[Context], dict]
    datasets: tuple[str, ...]
    default_dataset: str
    paper_epochs: int | None
    fast_epochs: int
    fast_sizes: tuple[int, int]
    description: str


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("lenet300", run_lenet, IMAGE_DATASETS, "offline-digits", 200, 2, (600, 200),
               "Table 1 row for LeNet-300-100: dense, magnitude pruning, Sparse VD"),
    Experiment("lenet5", run_lenet, IMAGE_DATASETS, "offline-digits", 200, 1, (300, 200),
               "Table 1 row for LeNet-5-Caffe: dense, magnitude pruning, Sparse VD"),
    Experiment("random-labels", run_random_labels, IMAGE_DATASETS, "offline-digits", 200, 2,
               (600, 200), "dense+dropout memorises random labels; Sparse VD prunes everything"),
    Experiment("regression-sweep", run_regression_sweep, ("diabetes",), "diabetes", 100000, 30,
               (0, 0), "pytorch_ard's Boston table on diabetes: dense vs reg factors"),
    Experiment("classification-sweep", run_classification_sweep, IMAGE_DATASETS, "offline-digits",
               200, 1, (600, 200), "LeNet-300-100 over reg factors x thresholds"),
    Experiment("class-run", run_class_run, IMAGE_DATASETS, "fashion-mnist", 200, 2, (600, 200),
               "LeNet-300-100 Sparse VD and its dense twin, the short class recipe (minutes)"),
    Experiment("vgg-like", run_vgg_like, ("cifar10", "synthetic-cifar"), "cifar10", 200, 1,
               (128, 64), "VGG-like on CIFAR-10 from a pretrained dense net (needs the network)"),
)}

def load_experiment_data(dataset: str) -> DataBundle:
    """Load a data set of the registry ``sparsevd_lab.data.DATASETS`` (may raise ``OfflineError``)."""
    return _data.load_dataset(dataset, verbose=False)


# Validation examples held out of the training set for the choices a run makes (the iterative
# pruning's operating point); the test set is never used to choose anything.
VAL_SIZES = {"fashion-mnist": 5000, "mnist": 5000, "offline-digits": 500}
VAL_EXPERIMENTS = ("lenet300", "lenet5", "classification-sweep", "class-run")


def hold_out(bundle: DataBundle, n_val: int, seed: int = 0) -> tuple[DataBundle, tuple]:
    """Split ``n_val`` random training examples off as a validation set: (smaller bundle, (x, y))."""
    if not 0 < n_val < bundle.train_size:
        raise ValueError(f"validation size must be between 1 and {bundle.train_size - 1}; got {n_val}")
    order = torch.randperm(bundle.train_size, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    train = DataBundle(bundle.name, f"{bundle.source}; {n_val} random training examples held out "
                       f"for validation (seed {seed})", bundle.x_train[train_idx],
                       bundle.y_train[train_idx], bundle.x_test, bundle.y_test, bundle.task,
                       bundle.num_classes)
    return train, (bundle.x_train[val_idx], bundle.y_train[val_idx])


def _epochs_note(exp: Experiment, epochs: int, fast: bool, route: str = "scratch",
                 dense_epochs: int | None = None) -> str:
    if exp.paper_epochs is None:
        return f"{epochs} epochs"
    if route == "from-dense" and not fast:
        return (f"dense net trained {dense_epochs or epochs} epochs, then Sparse VD fine-tuned from it "
                f"for {epochs} epochs (route from-dense; the paper trains from scratch for "
                f"{exp.paper_epochs})")
    if fast:
        return f"fast mode: {epochs} epoch(s) on a data subset (paper recipe: {exp.paper_epochs})"
    if exp.name == "class-run":
        return (f"the class recipe: {epochs} epochs (the authors' recipe has {exp.paper_epochs}; "
                f"python -m sparsevd_lab.experiments lenet300 runs it)")
    if epochs == exp.paper_epochs:
        return f"the paper's recipe: {epochs} epochs"
    return (f"cut to {epochs} epochs from the recipe's {exp.paper_epochs} (CPU time budget); "
            f"rerun with --epochs {exp.paper_epochs} for the full recipe")


def _train_seconds(obj) -> float:
    """The seconds of every training epoch in a results block (each history's ``seconds``): the
    training time of a run even when it was spread over sittings or processes."""
    if isinstance(obj, dict):
        return sum(sum(v for v in val if v) if key == "seconds" and isinstance(val, list)
                   else _train_seconds(val) for key, val in obj.items())
    if isinstance(obj, list):
        return sum(_train_seconds(v) for v in obj)
    return 0.0


def run_experiment(name: str, dataset: str | None = None, *, epochs: int | None = None,
                   seed: int = 0, out: str | os.PathLike | None = None, fast: bool | None = None,
                   device: str = "auto", progress: bool = False, data: DataBundle | None = None,
                   command: str | None = None, resume: bool = False,
                   checkpoint_dir: str | os.PathLike | None = None, val_size: int | None = None,
                   dense_epochs: int | None = None, route: str = "scratch",
                   kl_weights: tuple[float, ...] | None = None,
                   phases: tuple[str, ...] | None = None, class_run: dict | None = None,
                   started: float | None = None,
                   extra_provenance: dict | None = None) -> dict | None:
    """Run one experiment and return its result dict (validated); with ``out`` also write
    ``<out>/<name>_<dataset>[_fast].json`` (and weight snapshots under ``<out>/snapshots/``, trained
    models under ``<out>/models/``).

    ``fast`` (default: $SPARSEVD_FAST, see ``sparsevd_lab.settings``) runs 1-2 epochs on a data
    subset. ``data`` overrides
    the loaded data set (tests, notebooks). ``resume``: every training phase writes a checkpoint
    after each epoch under ``checkpoint_dir`` (default ``<out>/checkpoints/<name>_<dataset>``) and
    continues from it when it exists, so a long run can be spread over several sittings.
    ``val_size``: training examples held out for validation (default ``VAL_SIZES`` for the Table 1
    experiments and the sweep, 0 elsewhere). ``route`` (lenet300/lenet5): ``"scratch"`` (the paper)
    or ``"from-dense"`` (Sparse VD starts from the trained dense net, the authors' advice for
    fine-tuning), with ``dense_epochs`` for the dense phase (default: ``epochs``). ``kl_weights``
    (classification-sweep): the KL weights to train (default ``SWEEP_KL_WEIGHTS``); with ``resume``
    two processes can share a sweep's checkpoints, each training some of the KL weights.
    ``phases`` (lenet300/lenet5, with ``resume``): train only these phases (``lenet.PHASES``: dense,
    sparse-vd, pruning-iterative) into the checkpoints and return ``None``, writing no result; run
    them in parallel processes, then once more without ``phases`` to assemble the result.
    ``class_run`` (class-run): {"recipe", "jobs", "sparse_model", "dense_model"} (see
    ``experiments.classrun.class_run``, which is how to call it). ``started``: the time the run
    began (default now; class_run passes the time before its data load). ``extra_provenance``:
    fields added to the provenance.
    Raises ``ValueError`` for unknown names or epochs < 1 and ``sparsevd_lab.OfflineError`` when a
    data set needs a download and there is no network.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[name]
    dataset = dataset or exp.default_dataset
    if dataset not in exp.datasets:
        raise ValueError(f"dataset {dataset!r} does not fit experiment {name!r}; valid: "
                         f"{', '.join(exp.datasets)}")
    if fast is None:
        fast = _settings.settings().fast
    if epochs is None:
        epochs = exp.fast_epochs if fast else exp.paper_epochs
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}")
    epochs = int(epochs)
    if route not in ("scratch", "from-dense"):
        raise ValueError(f"route must be 'scratch' or 'from-dense'; got {route!r}")
    if (route != "scratch" or dense_epochs is not None) and name not in ("lenet300", "lenet5"):
        raise ValueError(f"route and dense_epochs apply to lenet300 and lenet5, not {name!r}")
    if dense_epochs is not None and (isinstance(dense_epochs, bool) or int(dense_epochs) < 1):
        raise ValueError(f"dense_epochs must be an integer >= 1; got {dense_epochs!r}")
    if phases is not None:  # checked before the data are loaded
        if name not in ("lenet300", "lenet5"):
            raise ValueError(f"phases applies to lenet300 and lenet5, not {name!r}")
        unknown = sorted(set(phases) - set(PHASES))
        if unknown:
            raise ValueError(f"unknown phase(s) {unknown}; valid: {', '.join(PHASES)}")
        if not resume:
            raise ValueError("phases trains into the checkpoints: pass resume=True")
    if class_run is not None and name != "class-run":
        raise ValueError(f"class_run applies to class-run, not {name!r}")
    started = time.time() if started is None else started
    bundle = data if data is not None else load_experiment_data(dataset)
    if fast and exp.fast_sizes != (0, 0):
        bundle = bundle.subset(*exp.fast_sizes)
    if val_size is None:
        val_size = (100 if fast else VAL_SIZES.get(dataset, 0)) if name in VAL_EXPERIMENTS else 0
    val = None
    if val_size:
        bundle, val = hold_out(bundle, int(val_size), seed)
    ckdir = None
    if resume:
        if checkpoint_dir is None and out is None:
            raise ValueError("resume needs a folder for the checkpoints: pass out or checkpoint_dir")
        ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else (
            Path(out) / "checkpoints" / f"{name}_{dataset}{'_fast' if fast else ''}")
        if ckdir.exists() and any(ckdir.glob("*.pt")):
            print(f"resume: continuing from the checkpoints in {ckdir}", flush=True)
        else:
            print(f"resume: no checkpoint in {ckdir} yet; starting fresh (a checkpoint is written "
                  f"after every epoch)", flush=True)
    dev = resolve_device(device)
    ctx = Context(name=name, dataset=dataset, data=bundle, epochs=epochs, seed=seed, fast=fast,
                  device=dev, progress=progress, out=None if out is None else Path(out),
                  val=val, checkpoint_dir=ckdir)
    if name in ("lenet300", "lenet5"):
        ctx.config.update({"route": route, "dense_epochs": dense_epochs})
        if phases is not None:
            ctx.config["phases"] = list(phases)
    if class_run is not None:
        ctx.config.update(class_run)
    if kl_weights is not None:
        if name != "classification-sweep":
            raise ValueError(f"kl_weights applies to classification-sweep, not {name!r}")
        bad = [w for w in kl_weights if not (isinstance(w, (int, float)) and w >= 0)]
        if not kl_weights or bad:
            raise ValueError(f"kl_weights must be numbers >= 0; got {list(kl_weights)}")
        ctx.config["kl_weights"] = [float(w) for w in kl_weights]
    results = exp.runner(ctx)
    if results is None:  # only some phases, trained into the checkpoints
        return None
    bundle = ctx.data  # a runner may transform the data (random labels)
    result = {
        "schema_version": SCHEMA_VERSION,
        "experiment": name,
        "dataset": dataset,
        "provenance": provenance(dataset=dataset, source=bundle.source, epochs=epochs,
                                 paper_epochs=exp.paper_epochs,
                                 epochs_note=_epochs_note(exp, epochs, fast, route, dense_epochs),
                                 seed=seed,
                                 device=str(dev), started=started, fast=fast, command=command,
                                 extra={"train_size": bundle.train_size,
                                        "validation_size": int(val_size or 0),
                                        "test_size": int(len(bundle.x_test)),
                                        "resumed_checkpoints": ckdir is not None,
                                        "train_time_s": round(_train_seconds(results), 1),
                                        **(extra_provenance or {})}),
        "config": {**ctx.config, **({"notes": ctx.notes} if ctx.notes else {})},
        "results": results,
        "files": ctx.files,
    }
    from .common import jsonable

    result = jsonable(result)
    validate_result(result)
    if out is not None:
        path = Path(out) / result_filename(name, dataset, fast)
        atomic_write_json(path, result)
        result["files"]["result"] = path.name
    return result
