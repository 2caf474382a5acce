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
``ninja``; 1 to 3 minutes, announced by one printed line), into $TORCH_EXTENSIONS_DIR (default
~/.cache/torch_extensions) under ``sparsevd_lab_<cache_key()>``: a hash of the sources, the flags
(``build_flags()``, chosen by platform), the compiler, torch, Python and the CPU's instruction set, so
that two checkouts or environments never rebuild each other's build and no CPU runs another's. Every
entry point checks all of its inputs (TORCH_CHECK) before it reads one by index. Where they cannot
be built, the layers run the reference and ``compress`` runs its modules one by one (torch.sparse):
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
import ctypes.util
import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from ..files import atomic_write
from ..settings import kernels_mode

__all__ = ["kernels_enabled", "applies", "disabled", "lrt", "kl_sum", "fused_kl", "csr_linear", "sparse_mlp",
           "SOURCES", "build_flags", "cache_key", "build_directory", "cpu_instruction_set"]

ENV = "SPARSEVD_KERNELS"
SOURCES = tuple(Path(__file__).with_name(f) for f in ("train_step.cpp", "sparse_inference.cpp",
                                                       "bindings.cpp"))
_STATE: dict = {}
_LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"
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


def cpu_instruction_set() -> str:
    """The machine and, on Linux, the CPU's instruction-set flags (/proc/cpuinfo): what a build with
    ``-march=native`` depends on. Part of the cache key, so a shared cache never hands one CPU's
    build to another (an illegal-instruction crash on a mixed cluster)."""
    isa = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86, ARM
                    return f"{isa}: {' '.join(sorted(value.split()))}"
    except OSError:
        pass
    return isa


def build_flags() -> tuple[list[str], list[str]]:
    """(compiler flags, linker flags) for this platform.

    -O3 -ffast-math everywhere: -ffast-math lets the compiler vectorise exp/log; the kernels keep every
    intermediate finite, as -ffast-math assumes. On x86-64 Linux, whose CPU flags are read into the
    cache key: ``-march=native`` and, where the CPU has AVX-512, 512-bit vectors (kl_fused ~1.5x
    faster than gcc's default 256 bits on LeNet-300-100's weights; elsewhere the flag does nothing).
    Elsewhere the compiler's portable default. ``-fopenmp`` only where torch's parallel backend is
    OpenMP and the compiler is gcc's world (Linux): without it ``at::parallel_for`` runs on one thread;
    Apple's clang has no OpenMP, and torch on macOS uses its native thread pool. ``-lmvec`` (glibc's
    vector exp/log for float64) only where glibc has it."""
    cflags, ldflags = ["-O3", "-ffast-math"], []
    if not sys.platform.startswith("linux"):
        return cflags, ldflags
    if platform.machine() in ("x86_64", "AMD64") and ":" in cpu_instruction_set():
        cflags += ["-march=native", "-mprefer-vector-width=512"]
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    if platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("mvec"):
        ldflags.append("-lmvec")
    return cflags, ldflags


def cache_key(sources=SOURCES, flags: tuple[list[str], list[str]] | None = None) -> str:
    """A hash of everything the compiled file depends on: the sources' contents, the flags, the
    compiler, torch (version and the installation whose headers it compiles against), Python and the
    CPU's instruction set. It names the build (``sparsevd_lab_<key>``), so two checkouts or virtual
    environments never rebuild each other's: each one that differs gets its own, and equal ones share
    one."""
    cflags, ldflags = build_flags() if flags is None else flags
    h = hashlib.sha256()
    for part in (torch.__version__, os.path.dirname(torch.__file__), sys.version,
                 sys.implementation.cache_tag, sys.platform, cpu_instruction_set(),
                 os.environ.get("CXX", "c++"), " ".join(cflags), " ".join(ldflags)):
        h.update(str(part).encode() + b"\0")
    for src in sources:
        h.update(Path(src).name.encode() + b"\0" + Path(src).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_directory(key: str | None = None) -> Path:
    """Where the build of this key lives: $TORCH_EXTENSIONS_DIR, else torch's default cache
    (~/.cache/torch_extensions), then ``sparsevd_lab_<key>``."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    return Path(root) / f"sparsevd_lab_{key or cache_key()}"


def _build():
    if "module" not in _STATE:
        _STATE["module"] = _compile()
    if _STATE["module"] is None and _mode() == "on":
        err = _STATE["error"]
        raise RuntimeError(f"{ENV}=1 requires sparsevd_lab's compiled kernels, and they did not build "
                           f"({type(err).__name__}: {err})\nInstall a C++ compiler and ninja, or set "
                           f"{ENV}=auto (fall back to plain PyTorch) or {ENV}=0.") from err
    return _STATE["module"]


def _compile():
    """The compiled module, or None (the error kept in _STATE["error"]) where it does not build."""
    try:
        from torch.utils.cpp_extension import load

        cflags, ldflags = build_flags()
        key = cache_key(SOURCES, (cflags, ldflags))
        build_dir = build_directory(key)
        # The sources are compiled from copies inside the build folder: the build's commands then name
        # the same files whichever checkout asked for them, so ninja never sees a changed command and
        # rebuilds (what a fixed name did, alternating between two environments).
        src_dir = build_dir / "src"
        src_dir.mkdir(parents=True, exist_ok=True)
        sources = []
        for src in SOURCES:
            copy = src_dir / src.name
            if not copy.is_file() or copy.read_bytes() != src.read_bytes():
                atomic_write(copy, lambda fh, data=src.read_bytes(): fh.write(data))
            sources.append(str(copy))
        if not (build_dir / f"sparsevd_lab_{key}{_LIB_EXT}").is_file():
            print(f"sparsevd_lab: compiling the fast CPU kernels (sparsevd_lab/kernels/*.cpp: Sparse VD "
                  f"training steps and compressed inference) once for this torch, Python and CPU, about "
                  f"1 to 3 minutes (more on a busy machine), into {build_dir}. Set {ENV}=0 to skip it (the same results through "
                  f"plain PyTorch, slower).", file=sys.stderr, flush=True)
        return load(f"sparsevd_lab_{key}", sources=sources, extra_cflags=cflags, extra_ldflags=ldflags,
                    build_directory=str(build_dir), verbose=False)
    except Exception as err:  # no compiler, no ninja, no headers: fall back, say so once
        _STATE["error"] = err
        if _mode() == "on":
            return None  # _build raises
        warnings.warn(f"sparsevd_lab: the compiled CPU kernels could not be built ({type(err).__name__}: "
                      f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}); "
                      f"using the reference paths of sparsevd_lab.layers (same results, slower on CPU). "
                      f"Set {ENV}=0 to silence this.", RuntimeWarning, stacklevel=4)
        return None


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


def sparse_mlp(x: Tensor, in_features: int, used: Tensor, crows, cols, values, biases, outs,
               relu) -> Tensor | None:
    """The output of a chain of CSR linear layers (with a ReLU after those flagged) for the input
    features ``used`` of ``x``, by the compiled kernel (float32, contiguous 2-d CPU input); None where
    it does not apply, so that the caller runs the layers one by one instead. ``in_features`` is the
    width of ``x`` the layers were built for: the kernel refuses any other (RuntimeError), and checks
    every CSR array before it reads one by index."""
    if not _inference_input_ok(x):
        return None
    return _build().sparse_mlp(x, int(in_features), used, list(crows), list(cols), list(values), list(biases),
                               [int(o) for o in outs], [bool(r) for r in relu])


def csr_linear(x: Tensor, crow: Tensor, col: Tensor, values: Tensor, bias: Tensor | None,
               out_features: int, in_features: int) -> Tensor | None:
    """x W^T + b for an (out_features, in_features) CSR weight given as int32 ``crow``/``col`` and
    float32 ``values``: the one-layer case of ``sparse_mlp`` over every input feature. None where the
    kernel does not apply, so that the caller uses torch.sparse instead (the same result up to float
    rounding)."""
    return sparse_mlp(x, in_features, _NONE, [crow], [col], [values], [_NONE if bias is None else bias],
                      [out_features], [False])
