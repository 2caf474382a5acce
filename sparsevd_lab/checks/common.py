"""Shared machinery of the checks: the failure type, the OK line, a seeded wrapper that leaves the
caller's random state alone, and helpers that turn common non-answers (None, NotImplementedError,
a wrong signature, a numpy array) into messages."""
from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
from torch import Tensor

__all__ = ["CheckFailed"]


class CheckFailed(AssertionError):
    """An assignment check failed; the message says what is wrong and what to look at."""


def _fail(what: str, message: str) -> None:
    raise CheckFailed(f"{what}: {message}")


def _ok(what: str, message: str) -> None:
    print(f"OK: {what} {message}")


def _seeded(fn):
    """Run the check with a fixed seed without touching the caller's random state."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return fn(*args, **kwargs)

    return wrapper


def _call(what: str, fn: Callable, *args, **kwargs):
    """Call the student's function; turn the common non-answers into messages."""
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotImplementedError(
            f"{what} is not written yet: replace `raise NotImplementedError` under "
            f"`# YOUR CODE HERE` with your code, run that cell, then run this check again") from None
    except TypeError as err:
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError:
            _fail(what, f"it cannot be called as {_signature_hint(fn, args, kwargs)} ({err}). "
                        f"Keep the signature given in the exercise")
        except ValueError:  # pragma: no cover - builtins without a signature
            pass
        raise  # a TypeError inside the student's code: their own traceback says more
    if out is None:
        _fail(what, "it returned None: did you forget the `return` statement?")
    return out


def _signature_hint(fn, args, kwargs) -> str:
    name = getattr(fn, "__name__", "fn")
    parts = [type(a).__name__ if not torch.is_tensor(a) else f"Tensor{tuple(a.shape)}" for a in args]
    parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _as_tensor(what: str, out, shape=None) -> Tensor:
    if not torch.is_tensor(out):
        _fail(what, f"expected a torch.Tensor, got {type(out).__name__}; use torch operations "
                    f"(torch.log, torch.exp, ...), not math or numpy, so that gradients flow")
    if shape is not None and tuple(out.shape) != tuple(shape):
        _fail(what, f"wrong shape: expected {tuple(shape)}, got {tuple(out.shape)}")
    return out


def _close(a: Tensor, b: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=rtol, atol=atol))


# The authors' code clamps log alpha to this range before the KL and the mask; the package does not
# (sparsevd_lab/layers.py, docs/glossary.md "clamp"), nor does A1 exercise 5. The layer check uses
# the range to recognise the authors' clamp and name it.
LOG_ALPHA_CLAMP = (-10.0, 10.0)
