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

__all__ = ["CheckpointError", "FORMAT", "run_config", "save_checkpoint", "load_checkpoint",
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


def _fingerprint(model: nn.Module) -> str:
    """A hash of the model's starting weights: two runs that start from different weights (another
    seed, from scratch against from a dense net, another pruning mask) are different runs."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_config(model: nn.Module, **settings: Any) -> dict:
    """The description a checkpoint is matched against: the model's structure, a hash of its
    starting weights, and ``settings`` (plain numbers, strings and lists: epochs, learning rate,
    the KL weight of every epoch, ...). Call it before training or loading anything."""
    return {"model_class": type(model).__name__, "model": _model_signature(model),
            "initial_weights": _fingerprint(model), **settings}


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
    from .experiments.common import atomic_write_bytes  # lazy: experiments imports train

    payload = {"format": FORMAT, "version": VERSION, "config": config, "epoch": int(epoch),
               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "rng": rng_state(loader_generator),
               "history": history}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, lambda fh: fh.write(buf.getvalue()))


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
    if "initial_weights" not in saved:  # written before the hash existed: nothing to compare
        keys.discard("initial_weights")
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
    path = Path(path)
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
