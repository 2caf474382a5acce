"""Figures for notebooks 05-06: accuracy against compression (the Pareto front), the threshold
choice and the regression sweep over the KL weight."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import seaborn as sns

from .style import PALETTE, _fig_axes
from .weights import _draw_log_alpha_hist

__all__ = [
    "pareto_front",
    "plot_accuracy_compression",
    "plot_threshold_choice",
    "plot_regression_sweep",
]

# --------------------------------------------------------------------------------------------------
# notebooks 05-06: tables and sweeps
# --------------------------------------------------------------------------------------------------

def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats on both test error and compression (lower error at higher or
    equal compression), sorted by compression: the accuracy-compression frontier."""
    pts = points.assign(_c=points["compression"].replace(np.inf, np.nan)).dropna(subset=["_c"])
    pts = pts.sort_values(["_c", "error_%"], ascending=[False, True])
    keep, best = [], np.inf
    for idx, err in zip(pts.index, pts["error_%"]):
        if err < best:
            keep.append(idx)
            best = err
    return points.loc[keep].sort_values("compression")


def plot_accuracy_compression(points: pd.DataFrame, kl_weight: float | None = None,
                              threshold: float | None = None, reference: pd.DataFrame | None = None):
    """Test error (%) against compression (x, log scale) of every (KL weight, threshold) point; one
    colour per KL weight, the points of one KL weight joined in threshold order; the selected point
    ringed; the frontier (``pareto_front``) as a wide grey line. ``reference`` (rows with ``method``,
    ``error_%``, ``compression``) adds labelled markers."""
    fig, (ax,) = _fig_axes(1, size=(9.6, 4.0))
    rfs = sorted(points["kl_weight"].unique())
    colors = sns.color_palette("colorblind", len(rfs))
    for c, rf in zip(colors, rfs):
        sub = points[points["kl_weight"] == rf].sort_values("threshold")
        comp = sub["compression"].replace(np.inf, np.nan)
        ax.plot(comp, sub["error_%"], "-o", color=c, ms=4, lw=1, label=f"KL weight {rf:g}")
    front = pareto_front(points)
    ax.plot(front["compression"], front["error_%"], color="0.3", lw=3, alpha=0.3, zorder=0,
            label="frontier (no point beats it on both)")
    if reference is not None:
        for j, (_, r) in enumerate(reference.iterrows()):
            ax.plot(r["compression"], r["error_%"], marker="*^sD"[j % 4], color="0.15", ms=10, ls="none",
                    label=str(r["method"]))
    if kl_weight is not None and threshold is not None:
        sel = points[np.isclose(points["kl_weight"], kl_weight) &
                     np.isclose(points["threshold"], threshold)]
        if len(sel):
            ax.plot(sel["compression"], sel["error_%"], "o", ms=16, mfc="none", mec="black", mew=2,
                    label=f"selected: KL weight {kl_weight:g}, threshold {threshold:g}")
    ax.set_xscale("log")
    ax.set(xlabel="compression (total / kept weights, x, log scale)", ylabel="test error (%)",
           title="Test error against compression")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no point hidden
    fig.tight_layout()
    return fig


def plot_threshold_choice(log_alpha: Mapping[str, np.ndarray], threshold: float, curve: pd.DataFrame,
                          current: Mapping[str, float] | None = None, range_: tuple[float, float] = (-10, 15)):
    """Re-masking one trained model. Left: log alpha per layer with the threshold (what is cut).
    Right: test error against compression of the same model at the thresholds in ``curve`` (columns
    ``threshold``, ``error_%``, ``compression``), each labelled, and ``current`` (the slider's
    threshold: ``error_%``, ``compression``) ringed."""
    fig, (ax, ax2) = _fig_axes(2, size=(5.6, 3.8))
    _draw_log_alpha_hist(ax, log_alpha, threshold, 60, range_)
    c = curve.sort_values("threshold")
    ax2.plot(c["compression"], c["error_%"], "-o", color=PALETTE[0], ms=4,
             label="this model at other thresholds")
    for t, x, y in zip(c["threshold"], c["compression"], c["error_%"]):
        ax2.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize="x-small")
    if current is not None:
        ax2.plot([current["compression"]], [current["error_%"]], "o", ms=14, mfc="none", mec="black",
                 mew=2, label=f"threshold {threshold:g}: {current['error_%']:.2f}% at "
                              f"{current['compression']:.1f}x")
    ax2.set_xscale("log")
    ax2.set(xlabel="compression (total / kept weights, x, log scale)", ylabel="test error (%)",
            title="Re-masking the trained model (labels: threshold)")
    ax2.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def plot_regression_sweep(table: pd.DataFrame, kl_weight: float | None = None):
    """Train and test MSE (left) and the share of weights dropped (right) against the KL weight
    (log scale); the dense model as horizontal lines; the selected KL weight marked."""
    fig, (ax, ax2) = _fig_axes(2)
    sv = table[table["model"] != "dense"].sort_values("kl_weight")
    dense = table[table["model"] == "dense"]
    x = sv["kl_weight"].astype(float).clip(lower=1e-6)
    ax.plot(x, sv["train_mse"], "-o", color=PALETTE[0], label="Sparse VD, train")
    ax.plot(x, sv["test_mse"], "--o", color=PALETTE[1], label="Sparse VD, test")
    if len(dense):
        ax.axhline(float(dense["train_mse"].iloc[0]), color=PALETTE[0], ls=":", label="dense, train")
        ax.axhline(float(dense["test_mse"].iloc[0]), color=PALETTE[1], ls=":", label="dense, test")
    ax2.plot(x, sv["sparsity_%"], "-o", color=PALETTE[2])
    xlabel = "KL weight (log scale; 0 drawn at 1e-6)"
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel(xlabel)
        if kl_weight is not None:
            a.axvline(max(kl_weight, 1e-6), color="0.2", lw=2, alpha=0.5,
                      label="grey line: the selected KL weight")
    ax.set(ylabel="MSE (units of target variance)", title="Error against the KL weight")
    # between the curves, clear of the line drawn at 1e-6 (KL weight 0)
    ax.legend(fontsize="x-small", loc="lower left", bbox_to_anchor=(0.1, 0.22))
    ax2.set(ylabel="weights dropped (%)", ylim=(-2, 102), title="Sparsity against the KL weight")
    if kl_weight is not None:
        ax2.legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    return fig
