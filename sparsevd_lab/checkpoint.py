"""Training checkpoints for ``fit(..., checkpoint=PATH)``: save after every epoch, verify, resume.

A checkpoint holds everything that decides the rest of a run: the model, the optimiser, the
learning-rate scheduler, the number of finished epochs, every random-number state ``fit`` uses
(torch's global generator, which draws the noise of the local reparameterisation trick; the
loader's shuffling generator; NumPy's and Python's), the history so far, and a description of the
run (``config``) so that a checkpoint of another model or another configuration is refused instead
of being half-loaded. It is written to a temporary file and renamed, so an interrupted save never
leaves a broken file under the final name, and it loads with ``torch.load(weights_only=True)``,
which executes no code.

Colab disconnects and long CPU runs are what this is for: rerun the same ``fit`` call (or the
experiments CLI with ``--resume``) and it continues after the last finished epoch.
"""
from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .files import atomic_write, check_file_path

__all__ = ["CheckpointError", "FORMAT", "run_config", "weights_id", "save_checkpoint", "load_checkpoint",
           "rng_state", "set_rng_state"]

FORMAT = "sparsevd_lab.fit-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used: corrupt, truncated, or of another model or configuration.
    The message names the file and says what differs."""


def _model_signature(model: nn.Module) -> list[list]:
    """(name, shape, dtype) of every entry of the state dict: what makes two models the same."""
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
            for k, v in model.state_dict().items()]


def _module_types(model: nn.Module) -> list[list[str]]:
    """(name, class) of every module that holds a parameter or buffer: a LinearSVDO and an
    nn.Linear of the same shapes are different models."""
    return [[name, type(m).__name__] for name, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]


def weights_id(model: nn.Module) -> str:
    """A short hash of the model's current weights (every state-dict entry). Pass it as
    ``fit(..., init_id=weights_id(model))`` where the start of a run matters: a net fine-tuned from a
    trained dense net, or a pruned net whose mask decides what can train. A run from a fresh random
    init needs none: its checkpoint holds the weights, and the seed is in the configuration."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_config(model: nn.Module, **settings: Any) -> dict:
    """The description a checkpoint is matched against: the model's structure (parameter and buffer
    names, shapes, dtypes, module types) and ``settings`` (plain numbers, strings and lists: epochs,
    learning rate, the KL weight of every epoch, an ``init_id`` where the start matters, ...).

    Not the random draw of the starting weights: a model rebuilt after a kernel restart, with the
    global seed in another state, is the same run, and resuming loads the checkpoint's weights anyway.
    Call it before training or loading anything."""
    return {"model_class": type(model).__name__, "model": _model_signature(model),
            "modules": _module_types(model), **settings}


# Written by version 1 checkpoints before the run's identity left out the starting weights: such a
# file has "initial_weights" (a hash of the random init) and lacks the keys below; nothing to compare.
_LEGACY_KEY = "initial_weights"
_NEW_KEYS = {"modules", "init_id"}


def rng_state(loader_generator: torch.Generator | None) -> dict:
    """Every random state ``fit`` draws from, as tensors and plain lists (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "internal": list(internal), "gauss": gauss},
             "loader": None if loader_generator is None else loader_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if loader_generator is not None and state["loader"] is not None:
        loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, *, config: dict, epoch: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, history: list[dict],
                    loader_generator: torch.Generator | None) -> Path:
    """Write the checkpoint atomically (temporary file in the same folder, then rename)."""
    payload = {"format": FORMAT, "version": VERSION, "config": config, "epoch": int(epoch),
               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "rng": rng_state(loader_generator),
               "history": history}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def _differences(saved: dict, now: dict) -> list[str]:
    out = []
    if saved.get("model_class") != now.get("model_class") or saved.get("model") != now.get("model"):
        a = {k: (s, d) for k, s, d in saved.get("model", [])}
        b = {k: (s, d) for k, s, d in now.get("model", [])}
        diff = [f"{k}: {a.get(k, 'absent')} there, {b.get(k, 'absent')} here"
                for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        out.append(f"the model ({saved.get('model_class')} there, {now.get('model_class')} here; "
                   + "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
                   + ")")
    keys = set(saved) | set(now)
    if _LEGACY_KEY in saved:  # an older checkpoint: its init hash and the newer keys are not compared
        keys -= {_LEGACY_KEY} | _NEW_KEYS
    for key in sorted(keys - {"model", "model_class"}):
        if saved.get(key) != now.get(key):
            a, b = saved.get(key, "absent"), now.get(key, "absent")
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and len(a) > 6:
                i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                out.append(f"{key} (first difference at position {i}: {a[i]!r} there, {b[i]!r} here)")
            else:
                out.append(f"{key} ({_short(a)} there, {_short(b)} here)")
    return out


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def load_checkpoint(path: str | os.PathLike, config: dict) -> dict:
    """Read and verify a checkpoint against the run's ``config``; return its payload.

    Raises ``CheckpointError`` naming the file when it is not a readable checkpoint (corrupt,
    truncated, another format) or when it belongs to another model or configuration (the message
    lists what differs). Nothing is loaded into any model here: the caller loads only after this
    succeeded, so a refused checkpoint never leaves a half-loaded model.
    """
    path = check_file_path(path, "run.pt")  # a folder is not a corrupt file
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickle of another kind
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:200]}): it is corrupt "
            f"or truncated. Delete it to start the run from scratch, or restore a good copy"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sparsevd_lab training checkpoint (no "
                              f"format={FORMAT!r} marker); pass another checkpoint path")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has version {payload.get('version')}, this "
                              f"package reads version {VERSION}; start fresh with a new path")
    missing = {"config", "epoch", "model", "optimizer", "scheduler", "rng", "history"} - set(payload)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: it is damaged; delete it "
                              f"to start fresh")
    saved = payload["config"]
    if saved.get("epochs") != config.get("epochs") and int(payload["epoch"]) > int(config["epochs"]):
        raise CheckpointError(
            f"checkpoint {path} has finished {payload['epoch']} epochs, more than the "
            f"epochs={config['epochs']} asked for now; ask for epochs={saved.get('epochs')} (the "
            f"run it belongs to) or use another checkpoint path")
    diffs = _differences(saved, config)
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run; what differs: " + "; ".join(diffs)
            + ". Use the settings it was made with, or another checkpoint path to start fresh")
    if len(payload["history"]) != int(payload["epoch"]):
        raise CheckpointError(f"checkpoint {path} is inconsistent ({payload['epoch']} epochs, "
                              f"{len(payload['history'])} history rows); delete it to start fresh")
    return payload
