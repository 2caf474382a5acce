"""The fast path: compiled CPU code for what ``sparsevd_lab.layers`` computes, and for compressed inference.

``layers.py`` is the reference: plain PyTorch, read beside the paper. A CPU training step of
LeNet-300-100 at batch 100 takes a few milliseconds, and beyond the matrix products it is dominated by
the ~20 small tensor operations per layer that autograd runs for the local reparameterisation trick
and the KL, each a trip through memory and through the interpreter. So three kernels, in C++ files
beside this one (shipped with the package):

- ``train_step.cpp``: ``kl_fused``, the KL of eq. 14 summed over all weights with its gradients in
  one pass over theta and log sigma^2; ``lrt``, the train-mode forward of eq. 17 as a C++ autograd
  Function with a written-out backward (the same operations in the same order as the reference,
  hence the same random numbers);
- ``sparse_inference.cpp``: ``sparse_mlp``, inference of a compressed chain of sparse linear layers
  and ReLUs in one pass over the input (``compress.SparseMLP``; ``compress.SparseLinear`` is its
  one-layer case).

They are compiled on first use with ``torch.utils.cpp_extension.load`` (needs a C++ compiler and
``ninja``; about a minute, then cached by torch in ~/.cache/torch_extensions). Where they cannot be
built, the layers run the reference and ``compress`` runs its modules one by one (torch.sparse):
the same values.

Where they are used: ``layers._fast_path`` is the one place the layers choose them
(``applies`` below: CPU tensors of float32 or float64); tests/test_kernels.py checks them against
the reference (values and gradients, float32 and float64). The switch: ``SPARSEVD_KERNELS`` =
``auto`` (default: use them when they build, else warn once and fall back), ``0`` (never), ``1`` (a
failed build is an error); in code, ``with sparsevd_lab.kernels.disabled(): ...``.

Differences from the reference, beyond float rounding: where the reference's clamps stop a gradient
(log sigma^2 > 80, or a variance below 1e-16, i.e. an all-zero input row), ``lrt`` passes it through;
``kl_fused`` computes exp and log in float32 by polynomials with ~2e-7 relative error.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from ..settings import kernels_mode

__all__ = ["kernels_enabled", "applies", "disabled", "lrt", "kl_sum", "fused_kl", "csr_linear", "sparse_mlp",
           "SOURCES"]

ENV = "SPARSEVD_KERNELS"
SOURCES = tuple(Path(__file__).with_name(f) for f in ("train_step.cpp", "sparse_inference.cpp",
                                                       "bindings.cpp"))
_STATE: dict = {}
_LOCAL = threading.local()  # ``disabled()`` is per thread


def _mode() -> str:
    """"auto", "on" or "off": ``disabled()`` first, then $SPARSEVD_KERNELS (``sparsevd_lab.settings``)."""
    if getattr(_LOCAL, "off", 0):
        return "off"
    return kernels_mode()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the block on the reference path of ``sparsevd_lab.layers`` (every line of it, plain
    autograd), as SPARSEVD_KERNELS=0 does for the whole process."""
    _LOCAL.off = getattr(_LOCAL, "off", 0) + 1
    try:
        yield
    finally:
        _LOCAL.off -= 1


def _build():
    if "module" in _STATE:
        return _STATE["module"]
    module = None
    try:
        from torch.utils.cpp_extension import load

        module = load(
            "sparsevd_lab_fast",  # not the old load_inline name, whose cache holds other code
            sources=[str(s) for s in SOURCES],
            # -ffast-math lets gcc vectorise exp/log (float64 through glibc's libmvec); the kernels keep
            # every intermediate finite, as -ffast-math assumes. Where the CPU has AVX-512, 512-bit
            # vectors make kl_fused ~1.5x faster than gcc's default 256 (measured: LeNet-300-100's
            # weights, 0.58 -> 0.39 ms); elsewhere the flag does nothing.
            extra_cflags=["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math",
                          "-fopenmp"],
            extra_ldflags=["-lmvec", "-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, no headers: fall back, say so once
        if _mode() == "on":
            raise RuntimeError(f"{ENV}=1 but sparsevd_lab's compiled kernels did not build: {err}") from err
        warnings.warn(f"sparsevd_lab: the compiled CPU kernels could not be built ({type(err).__name__}); "
                      f"using the reference paths of sparsevd_lab.layers (same results, slower on CPU). "
                      f"Set {ENV}=0 to silence this.", RuntimeWarning, stacklevel=3)
    _STATE["module"] = module
    return module


def kernels_enabled() -> bool:
    """True unless switched off (``SPARSEVD_KERNELS=0``, ``disabled()``) or the build failed (builds
    on first call)."""
    return _mode() != "off" and _build() is not None


_DTYPES = (torch.float32, torch.float64)


def applies(*tensors: Tensor) -> bool:
    """True when the compiled train-step kernels compute the layers' formulas for these tensors:
    all on the CPU, all float32 or all float64, the kernels switched on and built."""
    dtype = tensors[0].dtype
    if dtype not in _DTYPES or not all(t.device.type == "cpu" and t.dtype == dtype for t in tensors):
        return False
    return kernels_enabled()


def lrt(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None, conv_args=None) -> Tensor:
    """The train-mode output of eq. 17 through the compiled autograd Function: ``layers.linear_svdo``
    (``conv_args`` None) or ``layers.conv2d_svdo`` (``conv_args`` = (stride, padding, dilation,
    groups) as pairs, numeric padding)."""
    if conv_args is None:
        return _build().lrt(x, weight, log_sigma2, bias, False, [], [], [], 1)
    stride, padding, dilation, groups = conv_args
    return _build().lrt(x, weight, log_sigma2, bias, True, list(stride), list(padding), list(dilation),
                        int(groups))


def fused_kl(weights: list[Tensor], log_sigma2s: list[Tensor],
             scale: float = 1.0) -> tuple[float, list[Tensor], list[Tensor]]:
    """(KL summed over all layers, scale * dKL/dtheta and scale * dKL/dlog_sigma2 per layer)."""
    with torch.no_grad():
        ws = [w.detach().contiguous() for w in weights]
        ls = [p.detach().contiguous() for p in log_sigma2s]
        grad_w = [torch.empty_like(w) for w in ws]
        grad_ls2 = [torch.empty_like(w) for w in ws]
        total = _build().kl_fused(ws, ls, grad_w, grad_ls2, float(scale))
    return total, grad_w, grad_ls2


class _KLSum(torch.autograd.Function):
    """The summed KL (eq. 14) of ``layers.kl_sum`` as a function of (theta, log_sigma2) of every layer,
    through ``kl_fused``. ``grad_scale`` is the gradient the caller expects to flow into the KL (the
    weight it gives the KL in its loss): the kernel writes gradients already multiplied by it, so
    the usual backward costs no extra pass. Any other incoming gradient is exact too."""

    @staticmethod
    def forward(ctx, n: int, grad_scale: float, *tensors: Tensor) -> Tensor:  # noqa: D401
        total, grad_w, grad_ls2 = fused_kl(list(tensors[:n]), list(tensors[n:]), grad_scale)
        ctx.grad_scale = grad_scale
        ctx.save_for_backward(*grad_w, *grad_ls2)
        return torch.tensor(total, dtype=tensors[0].dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        saved = ctx.saved_tensors
        factor = float(grad) / ctx.grad_scale
        # The incoming gradient is grad_scale rounded to the loss's dtype, so the factor is 1 up to
        # rounding; rescaling then would cost a pass over every weight and change nothing.
        if abs(factor - 1.0) > 1e-6:
            saved = [g * factor for g in saved]
        return (None, None, *saved)


def kl_sum(weights: list[Tensor], log_sigma2s: list[Tensor], grad_scale: float = 1.0) -> Tensor:
    """Summed KL approximation (eq. 14) of all the given (theta, log_sigma2) pairs, differentiable,
    through the compiled kernel: what ``layers.kl_sum`` computes."""
    return _KLSum.apply(len(weights), float(grad_scale) or 1.0, *weights, *log_sigma2s)


# ---- compressed inference (sparsevd_lab.compress) ----

_NONE = torch.empty(0)  # "no bias" / "every input feature" for the C++ sparse_mlp


def _inference_input_ok(x: Tensor) -> bool:
    """The sparse inference kernels take contiguous 2-d float32 CPU batches that need no gradient."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2 and x.is_contiguous()
            and not (torch.is_grad_enabled() and x.requires_grad) and kernels_enabled())


def sparse_mlp(x: Tensor, used: Tensor, crows, cols, values, biases, outs, relu) -> Tensor | None:
    """The output of a chain of CSR linear layers (with a ReLU after those flagged) for the input
    features ``used`` of ``x``, by the compiled kernel (float32, contiguous 2-d CPU input); None where
    it does not apply, so that the caller runs the layers one by one instead."""
    if not _inference_input_ok(x):
        return None
    return _build().sparse_mlp(x, used, list(crows), list(cols), list(values), list(biases),
                               [int(o) for o in outs], [bool(r) for r in relu])


def csr_linear(x: Tensor, crow: Tensor, col: Tensor, values: Tensor, bias: Tensor | None,
               out_features: int) -> Tensor | None:
    """x W^T + b for a CSR weight given as int32 ``crow``/``col`` and float32 ``values``: the
    one-layer case of ``sparse_mlp`` over every input feature. None where the kernel does not
    apply, so that the caller uses torch.sparse instead (the same result up to float rounding)."""
    return sparse_mlp(x, _NONE, [crow], [col], [values], [_NONE if bias is None else bias],
                      [out_features], [False])
