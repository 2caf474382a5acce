"""The experiments themselves: each ``run_<name>(ctx)`` trains, measures and returns the ``results``
block of a result dict (see ``common.validate_result``); ``run_experiment`` wraps it with provenance
and writes the files.

Recipes follow the authors' code (``sparsevd_lab.train.RECIPES``, reference notes): Adam, batch 100,
KL weight 0 for 5 epochs then linear to 1 by epoch 20; the paper's epoch counts are the defaults and
every cut is written into the provenance.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import data as _data
from ..data import DataBundle, TensorLoader
from ..layers import svdo_layers
from ..models import from_dense, lenet5, lenet_300_100, mlp_regressor, vgg_like
from ..objective import kl_warmup
from ..reports import layer_sparsity, sparsity_string
from .. import settings as _settings
from ..train import RECIPES, evaluate, fit, resolve_device, set_seed
from .common import (SCHEMA_VERSION, SnapshotRecorder, atomic_write_bytes, atomic_write_json,
                     model_filename, provenance, result_filename, validate_result)

__all__ = ["EXPERIMENTS", "Experiment", "run_experiment", "synthetic_cifar", "PAPER_TABLE1",
           "ARD_BOSTON_TABLE"]

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

IMAGE_DATASETS = ("offline-digits", "fashion-mnist", "mnist")


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


# --------------------------------------------------------------------------------------------------
# lenet300 / lenet5: Table 1 rows
# --------------------------------------------------------------------------------------------------

def _build_lenet(name: str, bundle_or_shape, svdo: bool, num_classes: int | None = None) -> nn.Sequential:
    if isinstance(bundle_or_shape, DataBundle):
        (c, h, w), num_classes = bundle_or_shape.input_shape, bundle_or_shape.num_classes
    else:
        c, h, w = bundle_or_shape
    if name == "lenet300":
        return lenet_300_100(svdo=svdo, in_features=c * h * w, num_classes=num_classes)
    return lenet5(svdo=svdo, in_channels=c, image_size=h, num_classes=num_classes)


# The paper's layer names (Table 1 lists layers in this order); nn.Sequential only numbers them.
LAYER_NAMES = {"lenet300": ["fc1", "fc2", "fc3"], "lenet5": ["conv1", "conv2", "fc1", "fc2"]}

# Row names: each says what the row is, so that one-shot pruning to Sparse VD's sparsity is never
# mistaken for Han et al.'s pruning at its own operating point (paper Table 1, "Pruning").
METHOD_LABELS = {
    "dense": "dense",
    "sparse-vd": "Sparse VD",
    "pruning-matched": "magnitude pruning, one-shot to Sparse VD's per-layer sparsity + fine-tune",
    "pruning-iterative": "magnitude pruning, iterative (Han et al. style), own operating point",
}

# Iterative pruning (Han et al. 2015 style): raise the global sparsity step by step, fine-tune after
# each step, stop at the last step whose validation error stays within the budget of the dense net.
PRUNING_SCHEDULE = (0.5, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99)
PRUNING_BUDGET_POINTS = 0.5


def _snapshot_layers(name: str, model: nn.Module) -> dict:
    layers = [m for _, m in svdo_layers(model)]
    names = LAYER_NAMES[name]
    if name == "lenet300":
        # the kept mask of every layer: fc1's rows are 28x28 receptive fields
        return {n: (m, (slice(None),), "kept") for n, m in zip(names, layers)}
    # LeNet-5: both conv layers whole (weights and log alpha), the dense layers as kept masks
    spec = {n: (m, (slice(None),)) for n, m in zip(names[:2], layers[:2])}
    spec.update({n: (m, (slice(None),), "kept") for n, m in zip(names[2:], layers[2:])})
    return spec


def _val_error(model: nn.Module, ctx: Context) -> float:
    loader = TensorLoader(*ctx.val, 1000, device=ctx.device)
    return 100.0 * (1 - evaluate(model, loader)["acc"])


def _iterative_pruning(ctx: Context, dense: nn.Module, test: TensorLoader, recipe: dict,
                       ft_epochs: int) -> tuple[nn.Module, list[dict], dict]:
    """Prune the trained dense net step by step (global magnitude), fine-tuning after each step;
    return the model at the last step within the validation budget, the curve, and the history."""
    pruning = _pruning_module()
    budget = _val_error(dense, ctx) + PRUNING_BUDGET_POINTS
    current = copy.deepcopy(dense)
    best, curve, history = None, [], {}
    for step, target in enumerate(PRUNING_SCHEDULE, 1):
        # prune the current (already sparse, fine-tuned) weights further: pruned weights stay zero
        # because they are the smallest in magnitude (exactly 0)
        current = pruning.magnitude_prune(current, target, permanent=False)
        ctx.log(f"[{ctx.name}] iterative pruning step {step}: {100 * target:g} % sparsity, "
                f"fine-tune {ft_epochs} epochs")
        # the same fine-tuning as the matched row (the recipe's lr, flat then linear to 0): a tenth
        # of it for 3 epochs (Han et al.'s SGD rule) left LeNet-300-100 at 16 % error at 90 %
        # sparsity on Fashion-MNIST, still improving when it stopped
        h = ctx.fit(current, phase=f"pruning-iterative-{step:02d}", epochs=ft_epochs,
                    lr=recipe["lr"], batch_size=recipe["batch_size"], lr_flat_fraction=0.5)
        history[f"{step:02d}"] = _frame(h, ["epoch", "data_loss", "train_acc", "test_acc"])
        pruning.make_permanent(current)
        counts = _dense_counts(current)
        total, kept = sum(n for _, n, _ in counts), sum(k for *_, k in counts)
        val = _val_error(current, ctx)
        point = {"step": step, "target_sparsity_%": 100 * target,
                 "sparsity_%": round(100.0 * (1 - kept / total), 3),
                 "compression": total / kept if kept else float("inf"),
                 "val_error_%": round(val, 3),
                 "test_error_%": round(100.0 * (1 - evaluate(current, test)["acc"]), 3),
                 "within_budget": val <= budget}
        curve.append(point)
        ctx.log(f"    sparsity {point['sparsity_%']:.2f} %, val error {val:.2f} % "
                f"(budget {budget:.2f} %), test error {point['test_error_%']:.2f} %")
        if val <= budget:
            # the highest sparsity within the budget so far; the whole schedule runs, because a
            # validation error on a few thousand examples moves by a few tenths of a point from
            # step to step, and stopping at the first miss would stop on noise
            best = copy.deepcopy(current)
            point["chosen"] = True
            for earlier in curve[:-1]:
                earlier["chosen"] = False
        else:
            point["chosen"] = False
    if best is None:  # no step met the budget: the operating point is the dense net (0 % sparsity)
        ctx.notes.append("iterative pruning: no step met the validation budget")
        best = copy.deepcopy(dense)
    info = {"pruning_iterative_schedule": [100 * t for t in PRUNING_SCHEDULE],
            "pruning_iterative_budget": f"validation error <= dense validation error + "
                                        f"{PRUNING_BUDGET_POINTS} points ({budget:.3f} %)",
            "pruning_iterative_finetune": f"{ft_epochs} epochs per step, Adam {recipe['lr']:g}, "
                                          f"flat for half the epochs then linear to 0",
            "pruning_iterative_method": "global magnitude pruning over all layers "
                                        "(torch.nn.utils.prune.global_unstructured), masks kept "
                                        "during fine-tuning"}
    return best, curve, {"history": history, "config": info}


def run_lenet(ctx: Context) -> dict:
    name = ctx.name
    recipe = RECIPES[name]
    epochs = ctx.epochs
    dense_epochs = ctx.config.pop("dense_epochs", None) or epochs
    route = ctx.config.pop("route", None) or "scratch"
    test = _loaders(ctx)[1]
    pruning = _pruning_module()
    history = {}
    shape = ctx.data.input_shape

    # 1. dense baseline, the same recipe
    set_seed(ctx.seed)
    dense = _build_lenet(name, ctx.data, svdo=False)
    ctx.log(f"[{name}] dense, {dense_epochs} epochs")
    h = ctx.fit(dense, phase="dense", epochs=dense_epochs, lr=recipe["lr"],
                batch_size=recipe["batch_size"], lr_flat_fraction=recipe["lr_flat_fraction"])
    history["dense"] = _frame(h, ["epoch", "lr", "data_loss", "train_acc", "test_acc", "seconds"])
    ctx.save_model("dense", dense)

    # 2. Sparse VD with the KL warm-up: from scratch (the paper) or from the trained dense net
    set_seed(ctx.seed)
    if route == "from-dense":
        svdo = from_dense(dense, log_sigma2_init=-10.0)
    else:
        svdo = _build_lenet(name, ctx.data, svdo=True)
    schedule, warm = _warmup(epochs)
    path, rel = ctx.snapshot_path("sparse-vd")
    autosave = None if ctx.checkpoint_dir is None else ctx.checkpoint_dir / "sparse-vd-snapshots.npz"
    rec = SnapshotRecorder(_snapshot_layers(name, svdo), every=max(1, epochs // 10), epochs=epochs,
                           autosave=autosave)
    if autosave is None or not rec.restore(autosave):
        rec.take(0)
    ctx.log(f"[{name}] Sparse VD ({route}), {epochs} epochs")
    h = ctx.fit(svdo, phase="sparse-vd", epochs=epochs, lr=recipe["lr"],
                batch_size=recipe["batch_size"], lr_flat_fraction=recipe["lr_flat_fraction"],
                kl_weight=schedule, callback=rec)
    history["sparse-vd"] = _frame(h, ["epoch", "lr", "kl_weight", "data_loss", "kl", "train_acc",
                                      "test_acc", "sparsity_%", "compression", "seconds"])
    if path is not None:
        rec.save(path)
        ctx.files["snapshots"] = rel
    ctx.save_model("sparse-vd", svdo)

    # 3. magnitude pruning of the trained dense net to Sparse VD's per-layer sparsity, then fine-tune
    amounts = pruning.match_svdo_sparsity(dense, svdo)
    pruned = pruning.magnitude_prune(dense, amounts, permanent=False)  # a copy, masks attached
    before = evaluate(pruned, test)["acc"]
    ft_epochs = max(1, min(10, epochs // 10))
    ctx.log(f"[{name}] magnitude pruning to Sparse VD's sparsity, fine-tune {ft_epochs} epochs")
    # fine-tune at the recipe's learning rate, flat for half the epochs then linear to 0 (at a
    # tenth of it, 10 epochs barely move a net pruned to Sparse VD's ~99 % sparsity)
    h = ctx.fit(pruned, phase="pruning-matched", epochs=ft_epochs, lr=recipe["lr"],
                batch_size=recipe["batch_size"], lr_flat_fraction=0.5)
    history["pruning-matched"] = _frame(h, ["epoch", "lr", "data_loss", "train_acc", "test_acc",
                                            "seconds"])
    pruning.make_permanent(pruned)
    ctx.config["pruned_sparsity"] = pruning.pruned_sparsity(pruned)
    ctx.config.update({"pruning_amounts": [float(a) for a in amounts],
                       "pruning_finetune_epochs": ft_epochs, "pruning_finetune_lr": recipe["lr"],
                       "pruning_finetune_lr_schedule": "flat for half the epochs, then linear to 0"})

    # 4. iterative magnitude pruning at its own operating point (needs a validation split)
    rows_extra, curve = [], []
    if ctx.val is not None:
        it_epochs = ft_epochs
        iterative, curve, info = _iterative_pruning(ctx, dense, test, recipe, it_epochs)
        history["pruning-iterative"] = info["history"]
        ctx.config.update(info["config"])
        rows_extra.append(("pruning-iterative", iterative))
    else:
        ctx.notes.append("no validation split: the iterative pruning row was not run")

    paper = PAPER_TABLE1[name]
    names = LAYER_NAMES[name]

    def row(method, model, counts, extra):
        counts = [(n, total, kept) for n, (_, total, kept) in zip(names, counts)]
        return _table_row(method, model, test, counts,
                          {"label": METHOD_LABELS[method],
                           "val_error_%": None if ctx.val is None else round(_val_error(model, ctx), 3),
                           **extra})

    rows = [
        row("dense", dense, _dense_counts(dense), {"paper_mnist": paper["dense"]}),
        row("sparse-vd", svdo, layer_sparsity(svdo),
            {"paper_mnist": paper["sparse-vd"], "sparsity_string": sparsity_string(svdo)}),
        row("pruning-matched", pruned, _dense_counts(pruned),
            {"error_before_finetune_%": round(100 * (1 - before), 3)}),
    ]
    for method, model in rows_extra:
        rows.append(row(method, model, _dense_counts(model), {"paper_mnist": paper["pruning"]}))
    ctx.config.update({"recipe": recipe, **warm, "threshold": 3.0, "log_sigma2_init": -10.0,
                       "sparse_vd_route": route, "dense_epochs": dense_epochs,
                       "sparse_vd_epochs": epochs, "layers": names,
                       "input_shape": list(shape), "num_classes": ctx.data.num_classes})
    if route == "from-dense":
        ctx.config["sparse_vd_start"] = (f"theta copied from the dense net trained {dense_epochs} "
                                         f"epochs, log_sigma2 = -10 (sparsevd_lab.from_dense)")
    return {"rows": rows, "history": history, "pruning_curve": curve}


# --------------------------------------------------------------------------------------------------
# random labels
# --------------------------------------------------------------------------------------------------

def dropout_mlp(in_features: int = 784, num_classes: int = 10, p: float = 0.5) -> nn.Sequential:
    """LeNet-300-100 with binary (Bernoulli) dropout p after each hidden layer: the paper's dense
    baseline for the random-labels experiment."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 300), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(300, 100), nn.ReLU(), nn.Dropout(p), nn.Linear(100, num_classes))


@torch.no_grad()
def _predictions(model: nn.Module, loader: TensorLoader) -> np.ndarray:
    model.eval()
    return torch.cat([model(x).argmax(1).cpu() for x, _ in loader]).numpy()


def run_random_labels(ctx: Context) -> dict:
    bundle = _data.random_labels(ctx.data, seed=ctx.seed)
    ctx.data = bundle
    epochs = ctx.epochs
    c, hh, ww = bundle.input_shape
    # memorisation needs the learning rate to stay up: no decay (flat fraction 1)
    common = dict(epochs=epochs, lr=1e-3, batch_size=100, lr_flat_fraction=1.0, eval_train=True)
    history, summary = {}, {}
    train, test = _loaders(ctx)
    train_eval = TensorLoader(bundle.x_train, bundle.y_train, 1000, device=ctx.device)
    models = {"dense": dropout_mlp(c * hh * ww, bundle.num_classes, p=0.5),
              "sparse-vd": lenet_300_100(svdo=True, in_features=c * hh * ww,
                                         num_classes=bundle.num_classes)}
    schedule, warm = _warmup(epochs)
    for key, model in models.items():
        set_seed(ctx.seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        ctx.log(f"[random-labels] {key}, {epochs} epochs")
        extra = {"kl_weight": schedule} if key == "sparse-vd" else {}
        h = ctx.fit(model, **common, **extra)
        if "sparsity_%" not in h:
            h["sparsity_%"] = 0.0
        history[key] = _frame(h, ["epoch", "kl_weight", "data_loss", "train_acc", "test_acc",
                                  "sparsity_%", "seconds"])
        preds = _predictions(model, test)
        counts = np.bincount(preds, minlength=bundle.num_classes)
        last = h.iloc[-1]
        summary[key] = {"train_acc": float(evaluate(model, train_eval)["acc"]),
                        "test_acc": float(last["test_acc"]),
                        "sparsity_%": float(last["sparsity_%"]),
                        "test_prediction_majority_fraction": float(counts.max() / counts.sum()),
                        "distinct_test_predictions": int((counts > 0).sum())}
    chance = 1.0 / bundle.num_classes
    summary["chance"] = chance
    summary["claims"] = {
        "dense_memorises (train acc >= 0.9)": summary["dense"]["train_acc"] >= 0.9,
        "sparse_vd_removes_weights (sparsity >= 99%)": summary["sparse-vd"]["sparsity_%"] >= 99.0,
        "sparse_vd_train_acc_near_chance (<= chance + 0.05)":
            summary["sparse-vd"]["train_acc"] <= chance + 0.05,
    }
    ctx.config.update({"dense_model": "LeNet-300-100 with nn.Dropout(p=0.5) after each hidden layer",
                       "svdo_model": "LeNet-300-100 Sparse VD", "lr": 1e-3, "lr_schedule": "flat",
                       "batch_size": 100, **warm, "label_seed": ctx.seed})
    return {"history": history, "summary": summary}


# --------------------------------------------------------------------------------------------------
# regression sweep (the pytorch_ard Boston table, on diabetes)
# --------------------------------------------------------------------------------------------------

# KL weights (pytorch_ard calls them "reg factors": the multiplier of the KL term)
REG_FACTORS = (0.0, 1e-4, 1e-3, 0.1, 1.0)


def run_regression_sweep(ctx: Context, kl_weights=REG_FACTORS) -> dict:
    bundle = ctx.data
    epochs = ctx.epochs
    batch = bundle.train_size  # full batch, as pytorch_ard
    every = max(1, epochs // 50)
    train, test = bundle.loaders(batch, seed=ctx.seed, device=ctx.device)
    rows, history = [], {}
    settings = [("dense", None)] + [("sparse-vd", float(r)) for r in kl_weights]
    for model_name, reg in settings:
        set_seed(ctx.seed)
        model = mlp_regressor(bundle.input_shape[0], svdo=model_name == "sparse-vd")
        key = "dense" if reg is None else f"{reg:g}"
        ctx.log(f"[regression-sweep] {model_name} reg factor {key}, {epochs} full-batch epochs")
        extra = {} if reg is None else {"kl_weight": reg}
        h = ctx.fit(model, epochs=epochs, lr=1e-3, batch_size=batch, lr_flat_fraction=1.0,
                    eval_train=True, eval_every=every, **extra)
        hs = h[(h.epoch % every == 0) | (h.epoch == epochs)]
        history[key] = _frame(hs, ["epoch", "data_loss", "kl", "train_mse", "test_mse", "sparsity_%"])
        tr, te = evaluate(model, train, "regression")["mse"], evaluate(model, test, "regression")["mse"]
        if reg is None:
            comp, per = 0.0, ""
        else:
            rs = layer_sparsity(model)
            comp = 100.0 * (1 - sum(k for *_, k in rs) / sum(n for _, n, _ in rs))
            per = sparsity_string(model)
        best = min((v for v in history[key]["test_mse"] if v is not None), default=te)
        rows.append({"model": model_name, "kl_weight": reg, "train_mse": tr, "test_mse": te,
                     "best_test_mse_during_training": best, "sparsity_%": comp,
                     "sparsity_per_layer": per,
                     "ard_boston": dict(zip(("train_mse", "test_mse", "sparsity_%"),
                                            ARD_BOSTON_TABLE[key]))})
    dense_test = rows[0]["test_mse"]
    beats = [r["kl_weight"] for r in rows[1:] if r["test_mse"] < dense_test]
    ctx.config.update({"model": "mlp_regressor: 1 hidden layer of 150 ReLU units",
                       "optimizer": "Adam 1e-3, flat", "batch_size": batch,
                       "kl_weight": "constant = reg factor (no warm-up)", "threshold": 3.0,
                       "kl_weights": list(kl_weights),
                       "mse_units": "standardised target (a constant predictor scores ~1)"})
    return {"rows": rows, "history": history,
            "summary": {"dense_test_mse": dense_test, "kl_weights_beating_dense": beats}}


# --------------------------------------------------------------------------------------------------
# classification sweep: reg factor x threshold
# --------------------------------------------------------------------------------------------------

SWEEP_KL_WEIGHTS = (0.1, 0.3, 1.0, 3.0, 10.0)
SWEEP_THRESHOLDS = tuple(round(0.5 * i, 1) for i in range(11))  # 0, 0.5, ..., 5


@torch.no_grad()
def threshold_sweep(model: nn.Module, test: TensorLoader, thresholds) -> list[dict]:
    """Re-mask a trained Sparse VD model at each threshold (no retraining) and evaluate it."""
    layers = [m for _, m in svdo_layers(model)]
    saved = [m.threshold for m in layers]
    out = []
    try:
        for t in thresholds:
            for m in layers:
                m.threshold = t
            acc = evaluate(model, test)["acc"]
            rows = layer_sparsity(model, t)
            total, kept = sum(n for _, n, _ in rows), sum(k for *_, k in rows)
            sp = [100.0 * (1 - k / n) for _, n, k in rows]
            out.append({"threshold": float(t), "error_%": round(100 * (1 - acc), 3),
                        "test_acc": acc, "layer_sparsity_%": [round(s, 3) for s in sp],
                        "sparsity_per_layer": "-".join(f"{s:.1f}" for s in sp),
                        "sparsity_%": round(100 * (1 - kept / total), 3),
                        "compression": total / kept if kept else float("inf"), "kept": int(kept)})
    finally:
        for m, t in zip(layers, saved):
            m.threshold = t
    return out


def run_classification_sweep(ctx: Context, kl_weights=SWEEP_KL_WEIGHTS,
                             thresholds=SWEEP_THRESHOLDS) -> dict:
    chosen = ctx.config.pop("kl_weights", None)
    if ctx.fast:
        kl_weights, thresholds = (0.1, 1.0), (0.0, 3.0, 5.0)
    if chosen:
        kl_weights = tuple(chosen)
    recipe = RECIPES["lenet300"]
    test = _loaders(ctx)[1]
    c, h, w = ctx.data.input_shape
    points, history, layers = [], {}, []
    for kw in kl_weights:
        set_seed(ctx.seed)
        model = lenet_300_100(svdo=True, in_features=c * h * w, num_classes=ctx.data.num_classes)
        schedule, warm = _warmup(ctx.epochs, max_weight=kw)
        ctx.log(f"[classification-sweep] KL weight {kw:g}, {ctx.epochs} epochs")
        hist = ctx.fit(model, phase=f"kl-weight-{kw:g}", epochs=ctx.epochs, lr=recipe["lr"],
                       batch_size=recipe["batch_size"], lr_flat_fraction=recipe["lr_flat_fraction"],
                       kl_weight=schedule)
        history[f"{kw:g}"] = _frame(hist, ["epoch", "kl_weight", "test_acc", "sparsity_%"])
        layers = LAYER_NAMES["lenet300"]
        val = None if ctx.val is None else round(_val_error(model, ctx), 3)
        for p in threshold_sweep(model, test, thresholds):
            points.append({"kl_weight": float(kw), **p,
                           **({"val_error_%_at_3": val} if p["threshold"] == 3.0 else {})})
    ctx.config.update({"model": "LeNet-300-100 Sparse VD", "recipe": recipe,
                       "kl_weight": "the authors' warm-up scaled to its final value, the KL weight "
                                    "of each run (pytorch_ard calls it the reg factor)",
                       **{k: v for k, v in warm.items() if k != "kl_weight_max"}})
    return {"kl_weights": [float(r) for r in kl_weights], "thresholds": [float(t) for t in thresholds],
            "layers": layers, "points": points, "history": history}


# --------------------------------------------------------------------------------------------------
# VGG-like on CIFAR-10 (cannot run offline; a synthetic stand-in tests the path)
# --------------------------------------------------------------------------------------------------

def synthetic_cifar(n_train: int = 512, n_test: int = 256, seed: int = 0) -> DataBundle:
    """Random 3x32x32 images with a class-dependent mean pattern: a learnable stand-in for CIFAR-10
    that exercises the VGG-like path offline. Not CIFAR-10; numbers from it mean nothing."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(10, 3, 32, 32, generator=g)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randn(n, 3, 32, 32, generator=g) + 0.5 * patterns[y]
        return x, y

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    return DataBundle("synthetic CIFAR-like", f"sparsevd_lab.experiments.synthetic_cifar(seed={seed}) "
                      f"(random tensors, not CIFAR-10)", x_tr, y_tr, x_te, y_te)


def run_vgg_like(ctx: Context) -> dict:
    recipe = RECIPES["vgg_like"]
    k = 0.125 if ctx.fast or ctx.dataset == "synthetic-cifar" else 1.0
    epochs = ctx.epochs
    test = _loaders(ctx)[1]
    history = {}
    set_seed(ctx.seed)
    dense = vgg_like(svdo=False, k=k, num_classes=ctx.data.num_classes)
    ctx.log(f"[vgg-like] dense pre-training (k={k}), {epochs} epochs, Adam 1e-3")
    h = ctx.fit(dense, epochs=epochs, lr=1e-3, batch_size=recipe["batch_size"], lr_flat_fraction=0.5)
    history["dense"] = _frame(h, ["epoch", "lr", "data_loss", "train_acc", "test_acc", "seconds"])
    svdo = from_dense(dense, log_sigma2_init=-15.0)
    schedule, warm = _warmup(epochs)
    ctx.log(f"[vgg-like] Sparse VD from the pretrained net, {epochs} epochs, Adam {recipe['lr']:g}")
    h = ctx.fit(svdo, epochs=epochs, lr=recipe["lr"], batch_size=recipe["batch_size"],
                lr_flat_fraction=recipe["lr_flat_fraction"], kl_weight=schedule)
    history["sparse-vd"] = _frame(h, ["epoch", "lr", "kl_weight", "data_loss", "kl", "train_acc",
                                      "test_acc", "sparsity_%", "compression", "seconds"])
    rows = [_table_row("dense", dense, test, _dense_counts(dense)),
            _table_row("sparse-vd", svdo, test, layer_sparsity(svdo),
                       {"sparsity_string": sparsity_string(svdo)})]
    ctx.config.update({"width_factor_k": k, "pretrain": "dense, Adam 1e-3, same epochs",
                       "finetune_recipe": recipe, "log_sigma2_init": -15.0, **warm})
    return {"rows": rows, "history": history}


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
    Experiment("vgg-like", run_vgg_like, ("cifar10", "synthetic-cifar"), "cifar10", 200, 1,
               (128, 64), "VGG-like on CIFAR-10 from a pretrained dense net (needs the network)"),
)}

_LOADERS = {"offline-digits": lambda: _data.load_offline_digits(verbose=False),
            "fashion-mnist": lambda: _data.load_fashion_mnist(verbose=False),
            "mnist": lambda: _data.load_mnist(verbose=False),
            "diabetes": lambda: _data.load_regression(verbose=False),
            "cifar10": lambda: _data.load_cifar10(verbose=False),
            "synthetic-cifar": lambda: synthetic_cifar()}


def load_experiment_data(dataset: str) -> DataBundle:
    """Load a data set by the experiments' name for it (may raise ``OfflineError``)."""
    if dataset not in _LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(_LOADERS)}")
    return _LOADERS[dataset]()


# Validation examples held out of the training set for the choices a run makes (the iterative
# pruning's operating point); the test set is never used to choose anything.
VAL_SIZES = {"fashion-mnist": 5000, "mnist": 5000, "offline-digits": 500}
VAL_EXPERIMENTS = ("lenet300", "lenet5", "classification-sweep")


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
    if epochs == exp.paper_epochs:
        return f"the paper's recipe: {epochs} epochs"
    return (f"cut to {epochs} epochs from the recipe's {exp.paper_epochs} (CPU time budget); "
            f"rerun with --epochs {exp.paper_epochs} for the full recipe")


def run_experiment(name: str, dataset: str | None = None, *, epochs: int | None = None,
                   seed: int = 0, out: str | os.PathLike | None = None, fast: bool | None = None,
                   device: str = "auto", progress: bool = False, data: DataBundle | None = None,
                   command: str | None = None, resume: bool = False,
                   checkpoint_dir: str | os.PathLike | None = None, val_size: int | None = None,
                   dense_epochs: int | None = None, route: str = "scratch",
                   kl_weights: tuple[float, ...] | None = None) -> dict:
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
    started = time.time()
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
    if kl_weights is not None:
        if name != "classification-sweep":
            raise ValueError(f"kl_weights applies to classification-sweep, not {name!r}")
        bad = [w for w in kl_weights if not (isinstance(w, (int, float)) and w >= 0)]
        if not kl_weights or bad:
            raise ValueError(f"kl_weights must be numbers >= 0; got {list(kl_weights)}")
        ctx.config["kl_weights"] = [float(w) for w in kl_weights]
    results = exp.runner(ctx)
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
                                        "resumed_checkpoints": ckdir is not None}),
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
