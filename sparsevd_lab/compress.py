"""Compression for real: turn a trained Sparse VD model into a small, fast, plain ``torch.nn`` model.

``compress(model)`` walks an ``nn.Sequential`` chain of Linear / Conv2d layers (Sparse VD or dense)
and the per-unit ops between them (ReLU and other elementwise activations, MaxPool2d, Flatten,
Dropout, BatchNorm in eval mode) and removes what Sparse VD killed (paper sec. 4.3: weights with
log_alpha >= threshold are dropped; eval mode uses theta * mask):

- a unit (hidden neuron or conv channel) with no kept incoming weight outputs a constant
  (e.g. relu(bias)); the constant flows through the ops after it (a constant map stays constant
  under ReLU and max-pooling, and becomes constant features after Flatten) and is folded into the
  next layer's bias, and the unit is removed;
- a unit no kept weight of the next layer reads is removed too, and so are its incoming weights;
- input features no kept weight reads are never read: an ``IndexSelect`` picks the used ones.

Each remaining weight runs dense (``nn.Linear`` / ``nn.Conv2d``) or sparse (``SparseLinear`` /
``SparseConv2d`` with a CSR weight and ``torch.sparse.mm``), whichever a quick timing on a
representative batch finds faster (``storage=`` forces one). Any other architecture (skip
connections, unknown modules) comes out as the same model with masked dense layers, and a warning.

``save_compressed`` / ``load_compressed`` use safetensors with a JSON description of the
architecture in the metadata: loading executes no code (no pickle). ``flops_report`` counts
multiply-adds per layer, ``file_size_report`` compares file sizes. Introduced in notebook 05.
"""
from __future__ import annotations

import copy
import base64
import json
import os
import statistics
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels
from .files import atomic_path
from .layers import Conv2dSVDO, LinearSVDO, SVDOMixin, _check_threshold, svdo_layers

__all__ = [
    "IndexSelect",
    "SparseMLP",
    "SparseLinear",
    "Constant",
    "SparseConv2d",
    "CompressedSequential",
    "CompressedFileError",
    "compress",
    "inference_layout",
    "save_compressed",
    "load_compressed",
    "flops_report",
    "file_size_report",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

FORMAT_NAME = "sparsevd_lab.compressed"
FORMAT_VERSION = 2
STORAGES = ("auto", "dense", "sparse")


class CompressedFileError(ValueError):
    """A file given to ``load_compressed`` is not a (complete) sparsevd_lab compressed model."""


# --------------------------------------------------------------------------------------------
# The modules of a compressed model
# --------------------------------------------------------------------------------------------
class IndexSelect(nn.Module):
    """Keeps the features (or channels) ``index`` along dim 1: inputs no kept weight reads are
    never read."""

    def __init__(self, index: Tensor, in_size: int) -> None:
        super().__init__()
        self.in_size = int(in_size)
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{len(self.index)} of {self.in_size}"


def _sparse_csr(weight2d: Tensor) -> Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return weight2d.detach().to_sparse_csr()


class Constant(nn.Module):
    """Returns ``value`` for every example: what a net whose every path was dropped computes."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.value.expand(x.shape[0], *self.value.shape).clone()

    def extra_repr(self) -> str:
        return f"shape={tuple(self.value.shape)}"


class SparseLinear(nn.Module):
    """y = x W^T + b with W stored as a torch sparse CSR tensor. For float32 CPU batches the compiled
    kernel ``sparsevd_lab.kernels.csr_linear`` computes it (each output a short sum over its row's
    kept weights); elsewhere ``torch.sparse.mm``."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", _sparse_csr(weight))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        # int32 copies of the CSR structure for the compiled kernel (derived: not in state_dict)
        self.register_buffer("_crow", self.weight.crow_indices().int(), persistent=False)
        self.register_buffer("_col", self.weight.col_indices().int(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # the compiled kernel reads each input row once, no transposes
            y = kernels.csr_linear(x.contiguous(), self._crow, self._col, self.weight.values(), self.bias,
                                   self.out_features)
            if y is not None:
                return y
        flat = x.reshape(-1, self.in_features)
        y = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def dense_weight(self) -> Tensor:
        return self.weight.to_dense()

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.weight.values().numel()}, bias={self.bias is not None}")


class SparseConv2d(nn.Module):
    """2-d convolution as im2col (``F.unfold``) times a CSR weight (out, in*kh*kw)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, stride, padding, dilation) -> None:
        super().__init__()
        self.out_channels, self.in_channels, kh, kw = weight.shape
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.register_buffer("weight", _sparse_csr(weight.reshape(self.out_channels, -1)))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(0)
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # N, K, L
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # K, N*L
        y = torch.sparse.mm(self.weight, cols).reshape(self.out_channels, n, ho, wo).transpose(0, 1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        y = y.contiguous()
        return y.squeeze(0) if squeeze else y

    def dense_weight(self) -> Tensor:
        return self.weight.to_dense().reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"nnz={self.weight.values().numel()}, bias={self.bias is not None}")


class SparseMLP(nn.Module):
    """A chain [IndexSelect], Linear/SparseLinear, [ReLU], Linear/SparseLinear, ... that the compiled
    kernel ``sparsevd_lab.kernels.sparse_mlp`` runs in one pass (float32 CPU batches): what Sparse VD
    leaves of LeNet-300-100 is a few hundred weights, and running it layer by layer costs more in
    intermediate tensors, transposes and dispatch than in arithmetic. ``chain`` keeps the layers:
    they are what is saved, and what runs where the kernel does not apply.
    """

    def __init__(self, chain: nn.Sequential) -> None:
        super().__init__()
        self.chain = chain
        self.use_kernel = True
        mods = list(chain)
        sel = mods[0] if isinstance(mods[0], IndexSelect) else None
        weights = [m for m in mods if isinstance(m, (nn.Linear, SparseLinear))]
        if sel is not None:
            used = sel.index
        else:
            used = torch.arange(weights[0].in_features)
        self.register_buffer("_used", used.int(), persistent=False)
        self.outs, self.relu = [], []
        for k, m in enumerate(weights):
            w = m.dense_weight() if isinstance(m, SparseLinear) else m.weight.detach()
            csr = _sparse_csr(w.float())
            self.register_buffer(f"_crow{k}", csr.crow_indices().int(), persistent=False)
            self.register_buffer(f"_col{k}", csr.col_indices().int(), persistent=False)
            self.register_buffer(f"_val{k}", csr.values().contiguous(), persistent=False)
            bias = m.bias.detach().float() if m.bias is not None else torch.zeros(0)
            self.register_buffer(f"_bias{k}", bias.contiguous(), persistent=False)
            self.outs.append(int(w.shape[0]))
            i = mods.index(m)
            self.relu.append(i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU))

    @staticmethod
    def eligible(mods: list) -> bool:
        """[IndexSelect] then Linear / SparseLinear (row layout), each followed by at most one ReLU."""
        if mods and isinstance(mods[0], IndexSelect):
            mods = mods[1:]
        if not mods:
            return False
        prev_weight = False
        for m in mods:
            if type(m) in (nn.Linear, SparseLinear):
                prev_weight = True
            elif isinstance(m, nn.ReLU) and prev_weight:
                prev_weight = False
            else:
                return False
        return True

    def forward(self, x: Tensor) -> Tensor:
        if self.use_kernel and x.dim() == 2:
            n = len(self.outs)
            y = kernels.sparse_mlp(x.contiguous(), self._used,
                                   [getattr(self, f"_crow{k}") for k in range(n)],
                                   [getattr(self, f"_col{k}") for k in range(n)],
                                   [getattr(self, f"_val{k}") for k in range(n)],
                                   [getattr(self, f"_bias{k}") for k in range(n)], self.outs, self.relu)
            if y is not None:
                return y
        return self.chain(x)

    def extra_repr(self) -> str:
        return f"layers={len(self.outs)}, outs={self.outs}"


class CompressedSequential(nn.Sequential):
    """The plain ``nn.Sequential`` that ``compress`` returns; ``info`` records what it did
    (per weight layer: source layer name, shapes before and after, kept weights, storage).

    Two inference settings, chosen by ``compress`` for conv models (neither changes a result):
    ``channels_last`` (4-d inputs are given the NHWC memory layout that oneDNN's CPU convolutions
    prefer) and ``chunk_size`` (a larger batch runs in chunks of that many rows, so that the
    activations stay small: a 46 MB conv output costs more in fresh memory pages than in arithmetic).
    """

    def __init__(self, *modules: nn.Module, info: dict | None = None, channels_last: bool = False,
                 chunk_size: int | None = None) -> None:
        super().__init__(*modules)
        self.info = info or {}
        self.channels_last = bool(channels_last)
        self.chunk_size = None if not chunk_size else int(chunk_size)

    def forward(self, input: Tensor) -> Tensor:
        if self.channels_last and input.dim() == 4:
            input = input.contiguous(memory_format=torch.channels_last)
        if self.chunk_size and input.dim() > 1 and input.shape[0] > self.chunk_size:
            return torch.cat([super(CompressedSequential, self).forward(part)
                              for part in input.split(self.chunk_size)])
        return super().forward(input)

    def extra_repr(self) -> str:
        return f"channels_last={self.channels_last}, chunk_size={self.chunk_size}"


# --------------------------------------------------------------------------------------------
# Analysis of the chain
# --------------------------------------------------------------------------------------------
# Elementwise modules: a constant input gives a constant output; (attributes saved in the file).
_ELEMENTWISE = {
    nn.ReLU: (), nn.ReLU6: (), nn.LeakyReLU: ("negative_slope",), nn.Tanh: (), nn.Sigmoid: (),
    nn.ELU: ("alpha",), nn.GELU: ("approximate",), nn.SiLU: (), nn.Identity: (),
    nn.Hardtanh: ("min_val", "max_val"), nn.Softplus: ("beta", "threshold"),
}
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_WEIGHT = (LinearSVDO, Conv2dSVDO, nn.Linear, nn.Conv2d)


class _Unsupported(Exception):
    pass


def _flatten_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if type(model) not in (nn.Sequential, CompressedSequential):
        raise _Unsupported(f"the model is a {type(model).__name__}, not a plain nn.Sequential chain")
    out = []
    for name, child in model.named_children():
        if type(child) is nn.Sequential:
            out += [(f"{name}.{n}", m) for n, m in _flatten_chain(child)]
        else:
            out.append((name, child))
    return out


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, (Conv2dSVDO, nn.Conv2d))


def _check_module(name: str, m: nn.Module) -> None:
    t = type(m)
    if t in (LinearSVDO, nn.Linear) or t in _ELEMENTWISE or t in _DROPOUT:
        return
    if t in (Conv2dSVDO, nn.Conv2d):
        if m.groups != 1:
            raise _Unsupported(f"{name}: grouped convolution (groups={m.groups})")
        if t is nn.Conv2d and m.padding_mode != "zeros":
            raise _Unsupported(f"{name}: padding_mode={m.padding_mode!r}")
        if isinstance(m.padding, str):
            raise _Unsupported(f"{name}: string padding {m.padding!r}")
        return
    if t is nn.MaxPool2d:
        if m.return_indices:
            raise _Unsupported(f"{name}: MaxPool2d(return_indices=True)")
        return
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise _Unsupported(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
        return
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not m.track_running_stats or m.running_mean is None:
            raise _Unsupported(f"{name}: batch norm without running statistics")
        return
    raise _Unsupported(f"{name}: module type {t.__name__} is not one compress can shrink")


def _weight_and_bias(m: nn.Module, threshold: float | None) -> tuple[Tensor, Tensor | None]:
    with torch.no_grad():
        if isinstance(m, SVDOMixin):
            w = m.masked_weight(threshold)  # eval mode: theta * (log_alpha < threshold)
        else:
            w = m.weight.detach().clone()
        b = None if m.bias is None else m.bias.detach().clone()
    return w, b


def _padding_zero(m: nn.Module) -> bool:
    return tuple(m.padding) == (0, 0)


def _apply_segment_to_const(ops, const: Tensor, spatial: dict, next_in: int | None) -> Tensor:
    """Push per-unit constants (shape (1, C) or (1, C, 1, 1)) through the ops of a segment."""
    for name, m in ops:
        if isinstance(m, _DROPOUT) or isinstance(m, nn.MaxPool2d):
            continue  # identity in eval mode / the max of a constant map is that constant
        if isinstance(m, nn.Flatten):
            hw = spatial.get(name, 1)
            const = const.reshape(1, -1).repeat_interleave(hw, dim=1)
            continue
        const = m(const)
    return const


# --------------------------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------------------------
def _fallback(model: nn.Module, threshold: float | None, reason: str) -> nn.Module:
    warnings.warn(
        f"compress cannot shrink this architecture structurally ({reason}); returning the same "
        f"architecture with masked dense layers (correct outputs, no speed-up). Structured "
        f"compression needs an nn.Sequential chain of Linear/Conv2d layers, elementwise "
        f"activations, MaxPool2d, Flatten, Dropout and BatchNorm.",
        stacklevel=3,
    )
    model = copy.deepcopy(model)

    def _plain(m: nn.Module) -> nn.Module:
        w, b = _weight_and_bias(m, threshold)
        if isinstance(m, LinearSVDO):
            new = nn.Linear(m.in_features, m.out_features, bias=b is not None,
                            device=w.device, dtype=w.dtype)
        else:
            new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                            m.dilation, m.groups, bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            new.weight.copy_(w)
            if b is not None:
                new.bias.copy_(b)
        return new

    def _replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, SVDOMixin):
                setattr(parent, name, _plain(child))
            else:
                _replace(child)

    if isinstance(model, SVDOMixin):
        model = _plain(model)
    else:
        _replace(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def compress(
    model: nn.Module,
    threshold: float | None = None,
    *,
    storage: str = "auto",
    input_shape: tuple[int, ...] | None = None,
    example_input: Tensor | None = None,
    timing_batch: int = 256,
    timing_repeats: int = 7,
) -> nn.Module:
    """A plain ``torch.nn`` model whose outputs equal ``model``'s eval-mode outputs.

    ``threshold`` overrides the layers' own (weights with log_alpha >= threshold are dropped).
    ``storage``: "auto" times dense against sparse (CSR) for each weight layer on a representative
    batch (``example_input``, else random inputs of ``input_shape`` without the batch dimension,
    ``timing_batch`` rows; a Linear-first model needs neither) and keeps the faster; "dense" or
    "sparse" force one. Without a shape to time on, "auto" keeps dense. The input model is untouched.

    Raises ValueError for a model with no Sparse VD layer, a non-finite threshold or an unknown
    ``storage``. Architectures it cannot shrink give masked dense layers and a warning.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"compress expects an nn.Module, got {type(model).__name__}")
    if threshold is not None:
        threshold = _check_threshold(threshold)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}; got {storage!r}")
    if not svdo_layers(model):
        raise ValueError(
            "compress needs a model with Sparse VD layers (LinearSVDO / Conv2dSVDO): a dense model "
            "has nothing to remove. Train one with svdo=True (or sparsevd_lab.from_dense), or use "
            "sparsevd_lab.pruning.magnitude_prune for a dense baseline."
        )
    try:
        chain = _flatten_chain(model)
        for name, m in chain:
            _check_module(name, m)
        compact = _shrink(chain, threshold)
    except _Unsupported as err:
        return _fallback(model, threshold, str(err))
    compact.eval()
    x = _timing_input(compact, input_shape, example_input, timing_batch) if storage == "auto" else None
    if storage != "dense":
        _choose_storage(compact, storage, x, timing_repeats)
    if storage == "auto":
        # a tail of sparse linear layers may run faster in one pass of the compiled kernel: time it
        variant = None if x is None else _mlp_variant(compact)
        if variant is not None:
            t_layers, t_mlp = _interleaved([compact, variant], x, timing_repeats)
            for c in (compact, variant):
                c.info["seconds_layers"], c.info["seconds_sparse_mlp"] = t_layers, t_mlp
            if t_mlp < t_layers:
                compact = variant
    inference_layout(compact, example_input[:1] if example_input is not None else
                     (torch.zeros(1, *input_shape, device=_device(compact)) if input_shape else None))
    return compact


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


def _shrink(chain, threshold) -> CompressedSequential:
    weight_pos = [i for i, (_, m) in enumerate(chain) if isinstance(m, _WEIGHT)]
    if not weight_pos:
        raise _Unsupported("no weight layer")
    n_layers = len(weight_pos)
    # segments[k] = ops before weight layer k; segments[n_layers] = ops after the last one
    bounds = [-1] + weight_pos + [len(chain)]
    segments = [chain[bounds[k] + 1: bounds[k + 1]] for k in range(n_layers + 1)]
    layers = [chain[i] for i in weight_pos]
    ws, bs = zip(*(_weight_and_bias(m, threshold) for _, m in layers))
    ws, bs = list(ws), list(bs)

    # Shapes between layers: a Flatten after a conv maps channel c to features c*hw .. c*hw+hw-1.
    spatial: dict[str, int] = {}
    for k in range(n_layers + 1):
        prev = layers[k - 1][1] if k > 0 else None
        nxt = layers[k][1] if k < n_layers else None
        flat_names = [n for n, m in segments[k] if isinstance(m, nn.Flatten)]
        if len(flat_names) > 1:
            raise _Unsupported("more than one Flatten between two weight layers")
        if prev is not None and nxt is not None:
            if _is_conv(prev) and not _is_conv(nxt) and not flat_names:
                raise _Unsupported(f"{layers[k][0]}: a Linear reads a conv output without Flatten")
            if _is_conv(nxt) and not _is_conv(prev):
                raise _Unsupported(f"{layers[k][0]}: a conv after a Linear")
            if flat_names:
                c = prev.out_channels if _is_conv(prev) else prev.out_features
                if _is_conv(nxt) or nxt.in_features % c:
                    raise _Unsupported(f"{flat_names[0]}: cannot map {c} channels onto the "
                                       f"next layer's inputs")
                spatial[flat_names[0]] = nxt.in_features // c

    # Forward pass: which units are constant (no kept incoming weight), fold them downstream.
    dtype = ws[0].dtype
    const_in_mask = None  # bool per input unit of layer k
    const_in_val = None
    folded_in = [torch.zeros(0, dtype=torch.bool)] * n_layers
    for k in range(n_layers):
        w, b = ws[k], bs[k]
        out = w.shape[0]
        if const_in_mask is not None and bool(const_in_mask.any()):
            foldable = const_in_mask.clone()
            if _is_conv(layers[k][1]) and not _padding_zero(layers[k][1]):
                foldable &= const_in_val == 0  # zero padding breaks a nonzero constant map
            if bool(foldable.any()):
                cols = w[:, foldable].double()
                vals = const_in_val[foldable].double()
                colsum = cols.reshape(out, cols.shape[1], -1).sum(-1)  # sum over the kernel
                delta = colsum @ vals
                b = (torch.zeros(out, dtype=torch.float64) if b is None else b.double()) + delta
                bs[k] = b.to(dtype)
                w = w.clone()
                w[:, foldable] = 0
                ws[k] = w
            folded_in[k] = foldable
        else:
            folded_in[k] = torch.zeros(w.shape[1], dtype=torch.bool)
        live = w.reshape(out, -1).ne(0).any(1)
        const = torch.zeros(out, dtype=dtype) if bs[k] is None else bs[k].clone()
        if k + 1 < n_layers:
            shape = (1, out, 1, 1) if _is_conv(layers[k][1]) else (1, out)
            with torch.no_grad():
                cval = _apply_segment_to_const(segments[k + 1], const.reshape(shape), spatial, None)
            hw = cval.numel() // out
            const_in_mask = (~live).repeat_interleave(hw)
            const_in_val = cval.reshape(-1)
            const_in_val = torch.where(const_in_mask, const_in_val, torch.zeros_like(const_in_val))

    # Backward pass: which units does a kept weight downstream read?
    needed_out = [None] * n_layers
    needed_in = [None] * n_layers
    needed_out[-1] = torch.ones(ws[-1].shape[0], dtype=torch.bool)
    for k in range(n_layers - 1, -1, -1):
        w = ws[k][needed_out[k]]
        nin = w.shape[1]
        needed_in[k] = w.reshape(w.shape[0], nin, -1).ne(0).any(-1).any(0) if w.shape[0] else \
            torch.zeros(nin, dtype=torch.bool)
        if k > 0:
            units = ws[k - 1].shape[0]
            hw = nin // units
            needed_out[k - 1] = needed_in[k].reshape(units, hw).any(1)

    if any(not bool(n.any()) for n in needed_out[:-1]) or not bool(needed_in[0].any()):
        # A layer with no kept unit: nothing reads the input, the output is a constant.
        if _is_conv(layers[-1][1]):
            raise _Unsupported("every path is dropped in a net that ends with a conv")
        b = bs[-1] if bs[-1] is not None else torch.zeros(ws[-1].shape[0], dtype=dtype)
        with torch.no_grad():
            value = _apply_segment_to_const(segments[-1], b.reshape(1, -1), spatial, None)
        info = {"structured": True, "constant": True, "layers": [
            {"layer": n, "type": "conv2d" if _is_conv(m) else "linear",
             "shape_before": list(w.shape), "shape_after": [0] * w.dim(), "kept_weights": 0,
             "storage": "none"} for (n, m), w in zip(layers, ws)]}
        return CompressedSequential(Constant(value.reshape(-1)), info=info)

    # Build the compact chain.
    modules: list[nn.Module] = []
    info_layers = []
    for k in range(n_layers + 1):
        # ops of segment k act on the kept units of layer k-1 (or on the input for k == 0)
        kept_units = None if k == 0 else needed_out[k - 1].nonzero().flatten()
        feat_index = None  # kept features of the next layer's input, in compact numbering
        for n, m in segments[k]:
            if isinstance(m, _DROPOUT):
                continue
            if isinstance(m, nn.Flatten):
                modules.append(nn.Flatten())
                if k > 0 and k < n_layers:
                    hw = spatial[n]
                    sel = needed_in[k].reshape(-1, hw)[kept_units]
                    if not bool(sel.all()):
                        feat_index = sel.reshape(-1).nonzero().flatten()
                        modules.append(IndexSelect(feat_index, sel.numel()))
                        kept_units = (kept_units.repeat_interleave(hw) * hw
                                      + torch.arange(hw).repeat(len(kept_units)))[feat_index]
                    else:
                        kept_units = (kept_units.repeat_interleave(hw) * hw
                                      + torch.arange(hw).repeat(len(kept_units)))
                continue
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                modules.append(_slice_bn(m, kept_units))
                continue
            if isinstance(m, nn.MaxPool2d):
                modules.append(nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                            ceil_mode=m.ceil_mode))
                continue
            modules.append(copy.deepcopy(m))
        if k == n_layers:
            break
        name, layer = layers[k]
        in_keep = needed_in[k].nonzero().flatten()
        if k == 0:
            if len(in_keep) < ws[0].shape[1]:
                modules.append(IndexSelect(in_keep, ws[0].shape[1]))
        out_keep = needed_out[k].nonzero().flatten()
        w = ws[k][out_keep][:, in_keep].contiguous()
        b = None if bs[k] is None else bs[k][out_keep].contiguous()
        new = _dense_module(layer, w, b)
        new.source_name = name
        modules.append(new)
        info_layers.append({
            "layer": name, "type": "conv2d" if _is_conv(layer) else "linear",
            "shape_before": list(ws[k].shape), "shape_after": list(w.shape),
            "kept_weights": int(w.ne(0).sum()), "storage": "dense",
        })
    compact = CompressedSequential(*modules, info={"layers": info_layers, "structured": True})
    for p in compact.parameters():
        p.requires_grad_(False)
    return compact


def _slice_bn(m: nn.Module, kept: Tensor | None) -> nn.Module:
    new = copy.deepcopy(m)
    if kept is None or len(kept) == m.num_features:
        return new.eval()
    new = type(m)(len(kept), eps=m.eps, momentum=m.momentum, affine=m.affine,
                  track_running_stats=True, device=m.running_mean.device,
                  dtype=m.running_mean.dtype)
    with torch.no_grad():
        new.running_mean.copy_(m.running_mean[kept])
        new.running_var.copy_(m.running_var[kept])
        if m.affine:
            new.weight.copy_(m.weight[kept])
            new.bias.copy_(m.bias[kept])
    return new.eval()


def _dense_module(layer: nn.Module, w: Tensor, b: Tensor | None) -> nn.Module:
    factory = {"bias": b is not None, "device": w.device, "dtype": w.dtype}
    if _is_conv(layer):
        new = nn.utils.skip_init(nn.Conv2d, w.shape[1], w.shape[0], tuple(w.shape[2:]),
                                 tuple(layer.stride), tuple(layer.padding), tuple(layer.dilation),
                                 **factory)
    else:
        new = nn.utils.skip_init(nn.Linear, w.shape[1], w.shape[0], **factory)
    new.weight = nn.Parameter(w.detach().clone().contiguous(), requires_grad=False)
    if b is not None:
        new.bias = nn.Parameter(b.detach().clone().contiguous(), requires_grad=False)
    return new


def _sparse_module(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        new = SparseConv2d(m.weight.detach(), m.bias, m.stride, m.padding, m.dilation)
    else:
        new = SparseLinear(m.weight.detach(), m.bias)
    new.source_name = getattr(m, "source_name", "")
    return new


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _timing_input(compact: CompressedSequential, input_shape, example_input, timing_batch: int):
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
    return torch.randn(timing_batch, *input_shape, generator=gen).to(_device(compact))


def _interleaved(fns, x, repeats: int) -> list[float]:
    """Median seconds of each fn(x), timed in turn (so that background load hits all alike)."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            start = time.perf_counter()
            fn(x)
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _mlp_variant(compact: CompressedSequential):
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
def _choose_storage(compact: CompressedSequential, storage: str, x: Tensor | None, repeats: int) -> None:
    weight_idx = [i for i, m in enumerate(compact) if isinstance(m, (nn.Linear, nn.Conv2d))]
    if storage == "sparse":
        for i in weight_idx:
            compact[i] = _sparse_module(compact[i])
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
        sparse = _sparse_module(dense)
        ref = dense(h)
        if not torch.allclose(sparse(h), ref, rtol=1e-4, atol=1e-5):  # pragma: no cover
            continue
        t_dense, t_sparse = _interleaved([dense, sparse], h, repeats)
        compact.info["layers"][pos]["seconds_dense"] = t_dense
        compact.info["layers"][pos]["seconds_sparse"] = t_sparse
        if t_sparse < t_dense:
            compact[i] = sparse
            compact.info["layers"][pos]["storage"] = "sparse"


# --------------------------------------------------------------------------------------------
# Save / load: safetensors + a JSON architecture in the metadata (no code runs on load)
# --------------------------------------------------------------------------------------------
_VALUE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                torch.bfloat16: "bfloat16"}


def _smallest_int(max_value: int) -> torch.dtype:
    """The smallest signed (or uint8) integer dtype safetensors stores that holds 0..max_value."""
    if max_value < 2 ** 8:
        return torch.uint8
    if max_value < 2 ** 15:
        return torch.int16
    if max_value < 2 ** 31:
        return torch.int32
    return torch.int64


def _encode_weight(w: Tensor, prefix: str, tensors: dict, values_dtype: torch.dtype) -> dict:
    """Store only the kept weights: CSR (row pointers + column indices in the smallest int dtype)
    or a bit mask (1 bit per weight), whichever is smaller, plus the values."""
    w2 = w.detach().reshape(w.shape[0], -1).cpu()
    mask = w2.ne(0)
    nnz = int(mask.sum())
    rows, cols = w2.shape
    values = w2[mask].to(values_dtype).contiguous()
    idx_dt, ptr_dt = _smallest_int(max(cols - 1, 0)), _smallest_int(nnz)
    csr_bytes = nnz * torch.empty(0, dtype=idx_dt).element_size() + \
        (rows + 1) * torch.empty(0, dtype=ptr_dt).element_size()
    mask_bytes = (rows * cols + 7) // 8
    spec = {"shape": list(w.shape), "values": f"{prefix}.values", "nnz": nnz}
    tensors[f"{prefix}.values"] = values
    if csr_bytes < mask_bytes:
        crow = torch.zeros(rows + 1, dtype=torch.long)
        crow[1:] = mask.sum(1).cumsum(0)
        col = mask.nonzero()[:, 1]
        tensors[f"{prefix}.crow"] = crow.to(ptr_dt).contiguous()
        tensors[f"{prefix}.col"] = col.to(idx_dt).contiguous()
        spec.update(encoding="csr", crow=f"{prefix}.crow", col=f"{prefix}.col")
    else:
        packed = np.packbits(mask.reshape(-1).numpy())
        tensors[f"{prefix}.mask"] = torch.from_numpy(packed.copy())
        spec.update(encoding="bitmask", mask=f"{prefix}.mask")
    return spec


def _module_spec(i: int, m: nn.Module, tensors: dict, values_dtype: torch.dtype) -> dict:
    p = f"m{i}"

    def put(name: str, t: Tensor | None, dtype: torch.dtype | None = None) -> str | None:
        if t is None:
            return None
        tensors[f"{p}.{name}"] = t.detach().cpu().to(dtype or t.dtype).contiguous().clone()
        return f"{p}.{name}"

    t = type(m)
    if t is nn.Flatten:
        return {"type": "flatten"}
    if t is SparseMLP:
        return {"type": "sparse_mlp", "modules": [_module_spec(f"{i}_{k}", sub, tensors, values_dtype)
                                                 for k, sub in enumerate(m.chain)]}
    if t is IndexSelect:
        # the kept positions as a bitmask over the input when that is smaller than the index list
        if (m.in_size + 7) // 8 < m.index.numel() * _smallest_int(max(m.in_size - 1, 0)).itemsize:
            mask = torch.zeros(m.in_size, dtype=torch.bool)
            mask[m.index] = True
            return {"type": "index_select", "in_size": m.in_size,
                    "index_mask": put("index_mask", torch.from_numpy(np.packbits(mask.numpy())))}
        return {"type": "index_select", "in_size": m.in_size,
                "index": put("index", m.index, _smallest_int(max(m.in_size - 1, 0)))}
    if t is Constant:
        return {"type": "constant", "value": put("value", m.value)}
    if t in _ELEMENTWISE:
        spec = {"type": "elementwise", "class": t.__name__,
                "args": {a: getattr(m, a) for a in _ELEMENTWISE[t]}}
        if getattr(m, "inplace", False):
            spec["inplace"] = True
        return spec
    if t is nn.MaxPool2d:
        return {"type": "maxpool2d", "kernel_size": m.kernel_size, "stride": m.stride,
                "padding": m.padding, "dilation": m.dilation, "ceil_mode": m.ceil_mode}
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        return {"type": t.__name__.lower(), "num_features": m.num_features, "eps": m.eps,
                "affine": m.affine, "running_mean": put("running_mean", m.running_mean),
                "running_var": put("running_var", m.running_var),
                "weight": put("weight", m.weight) if m.affine else None,
                "bias": put("bias", m.bias) if m.affine else None}
    if t in (nn.Linear, nn.Conv2d, SparseLinear, SparseConv2d):
        conv = t in (nn.Conv2d, SparseConv2d)
        w = m.dense_weight() if t in (SparseLinear, SparseConv2d) else m.weight
        spec = {"type": "conv2d" if conv else "linear",
                "storage": "sparse" if t in (SparseLinear, SparseConv2d) else "dense",
                "source_name": getattr(m, "source_name", ""),
                "dtype": _DTYPE_NAMES.get(w.dtype, "float32"),
                "weight": _encode_weight(w, f"{p}.weight", tensors, values_dtype),
                "bias": put("bias", m.bias, values_dtype if m.bias is not None and
                            m.bias.dtype == torch.float32 else None)}
        if conv:
            spec.update(stride=list(m.stride), padding=list(m.padding), dilation=list(m.dilation))
        return spec
    raise ValueError(f"save_compressed cannot describe a {t.__name__} module")


def save_compressed(model: nn.Module, path: str | os.PathLike, *, values_dtype: str = "float32",
                    **compress_kwargs) -> Path:
    """Save a compressed model (or compress a Sparse VD model first) to ``path`` (safetensors).

    The architecture goes as JSON into the safetensors metadata; weights store only their kept
    entries. ``values_dtype="float16"`` halves the values (outputs then differ by ~1e-3 relative);
    the default float32 is exact. Written to a temporary file in the same folder, then renamed.
    """
    from safetensors.torch import save_file

    if values_dtype not in _VALUE_DTYPES:
        raise ValueError(f"values_dtype must be one of {sorted(_VALUE_DTYPES)}; got {values_dtype!r}")
    if not isinstance(model, CompressedSequential):
        if svdo_layers(model):
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # a fallback model cannot be described
                try:
                    model = compress(model, **compress_kwargs)
                except UserWarning as err:
                    raise ValueError(f"save_compressed: {err}") from None
        else:
            raise ValueError(
                f"save_compressed expects the result of sparsevd_lab.compress (or a Sparse VD model "
                f"to compress); got a {type(model).__name__}. A model compress could not shrink "
                f"(masked dense layers) is saved with safetensors.torch.save_file(model.state_dict())."
            )
    tensors: dict[str, Tensor] = {}
    modules = [_module_spec(i, m, tensors, _VALUE_DTYPES[values_dtype])
               for i, m in enumerate(model)]
    arch = {"modules": modules, "info": model.info, "values_dtype": values_dtype,
            "channels_last": model.channels_last, "chunk_size": model.chunk_size}
    blobs, index = _pack(tensors)
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                "architecture": encode_architecture(arch),
                "index": json.dumps(index, separators=(",", ":"))}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(blobs, tmp, metadata=metadata)
    return path


# A small model's file is dominated by its header (the architecture and one safetensors entry per
# tensor), so the architecture is stored as zlib-compressed JSON and the tensors are packed into one
# flat blob per dtype, with a compact index: LeNet-300-100 at 300x compression is then ~6 KB.


def encode_architecture(arch: dict) -> str:
    """Architecture dict -> compact JSON, zlib-compressed, base64 text (safetensors metadata)."""
    raw = json.dumps(arch, default=float, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_architecture(text: str) -> dict:
    """The inverse of ``encode_architecture``."""
    return json.loads(zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True)))


def _pack(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, list]]:
    groups: dict[str, list] = {}
    index: dict[str, list] = {}
    for name, t in tensors.items():
        key = str(t.dtype).replace("torch.", "")
        parts = groups.setdefault(key, [])
        offset = sum(p.numel() for p in parts)
        index[name] = [key, offset, list(t.shape)]
        parts.append(t.contiguous().reshape(-1))
    return {f"blob_{k}": torch.cat(v) for k, v in groups.items()}, index


def _unpack(blobs: dict[str, Tensor], index: dict[str, list]) -> dict[str, Tensor]:
    out = {}
    for name, (key, offset, shape) in index.items():
        blob = blobs[f"blob_{key}"]
        n = int(np.prod(shape)) if shape else 1
        if offset < 0 or offset + n > blob.numel():
            raise ValueError(f"tensor {name!r} lies outside its blob")
        out[name] = blob[offset:offset + n].reshape(shape)
    return out


def _bad(path, what: str) -> CompressedFileError:
    return CompressedFileError(
        f"{path} is not a usable sparsevd_lab compressed model: {what}. Make it again with "
        f"sparsevd_lab.save_compressed(compress(model), path); a state_dict or checkpoint is "
        f"loaded with model.load_state_dict instead."
    )


def _decode_weight(spec: dict, get, dtype: torch.dtype) -> Tensor:
    shape = [int(s) for s in spec["shape"]]
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    values = get(spec["values"]).to(dtype)
    if spec["encoding"] == "csr":
        crow = get(spec["crow"]).long()
        col = get(spec["col"]).long()
        if crow.numel() != rows + 1 or col.numel() != values.numel() or \
                int(crow[-1]) != values.numel() or bool((crow[1:] < crow[:-1]).any()) or \
                (col.numel() and (int(col.min()) < 0 or int(col.max()) >= cols)):
            raise ValueError("inconsistent CSR arrays")
        row_idx = torch.repeat_interleave(torch.arange(rows), crow[1:] - crow[:-1])
        w = torch.zeros(rows, cols, dtype=dtype)
        w[row_idx, col] = values
    elif spec["encoding"] == "bitmask":
        bits = np.unpackbits(get(spec["mask"]).numpy())[: rows * cols]
        if bits.size != rows * cols or int(bits.sum()) != values.numel():
            raise ValueError("bit mask does not match the values")
        w = torch.zeros(rows * cols, dtype=dtype)
        w[torch.from_numpy(bits.astype(bool))] = values
    else:
        raise ValueError(f"unknown weight encoding {spec['encoding']!r}")
    return w.reshape(shape)


def _build_module(spec: dict, get) -> nn.Module:
    t = spec["type"]
    if t == "flatten":
        return nn.Flatten()
    if t == "sparse_mlp":
        return SparseMLP(nn.Sequential(*[_build_module(sub, get) for sub in spec["modules"]]))
    if t == "index_select":
        if "index_mask" in spec:
            bits = np.unpackbits(get(spec["index_mask"]).numpy())[: int(spec["in_size"])]
            return IndexSelect(torch.from_numpy(np.flatnonzero(bits)).long(), spec["in_size"])
        return IndexSelect(get(spec["index"]).long(), spec["in_size"])
    if t == "constant":
        return Constant(get(spec["value"]))
    if t == "elementwise":
        cls = {c.__name__: c for c in _ELEMENTWISE}[spec["class"]]
        m = cls(**{a: spec["args"][a] for a in _ELEMENTWISE[cls]})
        if spec.get("inplace"):
            m.inplace = True
        return m
    if t == "maxpool2d":
        return nn.MaxPool2d(spec["kernel_size"], spec["stride"], spec["padding"], spec["dilation"],
                            ceil_mode=bool(spec["ceil_mode"]))
    if t in ("batchnorm1d", "batchnorm2d"):
        cls = nn.BatchNorm1d if t == "batchnorm1d" else nn.BatchNorm2d
        m = cls(int(spec["num_features"]), eps=float(spec["eps"]), affine=bool(spec["affine"]))
        with torch.no_grad():
            m.running_mean.copy_(get(spec["running_mean"]))
            m.running_var.copy_(get(spec["running_var"]))
            if m.affine:
                m.weight.copy_(get(spec["weight"]))
                m.bias.copy_(get(spec["bias"]))
        return m.eval()
    if t in ("linear", "conv2d"):
        dtype = getattr(torch, spec.get("dtype", "float32"))
        w = _decode_weight(spec["weight"], get, dtype)
        b = None if spec["bias"] is None else get(spec["bias"]).to(dtype)
        if t == "conv2d":
            layer = nn.Conv2d(1, 1, 1, stride=spec["stride"], padding=spec["padding"],
                              dilation=spec["dilation"])
            if spec["storage"] == "sparse":
                new = SparseConv2d(w, b, spec["stride"], spec["padding"], spec["dilation"])
            else:
                new = _dense_module(layer, w, b)
        else:
            new = SparseLinear(w, b) if spec["storage"] == "sparse" else \
                _dense_module(nn.Linear(1, 1), w, b)
        new.source_name = spec.get("source_name", "")
        return new
    raise ValueError(f"unknown module type {t!r}")


def load_compressed(path: str | os.PathLike, device: str | torch.device = "cpu") -> CompressedSequential:
    """Load a model written by ``save_compressed``. Executes no code from the file.

    Raises ``CompressedFileError`` (a ValueError) when the file is missing, truncated, or not one
    of ours, with a message saying what is wrong.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        fh = safe_open(str(path), framework="pt", device="cpu")
    except Exception as err:  # safetensors raises its own error types (header, size, ...)
        raise _bad(path, f"not a complete safetensors file ({type(err).__name__}: {err}); it may "
                         f"be truncated or another format (pickle, torch.save)") from None
    with fh:
        meta = fh.metadata() or {}
        if meta.get("format") != FORMAT_NAME:
            raise _bad(path, f"its metadata has no format={FORMAT_NAME!r} (got "
                             f"{meta.get('format')!r}), so it was not written by save_compressed")
        try:
            version = int(meta.get("format_version", "0"))
        except ValueError:
            version = -1
        if version != FORMAT_VERSION:
            raise _bad(path, f"format version {meta.get('format_version')!r}, this sparsevd_lab "
                             f"reads version {FORMAT_VERSION}")
        try:
            stored = _unpack({k: fh.get_tensor(k) for k in fh.keys()}, json.loads(meta["index"]))
        except Exception as err:
            raise _bad(path, f"its tensor index is damaged ({type(err).__name__}: {err})") from None

        def get(key: str) -> Tensor:
            if key not in stored:
                raise KeyError(f"tensor {key!r} is missing")
            return stored[key]

        try:
            arch = decode_architecture(meta["architecture"])
            modules = [_build_module(spec, get) for spec in arch["modules"]]
        except Exception as err:
            raise _bad(path, f"its architecture cannot be rebuilt ({type(err).__name__}: {err})") \
                from None
    model = CompressedSequential(*modules, info=arch.get("info", {}),
                                 channels_last=bool(arch.get("channels_last", False)),
                                 chunk_size=arch.get("chunk_size"))
    if model.channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


# --------------------------------------------------------------------------------------------
# Reports: FLOPs (multiply-adds) per layer, file sizes
# --------------------------------------------------------------------------------------------
_COUNTED = (LinearSVDO, Conv2dSVDO, nn.Linear, nn.Conv2d, SparseLinear, SparseConv2d)


@torch.no_grad()
def _madds(model: nn.Module, x: Tensor, threshold: float | None) -> dict[str, dict]:
    """Per weight layer: multiply-adds for one example (dense, kept-only, as executed)."""
    out: dict[str, dict] = {}
    hooks = []

    def hook_for(name: str):
        def hook(m, inputs, output):
            positions = output.numel() // (x.shape[0] * output.shape[1 if output.dim() > 2 else -1])
            if isinstance(m, SVDOMixin):
                numel, kept, executed = m.weight.numel(), int(m.mask(threshold).sum()), None
            elif isinstance(m, (SparseLinear, SparseConv2d)):
                numel = kept = executed = int(m.weight.values().numel())
            else:
                numel, kept = m.weight.numel(), int(m.weight.ne(0).sum())
                executed = numel
            key = getattr(m, "source_name", "") or name
            out[key] = {"type": type(m).__name__, "shape": tuple(
                m.dense_weight().shape if isinstance(m, (SparseLinear, SparseConv2d))
                else m.weight.shape),
                "dense": numel * positions, "kept": kept * positions,
                "executed": None if executed is None else executed * positions}
        return hook

    for name, m in model.named_modules():
        if isinstance(m, _COUNTED):
            hooks.append(m.register_forward_hook(hook_for(name)))
    mlps = [m for m in model.modules() if isinstance(m, SparseMLP)]
    for m in mlps:  # run its layers one by one, so that the hooks see each
        m.use_kernel = False
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for m in mlps:
            m.use_kernel = True
        for h in hooks:
            h.remove()
    return out


def flops_report(model: nn.Module, input_shape: tuple[int, ...], compressed: nn.Module | None = None,
                 threshold: float | None = None) -> pd.DataFrame:
    """Multiply-adds per example for every weight layer: the dense model, the Sparse VD model's kept
    weights only, and what the compressed model executes (``compressed``, default
    ``compress(model, threshold, storage="dense")``; a dense-stored layer runs all its entries).

    ``input_shape`` is one example's shape (no batch dimension), e.g. (1, 28, 28). The last row is
    the total; ``df.attrs["flop_ratio"]`` is dense / compressed.
    """
    if compressed is None:
        compressed = compress(model, threshold, storage="dense")
    x = torch.zeros(1, *input_shape, device=_device(model))
    before = _madds(model, x, threshold)
    after = _madds(compressed, x.to(_device(compressed)), threshold)
    rows = []
    for name, r in before.items():
        c = after.get(name)
        rows.append({"layer": name, "type": r["type"], "shape": r["shape"],
                     "dense_madds": r["dense"], "kept_madds": r["kept"],
                     "compressed_shape": c["shape"] if c else (),
                     "compressed_madds": c["executed"] if c else 0,
                     "compressed_storage": (c["type"] if c else "removed")})
    df = pd.DataFrame.from_records(rows).set_index("layer")
    total = {"type": "", "shape": (), "dense_madds": int(df["dense_madds"].sum()),
             "kept_madds": int(df["kept_madds"].sum()), "compressed_shape": (),
             "compressed_madds": int(df["compressed_madds"].sum()), "compressed_storage": ""}
    df.loc["total"] = pd.Series(total)
    df["ratio_x"] = df["dense_madds"] / df["compressed_madds"].where(df["compressed_madds"] > 0)
    df.attrs["flop_ratio"] = float(df.loc["total", "ratio_x"]) if total["compressed_madds"] else \
        float("inf")
    return df


def _dense_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state_dict of the dense twin: Sparse VD layers without log_sigma2."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("log_sigma2")}


def file_size_report(model: nn.Module, compressed: nn.Module | None = None, *,
                     threshold: float | None = None, values_dtype: str = "float32",
                     directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Bytes on disk: the dense model's state_dict (weights and biases, safetensors), the Sparse VD
    state_dict (with log_sigma2), and the ``save_compressed`` file; ``ratio_x`` = dense / row.
    ``df.attrs["size_ratio"]`` is dense / compressed."""
    from safetensors.torch import save_file

    if compressed is None:
        compressed = compress(model, threshold, storage="dense")
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tmp = Path(tmp)
        dense = {k: v.detach().cpu().contiguous() for k, v in _dense_state_dict(model).items()}
        save_file(dense, tmp / "dense.safetensors")
        full = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(full, tmp / "svdo.safetensors")
        save_compressed(compressed, tmp / "compressed.safetensors", values_dtype=values_dtype)
        sizes = {name: (tmp / f"{f}.safetensors").stat().st_size for name, f in [
            ("dense state_dict", "dense"), ("Sparse VD state_dict (with log_sigma2)", "svdo"),
            (f"compressed ({values_dtype})", "compressed")]}
    base = sizes["dense state_dict"]
    df = pd.DataFrame({"bytes": sizes}).rename_axis("file")
    df["ratio_x"] = base / df["bytes"]
    df.attrs["size_ratio"] = base / sizes[f"compressed ({values_dtype})"]
    return df
