"""Checks for assignment A2 (compress a trained Sparse VD model for real): one per exercise.

Each check runs the student's function on a small seeded example (well under 10 s), compares it with
a reference written here, prints one line starting with ``OK:`` or raises ``CheckFailed`` naming the
mistake (a dead unit dropped without folding its constant output into the next bias, CSR row
pointers without the leading 0, a timer without warm-up, pruning per layer instead of globally, ...).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import _call, _fail, _ok, _seeded

__all__ = [
    "check_remove_dead_units",
    "check_to_csr",
    "check_csr_linear",
    "check_csr_nbytes",
    "check_median_time",
    "check_magnitude_masks",
    "check_operating_point",
]


def _np(what: str, a, name: str) -> np.ndarray:
    if torch.is_tensor(a):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (list, tuple)):
        return np.asarray(a)
    _fail(what, f"`{name}` should be a tensor or a numpy array; got {type(a).__name__}")


# --------------------------------------------------------------------------------------------------
# Exercise 1: remove dead units
# --------------------------------------------------------------------------------------------------

def _forward(weights, biases, x):
    """relu(W1 x + b1) -> ... -> W_L h + b_L (no ReLU after the last layer)."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = F.linear(h, w, b)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


def remove_dead_units_reference(weights, biases, fold=torch.relu, forward=True, backward=True):
    """The reference of exercise 1 (the switches make the known wrong answers): returns the smaller
    (weights, biases, inputs) whose outputs on ``x[:, inputs]`` equal the masked net's on ``x``."""
    W = [w.detach().clone() for w in weights]
    b = [v.detach().clone() for v in biases]
    n = len(W)
    original = [w.clone() for w in W]
    keep = [torch.ones(w.shape[0], dtype=torch.bool) for w in W[:-1]]
    for i in range(n - 1):  # first to last: a unit with no kept incoming weight outputs relu(b)
        dead_in = ((W[i] if forward else original[i]) != 0).sum(1) == 0
        b[i + 1] = b[i + 1] + W[i + 1] @ (fold(b[i]) * dead_in)
        W[i + 1][:, dead_in] = 0
        keep[i] &= ~dead_in
    folded = [w.clone() for w in W]
    for i in range(n - 2, -1, -1):  # last to first: a unit that no kept weight reads is removed
        read = ((W[i + 1] if backward else folded[i + 1]) != 0).sum(0) > 0
        keep[i] &= read
        W[i][~keep[i]] = 0
    inputs = torch.nonzero((W[0] != 0).sum(0) > 0).flatten()
    out_w, out_b = [], []
    for i in range(n):
        w = W[i]
        if i < n - 1:
            w, bi = w[keep[i]], b[i][keep[i]]
        else:
            bi = b[i]
        w = w[:, inputs] if i == 0 else w[:, keep[i - 1]]
        out_w.append(w)
        out_b.append(bi)
    return out_w, out_b, inputs


def _toy_chain():
    """12 inputs -> 8 -> 6 -> 3 with dead units of every kind (see check_remove_dead_units)."""
    g = torch.Generator().manual_seed(3)
    W1 = torch.randn(8, 12, generator=g) * (torch.rand(8, 12, generator=g) < 0.5)
    W2 = torch.randn(6, 8, generator=g) * (torch.rand(6, 8, generator=g) < 0.6)
    W3 = torch.randn(3, 6, generator=g) * (torch.rand(3, 6, generator=g) < 0.8)
    b1, b2, b3 = torch.randn(8, generator=g), torch.randn(6, generator=g), torch.randn(3, generator=g)
    W1[:, [2, 5]] = 0  # inputs 2 and 5: read by nobody
    W1[0] = 0
    b1[0] = 1.5  # hidden-1 unit 0: no incoming weight, outputs relu(1.5) = 1.5: fold it
    W1[3] = 0
    b1[3] = -0.7  # hidden-1 unit 3: no incoming weight, relu(-0.7) = 0
    W1[1, :4] = torch.tensor([0.9, -0.4, 0.0, 0.3])  # unit 1 stays alive
    W2[:, 5] = 0  # hidden-1 unit 5: no outgoing weight
    W2[1] = 0
    W2[1, 0] = 0.8  # hidden-2 unit 1 reads only the constant unit 0: it becomes constant too
    W2[4] = 0
    W2[4, 6] = -1.1  # hidden-2 unit 4 is the only reader of hidden-1 unit 6 ...
    W2[:, 6] = 0
    W2[4, 6] = -1.1
    W3[:, 4] = 0  # ... and nobody reads hidden-2 unit 4: both go
    W3[:, 1] = torch.tensor([0.5, -0.5, 1.0])
    W2[[0, 2, 3, 5], 1] = torch.tensor([0.7, -0.3, 0.2, 0.6])
    W3[:, [0, 2, 3, 5]] += 0.3 * (W3[:, [0, 2, 3, 5]] == 0)
    W3[2] = 0  # output 2 reads nothing: it is the constant b3 (plus folded constants), still an output
    return [W1, W2, W3], [b1, b2, b3]


@_seeded
def check_remove_dead_units(fn: Callable) -> None:
    """``fn(weights, biases)`` (lists for relu(W1 x + b1) -> ... -> W_L h + b_L, dropped weights are
    0) must return ``(weights, biases, inputs)``: the net without its dead units, whose outputs on
    ``x[:, inputs]`` equal the masked net's outputs on ``x``, as small as the reference."""
    what = "remove_dead_units"
    weights, biases = _toy_chain()
    before = [w.clone() for w in weights] + [b.clone() for b in biases]
    out = _call(what, fn, weights, biases)
    if not all(torch.equal(a, c) for a, c in zip(weights + biases, before)):
        _fail(what, "it changed the weights or biases it was given in place; work on copies "
                    "(w.clone()), the masked net is still needed for the comparison")
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        _fail(what, "return three things: (weights, biases, inputs)")
    new_w, new_b, inputs = out
    if len(new_w) != len(weights) or len(new_b) != len(biases):
        _fail(what, f"expected {len(weights)} weight matrices and {len(biases)} bias vectors (one per "
                    f"layer, layers are never removed); got {len(new_w)} and {len(new_b)}")
    new_w = [torch.as_tensor(w, dtype=torch.float32) for w in new_w]
    new_b = [torch.as_tensor(b, dtype=torch.float32) for b in new_b]
    inputs = torch.as_tensor(_np(what, inputs, "inputs"))
    if inputs.dtype == torch.bool:
        inputs = torch.nonzero(inputs).flatten()
    inputs = inputs.long()
    ref_w, ref_b, ref_in = remove_dead_units_reference(weights, biases)
    if new_w[-1].shape[0] != weights[-1].shape[0]:
        _fail(what, f"the output layer has {new_w[-1].shape[0]} units instead of "
                    f"{weights[-1].shape[0]}: the last layer keeps every output (one per class), "
                    f"even one whose incoming weights are all dropped")
    x = torch.randn(16, weights[0].shape[1])
    want = _forward(weights, biases, x)
    try:
        got = _forward(new_w, new_b, x[:, inputs])
    except (RuntimeError, IndexError) as err:
        _fail(what, f"the returned layers do not fit together ({err}); layer i's columns must be "
                    f"the units kept in layer i-1, and the first layer's columns the `inputs`")
    if not torch.allclose(got, want, atol=1e-4):
        nofold = remove_dead_units_reference(weights, biases, fold=lambda b: 0 * b)
        rawfold = remove_dead_units_reference(weights, biases, fold=lambda b: b)
        if torch.allclose(got, _forward(nofold[0], nofold[1], x[:, nofold[2]]), atol=1e-4):
            _fail(what, "the outputs differ: a hidden unit with no kept incoming weight still "
                        "outputs relu(bias), not 0. Before removing it, add W_next[:, j] * "
                        "relu(b_j) to the next layer's bias")
        if torch.allclose(got, _forward(rawfold[0], rawfold[1], x[:, rawfold[2]]), atol=1e-4):
            _fail(what, "the outputs differ: you folded the bias b_j of a unit without incoming "
                        "weights into the next bias, but the unit outputs relu(b_j) (0 when b_j < 0)")
        _fail(what, "the smaller net's outputs differ from the masked net's (largest difference "
                    f"{float((got - want).abs().max()):.3g}): did you keep matching rows of layer i "
                    f"and columns of layer i+1, select the same `inputs` columns of the first layer, "
                    f"and fold the constant relu(b_j) of each unit without incoming weights into the "
                    f"next bias?")
    sizes = [w.shape[0] for w in new_w[:-1]]
    ref_sizes = [w.shape[0] for w in ref_w[:-1]]
    if len(inputs) > len(ref_in):
        _fail(what, f"{len(inputs)} inputs kept where {len(ref_in)} are read by a kept weight: "
                    f"`inputs` are the columns of the first layer with a nonzero weight (after the "
                    f"unread units' rows are gone)")
    if sizes != ref_sizes:
        if any(s > r for s, r in zip(sizes, ref_sizes)):
            fwd = remove_dead_units_reference(weights, biases, forward=False)
            bwd = remove_dead_units_reference(weights, biases, backward=False)
            if sizes == [w.shape[0] for w in fwd[0][:-1]]:
                _fail(what, f"hidden sizes {sizes}, the reference {ref_sizes}: a unit whose only "
                            f"inputs were constant units becomes constant itself once their outputs "
                            f"are folded into its bias; go through the layers from the input side "
                            f"(first to last) and fold as you go")
            if sizes == [w.shape[0] for w in bwd[0][:-1]]:
                _fail(what, f"hidden sizes {sizes}, the reference {ref_sizes}: removing a unit can "
                            f"leave a unit of the layer before with no reader; go through the layers "
                            f"from the output side (last to first) for the unread units")
            _fail(what, f"hidden sizes {sizes}, the reference {ref_sizes}: some dead units are "
                        f"still there (no kept incoming weight, or no kept outgoing weight)")
        _fail(what, f"hidden sizes {sizes} are smaller than the reference {ref_sizes} although the "
                    f"outputs match; tell your lecturer, this should not happen")
    _ok(what, f"outputs equal the masked net's; hidden layers 8-6 -> {sizes[0]}-{sizes[1]} units, "
              f"inputs 12 -> {len(inputs)} (constants folded, unread units removed)")


# --------------------------------------------------------------------------------------------------
# Exercise 2: CSR by hand
# --------------------------------------------------------------------------------------------------

def to_csr_reference(w):
    w = np.asarray(w)
    rows, cols = np.nonzero(w)
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    return w[rows, cols], cols, row_ptr


def _csr_example() -> np.ndarray:
    w = np.zeros((5, 7), dtype=np.float32)
    w[0, [1, 4]] = [0.5, -1.25]
    w[2, [0, 3, 6]] = [2.0, 0.75, -0.5]  # row 1 is empty
    w[3, 6] = 3.0
    w[4, [2, 5]] = [-2.0, 1.5]
    return w


def check_to_csr(fn: Callable) -> None:
    """``fn(w)`` (a 2-D tensor, dropped weights are 0) must return ``(values, col_index, row_ptr)``:
    the nonzero values row by row, their column numbers, and the row pointers (length rows + 1,
    starting at 0: row i's entries are values[row_ptr[i]:row_ptr[i+1]])."""
    what = "to_csr"
    w = _csr_example()
    out = _call(what, fn, torch.from_numpy(w.copy()))
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        _fail(what, "return three arrays: (values, col_index, row_ptr)")
    values, cols, ptr = (_np(what, a, n) for a, n in zip(out, ("values", "col_index", "row_ptr")))
    rv, rc, rp = to_csr_reference(w)
    if len(values) == w.size:
        _fail(what, f"{len(values)} values for a {w.shape[0]}x{w.shape[1]} matrix with {len(rv)} "
                    f"nonzeros: store only the kept (nonzero) weights")
    if len(values) == len(rv) and np.allclose(values, w.T[w.T != 0]) and not np.allclose(values, rv):
        _fail(what, "the values are in column order (that is CSC); CSR stores them row by row")
    if not np.issubdtype(cols.dtype, np.integer) or not np.issubdtype(ptr.dtype, np.integer):
        _fail(what, f"col_index and row_ptr must be integer arrays; got {cols.dtype} and {ptr.dtype}")
    if len(ptr) == w.shape[0] and np.array_equal(ptr, rp[1:]):
        _fail(what, "row_ptr has no leading 0: it has rows + 1 entries, row_ptr[0] = 0 and "
                    "row i's entries are values[row_ptr[i]:row_ptr[i+1]]")
    if len(ptr) == w.shape[0] and np.array_equal(ptr, rp[:-1]):
        _fail(what, "row_ptr misses its last entry (the number of nonzeros): it has rows + 1 entries")
    if len(ptr) in (w.shape[0], w.shape[0] + 1) and np.array_equal(ptr[-w.shape[0]:], np.diff(rp)):
        _fail(what, "row_ptr holds the count of each row; CSR stores the running total "
                    "(cumulative sum, starting at 0)")
    if len(ptr) != w.shape[0] + 1:
        _fail(what, f"row_ptr must have rows + 1 = {w.shape[0] + 1} entries; got {len(ptr)}")
    if not (np.allclose(values, rv) and len(values) == len(rv)):
        _fail(what, f"values should be {rv.tolist()} (row by row); got {values.tolist()}")
    if np.array_equal(cols, rc + 1):
        _fail(what, "the column numbers start at 1; Python counts from 0")
    if not np.array_equal(cols, rc):
        _fail(what, f"col_index should be {rc.tolist()}; got {cols.tolist()}")
    if not np.array_equal(ptr, rp):
        _fail(what, f"row_ptr should be {rp.tolist()} (row 1 is empty: two equal pointers); got "
                    f"{ptr.tolist()}")
    _ok(what, f"values, col_index and row_ptr match ({len(rv)} nonzeros in a 5x7 matrix, an empty "
              f"row handled)")


# --------------------------------------------------------------------------------------------------
# Exercise 3: a linear layer that stores only CSR
# --------------------------------------------------------------------------------------------------

@_seeded
def check_csr_linear(cls) -> None:
    """``cls(weight, bias)`` (an ``nn.Module``; ``weight`` dense with zeros) must keep only the CSR
    form of ``weight`` and compute ``x @ weight.T + bias`` from it."""
    what = "CSRLinear"
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        _fail(what, "pass the class itself (an nn.Module subclass), not an instance")
    w = torch.from_numpy(_csr_example())
    b = torch.tensor([0.1, -0.2, 0.3, 0.0, 1.0])
    layer = _call(what, cls, w.clone(), b.clone())
    nnz = int((w != 0).sum())
    stored = [t for t in list(layer.parameters()) + list(layer.buffers())]
    stored += [v for v in vars(layer).values() if torch.is_tensor(v)]
    for t in stored:
        if t.layout == torch.strided and t.dim() == 2 and t.shape == w.shape:
            _fail(what, "the layer keeps the dense weight matrix: store only the CSR arrays "
                        "(values, col_index, row_ptr, or a torch.sparse_csr_tensor made from them)")
    x = torch.randn(4, 7)
    with torch.no_grad():
        out = _call(what, layer, x)
    if not torch.is_tensor(out) or tuple(out.shape) != (4, 5):
        _fail(what, f"the output must be a tensor of shape (batch, out) = (4, 5); got "
                    f"{getattr(out, 'shape', type(out).__name__)}")
    want = F.linear(x, w, b)
    if not torch.allclose(out, want, atol=1e-5):
        if torch.allclose(out, F.linear(x, w), atol=1e-5):
            _fail(what, "the bias is missing")
        _fail(what, f"wrong output: expected x @ weight.T + bias = {want[0].numpy().round(3)} for "
                    f"the first row, got {out[0].numpy().round(3)}")
    one = layer(x[:1])
    if tuple(one.shape) != (1, 5) or not torch.allclose(one, want[:1], atol=1e-5):
        _fail(what, "wrong output for a batch of one example")
    _ok(what, f"x @ W.T + b from CSR only ({nnz} stored weights of {w.numel()})")


# --------------------------------------------------------------------------------------------------
# Exercise 4: bytes of a CSR matrix
# --------------------------------------------------------------------------------------------------

def smallest_uint(max_value: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def csr_nbytes_reference(n_rows: int, n_cols: int, nnz: int) -> int:
    return (nnz * 4 + nnz * smallest_uint(max(n_cols - 1, 0)).itemsize
            + (n_rows + 1) * smallest_uint(nnz).itemsize)


def check_csr_nbytes(fn: Callable) -> None:
    """``fn(n_rows, n_cols, nnz)`` must return the bytes of a CSR matrix: float32 values, column
    numbers in the smallest unsigned integer type that holds n_cols - 1, and rows + 1 row pointers
    in the smallest that holds nnz (uint8, uint16 or uint32)."""
    what = "csr_nbytes"
    cases = [(300, 784, 4000), (100, 300, 800), (10, 100, 200), (40, 200, 70000), (3, 70000, 5)]
    for rows, cols, nnz in cases:
        got = _call(what, fn, rows, cols, nnz)
        try:
            got = int(got)
        except (TypeError, ValueError):
            _fail(what, f"expected a number of bytes; got {type(got).__name__}")
        want = csr_nbytes_reference(rows, cols, nnz)
        if got == want:
            continue
        ci = smallest_uint(max(cols - 1, 0)).itemsize
        pi = smallest_uint(nnz).itemsize
        candidates = {
            "only the values: every kept weight also needs its column number, and each row a "
            "pointer": nnz * 4,
            "the row pointers are missing (rows + 1 of them)": nnz * (4 + ci),
            "the column numbers are missing (one per kept weight)": nnz * 4 + (rows + 1) * pi,
            "rows row pointers; CSR has rows + 1 (the first is 0)": nnz * (4 + ci) + rows * pi,
            "the column type was chosen by the number of nonzeros; it must hold n_cols - 1":
                nnz * (4 + smallest_uint(nnz).itemsize) + (rows + 1) * pi,
            "int64 indices (8 bytes each): the smallest unsigned type that holds the largest "
            "index is enough": nnz * 12 + (rows + 1) * 8,
            "int32 indices everywhere: the smallest unsigned type that holds the largest index "
            "is enough (uint16 for 784 columns)": nnz * 8 + (rows + 1) * 4,
            "the bytes of the dense matrix": rows * cols * 4,
            "the row pointer type was chosen by the number of columns; it must hold nnz":
                nnz * (4 + ci) + (rows + 1) * smallest_uint(max(cols - 1, 0)).itemsize,
            "float64 values (8 bytes); the weights are float32": nnz * (8 + ci) + (rows + 1) * pi,
        }
        for name, value in candidates.items():
            if got == value:
                _fail(what, f"for {rows}x{cols} with {nnz} nonzeros you counted {name}")
        _fail(what, f"for {rows}x{cols} with {nnz} nonzeros expected {want} bytes "
                    f"({nnz} x 4 value bytes + {nnz} x {ci} column bytes + {rows + 1} x {pi} "
                    f"pointer bytes); got {got}")
    _ok(what, f"4 value bytes + the smallest index types: a 300x784 layer with 4,000 kept weights "
              f"takes {csr_nbytes_reference(300, 784, 4000):,} bytes (dense: {300 * 784 * 4:,})")


# --------------------------------------------------------------------------------------------------
# Exercise 5: a fair timer
# --------------------------------------------------------------------------------------------------

# Call k of the test function sleeps WARM_MS for the first WARMUP calls (a cold cache), then the
# pattern TIMED_MS (ms) in order: median 15 ms, mean 33.6 ms, min 10 ms.
_WARMUP = 3
_WARM_MS = 80.0
_TIMED_MS = [10, 15, 20, 15, 150, 10, 15, 15, 10, 20, 15, 150, 10, 15, 15, 10, 20, 150, 15, 10, 15]


def check_median_time(fn: Callable) -> None:
    """``fn(f, x, warmup=3, repeats=21)`` must call ``f(x)`` ``warmup`` times untimed, then
    ``repeats`` times, each timed alone with ``time.perf_counter``, and return the median in seconds."""
    what = "median_time"
    calls = []

    def slow(x):
        k = len(calls)
        calls.append(x)
        ms = _WARM_MS if k < _WARMUP else _TIMED_MS[(k - _WARMUP) % len(_TIMED_MS)]
        time.sleep(ms / 1000)
        return x

    start = time.perf_counter()
    got = _call(what, fn, slow, "x", warmup=_WARMUP, repeats=len(_TIMED_MS))
    wall = time.perf_counter() - start
    try:
        got = float(got)
    except (TypeError, ValueError):
        _fail(what, f"return one number (seconds per call); got {type(got).__name__}")
    n = len(calls)
    if any(c != "x" for c in calls):
        _fail(what, "call f(x) with the x you were given")
    if n == len(_TIMED_MS):
        _fail(what, f"f was called {n} times, exactly `repeats`: the `warmup` calls are missing "
                    f"(the first calls are slow: caches, memory allocation, lazy initialisation)")
    if n < _WARMUP + len(_TIMED_MS):
        _fail(what, f"f was called {n} times; expected warmup + repeats = "
                    f"{_WARMUP + len(_TIMED_MS)}")
    if n > _WARMUP + len(_TIMED_MS):
        _fail(what, f"f was called {n} times; expected warmup + repeats = "
                    f"{_WARMUP + len(_TIMED_MS)} (time each call once)")
    ms = got * 1000
    slack = max(0.0, wall - (_WARMUP * _WARM_MS + sum(_TIMED_MS)) / 1000) * 1000  # oversleep
    extra = 3.0 + slack / len(_TIMED_MS) * 3
    if 14.0 <= ms <= 15 + extra:
        _ok(what, f"median {ms:.1f} ms of 21 timed calls after 3 warm-up calls (the mean would "
                  f"be 33.6 ms, dragged up by 3 slow calls; the first call took 80 ms)")
        return
    if 14.0 <= got <= 15 + extra:
        _fail(what, "the result is in milliseconds; return seconds (time.perf_counter() counts "
                    "seconds)")
    if 9.5 <= ms <= 10 + extra:
        _fail(what, f"{ms:.1f} ms is the fastest call (the minimum); return the median")
    if 33.0 <= ms <= 34 + extra:
        _fail(what, f"{ms:.1f} ms is the mean; three slow calls (150 ms: another process, the "
                    f"garbage collector) drag it up. Return the median of the repeats")
    if ms > 300:
        _fail(what, f"{ms:.0f} ms is about the time of all the calls together; divide by the "
                    f"number of calls, or better, time each call and take the median")
    if ms > 60:
        _fail(what, f"{ms:.0f} ms: the warm-up calls seem to be timed too")
    _fail(what, f"expected the median call, about 15 ms; got {ms:.1f} ms")


# --------------------------------------------------------------------------------------------------
# Exercise 6: magnitude pruning, global
# --------------------------------------------------------------------------------------------------

def magnitude_masks_reference(weights, sparsity: float):
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    k = int(round(sparsity * flat.numel()))
    if k == 0:
        return [torch.ones_like(w, dtype=torch.bool) for w in weights]
    cut = torch.kthvalue(flat, k).values
    return [w.detach().abs() > cut for w in weights]


def _pruning_example():
    g = torch.Generator().manual_seed(5)
    # distinct magnitudes (no ties); the layers have different scales, so per-layer pruning differs
    return [torch.randn(6, 10, generator=g) * 0.05, torch.randn(4, 6, generator=g) * 0.5,
            torch.randn(3, 4, generator=g) * 2.0]


def check_magnitude_masks(fn: Callable) -> None:
    """``fn(weights, sparsity)`` must return one boolean mask per layer (True = kept) that drops the
    ``round(sparsity * total)`` weights of smallest |w| over all layers together (global pruning)."""
    what = "magnitude_masks"
    weights = _pruning_example()
    total = sum(w.numel() for w in weights)
    for sparsity in (0.5, 0.9, 0.0):
        before = [w.clone() for w in weights]
        out = _call(what, fn, weights, sparsity)
        if not all(torch.equal(a, b) for a, b in zip(weights, before)):
            _fail(what, "it changed the weights in place; return masks, keep the weights")
        if not isinstance(out, (list, tuple)) or len(out) != len(weights):
            _fail(what, f"return a list of {len(weights)} masks, one per layer")
        masks = [torch.as_tensor(m) for m in out]
        for m, w in zip(masks, weights):
            if tuple(m.shape) != tuple(w.shape):
                _fail(what, f"a mask has shape {tuple(m.shape)}, its layer {tuple(w.shape)}")
        masks = [m.bool() for m in masks]
        want = magnitude_masks_reference(weights, sparsity)
        kept = sum(int(m.sum()) for m in masks)
        if all(torch.equal(m, r) for m, r in zip(masks, want)):
            continue
        if all(torch.equal(m, ~r) for m, r in zip(masks, want)) and sparsity > 0:
            _fail(what, "the masks keep the smallest weights; magnitude pruning keeps the largest |w|")
        per_layer = [magnitude_masks_reference([w], sparsity)[0] for w in weights]
        if all(torch.equal(m, r) for m, r in zip(masks, per_layer)):
            _fail(what, "each layer was pruned to the sparsity on its own; prune globally: one "
                        "threshold on |w| over all layers together")
        flipped = magnitude_masks_reference(weights, 1 - sparsity)
        if all(torch.equal(m, r) for m, r in zip(masks, flipped)) and sparsity != 0.5:
            _fail(what, f"{kept} of {total} weights kept at sparsity {sparsity}: sparsity is the "
                        f"share dropped, not kept")
        signed = torch.cat([w.flatten() for w in weights])
        k = int(round(sparsity * total))
        if k > 0:
            cut = torch.kthvalue(signed, k).values
            if all(torch.equal(m, w > cut) for m, w in zip(masks, weights)):
                _fail(what, "the smallest signed values were dropped; magnitude is |w| (a large "
                            "negative weight is large)")
        _fail(what, f"at sparsity {sparsity}: {kept} weights kept, expected "
                    f"{sum(int(m.sum()) for m in want)} (the largest |w| over all layers)")
    _ok(what, f"global magnitude pruning: at sparsity 0.9, {sum(int(m.sum()) for m in magnitude_masks_reference(weights, 0.9))} "
              f"of {total} weights kept, most of them in the layer with the largest scale")


# --------------------------------------------------------------------------------------------------
# Exercise 7: the operating point
# --------------------------------------------------------------------------------------------------

def operating_point_reference(sparsities, errors, budget):
    ok = [s for s, e in zip(sparsities, errors) if e <= budget]
    return max(ok) if ok else None


def check_operating_point(fn: Callable) -> None:
    """``fn(sparsities, errors, budget)`` must return the highest sparsity whose error is within the
    budget (error <= budget), or None when none is; the errors need not grow monotonically."""
    what = "operating_point"
    s = [0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98]
    e = [10.0, 10.0, 10.2, 11.0, 11.3, 10.9, 13.5, 25.0]  # 0.85 is over budget, 0.9 is not
    got = _call(what, fn, s, e, 11.0)
    if got == 0.8:
        _fail(what, "it stopped at the first sparsity over budget (0.85); errors are noisy, 0.9 is "
                    "within the budget again: take the highest sparsity within it")
    if got in (5, 4):
        _fail(what, "it returned an index; return the sparsity itself")
    if got in (0.85, 0.95, 0.98):
        _fail(what, f"{got} has error {e[s.index(got)]}, over the budget 11.0")
    if got != 0.9:
        _fail(what, f"expected 0.9 (error 10.9 <= budget 11.0); got {got}")
    equal = _call(what, fn, s, e, 10.9)
    if equal != 0.9:
        _fail(what, f"at budget 10.9 the answer is 0.9 (its error is 10.9: within the budget means "
                    f"error <= budget); got {equal}")
    if _call(what, fn, s, e, 10.5) != 0.7:
        _fail(what, "the budget argument is not used: at budget 10.5 the answer is 0.7")
    try:
        none = fn(s, e, 5.0)
    except (ValueError, IndexError):
        _fail(what, "with no sparsity within the budget return None (max of an empty list fails)")
    if none is not None:
        _fail(what, f"no error is within a budget of 5.0; return None, got {none}")
    _ok(what, "the highest sparsity within the budget (0.9 here, past a noisy 0.85), None when none is")
