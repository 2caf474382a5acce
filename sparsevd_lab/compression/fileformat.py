"""The compressed file: a safetensors file of plain named tensors, with the architecture as JSON in its
metadata, so that any safetensors tool reads it (``safetensors.safe_open(path, "pt")``: ``keys()``,
``get_tensor(name)``, ``metadata()``). Loading executes no code (no pickle).

Metadata (all strings, as safetensors requires): ``format`` = "sparsevd_lab.compressed",
``format_version`` = "3", ``architecture`` = JSON ``{"modules": [...], "info": ..., "values_dtype":
..., "channels_last": ..., "chunk_size": ...}``; each module spec names its tensors, e.g. module 2, a
CSR-stored linear layer: ``m2.weight.values`` (kept weights), ``m2.weight.crow`` / ``m2.weight.col``
(CSR row pointers and column indices, the smallest integer dtype that holds them) or ``m2.weight.mask``
(a packed bit mask, when smaller), and ``m2.bias``.

Version 2 files (tensors packed into one blob per dtype, zlib-compressed architecture) are still read.
"""
from __future__ import annotations

import base64
import json
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..files import atomic_path, check_file_path
from ..layers import svdo_layers
from .modules import (ELEMENTWISE, CompressedSequential, Constant, IndexSelect, SparseConv2d,
                      SparseLinear, SparseMLP, dense_module)
from .shrink import compress

__all__ = ["save_compressed", "load_compressed", "CompressedFileError", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "sparsevd_lab.compressed"
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)


class CompressedFileError(ValueError):
    """A file given to ``load_compressed`` is not a (complete) sparsevd_lab compressed model."""


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
    if t in ELEMENTWISE:
        spec = {"type": "elementwise", "class": t.__name__,
                "args": {a: getattr(m, a) for a in ELEMENTWISE[t]}}
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
    path = check_file_path(path)  # before compressing: a folder is refused at once
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
    arch = {"modules": modules, "info": _rounded(model.info), "values_dtype": values_dtype,
            "channels_last": model.channels_last, "chunk_size": model.chunk_size}
    metadata = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                "architecture": json.dumps(arch, default=float, separators=(",", ":"))}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def _rounded(obj):
    """``obj`` with its floats (timings in ``info``) to 4 significant digits: a smaller header."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, float) and math.isfinite(obj):
        return float(f"{obj:.4g}")
    return obj


# Format version 2, still read: the tensors packed into one flat blob per dtype with a JSON index
# ("index" in the metadata), the architecture as zlib-compressed, base64-encoded JSON.


def encode_architecture(arch: dict) -> str:
    """Architecture dict -> compact JSON, zlib-compressed, base64 text (format version 2)."""
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
        cls = {c.__name__: c for c in ELEMENTWISE}[spec["class"]]
        m = cls(**{a: spec["args"][a] for a in ELEMENTWISE[cls]})
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
                new = dense_module(layer, w, b)
        else:
            new = SparseLinear(w, b) if spec["storage"] == "sparse" else \
                dense_module(nn.Linear(1, 1), w, b)
        new.source_name = spec.get("source_name", "")
        return new
    raise ValueError(f"unknown module type {t!r}")


def load_compressed(path: str | os.PathLike, device: str | torch.device = "cpu") -> CompressedSequential:
    """Load a model written by ``save_compressed``. Executes no code from the file.

    Raises ``CompressedFileError`` (a ValueError) when the file is missing, truncated, or not one
    of ours, with a message saying what is wrong.
    """
    from safetensors import safe_open

    from ..train import resolve_device

    device = resolve_device(device)  # no GPU: say so before reading anything
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
        if version not in READABLE_VERSIONS:
            raise _bad(path, f"format version {meta.get('format_version')!r}, this sparsevd_lab "
                             f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
        try:
            stored = {k: fh.get_tensor(k) for k in fh.keys()}
            if version == 2:
                stored = _unpack(stored, json.loads(meta["index"]))
        except Exception as err:
            raise _bad(path, f"its tensors cannot be read ({type(err).__name__}: {err})") from None

        def get(key: str) -> Tensor:
            if key not in stored:
                raise KeyError(f"tensor {key!r} is missing")
            return stored[key]

        try:
            arch = (decode_architecture(meta["architecture"]) if version == 2
                    else json.loads(meta["architecture"]))
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
