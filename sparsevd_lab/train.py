"""Training: ``fit`` with the authors' recipes (KL warm-up, linear learning-rate decay, Adam), a per-epoch
history that notebooks plot, seeds and CPU/CUDA choice. Works for dense and Sparse VD models.

Introduced in notebook 03.
"""
from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, run_config, save_checkpoint, set_rng_state
from .data import DataBundle, TensorLoader
from .layers import svdo_layers
from .objective import SGVLB, kl_warmup
from .reports import layer_sparsity

__all__ = ["set_seed", "resolve_device", "lr_factor", "make_optimizer", "evaluate", "fit", "RECIPES"]

# The authors' recipes (their Theano code, github.com/ars-ashuha/variational-dropout-sparsifies-dnn;
# docs/results.md): epochs, batch, lr, and the fraction of the run during which the learning rate
# stays flat before decaying linearly to 0.
RECIPES = {
    "lenet300": {"epochs": 200, "batch_size": 100, "lr": 1e-3, "lr_flat_fraction": 0.5},
    "lenet5": {"epochs": 200, "batch_size": 100, "lr": 1e-3, "lr_flat_fraction": 0.0},
    "vgg_like": {"epochs": 200, "batch_size": 100, "lr": 1e-5, "lr_flat_fraction": 0.5},
}


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is visible; use device='cpu' "
                           "or 'auto' (on Colab: Runtime > Change runtime type > GPU)")
    return device


def lr_factor(epoch: int, epochs: int, flat_fraction: float = 0.5) -> float:
    """Learning-rate multiplier: 1 for the first ``flat_fraction`` of the run, then linear to 0.

    flat_fraction=0.5 over 200 epochs is the authors' LeNet-300-100 schedule (flat to 100, then to
    0 at 200); flat_fraction=0 is their LeNet-5 schedule (linear decay from the start).
    """
    flat = int(round(flat_fraction * epochs))
    if epoch < flat:
        return 1.0
    return max(0.0, 1.0 - (epoch - flat) / max(1, epochs - flat))


def make_optimizer(model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with weight decay on theta and biases only: never on ``log_sigma2`` (decay would pull
    log sigma^2 towards 0, i.e. sigma towards 1, a huge noise that has nothing to do with the prior)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("log_sigma2") and weight_decay else decay).append(p)
    # Without decay one group suffices: each group is one more optimizer kernel launch per step.
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    # The fused Adam kernel does one pass per tensor instead of about seven: it matters more with
    # Sparse VD, which has two tensors (theta and log_sigma2) per weight matrix.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
                for g in groups for p in g["params"])
    return torch.optim.Adam(groups, lr=lr, fused=fused or None)


@torch.no_grad()
def evaluate(model: nn.Module, loader: TensorLoader, task: str = "classification") -> dict[str, float]:
    """Eval-mode loss and accuracy (classification) or MSE (regression) over a loader."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # running sums on the device, read once at the end (a float() per batch waits for the GPU)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        if task == "classification":
            loss_sum += F.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
        else:
            loss_sum += F.mse_loss(out, y, reduction="sum")
        total += len(x)
    model.train(was_training)
    if task == "classification":
        return {"loss": float(loss_sum) / total, "acc": int(correct) / total}
    return {"mse": float(loss_sum) / total}


def fit(
    model: nn.Module,
    data: DataBundle | tuple[TensorLoader, TensorLoader | None],
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 100,
    kl_weight: float | Callable[[int], float] = kl_warmup,
    lr_flat_fraction: float = 0.5,
    weight_decay: float = 0.0,
    train_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    eval_train: bool = False,
    eval_every: int = 1,
    callback: Callable[[int, nn.Module, dict], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place and return a per-epoch history (one row per epoch).

    ``data`` is a ``DataBundle`` or a (train_loader, test_loader) pair. For a Sparse VD model the
    loss is ``SGVLB`` with N = ``train_size`` (default: the size of the training set) and a KL
    weight from ``kl_weight`` (a number, or a function of the 0-based epoch; default the authors'
    warm-up: 0 for 5 epochs, linear to 1 by epoch 20). A dense model trains on the data loss alone.
    Columns: epoch, lr, kl_weight, data_loss, kl, train_acc / train_mse (train mode, running; with
    ``eval_train`` an eval-mode pass over the training set), test_acc / test_mse, sparsity_%,
    compression, seconds. ``callback(epoch, model, row)`` runs after each epoch.

    ``checkpoint``: a file path. After every epoch the whole state of the run (model, optimiser,
    scheduler, random states, history) is written there atomically; when the file exists, ``fit``
    checks that it belongs to this model and configuration, continues after its last finished epoch
    and returns the whole history, every epoch once. On the CPU the resumed run ends with the same
    weights as an uninterrupted one. A checkpoint of another run, or a corrupt one, raises
    ``CheckpointError`` naming the file; nothing is loaded then.
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    epochs = int(epochs)
    set_seed(seed)
    device = resolve_device(device)
    model.to(device)
    if isinstance(data, DataBundle):
        task = data.task
        train_loader, test_loader = data.loaders(batch_size, seed=seed, device=device)
    else:
        train_loader, test_loader = data
        task = "regression" if train_loader.y.is_floating_point() else "classification"
    n = train_size if train_size is not None else train_loader.num_examples
    data_loss = F.cross_entropy if task == "classification" else F.mse_loss
    is_svdo = bool(svdo_layers(model))
    objective = SGVLB(model, n, loss=data_loss) if is_svdo else None
    schedule = kl_weight if callable(kl_weight) else (lambda _e, w=float(kl_weight): w)
    optimizer = make_optimizer(model, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, epochs, lr_flat_fraction))

    history: list[dict] = []
    first = 0
    generator = getattr(train_loader, "generator", None)
    if checkpoint is not None:
        config = run_config(
            model, epochs=epochs, lr=float(lr), batch_size=int(getattr(train_loader, "batch_size", batch_size)),
            lr_flat_fraction=float(lr_flat_fraction), weight_decay=float(weight_decay), train_size=int(n),
            seed=int(seed), task=task, train_examples=int(train_loader.num_examples),
            kl_weights=[float(schedule(e)) for e in range(epochs)] if is_svdo else [])
        if Path(checkpoint).exists():
            state = load_checkpoint(checkpoint, config)  # verified before anything is loaded
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"], generator)
            history = list(state["history"])
            first = int(state["epoch"])
            if progress:
                print(f"fit: resuming from {checkpoint} after epoch {first} of {epochs}", flush=True)

    bar = range(first, epochs)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=f"fit {'Sparse VD' if is_svdo else 'dense'}", unit="epoch", leave=False,
                   initial=first, total=epochs)
    key = "acc" if task == "classification" else "mse"
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        if objective is not None:
            objective.kl_weight = schedule(epoch)
        # Running sums stay on the device and are read once per epoch: a float() per step would
        # wait for the GPU at every step.
        sum_data = torch.zeros((), dtype=torch.float64, device=device)
        sum_metric = torch.zeros((), dtype=torch.float64, device=device)
        last_kl = torch.zeros((), device=device)
        count = 0
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            if objective is not None:
                loss = objective(out, y)
                data_term, last_kl = objective.last_terms
            else:
                loss = data_loss(out, y)
                data_term = loss.detach()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                sum_data += data_term * len(x)
                if task == "classification":
                    sum_metric += (out.argmax(1) == y).sum()
                else:
                    sum_metric += F.mse_loss(out, y, reduction="sum")
            count += len(x)
        epoch_data = float(sum_data) / count
        if not math.isfinite(epoch_data):
            raise FloatingPointError(f"training diverged at epoch {epoch} (data loss is not finite); "
                                     f"lower the learning rate")
        epoch_lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row = {"epoch": epoch + 1, "lr": epoch_lr,
               "kl_weight": objective.kl_weight if objective else 0.0,
               "data_loss": epoch_data, "kl": float(last_kl) if objective else 0.0,
               f"train_{key}": float(sum_metric) / count}
        last = epoch + 1 == epochs
        if eval_train and (last or (epoch + 1) % eval_every == 0):
            row[f"train_{key}"] = evaluate(model, train_loader, task)[key]
        if test_loader is not None and (last or (epoch + 1) % eval_every == 0):
            row[f"test_{key}"] = evaluate(model, test_loader, task)[key]
        if is_svdo:
            rows = layer_sparsity(model)
            total, kept = sum(r[1] for r in rows), sum(r[2] for r in rows)
            row["sparsity_%"] = 100.0 * (1 - kept / total)
            row["compression"] = total / kept if kept else float("inf")
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if checkpoint is not None:
            # written after the epoch is complete (and before the callback, which may stop the
            # run): a resumed run repeats no epoch and skips none
            save_checkpoint(checkpoint, config=config, epoch=epoch + 1, model=model,
                            optimizer=optimizer, scheduler=scheduler, history=history,
                            loader_generator=generator)
        if progress:
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.startswith("test_")
                             or k == "sparsity_%"})
        if callback is not None:
            callback(epoch, model, row)
    model.eval()
    return pd.DataFrame.from_records(history)
