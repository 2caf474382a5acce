"""Table 1 of the paper: LeNet-300-100 and LeNet-5, dense, magnitude pruning and Sparse VD (``run_lenet``)."""
from __future__ import annotations

import copy

from torch import nn

from ..checkpoint import weights_id
from ..data import DataBundle, TensorLoader
from ..layers import svdo_layers
from ..models import from_dense, lenet5, lenet_300_100
from ..reports import METHOD_NAMES, layer_sparsity, sparsity_string
from ..train import RECIPES, evaluate, set_seed
from .common import SnapshotRecorder

from .context import (PAPER_TABLE1, Context, _dense_counts, _frame, _loaders, _pruning_module, _table_row,
                      _warmup)

__all__ = ["run_lenet", "LAYER_NAMES", "METHOD_LABELS"]

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
METHOD_LABELS = METHOD_NAMES  # one name per method (sparsevd_lab.reports)

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
        # the start of this run is the pruned net (its mask decides what can train): say so
        h = ctx.fit(current, phase=f"pruning-iterative-{step:02d}", epochs=ft_epochs,
                    lr=recipe["lr"], batch_size=recipe["batch_size"], lr_flat_fraction=0.5,
                    init_id=f"pruned {weights_id(current)}")
        history[f"{step:02d}"] = _frame(h, ["epoch", "data_loss", "train_acc", "test_acc", "seconds"])
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


# The long training phases of a Table 1 run. With --resume each has its own checkpoint, so a run
# can be split over processes: ``phases`` trains only some of them (into the checkpoints, no result
# file); a final run without ``phases`` finds them finished, fine-tunes the short matched-pruning
# row and writes the result.
PHASES = ("dense", "sparse-vd", "pruning-iterative")


def _finetune_epochs(epochs: int) -> int:
    """Fine-tuning epochs after pruning (per step for the iterative row): a tenth of the run, <= 10."""
    return max(1, min(10, epochs // 10))


def run_lenet(ctx: Context) -> dict | None:
    """Dense, Sparse VD, pruning to Sparse VD's sparsity, iterative pruning; ``None`` when
    ``ctx.config["phases"]`` names only some phases (they are trained into the checkpoints)."""
    name = ctx.name
    recipe = RECIPES[name]
    epochs = ctx.epochs
    dense_epochs = ctx.config.pop("dense_epochs", None) or epochs
    route = ctx.config.pop("route", None) or "scratch"
    only = ctx.config.pop("phases", None)
    if only is not None:  # checked by run_experiment: known phases, checkpoints on
        # a phase that needs an earlier one runs it too (a finished checkpoint returns at once):
        # give each phase to one process, or two processes train the same checkpoint
        needs = {"sparse-vd": ["dense"] if route == "from-dense" else [],
                 "pruning-iterative": ["dense"]}
        only = set(only)
        for p in list(only):
            only.update(needs.get(p, []))
    test = _loaders(ctx)[1]
    pruning = _pruning_module()
    history = {}
    shape = ctx.data.input_shape

    def skip(phase: str) -> bool:
        return only is not None and phase not in only

    # 1. dense baseline, the same recipe
    set_seed(ctx.seed)
    dense = _build_lenet(name, ctx.data, svdo=False)
    if not skip("dense"):
        ctx.log(f"[{name}] dense, {dense_epochs} epochs")
        h = ctx.fit(dense, phase="dense", epochs=dense_epochs, lr=recipe["lr"],
                    batch_size=recipe["batch_size"], lr_flat_fraction=recipe["lr_flat_fraction"])
        history["dense"] = _frame(h, ["epoch", "lr", "data_loss", "train_acc", "test_acc",
                                      "seconds"])
    if only is None:
        ctx.save_model("dense", dense)

    # 2. Sparse VD with the KL warm-up: from scratch (the paper) or from the trained dense net
    set_seed(ctx.seed)
    if route == "from-dense":
        svdo = from_dense(dense, log_sigma2_init=-10.0)
    else:
        svdo = _build_lenet(name, ctx.data, svdo=True)
    schedule, warm = _warmup(epochs)
    path, rel = ctx.snapshot_path("sparse-vd")
    if not skip("sparse-vd"):
        autosave = (None if ctx.checkpoint_dir is None
                    else ctx.checkpoint_dir / "sparse-vd-snapshots.npz")
        rec = SnapshotRecorder(_snapshot_layers(name, svdo), every=max(1, epochs // 10),
                               epochs=epochs, autosave=autosave)
        if autosave is None or not rec.restore(autosave):
            rec.take(0)
        ctx.log(f"[{name}] Sparse VD ({route}), {epochs} epochs")
        # from a dense net the start is that net's weights: part of the run's identity
        start = {"init_id": f"from-dense {weights_id(dense)}"} if route == "from-dense" else {}
        h = ctx.fit(svdo, phase="sparse-vd", epochs=epochs, lr=recipe["lr"],
                    batch_size=recipe["batch_size"], lr_flat_fraction=recipe["lr_flat_fraction"],
                    kl_weight=schedule, callback=rec, **start)
        history["sparse-vd"] = _frame(h, ["epoch", "lr", "kl_weight", "data_loss", "kl",
                                          "train_acc", "test_acc", "sparsity_%", "compression",
                                          "seconds"])
    if only is not None:  # trained into the checkpoints only; the full run writes the files
        if "pruning-iterative" in only and ctx.val is not None:
            _iterative_pruning(ctx, dense, test, recipe, _finetune_epochs(epochs))
        ctx.log(f"[{name}] phases {', '.join(p for p in PHASES if p in only)} are in "
                f"{ctx.checkpoint_dir}; run without phases to write the result")
        return None
    if path is not None:
        rec.save(path)
        ctx.files["snapshots"] = rel
    ctx.save_model("sparse-vd", svdo)

    # 3. magnitude pruning of the trained dense net to Sparse VD's per-layer sparsity, then fine-tune
    amounts = pruning.match_svdo_sparsity(dense, svdo)
    pruned = pruning.magnitude_prune(dense, amounts, permanent=False)  # a copy, masks attached
    before = evaluate(pruned, test)["acc"]
    ft_epochs = _finetune_epochs(epochs)
    ctx.log(f"[{name}] magnitude pruning to Sparse VD's sparsity, fine-tune {ft_epochs} epochs")
    # fine-tune at the recipe's learning rate, flat for half the epochs then linear to 0 (at a
    # tenth of it, 10 epochs barely move a net pruned to Sparse VD's ~99 % sparsity)
    h = ctx.fit(pruned, phase="pruning-matched", epochs=ft_epochs, lr=recipe["lr"],
                batch_size=recipe["batch_size"], lr_flat_fraction=0.5,
                init_id=f"pruned {weights_id(pruned)}")
    history["pruning-matched"] = _frame(h, ["epoch", "lr", "data_loss", "train_acc", "test_acc",
                                            "seconds"])
    pruning.make_permanent(pruned)
    by_index = pruning.pruned_sparsity(pruned)  # keyed by module name ("1", "3", ...) and "total"
    ctx.config["pruned_sparsity"] = {
        **dict(zip(LAYER_NAMES[name], (v for k, v in by_index.items() if k != "total"))),
        "total": by_index["total"]}
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
