"""The class run: LeNet-300-100 Sparse VD and its dense twin on full Fashion-MNIST, trained the same
way, both in a few minutes on a 2-core laptop or Colab (``class_run``).

    python -m sparsevd_lab.experiments class-run --dataset fashion-mnist --out DIR

The recipe (``CLASS_RECIPE``) is a short version of the authors' LeNet-300-100 recipe: fewer epochs,
a larger batch and learning rate, the learning-rate decay and the KL warm-up compressed to the run.
It was chosen on the validation split (5,000 training examples held out), never on the test set:
``scripts/class_run_search.py`` runs the candidates and prints their table (docs/results.md,
"The class run").

When the data set cannot be loaded (no Debian package, no network) the run falls back to the 4,000
offline digits and says so in one line: there N is small, so the KL's share of the objective
(KL / N per example) is 15x larger than on 60,000 examples and Sparse VD over-prunes.
"""
from __future__ import annotations

import functools
import io
import multiprocessing as mp
import os
import time
from typing import Callable

import pandas as pd
import torch
from torch import nn

from .. import data as _data
from ..data import DataBundle, DataError, TensorLoader
from ..layers import svdo_layers
from ..models import lenet_300_100
from ..objective import kl_warmup
from ..reports import layer_sparsity, sparsity_string
from ..train import fit, resolve_device, set_seed
from .context import Context, _dense_counts, _frame, _table_row
from .lenet import _val_error
from .sweeps import threshold_sweep

__all__ = ["CLASS_RECIPE", "FAST_CLASS_RECIPE", "class_run", "train_pair", "load_class_data",
           "run_class_run", "fallback_message", "recipe_warmup", "NO_DATA_HELP"]

# The class-run recipe, chosen on the validation split by scripts/class_run_search.py (see
# docs/results.md, "The class run"). The warm-up is in 0-based epochs: KL weight 0 before
# ``kl_warmup_start``, linear to 1 at ``kl_warmup_end`` (sparsevd_lab.objective.kl_warmup).
CLASS_RECIPE = {
    "epochs": 90,
    "batch_size": 500,
    "lr": 2e-3,
    "lr_flat_fraction": 0.3,
    "kl_warmup_start": 2,
    "kl_warmup_end": 45,
    "log_sigma2_init": -10.0,
    "threshold": 3.0,
}
# Fast mode (SPARSEVD_FAST=1, tests, CI): the same recipe on a subset for 2 epochs.
FAST_CLASS_RECIPE = {**CLASS_RECIPE, "epochs": 2, "batch_size": 100, "kl_warmup_start": 0,
                     "kl_warmup_end": 1}
FAST_SIZES = (600, 200)

NO_DATA_HELP = ("get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs into "
                f"{_data.FASHION_DEBIAN_DIR}) or let sparsevd_lab download it (needs the network, "
                "which Colab has; unset SPARSEVD_OFFLINE)")


def fallback_message(dataset: str, reason: str, train_size: int = 4000,
                     full_size: int = 60000) -> str:
    """The one line printed when the class run falls back to the offline digits."""
    return (f"class run: {dataset} could not be loaded ({reason}); training on the {train_size:,} "
            f"offline digits instead, where Sparse VD loses accuracy: N is small, so the KL's share "
            f"of the objective, KL/N per example, is {full_size / train_size:.0f}x larger than with "
            f"{full_size:,} examples and it prunes too much.")


def load_class_data(dataset: str = "fashion-mnist", fallback: bool = True,
                    verbose: bool = True) -> tuple[DataBundle, str, str | None]:
    """(data, name of the data set used, reason of the fallback or None). The full data set from its
    local folder or a verified download; if neither works, the offline digits (``fallback``) with
    one printed line saying why Sparse VD loses accuracy there, or a ``DataError`` naming how to
    get the data (``fallback=False``)."""
    if dataset not in _data.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(_data.DATASETS)}")
    try:
        return _data.load_dataset(dataset, verbose=verbose), dataset, None
    except DataError as err:
        reason = str(err).split(". ")[0].split("; ")[0]
        if not fallback:
            help_ = NO_DATA_HELP if dataset == "fashion-mnist" else "connect to the network"
            raise DataError(f"the class run needs the full {dataset} data set and could not load "
                            f"it ({err}). To get it: {help_}. Or allow the fallback to the offline "
                            f"digits (leave out --no-fallback / pass fallback=True).") from err
        bundle = _data.load_offline_digits(verbose=False)
        print(fallback_message(dataset, reason, bundle.train_size), flush=True)
        return bundle, "offline-digits", reason


def recipe_warmup(recipe: dict) -> Callable[[int], float]:
    """The KL-weight schedule of a recipe (a function of the 0-based epoch)."""
    return functools.partial(kl_warmup, start=int(recipe["kl_warmup_start"]),
                             end=int(recipe["kl_warmup_end"]))


def _check_recipe(recipe: dict) -> dict:
    need = set(CLASS_RECIPE)
    missing = sorted(need - set(recipe))
    if missing:
        raise ValueError(f"recipe lacks {missing}; a recipe has {sorted(need)} "
                         f"(see sparsevd_lab.experiments.CLASS_RECIPE)")
    unknown = sorted(set(recipe) - need)
    if unknown:
        raise ValueError(f"recipe has unknown keys {unknown}; valid: {sorted(need)}")
    if int(recipe["epochs"]) < 1 or int(recipe["batch_size"]) < 1 or not recipe["lr"] > 0:
        raise ValueError(f"recipe needs epochs >= 1, batch_size >= 1 and lr > 0; got {recipe}")
    return dict(recipe)


def _printer(label: str, epochs: int, out: list | None = None):
    """A ``fit`` callback printing one line per epoch (or, in a worker process, queueing it)."""

    def line(epoch: int, model: nn.Module, row: dict) -> None:
        err = 100.0 * (1 - row["test_acc"]) if "test_acc" in row else float("nan")
        msg = (f"{label:>9s} epoch {epoch + 1:3d}/{epochs}: val error {err:5.2f} %, "
               f"train loss {row['data_loss']:.3f}")
        if "compression" in row:
            msg += f", KL weight {row['kl_weight']:.2f}, compression {row['compression']:6.1f}x"
        msg += f" ({row['seconds']:.1f} s)"
        if out is None:
            print(msg, flush=True)
        else:
            out.put(("line", msg))

    return line


def _history_frame(h: pd.DataFrame) -> dict:
    h = h.rename(columns={"test_acc": "val_acc"})
    return _frame(h, ["epoch", "lr", "kl_weight", "data_loss", "kl", "train_acc", "val_acc",
                      "sparsity_%", "compression", "seconds"])


def _fit_kwargs(recipe: dict, seed: int, device: torch.device) -> dict:
    return dict(epochs=int(recipe["epochs"]), lr=float(recipe["lr"]),
                lr_flat_fraction=float(recipe["lr_flat_fraction"]), seed=seed, device=device,
                progress=False)


def _loaders(train: DataBundle, val: tuple, recipe: dict, seed: int, device) -> tuple:
    return (TensorLoader(train.x_train, train.y_train, int(recipe["batch_size"]), shuffle=True,
                         seed=seed, device=device),
            TensorLoader(val[0], val[1], 1000, device=device))


def _dense_worker(queue, dense, train, val, recipe, seed, device) -> None:
    # a forked worker: one thread (the parent trains Sparse VD on the other core)
    torch.set_num_threads(1)
    try:
        h = fit(dense, _loaders(train, val, recipe, seed, device),
                callback=_printer("dense", int(recipe["epochs"]), queue),
                **_fit_kwargs(recipe, seed, device))
        # sent as bytes: a tensor through the queue would be shared by a file descriptor that
        # dies with this process before the parent reads it
        buf = io.BytesIO()
        torch.save(dense.state_dict(), buf)
        queue.put(("done", buf.getvalue(), h))
    except BaseException as err:  # report, never hang the parent
        queue.put(("error", repr(err), None))


def _drain(queue, stop_on_done: bool):
    """Print the worker's queued lines; return ('done', state, history) once it has finished."""
    import queue as _queue

    while True:
        try:
            item = queue.get(block=stop_on_done, timeout=None)
        except _queue.Empty:
            return None
        if item[0] == "line":
            print(item[1], flush=True)
            continue
        return item


def train_pair(train: DataBundle, val: tuple, recipe: dict | None = None, *,
               sparse_model: nn.Module | None = None, dense_model: nn.Module | None = None,
               seed: int = 0, device: str | torch.device = "auto", progress: bool = True,
               jobs: int | None = None) -> dict:
    """Train the dense twin and the Sparse VD net with the same recipe; the validation set is what
    each epoch reports (the test set is not touched here). Returns {"dense": model, "sparse-vd":
    model, "history": {...}, "seconds": {...}}.

    ``sparse_model``: a Sparse VD model to train in place (default LeNet-300-100 with LinearSVDO and
    the recipe's log_sigma2 init and threshold); it needs LinearSVDO / Conv2dSVDO layers, whose KL
    ``fit`` adds (a layer of your own: train it with your loop and ``CLASS_RECIPE``, as A1 does).
    ``dense_model``: its dense twin (default LeNet-300-100).
    ``jobs``: 2 trains the two models in two processes (one thread each, CPU, fork where the
    platform has it); 1 one after the other; default 2 on a CPU with >= 2 cores, else 1.
    """
    recipe = _check_recipe(CLASS_RECIPE if recipe is None else recipe)
    device = resolve_device(device)
    epochs = int(recipe["epochs"])
    shape = tuple(train.input_shape)
    in_features = int(torch.tensor(shape).prod())
    set_seed(seed)
    if dense_model is None:
        dense_model = lenet_300_100(svdo=False, in_features=in_features, num_classes=train.num_classes)
    set_seed(seed)
    if sparse_model is None:
        sparse_model = lenet_300_100(svdo=True, in_features=in_features, num_classes=train.num_classes)
        for _, layer in svdo_layers(sparse_model):
            layer.log_sigma2_init = float(recipe["log_sigma2_init"])
            layer._reset_log_sigma2()
    if not svdo_layers(sparse_model):
        raise ValueError("sparse_model has no LinearSVDO / Conv2dSVDO layer, so fit would add no KL; "
                         "convert it with sparsevd_lab.from_dense, or train your own layer with "
                         "your loop and CLASS_RECIPE")
    for _, layer in svdo_layers(sparse_model):
        layer.threshold = float(recipe["threshold"])
    if jobs is None:
        jobs = 2 if (device.type == "cpu" and (os.cpu_count() or 1) >= 2) else 1
    parallel = (int(jobs) >= 2 and device.type == "cpu"
                and "fork" in mp.get_all_start_methods())
    say = progress
    started = time.perf_counter()
    if say:
        print(f"class run: dense twin and Sparse VD, {epochs} epochs each, batch "
              f"{recipe['batch_size']}, {train.train_size:,} training examples, "
              f"{len(val[1]):,} validation; "
              + ("two processes, one thread each" if parallel else "one after the other"),
              flush=True)
    history, seconds = {}, {}
    kw = _fit_kwargs(recipe, seed, device)
    sparse_cb = _printer("Sparse VD", epochs) if say else None
    if parallel:
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        worker = ctx.Process(target=_dense_worker,
                             args=(queue, dense_model, train, val, recipe, seed, device), daemon=True)
        threads = torch.get_num_threads()
        worker.start()
        done = None
        torch.set_num_threads(1)
        try:
            def cb(epoch, model, row):
                nonlocal done
                if sparse_cb is not None:
                    sparse_cb(epoch, model, row)
                if done is None:
                    got = _drain(queue, stop_on_done=False)
                    done = got if got is not None else None
            h_svd = fit(sparse_model, _loaders(train, val, recipe, seed, device), callback=cb,
                        kl_weight=recipe_warmup(recipe), **kw)
            seconds["sparse-vd"] = time.perf_counter() - started
            if done is None:
                done = _drain(queue, stop_on_done=True)
        finally:
            torch.set_num_threads(threads)
            worker.join(timeout=60)
        if done[0] != "done":
            raise RuntimeError(f"the dense twin's process failed: {done[1]}; rerun with jobs=1")
        dense_model.load_state_dict(torch.load(io.BytesIO(done[1]), weights_only=True))
        h_dense = done[2]
        seconds["dense"] = float(h_dense["seconds"].sum())
    else:
        h_dense = fit(dense_model, _loaders(train, val, recipe, seed, device),
                      callback=_printer("dense", epochs) if say else None, **kw)
        seconds["dense"] = time.perf_counter() - started
        t = time.perf_counter()
        h_svd = fit(sparse_model, _loaders(train, val, recipe, seed, device), callback=sparse_cb,
                    kl_weight=recipe_warmup(recipe), **kw)
        seconds["sparse-vd"] = time.perf_counter() - t
    dense_model.eval()
    sparse_model.eval()
    history["dense"] = _history_frame(h_dense)
    history["sparse-vd"] = _history_frame(h_svd)
    seconds["wall"] = time.perf_counter() - started
    return {"dense": dense_model, "sparse-vd": sparse_model, "history": history,
            "seconds": {k: round(v, 2) for k, v in seconds.items()}, "parallel": parallel}


VAL_THRESHOLDS = (2.0, 3.0, 4.0, 5.0)


def _val_by_threshold(model: nn.Module, ctx: Context) -> list[dict]:
    """Validation error and compression at other thresholds (an eval-time choice: no retraining),
    from the sweep's re-masking, which restores the layers' own threshold."""
    val = TensorLoader(*ctx.val, 1000, device=ctx.device)
    return [{"threshold": p["threshold"], "val_error_%": p["error_%"],
             "compression": round(p["compression"], 2) if p["kept"] else float("inf")}
            for p in threshold_sweep(model, val, VAL_THRESHOLDS)]


def run_class_run(ctx: Context) -> dict:
    """The experiments' runner for ``class-run``: train the pair, then one test evaluation of each."""
    recipe = _check_recipe(ctx.config.pop("recipe", None) or
                           (FAST_CLASS_RECIPE if ctx.fast else CLASS_RECIPE))
    recipe["epochs"] = ctx.epochs
    if ctx.val is None:
        raise ValueError("the class run needs a validation split (val_size > 0)")
    jobs = ctx.config.pop("jobs", None)
    sparse_model = ctx.config.pop("sparse_model", None)
    dense_model = ctx.config.pop("dense_model", None)
    models_out = ctx.config.pop("models_out", None)
    pair = train_pair(ctx.data, ctx.val, recipe, sparse_model=sparse_model, dense_model=dense_model,
                      seed=ctx.seed, device=ctx.device, progress=ctx.progress, jobs=jobs)
    test = TensorLoader(ctx.data.x_test, ctx.data.y_test, 1000, device=ctx.device)
    names = ["fc1", "fc2", "fc3"]
    rows = []
    for method in ("dense", "sparse-vd"):
        model = pair[method]
        counts = _dense_counts(model) if method == "dense" else layer_sparsity(model)
        if len(counts) == len(names):
            counts = [(n, t, k) for n, (_, t, k) in zip(names, counts)]
        extra = {"val_error_%": round(_val_error(model, ctx), 3),
                 "train_seconds": pair["seconds"][method]}
        if method == "sparse-vd":
            extra["sparsity_string"] = sparsity_string(model)
            extra["val_by_threshold"] = _val_by_threshold(model, ctx)
        rows.append(_table_row(method, model, test, counts, extra))
        ctx.save_model(method, model)
    if models_out is not None:
        models_out.update({"dense": pair["dense"], "sparse-vd": pair["sparse-vd"]})
    gap = rows[1]["error_%"] - rows[0]["error_%"]
    ctx.config.update({"recipe": recipe, "jobs_parallel": pair["parallel"],
                       "train_seconds": pair["seconds"], "layers": names,
                       "input_shape": list(ctx.data.input_shape),
                       "num_classes": ctx.data.num_classes,
                       "recipe_chosen_on": "the validation split (scripts/class_run_search.py)"})
    ctx.log(f"class run: dense {rows[0]['error_%']:.2f} % test error; Sparse VD "
            f"{rows[1]['error_%']:.2f} % at {rows[1]['compression']:.1f}x (gap {gap:+.2f} points); "
            f"training took {pair['seconds']['wall']:.0f} s")
    return {"rows": rows, "history": pair["history"], "gap_points": round(gap, 3)}


def class_run(dataset: str = "fashion-mnist", *, out: str | os.PathLike | None = None,
              fallback: bool = True, fast: bool | None = None, recipe: dict | None = None,
              sparse_model: nn.Module | None = None, dense_model: nn.Module | None = None,
              seed: int = 0, device: str = "auto", progress: bool = True, jobs: int | None = None,
              val_size: int | None = None, command: str | None = None,
              return_models: bool = False) -> dict | tuple[dict, dict]:
    """Train LeNet-300-100 Sparse VD and its dense twin with the class recipe and return the result
    dict (rows ``dense`` and ``sparse-vd`` with ``error_%``, ``val_error_%``, ``compression``);
    with ``out`` also write ``<out>/class-run_<dataset>[_fast].json`` (and the two models).

    The data: ``dataset`` from its local folder or a verified download; if neither works, the offline
    digits with one printed line (``fallback=True``) or a ``DataError`` naming how to get the data.
    ``fast`` (default $SPARSEVD_FAST): 2 epochs on 600 examples. ``sparse_model`` / ``dense_model``:
    train these instead of the package's LeNet-300-100 (A1 passes the student's own layer).
    Prints one line per epoch for both models. ``jobs``: see ``train_pair``. ``return_models``:
    return (result, {"dense": model, "sparse-vd": model}), the trained models in eval mode.
    """
    from .. import settings as _settings
    from .runners import run_experiment

    if fast is None:
        fast = _settings.settings().fast
    recipe = _check_recipe(recipe if recipe is not None else
                           (FAST_CLASS_RECIPE if fast else CLASS_RECIPE))
    started = time.time()
    models: dict = {}
    bundle, used, reason = load_class_data(dataset, fallback=fallback, verbose=progress)
    result = run_experiment("class-run", used, epochs=int(recipe["epochs"]), seed=seed, out=out,
                            fast=fast, device=device, progress=progress, data=bundle,
                            command=command or f"sparsevd_lab.experiments.class_run({dataset!r})",
                            val_size=val_size,
                            class_run={"recipe": recipe, "jobs": jobs, "sparse_model": sparse_model,
                                       "dense_model": dense_model, "models_out": models},
                            started=started,
                            extra_provenance=None if reason is None else
                            {"fallback": f"{dataset} could not be loaded ({reason}); trained on "
                                         f"the offline digits"})
    return (result, models) if return_models else result
