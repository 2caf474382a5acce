"""Tests of sparsevd_lab.checks.nb06 (notebook 06's exercises): each check accepts the right answer,
prints an OK line, runs fast, and rejects each known wrong answer with a message that names the
mistake."""
import time

import numpy as np
import pytest

from sparsevd_lab import checks
from sparsevd_lab.checks import CheckFailed


def right_frontier(points, budget):
    ok = points[points["error_%"] <= budget]
    if ok.empty:
        raise ValueError(f"no point has a test error within {budget} %")
    return ok.loc[ok["compression"].idxmax()]


def right_csr(weight, value_bytes=4, index_bytes=4):
    nnz = np.count_nonzero(weight)
    return nnz * (value_bytes + index_bytes) + (weight.shape[0] + 1) * index_bytes


RIGHT = [
    (checks.check_frontier_point, right_frontier, "OK: frontier_point"),
    (checks.check_frontier_point,
     lambda p, b: p.query("`error_%` <= @b").sort_values("compression").iloc[-1]
     if (p["error_%"] <= b).any() else (_ for _ in ()).throw(ValueError("none")), "OK: frontier_point"),
    (checks.check_csr_bytes, right_csr, "OK: csr_bytes"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.int64(right_csr(w, v, i)), "OK: csr_bytes"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


def _guard(pick):
    def fn(points, budget):
        if not (points["error_%"] <= budget).any():
            raise ValueError("none")
        return pick(points, budget)
    return fn


def _strict(p, b):
    ok = p[p["error_%"] < b]
    return ok.loc[ok["compression"].idxmax()]


def _reversed(p, b):
    ok = p[p["error_%"] > b]
    return ok.loc[ok["compression"].idxmax()]


def _lowest_comp(p, b):
    ok = p[p["error_%"] <= b]
    return ok.loc[ok["compression"].idxmin()]


def _no_raise(p, b):
    ok = p[p["error_%"] <= b]
    return ok.loc[ok["compression"].idxmax()] if len(ok) else p.iloc[0]


def _wrong_error(p, b):
    raise KeyError("oops")


WRONG = [
    (checks.check_frontier_point, _guard(lambda p, b: p.loc[p["error_%"].idxmin()]), "lowest error"),
    (checks.check_frontier_point, _guard(lambda p, b: p.loc[p["compression"].idxmax()]), "ignoring the budget"),
    (checks.check_frontier_point, _guard(_lowest_comp), "idxmin instead of idxmax"),
    (checks.check_frontier_point, _guard(lambda p, b: p.loc[(p["error_%"] - b).abs().idxmin()]), "closest to the budget"),
    (checks.check_frontier_point, _guard(_strict), "exactly at the budget"),
    (checks.check_frontier_point, _guard(_reversed), "inequality reversed"),
    (checks.check_frontier_point, _guard(lambda p, b: p[p["error_%"] <= b]), "one point"),
    (checks.check_frontier_point, _guard(lambda p, b: (1.0, 3.0)), "a row of `points`"),
    # the shapes of answer a student returns instead of the row (the next cell then crashes)
    (checks.check_frontier_point, _guard(lambda p, b: right_frontier(p, b).name), "index label"),
    (checks.check_frontier_point, _guard(lambda p, b: p[p["error_%"] <= b]["compression"].idxmax()),
     "index label"),
    (checks.check_frontier_point, _guard(lambda p, b: p.loc[[right_frontier(p, b).name]]),
     "one-row DataFrame"),
    (checks.check_frontier_point, _guard(lambda p, b: p[p["error_%"] <= b].nlargest(1, "compression")),
     "one-row DataFrame"),
    (checks.check_frontier_point, _guard(lambda p, b: right_frontier(p, b).to_dict()), "got dict"),
    (checks.check_frontier_point, _guard(lambda p, b: right_frontier(p, b)[["kl_weight", "threshold"]]),
     "the row has no error_%, compression"),
    (checks.check_frontier_point, _guard(lambda p, b: p.iloc[0]), "expected KL weight"),
    (checks.check_frontier_point, _no_raise, "instead of raising ValueError"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: w.size * v, "dense size"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.count_nonzero(w) * (v + i), "no row pointers"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.count_nonzero(w) * (v + i) + w.shape[0] * i, "one more"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.count_nonzero(w) * (v + 2 * i), "COO"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.count_nonzero(w) * v + (w.shape[0] + 1) * i, "no column indices"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: np.count_nonzero(w) * (v + i) + (w.shape[1] + 1) * i, "CSC"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: right_csr(w), "use the"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: 2 * np.count_nonzero(w) + w.shape[0] + 1, "count of entries"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: 8 * right_csr(w, v, i), "bits"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: right_csr(w, v, i) + 1, "expected"),
    (checks.check_csr_bytes, lambda w, v=4, i=4: "many", "a number of bytes"),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    with pytest.raises(CheckFailed) as err:
        check(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


def test_frontier_point_other_exception_is_named():
    def fn(points, budget):
        if not (points["error_%"] <= budget).any():
            raise KeyError("nothing")
        return right_frontier(points, budget)

    with pytest.raises(CheckFailed, match="raised KeyError"):
        checks.check_frontier_point(fn)


@pytest.mark.parametrize("check", [checks.check_frontier_point, checks.check_csr_bytes])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)


@pytest.mark.parametrize("answer", [
    lambda p, b: right_frontier(p, b).name,  # the index label
    lambda p, b: p.loc[[right_frontier(p, b).name]],  # a one-row DataFrame
    lambda p, b: right_frontier(p, b).to_dict(),
])
def test_frontier_point_says_what_to_return(answer):
    with pytest.raises(CheckFailed) as err:
        checks.check_frontier_point(_guard(answer))
    assert "return the row itself" in str(err.value) and "points.loc[i]" in str(err.value)


# --------------------------------------------------------------------------------------------------
# check_pareto_frontier
# --------------------------------------------------------------------------------------------------

def right_pareto(points):
    """Sort by compression, descending; keep a point when its error beats every more compressed one."""
    pts = points.sort_values(["compression", "error_%"], ascending=[False, True])
    keep, best = [], float("inf")
    for label, err in zip(pts.index, pts["error_%"]):
        if err < best:
            keep.append(label)
            best = err
    return points.loc[keep].sort_values("compression")


def right_pareto_pairwise(points):
    e, c = points["error_%"].to_numpy(), points["compression"].to_numpy()
    keep = [i for i in range(len(points))
            if not ((e <= e[i]) & (c >= c[i]) & ((e < e[i]) | (c > c[i]))).any()]
    return points.iloc[keep].sort_values("compression")


def test_check_pareto_frontier_accepts_both_routes(capsys):
    from sparsevd_lab import plots

    checks.check_pareto_frontier(right_pareto)
    checks.check_pareto_frontier(right_pareto_pairwise)
    checks.check_pareto_frontier(plots.pareto_front)  # the package's own, used by the figures
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("OK: pareto_frontier") for line in out)


def _strict(points):
    e, c = points["error_%"].to_numpy(), points["compression"].to_numpy()
    keep = [i for i in range(len(points)) if not ((e < e[i]) & (c > c[i])).any()]
    return points.iloc[keep].sort_values("compression")


def _ascending_scan(points):
    pts = points.sort_values("compression")
    keep, best = [], float("inf")
    for label, err in zip(pts.index, pts["error_%"]):
        if err < best:
            keep.append(label)
            best = err
    return points.loc[keep].sort_values("compression")


def _low_compression_better(points):
    e, c = points["error_%"].to_numpy(), points["compression"].to_numpy()
    keep = [i for i in range(len(points))
            if not ((e <= e[i]) & (c <= c[i]) & ((e < e[i]) | (c < c[i]))).any()]
    return points.iloc[keep].sort_values("compression")


WRONG_FRONTIER = [
    (_strict, "same compression and a"),
    (lambda p: p.drop(right_pareto(p).index), "beaten, not the frontier"),
    (lambda p: p.loc[p.groupby("kl_weight")["error_%"].idxmin()], "lowest-error point of each KL"),
    (lambda p: p.loc[p.groupby("kl_weight")["compression"].idxmax()], "most compressed point of each"),
    (_ascending_scan, "higher compression is better"),
    (_low_compression_better, "higher compression is better"),
    (lambda p: right_pareto(p).sort_values("compression", ascending=False), "wrong order"),
    (lambda p: list(right_pareto(p).index), "rows of `points`"),
    (lambda p: right_pareto(p).iloc[1:], "missing"),
]


@pytest.mark.parametrize("fn,words", WRONG_FRONTIER, ids=[w for _, w in WRONG_FRONTIER])
def test_check_pareto_frontier_names_the_slip(fn, words):
    with pytest.raises(CheckFailed, match=words.replace("`", ".")):
        checks.check_pareto_frontier(fn)
