"""The modules of a compressed model: plain ``torch.nn`` building blocks that ``compress`` assembles.

``IndexSelect`` (read only the used inputs), ``Constant`` (a layer whose units all died),
``SparseLinear`` / ``SparseConv2d`` (CSR weights), ``SparseMLP`` (a chain of sparse linear layers in
one compiled pass) and ``CompressedSequential`` (the container, with the inference layout).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import kernels
from ..layers import Conv2dSVDO

__all__ = ["IndexSelect", "Constant", "SparseLinear", "SparseConv2d", "SparseMLP", "CompressedSequential"]

class IndexSelect(nn.Module):
    """Keeps the features (or channels) ``index`` along dim 1: inputs no kept weight reads are
    never read."""

    def __init__(self, index: Tensor, in_size: int) -> None:
        super().__init__()
        self.in_size = int(in_size)
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long).clone())

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            _check_width(self, x, self.in_size)
        elif x.dim() < 2 or x.shape[1] != self.in_size:  # conv channels
            raise ValueError(f"IndexSelect expected input of shape (N, {self.in_size}, ...), got "
                             f"{tuple(x.shape)}")
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{len(self.index)} of {self.in_size}"


def _check_width(layer: nn.Module, x: Tensor, in_features: int) -> None:
    """The error the uncompressed model gives (``LinearSVDO``), before any kernel reads x by index."""
    if x.dim() < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{type(layer).__name__} expected input of shape (..., {in_features}), got "
                         f"{tuple(x.shape)}; flatten images first (e.g. nn.Flatten())")


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
        _check_width(self, x, self.in_features)
        if x.dim() == 2:  # the compiled kernel reads each input row once, no transposes
            y = kernels.csr_linear(x.contiguous(), self._crow, self._col, self.weight.values(), self.bias,
                                   self.out_features, self.in_features)
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
            used, self.in_features = sel.index, sel.in_size
        else:
            used, self.in_features = torch.arange(weights[0].in_features), weights[0].in_features
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
        _check_width(self, x, self.in_features)
        if self.use_kernel and x.dim() == 2:
            n = len(self.outs)
            y = kernels.sparse_mlp(x.contiguous(), self.in_features, self._used,
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


# Elementwise modules: a constant input gives a constant output; (attributes saved in the file).
ELEMENTWISE = {
    nn.ReLU: (), nn.ReLU6: (), nn.LeakyReLU: ("negative_slope",), nn.Tanh: (), nn.Sigmoid: (),
    nn.ELU: ("alpha",), nn.GELU: ("approximate",), nn.SiLU: (), nn.Identity: (),
    nn.Hardtanh: ("min_val", "max_val"), nn.Softplus: ("beta", "threshold"),
}


def is_conv(m: nn.Module) -> bool:
    return isinstance(m, (Conv2dSVDO, nn.Conv2d))


def dense_module(layer: nn.Module, w: Tensor, b: Tensor | None) -> nn.Module:
    factory = {"bias": b is not None, "device": w.device, "dtype": w.dtype}
    if is_conv(layer):
        new = nn.utils.skip_init(nn.Conv2d, w.shape[1], w.shape[0], tuple(w.shape[2:]),
                                 tuple(layer.stride), tuple(layer.padding), tuple(layer.dilation),
                                 **factory)
    else:
        new = nn.utils.skip_init(nn.Linear, w.shape[1], w.shape[0], **factory)
    new.weight = nn.Parameter(w.detach().clone().contiguous(), requires_grad=False)
    if b is not None:
        new.bias = nn.Parameter(b.detach().clone().contiguous(), requires_grad=False)
    return new


def sparse_module(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        new = SparseConv2d(m.weight.detach(), m.bias, m.stride, m.padding, m.dilation)
    else:
        new = SparseLinear(m.weight.detach(), m.bias)
    new.source_name = getattr(m, "source_name", "")
    return new
