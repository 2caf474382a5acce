"""The checks of assignment A2 accept a correct answer (as a student would write it) and reject each
known wrong answer with a message that names the mistake."""
import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsevd_lab import checks
from sparsevd_lab.checks import CheckFailed
from sparsevd_lab.checks import a2


# ---------------------------------------------------------------------------------------------
# exercise 1: remove dead units
# ---------------------------------------------------------------------------------------------

def remove_dead_units(weights, biases, fold=True, relu=True, forward=True, backward=True,
                      shrink_output=False, all_inputs=False):
    W = [w.clone() for w in weights]
    b = [v.clone() for v in biases]
    n = len(W)
    keep = [torch.ones(w.shape[0], dtype=torch.bool) for w in W[:-1]]
    original = [w.clone() for w in W]
    for i in range(n - 1):
        dead = ((W[i] if forward else original[i]) != 0).sum(1) == 0
        if fold:
            const = (torch.relu(b[i]) if relu else b[i]) * dead
            b[i + 1] = b[i + 1] + W[i + 1] @ const
        W[i + 1][:, dead] = 0
        keep[i] &= ~dead
    folded = [w.clone() for w in W]
    for i in range(n - 2, -1, -1):
        read = ((W[i + 1] if backward else folded[i + 1]) != 0).sum(0) > 0
        keep[i] &= read
        W[i][~keep[i]] = 0
    inputs = torch.arange(W[0].shape[1]) if all_inputs else torch.nonzero((W[0] != 0).sum(0) > 0).flatten()
    out_w, out_b = [], []
    for i in range(n):
        w, bi = W[i], b[i]
        if i < n - 1:
            w, bi = w[keep[i]], bi[keep[i]]
        elif shrink_output:
            alive = (w != 0).sum(1) > 0
            w, bi = w[alive], bi[alive]
        w = w[:, inputs] if i == 0 else w[:, keep[i - 1]]
        out_w.append(w)
        out_b.append(bi)
    return out_w, out_b, inputs


def test_remove_dead_units_correct(capsys):
    checks.check_remove_dead_units(remove_dead_units)
    assert capsys.readouterr().out.startswith("OK: remove_dead_units")


def test_remove_dead_units_accepts_a_boolean_input_mask(capsys):
    def as_mask(weights, biases):
        w, b, inputs = remove_dead_units(weights, biases)
        mask = torch.zeros(weights[0].shape[1], dtype=torch.bool)
        mask[inputs] = True
        return w, b, mask
    checks.check_remove_dead_units(as_mask)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs,message", [
    ({"fold": False}, "still outputs relu\\(bias\\), not 0"),
    ({"relu": False}, "outputs relu\\(b_j\\) \\(0 when b_j < 0\\)"),
    ({"forward": False}, "becomes constant itself"),
    ({"backward": False}, "from the output side"),
    ({"shrink_output": True}, "keeps every output"),
    ({"all_inputs": True}, "inputs kept where"),
])
def test_remove_dead_units_wrong(kwargs, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_remove_dead_units(lambda w, b: remove_dead_units(w, b, **kwargs))


def test_remove_dead_units_in_place_and_bad_returns():
    def in_place(weights, biases):
        out = remove_dead_units(weights, biases)
        weights[0].zero_()
        return out
    with pytest.raises(CheckFailed, match="in place"):
        checks.check_remove_dead_units(in_place)
    with pytest.raises(CheckFailed, match="three things"):
        checks.check_remove_dead_units(lambda w, b: (w, b))
    with pytest.raises(CheckFailed, match="do not fit together"):
        checks.check_remove_dead_units(lambda w, b: ([x.clone() for x in w], [x.clone() for x in b],
                                                     torch.arange(3)))
    with pytest.raises(NotImplementedError, match="not written yet"):
        checks.check_remove_dead_units(lambda w, b: (_ for _ in ()).throw(NotImplementedError))


def test_remove_dead_units_reference_example_has_every_kind_of_dead_unit():
    weights, biases = a2._toy_chain()
    w, b, inputs = a2.remove_dead_units_reference(weights, biases)
    assert 2 not in inputs and 5 not in inputs
    nofwd = a2.remove_dead_units_reference(weights, biases, forward=False)
    nobwd = a2.remove_dead_units_reference(weights, biases, backward=False)
    sizes = lambda r: [x.shape[0] for x in r[0][:-1]]  # noqa: E731
    assert sizes(nofwd) != sizes((w, b)) and sizes(nobwd) != sizes((w, b))
    assert bool((torch.relu(biases[0]) * ((weights[0] != 0).sum(1) == 0)).any())  # a constant to fold


# ---------------------------------------------------------------------------------------------
# exercise 2: CSR by hand
# ---------------------------------------------------------------------------------------------

def to_csr(w):
    values, cols, row_ptr = [], [], [0]
    for row in w.tolist():
        for j, v in enumerate(row):
            if v != 0:
                values.append(v)
                cols.append(j)
        row_ptr.append(len(values))
    return np.array(values, np.float32), np.array(cols, np.int64), np.array(row_ptr, np.int64)


def test_to_csr_correct(capsys):
    checks.check_to_csr(to_csr)
    assert capsys.readouterr().out.startswith("OK: to_csr")


def _csc(w):
    v, c, p = to_csr(w.t())
    return v, c, p


@pytest.mark.parametrize("fn,message", [
    (lambda w: (w.flatten().numpy(), np.tile(np.arange(w.shape[1]), w.shape[0]),
                np.arange(0, w.numel() + 1, w.shape[1])), "store only the kept"),
    (_csc, "column order"),
    (lambda w: (to_csr(w)[0], to_csr(w)[1], to_csr(w)[2][1:]), "no leading 0"),
    (lambda w: (to_csr(w)[0], to_csr(w)[1], to_csr(w)[2][:-1]), "misses its last entry"),
    (lambda w: (to_csr(w)[0], to_csr(w)[1], np.concatenate([[0], np.diff(to_csr(w)[2])])), "count of each row"),
    (lambda w: (to_csr(w)[0], to_csr(w)[1] + 1, to_csr(w)[2]), "start at 1"),
    (lambda w: (to_csr(w)[0], to_csr(w)[1].astype(np.float32), to_csr(w)[2]), "integer arrays"),
    (lambda w: to_csr(w)[:2], "three arrays"),
])
def test_to_csr_wrong(fn, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_to_csr(fn)


# ---------------------------------------------------------------------------------------------
# exercise 3: a CSR linear layer
# ---------------------------------------------------------------------------------------------

class CSRLinear(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        values, cols, row_ptr = to_csr(weight)
        self.weight = torch.sparse_csr_tensor(torch.as_tensor(row_ptr), torch.as_tensor(cols),
                                              torch.as_tensor(values), size=tuple(weight.shape))
        self.bias = bias

    def forward(self, x):
        return (self.weight @ x.t()).t() + self.bias


class KeepsDense(CSRLinear):
    def __init__(self, weight, bias):
        super().__init__(weight, bias)
        self.dense = weight


class NoBias(CSRLinear):
    def forward(self, x):
        return (self.weight @ x.t()).t()


class Transposed(CSRLinear):
    def forward(self, x):
        return (self.weight @ x.t()) + self.bias[:, None]


def test_csr_linear_correct(capsys):
    checks.check_csr_linear(CSRLinear)
    assert capsys.readouterr().out.startswith("OK: CSRLinear")


@pytest.mark.parametrize("cls,message", [
    (KeepsDense, "keeps the dense weight"),
    (NoBias, "bias is missing"),
    (Transposed, "shape"),
])
def test_csr_linear_wrong(cls, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_csr_linear(cls)


def test_csr_linear_needs_the_class():
    with pytest.raises(CheckFailed, match="class itself"):
        checks.check_csr_linear(CSRLinear(torch.eye(2), torch.zeros(2)))


# ---------------------------------------------------------------------------------------------
# exercise 4: bytes
# ---------------------------------------------------------------------------------------------

def smallest_uint(m):
    return 1 if m <= 255 else 2 if m <= 65535 else 4


def csr_nbytes(n_rows, n_cols, nnz):
    return nnz * 4 + nnz * smallest_uint(n_cols - 1) + (n_rows + 1) * smallest_uint(nnz)


def test_csr_nbytes_correct(capsys):
    checks.check_csr_nbytes(csr_nbytes)
    assert capsys.readouterr().out.startswith("OK: csr_nbytes")
    assert a2.csr_nbytes_reference(300, 784, 4000) == 4000 * 6 + 301 * 2


@pytest.mark.parametrize("fn,message", [
    (lambda r, c, z: z * 4, "only the values"),
    (lambda r, c, z: z * (4 + smallest_uint(c - 1)), "row pointers are missing"),
    (lambda r, c, z: z * 4 + (r + 1) * smallest_uint(z), "column numbers are missing"),
    (lambda r, c, z: z * (4 + smallest_uint(c - 1)) + r * smallest_uint(z), "rows \\+ 1"),
    (lambda r, c, z: z * 12 + (r + 1) * 8, "int64"),
    (lambda r, c, z: z * 8 + (r + 1) * 4, "int32"),
    (lambda r, c, z: r * c * 4, "dense"),
    (lambda r, c, z: z * (4 + smallest_uint(z)) + (r + 1) * smallest_uint(z), "chosen by the number of nonzeros"),
    (lambda r, c, z: z * (4 + smallest_uint(c - 1)) + (r + 1) * smallest_uint(c - 1), "chosen by the number of columns"),
    (lambda r, c, z: z * (8 + smallest_uint(c - 1)) + (r + 1) * smallest_uint(z), "float64"),
    (lambda r, c, z: "many", "a number of bytes"),
])
def test_csr_nbytes_wrong(fn, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_csr_nbytes(fn)


# ---------------------------------------------------------------------------------------------
# exercise 5: a fair timer
# ---------------------------------------------------------------------------------------------

def median_time(f, x, warmup=3, repeats=21, reduce=statistics.median, do_warmup=True, scale=1.0):
    if do_warmup:
        for _ in range(warmup):
            f(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - start)
    return reduce(times) * scale


def test_median_time_correct(capsys):
    checks.check_median_time(median_time)
    assert capsys.readouterr().out.startswith("OK: median_time")


def _total(f, x, warmup=3, repeats=21):
    for _ in range(warmup):
        f(x)
    start = time.perf_counter()
    for _ in range(repeats):
        f(x)
    return time.perf_counter() - start


@pytest.mark.parametrize("fn,message", [
    (lambda f, x, warmup=3, repeats=21: median_time(f, x, warmup, repeats, do_warmup=False), "warmup` calls are missing"),
    (lambda f, x, warmup=3, repeats=21: median_time(f, x, warmup, repeats, reduce=statistics.mean), "is the mean"),
    (lambda f, x, warmup=3, repeats=21: median_time(f, x, warmup, repeats, reduce=min), "minimum"),
    (lambda f, x, warmup=3, repeats=21: median_time(f, x, warmup, repeats, scale=1000), "milliseconds"),
    (_total, "all the calls together"),
    (lambda f, x, warmup=3, repeats=21: median_time(f, x, warmup, repeats - 5), "expected warmup \\+ repeats"),
])
def test_median_time_wrong(fn, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_median_time(fn)


# ---------------------------------------------------------------------------------------------
# exercise 6: global magnitude pruning
# ---------------------------------------------------------------------------------------------

def magnitude_masks(weights, sparsity):
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(sparsity * flat.numel())
    if k == 0:
        return [torch.ones_like(w, dtype=torch.bool) for w in weights]
    cut = flat.kthvalue(k).values
    return [w.abs() > cut for w in weights]


def test_magnitude_masks_correct(capsys):
    checks.check_magnitude_masks(magnitude_masks)
    assert capsys.readouterr().out.startswith("OK: magnitude_masks")


def _signed(weights, sparsity):
    flat = torch.cat([w.flatten() for w in weights])
    k = round(sparsity * flat.numel())
    if k == 0:
        return [torch.ones_like(w, dtype=torch.bool) for w in weights]
    cut = flat.kthvalue(k).values
    return [w > cut for w in weights]


@pytest.mark.parametrize("fn,message", [
    (lambda ws, s: [~m for m in magnitude_masks(ws, s)], "keep the smallest"),
    (lambda ws, s: [magnitude_masks([w], s)[0] for w in ws], "globally"),
    (lambda ws, s: magnitude_masks(ws, 1 - s), "share dropped"),
    (_signed, "magnitude is \\|w\\|"),
    (lambda ws, s: magnitude_masks(ws, s)[:2], "list of 3 masks"),
])
def test_magnitude_masks_wrong(fn, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_magnitude_masks(fn)


# ---------------------------------------------------------------------------------------------
# exercise 7: the operating point
# ---------------------------------------------------------------------------------------------

def operating_point(sparsities, errors, budget):
    ok = [s for s, e in zip(sparsities, errors) if e <= budget]
    return max(ok) if ok else None


def _first_crossing(sparsities, errors, budget):
    best = None
    for s, e in zip(sparsities, errors):
        if e > budget:
            break
        best = s
    return best


def test_operating_point_correct(capsys):
    checks.check_operating_point(operating_point)
    assert capsys.readouterr().out.startswith("OK: operating_point")


@pytest.mark.parametrize("fn,message", [
    (_first_crossing, "first sparsity over budget"),
    (lambda s, e, b: max(x for x, y in zip(s, e) if y >= b), "over the budget"),
    (lambda s, e, b: max(x for x, y in zip(s, e) if y < b), "error <= budget"),
    (lambda s, e, b: max(i for i, y in enumerate(e) if y <= b), "an index"),
    (lambda s, e, b: max(x for x, y in zip(s, e) if y <= 11.0), "budget argument"),
    (lambda s, e, b: max(x for x, y in zip(s, e) if y <= b), "return None"),
    (lambda s, e, b: operating_point(s, e, b) or 0.0, "return None"),
])
def test_operating_point_wrong(fn, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_operating_point(fn)


def test_every_a2_check_is_exported():
    for name in a2.__all__:
        assert getattr(checks, name) is getattr(a2, name)


def test_check_names_are_unique_across_modules():
    """`from .module import *` in sparsevd_lab.checks: a name defined twice would let one notebook's
    check replace another's (A2's and notebook 06's CSR byte counts once collided)."""
    import importlib

    seen = {}
    for name in ("a1", "a2", "nb01", "nb02", "nb03", "nb04", "nb05", "nb06"):
        try:
            module = importlib.import_module(f"sparsevd_lab.checks.{name}")
        except ImportError:
            continue
        for symbol in module.__all__:
            if symbol == "CheckFailed":
                continue
            assert symbol not in seen, f"{symbol} is exported by both {seen[symbol]} and {name}"
            seen[symbol] = name
