"""Inference layout and timing: the order and memory format of a compressed model's modules, and the
quick interleaved timings with which ``compress(storage="auto")`` picks dense or sparse storage.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import Tensor, nn

from .. import kernels
from .modules import (CompressedSequential, IndexSelect, SparseConv2d, SparseLinear, SparseMLP,
                      sparse_module)

__all__ = ["inference_layout", "CHUNK_BYTES"]

# Activations that are monotone non-decreasing: act(max(x)) == max(act(x)), exactly.
_MONOTONE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Tanh, nn.Sigmoid)
# Modules whose output is a tensor of their own, so an activation after them may work in place.
_FRESH_OUTPUT = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.BatchNorm1d, nn.BatchNorm2d, SparseLinear,
                 SparseConv2d)
_INPLACE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.ELU)
CHUNK_BYTES = 4 << 20  # the largest activation of a chunk: small enough to stay in cache and heap


@torch.no_grad()
def inference_layout(model: nn.Sequential, example: Tensor | None = None) -> nn.Sequential:
    """Rearrange a Sequential for CPU inference; returns ``model``. Outputs stay the same up to float
    rounding (channels_last changes the order of a convolution's sums; nothing else changes a bit).

    - activation -> MaxPool2d becomes MaxPool2d -> activation for monotone activations (ReLU, ...):
      the same result, with the activation on a quarter of the values;
    - activations right after a layer that made a fresh tensor work in place (no new allocation);
    - a model with convolutions gets ``channels_last`` and, given an ``example`` input (one row),
      a ``chunk_size`` that keeps the largest activation of a chunk under 4 MB.

    ``compress`` applies it to what it returns. ``benchmarks/bench_compress.py`` also applies it to
    the dense model, to show how much of the speed-up is the sparsity and how much this layout.
    """
    modules = list(model)
    i = 0
    while i + 1 < len(modules):
        a, b = modules[i], modules[i + 1]
        if (isinstance(a, _MONOTONE) and isinstance(b, nn.MaxPool2d)
                and getattr(a, "negative_slope", 0.0) >= 0):
            modules[i], modules[i + 1] = b, a
            i += 2
        else:
            i += 1
    for i in range(1, len(modules)):
        if type(modules[i]) in _INPLACE and isinstance(modules[i - 1], _FRESH_OUTPUT):
            modules[i].inplace = True
    for i, m in enumerate(modules):
        model[i] = m
    if any(isinstance(m, (nn.Conv2d, SparseConv2d)) for m in modules):
        model.to(memory_format=torch.channels_last)
        if isinstance(model, CompressedSequential):
            model.channels_last = True
            if example is not None and example.dim() == 4:
                h, largest = example[:1].contiguous(memory_format=torch.channels_last), 0
                for m in modules:
                    h = m(h)
                    largest = max(largest, h.numel() * h.element_size())
                model.chunk_size = max(1, CHUNK_BYTES // max(largest, 1))
    return model


def model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def timing_input(compact: CompressedSequential, input_shape, example_input, timing_batch: int):
    """A representative batch to time on: ``example_input``, else random rows of ``input_shape``
    (for a Linear-first model, maybe behind Flatten / IndexSelect, its input width); else None."""
    if example_input is not None:
        return example_input
    if input_shape is None:
        for m in compact:
            if isinstance(m, IndexSelect):
                input_shape = (m.in_size,)
                break
            if isinstance(m, nn.Linear):
                input_shape = (m.in_features,)
                break
            if not isinstance(m, nn.Flatten):
                return None
        if input_shape is None:
            return None
    gen = torch.Generator().manual_seed(0)
    return torch.randn(timing_batch, *input_shape, generator=gen).to(model_device(compact))


def interleaved_times(fns, x, repeats: int) -> list[float]:
    """Median seconds of each fn(x), timed in turn (so that background load hits all alike). On a
    GPU the clock waits for the device (kernels run asynchronously: without a synchronize the timer
    would measure the launch only)."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            sync()
            start = time.perf_counter()
            fn(x)
            sync()
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def mlp_variant(compact: CompressedSequential):
    """``compact`` with its tail of IndexSelect / Linear / ReLU modules replaced by one ``SparseMLP``,
    or None (no such tail, not float32, or no compiled kernels)."""
    mods = list(compact)
    start = next((i for i, m in enumerate(mods) if isinstance(m, (IndexSelect, nn.Linear, SparseLinear))),
                 None)
    if start is None or not SparseMLP.eligible(mods[start:]) or not kernels.kernels_enabled():
        return None
    if any(p.dtype != torch.float32 for p in compact.parameters()):
        return None
    info = copy.deepcopy(compact.info)
    info["layout"] = "sparse_mlp"
    # the modules are shared with ``compact`` (inference modules are never modified): deepcopy
    # cannot copy a sparse CSR buffer
    mlp = SparseMLP(nn.Sequential(*mods[start:]))
    variant = CompressedSequential(*mods[:start], mlp, info=info,
                                   channels_last=compact.channels_last,
                                   chunk_size=compact.chunk_size).eval()
    for p in variant.parameters():
        p.requires_grad_(False)
    return variant


@torch.no_grad()
def choose_storage(compact: CompressedSequential, storage: str, x: Tensor | None, repeats: int) -> None:
    weight_idx = [i for i, m in enumerate(compact) if isinstance(m, (nn.Linear, nn.Conv2d))]
    if storage == "sparse":
        for i in weight_idx:
            compact[i] = sparse_module(compact[i])
            compact.info["layers"][weight_idx.index(i)]["storage"] = "sparse"
        return
    # "auto": time each layer on its own input from a representative batch (x).
    if x is None:
        return  # nothing to time on: keep dense
    for pos, i in enumerate(weight_idx):
        h = x
        for m in list(compact)[:i]:
            h = m(h)
        dense = compact[i]
        sparse = sparse_module(dense)
        ref = dense(h)
        if not torch.allclose(sparse(h), ref, rtol=1e-4, atol=1e-5):  # pragma: no cover
            continue
        t_dense, t_sparse = interleaved_times([dense, sparse], h, repeats)
        compact.info["layers"][pos]["seconds_dense"] = t_dense
        compact.info["layers"][pos]["seconds_sparse"] = t_sparse
        if t_sparse < t_dense:
            compact[i] = sparse
            compact.info["layers"][pos]["storage"] = "sparse"
