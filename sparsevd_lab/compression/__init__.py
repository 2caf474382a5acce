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
multiply-adds per layer, ``file_size_report`` compares file sizes. Measured in docs/compression.md
(``benchmarks/bench_compress.py``); assignment A2 has students build the same steps by hand.

The subpackage, one job per module: ``modules`` (the inference modules), ``shrink`` (``compress``),
``layout`` (inference layout and timing), ``fileformat`` (save / load), ``reports``.
"""
from .fileformat import (FORMAT_NAME, FORMAT_VERSION, CompressedFileError, decode_architecture,
                         encode_architecture, load_compressed, save_compressed)
from .layout import CHUNK_BYTES, inference_layout
from .modules import CompressedSequential, Constant, IndexSelect, SparseConv2d, SparseLinear, SparseMLP
from .reports import file_size_report, flops_report
from .shrink import STORAGES, compress

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
