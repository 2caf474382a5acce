"""Training: ``fit`` with the authors' recipes (KL warm-up, linear learning-rate decay, Adam), a per-epoch
history that notebooks plot, seeds and CPU/CUDA choice. Works for dense and Sparse VD models.

Introduced in notebook 03.
"""
from __future__ import annotations

import math
import numbers
import os
import random
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, run_config, save_checkpoint, set_rng_state
from .data import DataBundle, TensorLoader
from .files import check_file_path
from .layers import svdo_layers
from .objective import SGVLB, kl_warmup
from .reports import layer_sparsity

__all__ = ["set_seed", "resolve_device", "lr_factor", "make_optimizer", "evaluate", "fit", "RECIPES",
           "TASKS", "check_targets"]

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


TASKS = ("classification", "regression")


def _whole(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int; a clear ValueError for 2.5, True, "3" or a value below ``minimum``."""
    ok = (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or \
        (isinstance(value, float) and value.is_integer())
    if not ok:
        hint = f"; pass {name}={math.floor(value)} or {math.ceil(value)}" \
            if isinstance(value, float) and math.isfinite(value) else ""
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value!r}{hint}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return int(value)


def _model_device(model: nn.Module) -> torch.device:
    """Where the model lives: its first parameter or buffer; the CPU for a model with neither."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _is_loader(obj) -> bool:
    return isinstance(obj, (TensorLoader, DataLoader))


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    return task


def check_targets(y: Tensor, out: Tensor, task: str) -> None:
    """A clear error when the labels (targets) ``y`` do not fit the model's output ``out`` for
    ``task``: one-hot or float labels for classification, labels outside 0..C-1 (e.g. 1..10),
    integer or mis-shaped regression targets. Called on the whole label tensor, or on a batch."""
    if task == "classification":
        if y.is_floating_point() or y.dim() != 1:
            kind = "one-hot" if y.dim() == 2 and y.is_floating_point() else f"{str(y.dtype)[6:]} {tuple(y.shape)}"
            raise ValueError(
                f"classification needs class indices (int64, shape (N,)); got {kind} labels. "
                f"One-hot labels: pass y.argmax(1); regression targets: pass task='regression'")
        if y.dtype == torch.bool or not y.numel():
            return
        classes = out.shape[1] if out.dim() >= 2 else 1
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= classes:
            fix = (f"they look 1-based: pass y - 1" if (lo, hi) == (1, classes)
                   else f"remap them to 0..{classes - 1}, or build the model with {hi + 1} outputs")
            raise ValueError(f"class labels must be 0..{classes - 1} for a model with {classes} "
                             f"outputs; got labels {lo}..{hi}: {fix}")
    else:
        if not y.is_floating_point():
            raise ValueError(f"regression targets must be floating-point; got {y.dtype}: pass "
                             f"y.float() (or task='classification' for class labels)")
        if tuple(y.shape[1:]) != tuple(out.shape[1:]):
            raise ValueError(f"regression targets of shape (N, {', '.join(map(str, y.shape[1:]))}) "
                             f"do not match the model's output (N, {', '.join(map(str, out.shape[1:]))}); "
                             f"pass y.reshape(-1, {', '.join(map(str, out.shape[1:]))}) or change the model")


def _probe(model: nn.Module, x: Tensor, device: torch.device) -> Tensor:
    """The model's eval-mode output on one example (draws no random number): the input checks run
    here, before any training, and the output's shape is what the labels are checked against."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if not x.is_floating_point():
        raise ValueError(f"the inputs are {x.dtype}; the model needs floating-point inputs: pass "
                         f"X.float() (images: X.float() / 255)")
    if param is not None and x.dtype != param.dtype:
        raise ValueError(f"the inputs are {x.dtype} and the model's weights {param.dtype}: pass "
                         f"X.to({param.dtype}) (or convert the model, e.g. model.double())")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x[:1].to(device))
    except RuntimeError as err:  # a plain torch layer's shape error: say what was fed
        raise ValueError(f"the model cannot read one training example of shape "
                         f"{tuple(x[:1].shape)} ({str(err).splitlines()[0]}); check that the "
                         f"model's input size matches the data") from err
    finally:
        model.train(was_training)


def _device_budget(device: torch.device) -> int | None:
    """Bytes of data that ``fit`` keeps on ``device``: half of the free memory on a GPU (the rest is
    for the model, its gradients, Adam's state and the activations); None on the CPU, where the
    tensors already are in memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free // 2
    return None


def _nbytes(*tensors: Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: str = "classification") -> dict[str, float]:
    """Eval-mode loss and accuracy (classification) or MSE (regression) over ``loader``: a
    ``TensorLoader``, a torch ``DataLoader`` or an ``(X, y)`` pair of tensors."""
    _check_task(task)
    if isinstance(loader, (tuple, list)) and len(loader) == 2 and all(torch.is_tensor(t) for t in loader):
        loader = TensorLoader(loader[0], loader[1], 1000)
    if not (_is_loader(loader) or hasattr(loader, "__iter__")):
        raise TypeError(f"evaluate expects a TensorLoader, a torch DataLoader or (X, y) tensors; "
                        f"got {type(loader).__name__}")
    was_training = model.training
    model.eval()
    device = _model_device(model)  # a model without parameters (e.g. nn.Identity) runs on the CPU
    # running sums on the device, read once at the end (a float() per batch waits for the GPU)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            if total == 0:
                check_targets(y, out, task)
            if task == "classification":
                loss_sum += F.cross_entropy(out, y, reduction="sum")
                correct += (out.argmax(1) == y).sum()
            else:
                loss_sum += F.mse_loss(out, y, reduction="sum")
            total += len(x)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate got no examples: the loader is empty")
    if task == "classification":
        return {"loss": float(loss_sum) / total, "acc": int(correct) / total}
    return {"mse": float(loss_sum) / total}


class _DeviceBatches:
    """The training set as tensors on the device, iterated by a permutation drawn from
    ``generator`` (a CPU ``torch.Generator``, as ``TensorLoader`` draws it): no DataLoader, no copy
    per step, and the same batches in the same order as ``TensorLoader(x, y, batch_size,
    shuffle=True)`` with the same seed."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator

    @property
    def num_examples(self) -> int:
        return len(self.x)

    def __iter__(self):
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator).to(self.x.device)  # once per epoch
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


def _describe(data) -> str:
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)}: ({', '.join(type(d).__name__ for d in data)})"
    return f"a {type(data).__name__}"


def _split_data(data):
    """(tensors, loaders, bundle task): tensors = (X, y, X_test, y_test) or None; loaders =
    (train, test) or None."""
    if isinstance(data, DataBundle):
        return (data.x_train, data.y_train, data.x_test, data.y_test), None, data.task
    if isinstance(data, (tuple, list)):
        if len(data) in (2, 4) and all(torch.is_tensor(t) for t in data):
            x, y, *test = data
            xt, yt = test if test else (None, None)
            for a, b, what in ((x, y, "X and y"), (xt, yt, "X_test and y_test")):
                if a is not None and len(a) != len(b):
                    raise ValueError(f"{what} differ in length: {len(a)} vs {len(b)}")
            if not len(x):
                raise ValueError("the training set is empty")
            return (x, y, xt, yt), None, None
        if len(data) == 2 and _is_loader(data[0]) and (data[1] is None or _is_loader(data[1])):
            return None, tuple(data), None
    raise TypeError(
        f"fit's data must be a DataBundle (e.g. sparsevd_lab.load_dataset('fashion-mnist')), tensors "
        f"(X, y) or (X, y, X_test, y_test), or a (train_loader, test_loader) pair of torch "
        f"DataLoaders or TensorLoaders (test_loader may be None); got {_describe(data)}"
        + (". NumPy arrays: convert with torch.as_tensor" if isinstance(data, (tuple, list)) and
           any(isinstance(d, np.ndarray) for d in data) else "")
        + (". One loader alone: pass (loader, None)" if _is_loader(data) else ""))


def fit(
    model: nn.Module,
    data: DataBundle | tuple,
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
    task: str | None = None,
    resident: bool | None = None,
    init_id: str | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place and return a per-epoch history (one row per epoch).

    ``data``: a ``DataBundle``; tensors ``(X, y)`` or ``(X, y, X_test, y_test)``; or a
    ``(train_loader, test_loader)`` pair of torch ``DataLoader``s or ``TensorLoader``s
    (``test_loader`` may be None).

    ``task``: "classification" (cross-entropy, accuracy; labels are class indices 0..C-1) or
    "regression" (MSE). A DataBundle carries its own; otherwise the default is "classification".
    It is never guessed from the labels' dtype: float or one-hot labels are an error that says
    what to pass.

    For a Sparse VD model the loss is ``SGVLB`` with N = ``train_size`` (default: the size of the
    training set) and a KL weight from ``kl_weight`` (a number, or a function of the 0-based epoch;
    default the authors' warm-up: 0 for 5 epochs, linear to 1 by epoch 20). A dense model trains on
    the data loss alone. Columns: epoch, lr, kl_weight, data_loss, kl, train_acc / train_mse (train
    mode, running; with ``eval_train`` an eval-mode pass over the training set), test_acc /
    test_mse, sparsity_%, compression, seconds. ``callback(epoch, model, row)`` runs after each epoch.

    ``resident``: tensors and DataBundles are kept on the device and iterated by a permutation
    (no DataLoader, no host sync per step: the running sums stay on the device and are read once
    per epoch) when they fit (``None``: on a GPU, data up to half its free memory; on the CPU,
    always); otherwise ``fit`` says so and iterates them from host memory, one copy per batch.
    ``True`` / ``False`` force one path; both draw the same batches for the same ``seed``.
    ``history.attrs["data_path"]`` says which ran ("device" or "loader").

    ``checkpoint``: a file path. After every epoch the whole state of the run (model, optimiser,
    scheduler, random states, history) is written there atomically; when the file exists, ``fit``
    checks that it belongs to this run (the configuration and the model's structure) and continues
    after its last finished epoch, returning the whole history, every epoch once. The random draw of
    the starting weights is not part of a run's identity (a model rebuilt after a restart resumes);
    where the start matters (fine-tuning a trained net, a pruning mask) pass ``init_id``, e.g.
    ``sparsevd_lab.checkpoint.weights_id(model)``. On the CPU the resumed run ends with the same
    weights as an uninterrupted one. A checkpoint of another run, or a corrupt one, raises
    ``CheckpointError`` naming the file; nothing is loaded then.
    """
    epochs = _whole("epochs", epochs)
    batch_size = _whole("batch_size", batch_size)
    eval_every = _whole("eval_every", eval_every)
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit expects an nn.Module to train; got {type(model).__name__}")
    if task is not None:
        _check_task(task)
    if checkpoint is not None:
        check_file_path(checkpoint, "run.pt")  # a folder: say so now, not "corrupt" later
    tensors, loaders, bundle_task = _split_data(data)
    if bundle_task is not None and task is not None and task != bundle_task:
        raise ValueError(f"task={task!r}, but the DataBundle {data.name!r} is a {bundle_task} data "
                         f"set; leave task out")
    task = bundle_task or task or "classification"
    if resident and tensors is None:
        raise ValueError("resident=True needs tensors or a DataBundle; DataLoaders are iterated "
                         "as given")
    set_seed(seed)
    device = resolve_device(device)
    model.to(device)

    if tensors is not None:
        x, y, xt, yt = tensors
        check_targets(y, _probe(model, x, device), task)
        if yt is not None:
            check_targets(yt, _probe(model, xt, device), task)
        budget = _device_budget(device)
        size = _nbytes(x, y, xt, yt)
        if resident is None:
            resident = budget is None or size <= budget
            if not resident:
                warnings.warn(f"fit: the data ({size / 2**20:.0f} MB) do not fit in the {device} "
                              f"memory budget ({budget / 2**20:.0f} MB, half the free memory); "
                              f"training from host memory with a loader, one copy per batch",
                              stacklevel=2)
        eval_batch = max(batch_size, 1000)
        if resident:
            x, y = x.to(device), y.to(device)
            generator = torch.Generator().manual_seed(seed)  # the same draw as TensorLoader's
            train_loader = _DeviceBatches(x, y, batch_size, generator)
            test_loader = None if xt is None else TensorLoader(xt.to(device), yt.to(device), eval_batch)
        else:
            train_loader = TensorLoader(x, y, batch_size, shuffle=True, seed=seed)
            generator = train_loader.generator
            test_loader = None if xt is None else TensorLoader(xt, yt, eval_batch)
        train_eval = TensorLoader(x, y, eval_batch)  # unshuffled: draws nothing from the generator
        n_examples = len(x)
        batches_checked = True
    else:
        train_loader, test_loader = loaders
        resident = False
        generator = getattr(train_loader, "generator", None)
        train_eval = train_loader
        if isinstance(train_loader, TensorLoader):
            n_examples = train_loader.num_examples
            check_targets(train_loader.y, _probe(model, train_loader.x, device), task)
        else:
            try:
                n_examples = len(train_loader.dataset)
            except TypeError:
                if train_size is None:
                    raise ValueError("the DataLoader's dataset has no len(): pass train_size=N, the "
                                     "number of training examples") from None
                n_examples = int(train_size)
        batch_size = int(getattr(train_loader, "batch_size", None) or batch_size)
        # a DataLoader's labels are checked batch by batch, on the host
        batches_checked = isinstance(train_loader, TensorLoader)
    n = _whole("train_size", train_size) if train_size is not None else n_examples
    data_loss = F.cross_entropy if task == "classification" else F.mse_loss
    is_svdo = bool(svdo_layers(model))
    objective = SGVLB(model, n, loss=data_loss) if is_svdo else None
    schedule = kl_weight if callable(kl_weight) else (lambda _e, w=float(kl_weight): w)
    optimizer = make_optimizer(model, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, epochs, lr_flat_fraction))

    history: list[dict] = []
    first = 0
    if checkpoint is not None:
        config = run_config(
            model, epochs=epochs, lr=float(lr), batch_size=batch_size,
            lr_flat_fraction=float(lr_flat_fraction), weight_decay=float(weight_decay), train_size=int(n),
            seed=int(seed), task=task, train_examples=int(n_examples),
            kl_weights=[float(schedule(e)) for e in range(epochs)] if is_svdo else [],
            init_id=None if init_id is None else str(init_id))
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
            if not batches_checked and count == 0 and epoch == first:
                _probe(model, x, device)  # the input checks, once, before the first step
            host_y = y
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            if not batches_checked and host_y.device.type == "cpu":
                check_targets(host_y, out, task)  # a host tensor: no GPU sync
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
        if count == 0:
            raise ValueError("the training loader gave no batch: it is empty")
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
            row[f"train_{key}"] = evaluate(model, train_eval, task)[key]
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
    frame = pd.DataFrame.from_records(history)
    frame.attrs["data_path"] = "device" if resident else "loader"
    return frame
