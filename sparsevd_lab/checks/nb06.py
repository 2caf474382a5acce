"""Checks for notebook 06 (the KL weight, the threshold, and compression for real): one per exercise.

``check_frontier_point`` gives the student's function small seeded tables of (KL weight, threshold)
points in which every known wrong rule picks a different point (the lowest error, the highest
compression ignoring the budget, the budget's inequality reversed or made strict, the lowest
compression within the budget). ``check_csr_bytes`` gives it weight matrices with empty rows, not
square, and two sets of value / index sizes, so that dense storage, COO, CSC, a missing row pointer
or missing column indices each give a different count. ``check_pareto_frontier`` gives it sweep-like
tables with a tie trap (a point at a frontier point's compression with a higher error) so that the
strict-on-both-axes rule, per-KL-weight picks, the reversed direction, the beaten points and a wrong
order each give a different answer. Each prints one line starting with ``OK:``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .common import CheckFailed, _call, _fail, _ok

__all__ = ["check_frontier_point", "check_csr_bytes", "check_pareto_frontier"]


# --------------------------------------------------------------------------------------------------
# Exercise 1: the frontier point for an error budget
# --------------------------------------------------------------------------------------------------

def _points(seed: int) -> pd.DataFrame:
    """A sweep-like table: KL weights x thresholds, error growing with compression, with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for kw in (0.1, 0.3, 1.0, 3.0, 10.0):
        for t in np.arange(0.0, 5.01, 1.0):
            log_comp = 1.6 + 0.5 * np.log10(kw) - 0.06 * t + rng.normal(0, 0.05)
            rows.append({"kl_weight": kw, "threshold": float(t),
                         "error_%": round(10.0 + 1.5 * log_comp ** 2 + rng.normal(0, 0.2), 2),
                         "compression": float(10 ** log_comp)})
    return pd.DataFrame(rows)


def _key(row) -> tuple[float, float]:
    return round(float(row["kl_weight"]), 6), round(float(row["threshold"]), 6)


_ROW_HINT = ("return the row itself, a pandas Series such as points.loc[i] (e.g. "
             "within.loc[within['compression'].idxmax()]): the cells after the check read "
             "best['kl_weight'], best['error_%'] and best['compression'] as numbers")


def _as_row(what: str, out, points: pd.DataFrame):
    """The student's answer as a (kl_weight, threshold) key. Only a row of ``points`` (a Series with
    all its columns) is an answer; an index label, a one-row DataFrame, a dict or a tuple is told
    what to return instead."""
    if isinstance(out, pd.DataFrame):
        if len(out) == 1:
            _fail(what, f"you returned a one-row DataFrame (a filter, or points.loc[[i]] with a list): "
                        f"{_ROW_HINT}")
        _fail(what, f"expected one point, got a table of {len(out)} rows: pick the single row "
                    f"with the highest compression; {_ROW_HINT}")
    if isinstance(out, (bool, np.bool_)) or (isinstance(out, (int, np.integer, str))
                                               and out in points.index):
        _fail(what, f"you returned the index label {out!r} of the point (what idxmax gives), not "
                    f"the point: {_ROW_HINT}")
    if not isinstance(out, pd.Series):
        _fail(what, f"expected the chosen point as a row of `points`; got {type(out).__name__}: "
                    f"{_ROW_HINT}")
    missing = [c for c in points.columns if c not in out.index]
    if missing:
        _fail(what, f"the row has no {', '.join(missing)}: return the whole row of `points`, not "
                    f"some of its columns; {_ROW_HINT}")
    return _key(out)


def check_frontier_point(fn: Callable) -> None:
    """``fn(points, budget)`` must return the point (a row of ``points``: columns kl_weight,
    threshold, error_%, compression) with the highest compression among the points whose test
    error is within the budget (error_% <= budget, in %), and raise ``ValueError`` when no point is."""
    what = "frontier_point"
    hint = "Keep the points with error_% <= budget, then take the one with the largest compression"
    for seed in (0, 1):
        points = _points(seed)
        errs = np.sort(points["error_%"].unique())
        # a budget equal to one point's error (the bound is included), and one between two errors
        for budget in (float(errs[len(errs) // 3]), float(errs[len(errs) // 2]) + 0.15):
            ok = points[points["error_%"] <= budget]
            right = _key(ok.loc[ok["compression"].idxmax()])
            got = _as_row(what, _call(what, fn, points.copy(), budget), points)
            if got == right:
                continue
            strict = points[points["error_%"] < budget]
            wrong = {
                "the point whose error is closest to the budget (not the most compressed)":
                    points.loc[(points["error_%"] - budget).abs().idxmin()],
                "the point with the lowest error (the budget lets you trade error for compression: "
                "use all of it)": points.loc[points["error_%"].idxmin()],
                "the point with the highest compression, ignoring the budget (or with the inequality "
                "reversed: error_% > budget)": points.loc[points["compression"].idxmax()],
                "the lowest compression within the budget (idxmin instead of idxmax)":
                    ok.loc[ok["compression"].idxmin()],
            }
            if len(strict):
                wrong["error_% < budget: a point exactly at the budget is within it (<=)"] = \
                    strict.loc[strict["compression"].idxmax()]
            for name, row in wrong.items():
                if got == _key(row) and right != _key(row):
                    _fail(what, f"for budget {budget:g} % you picked {name}. {hint}")
            _fail(what, f"for budget {budget:g} % expected KL weight {right[0]:g}, threshold "
                        f"{right[1]:g}; got KL weight {got[0]:g}, threshold {got[1]:g}. {hint}")
    # no point within the budget
    try:
        out = fn(points.copy(), float(points["error_%"].min()) - 1.0)
    except ValueError:
        pass
    except NotImplementedError:
        raise
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 - the student's own failure, reported with its type
        _fail(what, f"with a budget no point meets it raised {type(err).__name__} ({err}); raise "
                    f"ValueError with a message saying that no point is within the budget")
    else:
        _fail(what, f"with a budget no point meets it returned {type(out).__name__} instead of raising "
                    f"ValueError: check that some point is within the budget before picking one")
    _ok(what, f"= the most compressed point with error_% <= budget (test case: KL weight {right[0]:g}, "
              f"threshold {right[1]:g}); a budget nobody meets raises ValueError")


# --------------------------------------------------------------------------------------------------
# Exercise 2: bytes of a weight matrix stored in CSR
# --------------------------------------------------------------------------------------------------

def _matrices() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 11)) * (rng.random((7, 11)) < 0.3)
    a[2] = 0.0  # an empty row
    b = rng.normal(size=(100, 300)) * (rng.random((100, 300)) < 0.03)
    b[:, :40] = 0.0
    c = np.zeros((5, 3))
    return [a, b, c]


def check_csr_bytes(fn: Callable) -> None:
    """``fn(weight, value_bytes=4, index_bytes=4)`` must return the bytes a 2-d weight matrix takes in
    CSR (compressed sparse row) storage: each kept (non-zero) weight's value and column index, plus
    one row pointer per row and one more (rows + 1), each index ``index_bytes`` long."""
    what = "csr_bytes"
    hint = ("CSR stores, for every kept weight, its value and its column index, plus rows + 1 row "
            "pointers (where each row starts, and the end)")
    for w in _matrices():
        for vb, ib in ((4, 4), (2, 8)):
            out = _call(what, fn, w.copy(), vb, ib)
            try:
                got = float(out.item() if hasattr(out, "item") else out)
            except (TypeError, ValueError):
                _fail(what, f"expected a number of bytes, got {type(out).__name__}")
            rows, cols = w.shape
            nnz = int(np.count_nonzero(w))
            right = nnz * (vb + ib) + (rows + 1) * ib
            if got == right:
                continue
            wrong = {
                "the dense size (every weight, kept or not)": w.size * vb,
                "no row pointers": nnz * (vb + ib),
                "rows row pointers: CSR needs one more (rows + 1: where the last row ends)":
                    nnz * (vb + ib) + rows * ib,
                "COO (a row and a column index per weight), not CSR": nnz * (vb + 2 * ib),
                "no column indices (values and row pointers only: where in the row is each value?)":
                    nnz * vb + (rows + 1) * ib,
                "CSC's column pointers (columns + 1), not CSR's row pointers (rows + 1)":
                    nnz * (vb + ib) + (cols + 1) * ib,
                "4-byte values and indices whatever value_bytes and index_bytes say (use the "
                "arguments)": nnz * 8 + (rows + 1) * 4,
                "a count of entries, not bytes": nnz + nnz + rows + 1,
                "bits, not bytes": 8 * right,
            }
            for name, value in wrong.items():
                if got == value and value != right:
                    _fail(what, f"you computed {name}. {hint}")
            _fail(what, f"for a {rows}x{cols} matrix with {nnz} kept weights, {vb}-byte values and "
                        f"{ib}-byte indices expected {right} bytes, got {out!r}. {hint}")
    b = _matrices()[1]
    _ok(what, f"= nnz (value + index) + (rows + 1) index: a 100x300 matrix with {np.count_nonzero(b)} "
              f"kept weights takes {np.count_nonzero(b) * 8 + 101 * 4:,} bytes in CSR against "
              f"{b.size * 4:,} dense (float32, int32)")


# --------------------------------------------------------------------------------------------------
# Exercise 1a: the accuracy-compression frontier (the points no other point beats)
# --------------------------------------------------------------------------------------------------

def _frontier_keys(points: pd.DataFrame) -> list[tuple[float, float]]:
    """The reference: points that no other point dominates (error <= and compression >=, one of
    them strictly), in order of compression."""
    keep = []
    e, c = points["error_%"].to_numpy(float), points["compression"].to_numpy(float)
    for i in range(len(points)):
        beaten = (e <= e[i]) & (c >= c[i]) & ((e < e[i]) | (c > c[i]))
        if not beaten.any():
            keep.append(i)
    front = points.iloc[keep].sort_values("compression")
    return [_key(r) for _, r in front.iterrows()]


def _frontier_case(seed: int) -> pd.DataFrame:
    """A sweep-like table with one tie trap: a copy of a frontier point's compression at a higher
    error (beaten, though not on both axes strictly)."""
    pts = _points(seed)
    keys = _frontier_keys(pts)
    k = keys[len(keys) // 2]
    src = pts[(np.isclose(pts["kl_weight"], k[0])) & (np.isclose(pts["threshold"], k[1]))].iloc[0]
    tie = {"kl_weight": 0.05, "threshold": 9.0, "error_%": float(src["error_%"]) + 0.5,
           "compression": float(src["compression"])}
    return pd.concat([pts, pd.DataFrame([tie])], ignore_index=True).sample(frac=1.0, random_state=seed)


def check_pareto_frontier(fn: Callable) -> None:
    """``fn(points)`` must return the rows of ``points`` (a DataFrame with columns kl_weight,
    threshold, error_%, compression) that no other point beats: no other point has a lower or equal
    error at a higher or equal compression, better in at least one of the two. Sorted by compression."""
    what = "pareto_frontier"
    hint = ("A point is on the frontier when no other point has error_% <= its error and compression "
            ">= its compression, with at least one of the two strictly better")
    for seed in (0, 1):
        points = _frontier_case(seed)
        out = _call(what, fn, points.copy())
        if not isinstance(out, pd.DataFrame) or not {"kl_weight", "threshold"} <= set(out.columns):
            _fail(what, f"return the frontier as rows of `points` (a DataFrame with its columns, e.g. "
                        f"points.loc[labels]); got {type(out).__name__}")
        got = [_key(r) for _, r in out.iterrows()]
        right = _frontier_keys(points)
        if got == right:
            continue
        if sorted(got) == sorted(right):
            _fail(what, "the right points, in the wrong order: sort them by compression "
                        "(sort_values('compression'))")
        e, c = points["error_%"].to_numpy(float), points["compression"].to_numpy(float)
        keys = [_key(r) for _, r in points.iterrows()]
        strict = [keys[i] for i in range(len(points)) if not ((e < e[i]) & (c > c[i])).any()]
        per_kw_err = [_key(g.loc[g["error_%"].idxmin()]) for _, g in points.groupby("kl_weight")]
        per_kw_comp = [_key(g.loc[g["compression"].idxmax()]) for _, g in points.groupby("kl_weight")]
        wrong_dir = [keys[i] for i in range(len(points))
                     if not ((e <= e[i]) & (c <= c[i]) & ((e < e[i]) | (c < c[i]))).any()]
        wrong = [
            (strict, "points beaten on both axes strictly: a point with the same compression and a "
                     "higher error is beaten too (<= / >= with one strict)"),
            ([k for k in keys if k not in right], "the points that are beaten, not the frontier"),
            (per_kw_err, "the lowest-error point of each KL weight: the frontier is over all points "
                         "together, and one KL weight can give several frontier points or none"),
            (per_kw_comp, "the most compressed point of each KL weight: the frontier is over all "
                          "points together"),
            (wrong_dir, "the frontier for low compression (lower compression counted as better, or a "
                        "scan from low to high compression): higher compression is better, so walk "
                        "from the highest compression down and keep a point when its error is lower "
                        "than every more compressed point's"),
        ]
        for keys_wrong, message in wrong:
            if sorted(got) == sorted(keys_wrong) and sorted(keys_wrong) != sorted(right):
                _fail(what, f"you returned {message}")
        missing = [k for k in right if k not in got]
        extra = [k for k in got if k not in right]
        _fail(what, f"{len(missing)} frontier point(s) missing (first: {missing[:1]}) and {len(extra)} "
                    f"extra (first: {extra[:1]}), as (KL weight, threshold). {hint}")
    _ok(what, f"{len(right)} of {len(points)} points are on the frontier in the test case, sorted "
              f"by compression")
