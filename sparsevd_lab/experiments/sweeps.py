"""The other experiments: random labels, the regression sweep (pytorch_ard's table), the classification
sweep over (KL weight, threshold), and the VGG-like network on CIFAR-10."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import data as _data
from ..data import DataBundle, TensorLoader
from ..layers import svdo_layers
from ..models import from_dense, lenet_300_100, mlp_regressor, vgg_like
from ..reports import layer_sparsity, sparsity_string
from ..train import RECIPES, evaluate, set_seed

from .context import ARD_BOSTON_TABLE, Context, _dense_counts, _frame, _loaders, _table_row, _warmup
from .lenet import LAYER_NAMES, _val_error

__all__ = ["run_random_labels", "run_regression_sweep", "run_classification_sweep", "run_vgg_like",
           "dropout_mlp", "threshold_sweep", "synthetic_cifar"]

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
    """``sparsevd_lab.data.load_synthetic_cifar``: random CIFAR-like tensors, not CIFAR-10."""
    return _data.load_synthetic_cifar(n_train, n_test, seed, verbose=False)


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
