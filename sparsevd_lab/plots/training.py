"""Figures for notebook 03: the local reparameterisation, gradient variance, the additive
reparameterisation, training curves and the pruning curve."""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
from matplotlib.ticker import MultipleLocator

from .. import theory
from .style import PALETTE, _fig_axes

__all__ = [
    "plot_lrt_moments",
    "plot_gradient_variance",
    "plot_additive_reparam",
    "plot_history",
    "plot_pruning_curve",
]

# --------------------------------------------------------------------------------------------------
# notebook 03: layers and training
# --------------------------------------------------------------------------------------------------

def plot_lrt_moments(moments: pd.DataFrame):
    """Per-unit mean and variance of pre-activations: analytic against the two samplers."""
    fig, axes = _fig_axes(2)
    units = moments.index.to_numpy()
    for ax, what in zip(axes, ("mean", "var")):
        ax.plot(units, moments[f"{what} (analytic)"], "o", color="0.3", ms=8, mfc="none",
                label="analytic")
        ax.plot(units, moments[f"{what} (weight sampling)"], "x", color=PALETTE[0],
                label="weight sampling")
        ax.plot(units, moments[f"{what} (LRT)"], "+", color=PALETTE[1], ms=10, label="LRT")
        ax.set(xlabel="output unit (index)",
               ylabel="pre-activation mean (unitless)" if what == "mean"
               else "pre-activation variance (unitless^2)",
               title=f"{'Mean' if what == 'mean' else 'Variance'} of x W^T under q(W)")
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_gradient_variance(table: pd.DataFrame):
    """Dot plot of the gradient variance of each estimator (``theory.gradient_variance``) relative to
    the LRT's, for theta and for log sigma^2: one dot per estimator at its ratio (the x-axis is
    logarithmic because the ratios span two orders of magnitude; a dot's position, not a bar's
    length, carries the value), a line at 1 (as noisy as the LRT), each ratio written beside its dot."""
    fig, axes = _fig_axes(2, size=(5.0, 2.6))
    names = list(table.index)
    ys = list(range(len(names)))[::-1]  # the first estimator (the LRT) on top
    for ax, col in zip(axes, ("grad variance, theta", "grad variance, log sigma2")):
        ratio = table[col].to_numpy(dtype=float) / float(table[col].iloc[0])
        ax.axvline(1.0, color="0.6", lw=1, zorder=0)
        for y, r, c in zip(ys, ratio, PALETTE):
            ax.plot([r], [y], "o", ms=9, color=c)
            ax.annotate(f"{r:.3g}x", (r, y), xytext=(8, 0), textcoords="offset points",
                        va="center", fontsize="small")
        ax.set_xscale("log")
        lo, hi = min(ratio.min(), 1.0), max(ratio.max(), 1.0)
        ax.set_xlim(lo / 2, hi * 6)  # room for the labels
        ax.set_yticks(ys)
        ax.set_yticklabels(names if ax is axes[0] else [], fontsize="small")
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set(xlabel="variance / the LRT's (x, log axis)",
               ylabel="gradient estimator (name)" if ax is axes[0] else "estimator (same order)",
               title="variance of d loss / d " + col.replace("grad variance, ", ""))
    fig.tight_layout()
    return fig


def plot_additive_reparam(single: pd.DataFrame, layer: pd.DataFrame | None = None,
                          threshold: float = 3.0):
    """The additive reparameterisation (eq. 15), from ``theory.theta_grad_variance`` (``single``)
    and optionally ``theory.theta_grad_variance_layer`` (``layer``). Left: the variance of
    dL/dtheta of one weight (L = w^2 / 2, theta = 1) against log alpha under (theta, sigma) and
    (theta, alpha), Monte Carlo markers on the exact curves. Right: the ratio of the two, with
    4 + 2 alpha, and the ratio measured in a softmax layer."""
    fig, (ax, ax2) = _fig_axes(2, size=(5.0, 3.6))
    la = single["log_alpha"].to_numpy()
    for i, name in enumerate(("(theta, sigma)", "(theta, alpha)")):
        ax.plot(la, single[f"var {name}, exact"], "-", color=PALETTE[i], lw=1.5,
                label=f"{name}, exact")
        ax.plot(la, single[f"var {name}"], "o", color=PALETTE[i], ms=5, mfc="none",
                label=f"{name}, Monte Carlo")
    ax.set_yscale("log")
    ax.set(xlabel="log alpha (dimensionless)", ylabel="Var dL/dtheta (theta = 1; unitless)",
           title="One weight, L(w) = w^2 / 2")
    ax.legend(fontsize="x-small")
    ax2.plot(la, single["ratio, exact 4 + 2 alpha"], "-", color="0.3", lw=1.5,
             label="one weight, exact: 4 + 2 alpha")
    ax2.plot(la, single["ratio"], "o", color="0.3", ms=5, mfc="none", label="one weight, Monte Carlo")
    if layer is not None and len(layer):
        ax2.plot(layer["log_alpha"], layer["ratio"], "s-", color=PALETTE[2], ms=5, lw=1,
                 label="softmax layer on digits (LRT)")
    ax2.axhline(1.0, color="0.6", lw=1)
    ax2.set_yscale("log")
    ax2.set(xlabel="log alpha (dimensionless)",
            ylabel="Var under (theta, alpha) / under (theta, sigma)",
            title="How much noisier (theta, alpha) is")
    ax2.legend(fontsize="x-small")
    for a in (ax, ax2):
        a.axvline(threshold, color="0.5", ls=":", lw=1)
    fig.tight_layout()
    return fig


def plot_history(history: pd.DataFrame | Mapping[str, pd.DataFrame], metrics: Sequence[str] = (
        "train_acc", "test_acc"), sparsity: bool = True, title: str = "", legend_loc: str = "best",
        legend_ncol: int = 1, zoom: tuple[float, float] | None = None,
        hlines: Mapping[str, float] | None = None):
    """Per-epoch curves from ``fit`` histories: accuracy (%) on the left, sparsity (%) on the right.
    ``history`` is one DataFrame or {model name: DataFrame}. ``legend_loc`` / ``legend_ncol`` place
    the left panel's legend (matplotlib's ``loc`` / ``ncol``), e.g. "lower right" with 2 columns to
    keep it off long curves. ``zoom=(lo, hi)`` adds a panel after the first with the same curves on
    accuracy lo..hi % (ticks every 1 %, the last training accuracy of each run written at its end):
    what a 0-100 % axis squeezes into a few pixels, e.g. 10.8 % against a 10 % chance level.
    ``hlines`` ({label: accuracy in %}) draws dotted reference lines on the accuracy panels."""
    runs = {"": history} if isinstance(history, pd.DataFrame) else dict(history)
    fig, axes = _fig_axes(1 + bool(zoom) + bool(sparsity))
    acc_axes = list(axes[:1 + bool(zoom)])
    # a marker per epoch reads well for a short run and overplots a long one (200 epochs)
    marker = "." if max((len(h) for h in runs.values()), default=0) <= 30 else None
    styles = {"train": "-", "test": "--", "val": "--"}  # held-out data dashed, test or validation
    for i, (name, h) in enumerate(runs.items()):
        for m in metrics:
            if m not in h:
                continue
            y = h[m].astype(float)
            scale = 100.0 if m.endswith("acc") else 1.0
            ax_label = f"{name} {m.replace('_', ' ')}".strip()
            for ax in acc_axes:
                ax.plot(h["epoch"], y * scale, styles.get(m.split("_")[0], "-"),
                        color=PALETTE[i % len(PALETTE)], marker=marker, label=ax_label)
            if zoom and m == "train_acc" and zoom[0] <= y.iloc[-1] * scale <= zoom[1]:
                acc_axes[1].annotate(f"{y.iloc[-1] * scale:.1f} %", (h["epoch"].iloc[-1], y.iloc[-1] * scale),
                                     xytext=(-4, 6), textcoords="offset points", ha="right",
                                     color=PALETTE[i % len(PALETTE)], fontsize="small")
        if sparsity and "sparsity_%" in h and h["sparsity_%"].notna().any():
            axes[-1].plot(h["epoch"], h["sparsity_%"], color=PALETTE[i % len(PALETTE)], marker=marker,
                          label=name or "Sparse VD")
    for label, value in (hlines or {}).items():
        for ax in acc_axes:
            ax.axhline(value, color="0.3", ls=":", lw=1.2, label=label, zorder=1.5)  # under the curves
    acc = any(m.endswith("acc") for m in metrics)
    axes[0].set(xlabel="epoch", ylabel="accuracy (%)" if acc else "MSE (target variance units)",
                title=title or "Training curves")
    axes[0].legend(fontsize="small", loc=legend_loc, ncol=legend_ncol)
    if zoom:
        acc_axes[1].set(xlabel="epoch", ylabel="accuracy (%)", ylim=zoom,
                        title=f"The same, near chance: {zoom[0]:g} to {zoom[1]:g} %")
        acc_axes[1].yaxis.set_major_locator(MultipleLocator(1.0))
    if sparsity:
        axes[-1].set(xlabel="epoch", ylabel="weights dropped (%)", ylim=(-2, 102),
                     title="Sparsity (log alpha >= threshold)")
        if axes[-1].lines:
            axes[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_pruning_curve(curve: pd.DataFrame, rows: pd.DataFrame | None = None):
    """Iterative magnitude pruning as a curve: test error (%) against compression (x, log scale) at
    each step of the schedule (``result["results"]["pruning_curve"]``), the steps within the
    validation budget filled and the chosen one (pruning's own operating point) ringed. ``rows``
    (``method``, ``error_%``, ``compression``; e.g. dense, Sparse VD, pruning matched to Sparse VD's
    sparsity) adds one labelled marker each; a dense row is drawn as a horizontal line."""
    fig, (ax,) = _fig_axes(1, size=(6.6, 4.0))
    curve = curve.sort_values("compression")
    ax.plot(curve["compression"], curve["test_error_%"], "-", color=PALETTE[0], lw=1.2)
    inside = curve[curve["within_budget"].astype(bool)]
    outside = curve[~curve["within_budget"].astype(bool)]
    ax.plot(inside["compression"], inside["test_error_%"], "o", color=PALETTE[0], ms=6,
            label="iterative pruning, within the validation budget")
    ax.plot(outside["compression"], outside["test_error_%"], "o", color=PALETTE[0], ms=6, mfc="white",
            label="iterative pruning, over the budget")
    chosen = curve[curve["chosen"].astype(bool)]
    if len(chosen):
        ax.plot(chosen["compression"], chosen["test_error_%"], "o", ms=15, mfc="none", mec="black",
                mew=1.5, label="pruning's own operating point (chosen on validation)")
    markers = iter("*D^sv")
    for j, (_, r) in enumerate((rows if rows is not None else pd.DataFrame()).iterrows()):
        if float(r["compression"]) == 1.0:
            ax.axhline(float(r["error_%"]), color="0.4", ls="--", lw=1, label=str(r["method"]))
            continue
        ax.plot(float(r["compression"]), float(r["error_%"]), next(markers, "o"), ls="none",
                color=PALETTE[(j + 1) % len(PALETTE)], mec="0.15", ms=11, label=str(r["method"]))
    ax.set_xscale("log")
    ax.set(xlabel="compression (total / kept weights, x, log scale)", ylabel="test error (%)",
           title="Magnitude pruning over sparsity")
    # the same axis read as sparsity: compression c = 1 / (1 - s)
    top = ax.secondary_xaxis("top")
    lo, hi = ax.get_xlim()
    ticks = [s for s in (50.0, 80.0, 90.0, 95.0, 98.0, 99.0) if lo <= 1 / (1 - s / 100) <= hi]
    top.set_xticks([1 / (1 - s / 100) for s in ticks], labels=[f"{s:g}" for s in ticks])
    top.minorticks_off()
    top.set_xlabel("sparsity (% of weights dropped)")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
