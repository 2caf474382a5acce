"""Figures for the notebooks. Every function returns a matplotlib ``Figure`` (and never calls
``plt.show()``: the caller decides), labels its axes with units, and draws with seaborn's colour-blind
safe palette. Weights are drawn with a diverging colour map centred at 0 (red positive, blue negative,
white near 0) and dropped weights in a neutral grey (``DROPPED_COLOUR``) that no kept weight can have.

By default the figures are made through pyplot, so the inline backend shows them after a cell (or on
``plt.show()``). Inside ``with detached_figures():`` they are plain ``Figure`` objects on their own Agg
canvas, never registered with pyplot: nothing else in the process (another thread's
``plt.close("all")``, or matplotlib_inline's ``flush_figures`` run as a ``post_execute`` hook) can see,
draw or close them. The widgets render that way (see ``widgets.Explorer`` and docs/e2e.md).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator, Mapping, Sequence

import matplotlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from . import theory

__all__ = [
    "PALETTE",
    "WEIGHT_CMAP",
    "DROPPED_COLOUR",
    "layer_names",
    "use_style",
    "detached_figures",
    "empty_panels",
    "new_figure",
    "plot_priors",
    "plot_posterior",
    "plot_kl",
    "plot_lrt_moments",
    "plot_gradient_variance",
    "plot_additive_reparam",
    "plot_history",
    "plot_pruning_curve",
    "weight_image",
    "plot_weight_grid",
    "plot_filters",
    "plot_log_alpha_hist",
    "plot_pixel_map",
    "plot_layer_matrix",
    "plot_accuracy_compression",
    "pareto_front",
    "plot_threshold_choice",
    "plot_regression_sweep",
    "animate_snapshots",
]

PALETTE = sns.color_palette("colorblind")
# A neutral mid grey for dropped weights: the diverging map runs blue - white - red, so no kept weight
# (however small) is ever drawn grey, and "19/25 kept" can be counted off a filter.
DROPPED_COLOUR = "0.55"
# RdBu is a ColorBrewer scheme marked colour-blind safe; a masked (dropped) weight is drawn grey.
WEIGHT_CMAP = matplotlib.colormaps["RdBu_r"].with_extremes(bad=DROPPED_COLOUR)


def layer_names(model) -> dict:
    """{name: layer} for the weight layers of ``model`` in order, named as in the paper: conv1,
    conv2, ... for convolutions, fc1, fc2, ... for dense layers (never nn.Sequential indices such as
    "1" or "3"). Sparse VD layers and plain ``nn.Linear`` / ``nn.Conv2d`` both count."""
    from torch import nn

    from .layers import Conv2dSVDO, LinearSVDO

    names, counts = {}, {"conv": 0, "fc": 0}
    for _, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, Conv2dSVDO)):
            kind = "conv"
        elif isinstance(m, (nn.Linear, LinearSVDO)):
            kind = "fc"
        else:
            continue
        counts[kind] += 1
        names[f"{kind}{counts[kind]}"] = m
    return names


def use_style() -> None:
    """Seaborn's colour-blind palette, a clean grid, and PNG inline figures (nbval ignores PNG but
    compares SVG, whose ids change from run to run)."""
    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 110, "image.interpolation": "nearest",
                         "axes.titlesize": "medium"})
    try:  # only inside IPython
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        if get_ipython() is not None:
            set_matplotlib_formats("png")
    except ImportError:  # pragma: no cover
        pass


_DETACHED: contextvars.ContextVar[bool] = contextvars.ContextVar("sparsevd_detached_figures",
                                                                 default=False)


@contextlib.contextmanager
def detached_figures() -> Iterator[None]:
    """Within this block (this thread / context only) the plot functions return figures that pyplot
    does not know: ``Figure`` on a ``FigureCanvasAgg``, drawn only by whoever holds them."""
    token = _DETACHED.set(True)
    try:
        yield
    finally:
        _DETACHED.reset(token)


def new_figure(**kw) -> Figure:
    """``plt.figure(**kw)``, or inside ``detached_figures()`` a ``Figure(**kw)`` with its own Agg
    canvas and no pyplot figure manager."""
    if _DETACHED.get():
        fig = Figure(**kw)
        FigureCanvasAgg(fig)
        return fig
    return plt.figure(**kw)


def _subplots(nrows: int, ncols: int, figsize, **fig_kw):
    """``plt.subplots(nrows, ncols, squeeze=False)`` through ``new_figure``."""
    fig = new_figure(figsize=figsize, **fig_kw)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _fig_axes(ncols: int = 1, nrows: int = 1, size=(4.8, 3.4), **kw):
    fig, axes = _subplots(nrows, ncols, (size[0] * ncols, size[1] * nrows), **kw)
    return fig, axes.ravel()


def empty_panels(fig) -> list[str]:
    """The data panels of ``fig`` that show nothing, each described in words ([] when every panel shows
    data). An image panel is empty when every pixel is masked or NaN and the masked colour is
    transparent; wholly masked panels drawn in an opaque colour (dropped weights, grey) count as
    empty only when they are at least half of the figure's image panels. Any other visible panel is empty
    when no line drawn in data coordinates has a finite point and it has no bars, histogram or filled
    area. Colour bars and switched-off cells of a grid are not data panels."""
    empty, dropped, n_images = [], [], 0
    for k, ax in enumerate(fig.axes):
        if ax.get_label() == "<colorbar>" or not ax.axison:
            continue
        title = ax.get_title() or (fig._suptitle.get_text() if fig._suptitle else "")
        name = f"panel {k} ({title!r})"
        if ax.images:
            for im in ax.images:
                n_images += 1
                arr = np.ma.masked_invalid(np.ma.asarray(im.get_array(), dtype=float))
                if arr.size == 0 or arr.count() == 0:
                    # drawn in an opaque "bad" colour (DROPPED_COLOUR), a wholly masked panel still
                    # says something (a filter dropped whole), unless most panels are like it
                    opaque = im.cmap.get_bad()[3] > 0
                    (dropped if opaque else empty).append(f"{name}: image with every pixel masked")
            continue
        points = 0
        for line in ax.lines:
            if line.get_transform() != ax.transData:  # axvline / axhline: a guide, not data
                continue
            x = np.asarray(line.get_xdata(), dtype=float)
            y = np.asarray(line.get_ydata(), dtype=float)
            points += int(np.sum(np.isfinite(x) & np.isfinite(y)))
        shapes = sum(1 for p in ax.patches if p.get_visible()) + sum(
            1 for c in ax.collections if len(c.get_paths()) or len(c.get_offsets()))
        if points == 0 and shapes == 0:
            empty.append(f"{name}: no line with a finite point, no bar or area")
    if dropped and 2 * len(dropped) >= n_images:
        empty += dropped
    return empty


# --------------------------------------------------------------------------------------------------
# notebook 01: priors and posterior
# --------------------------------------------------------------------------------------------------

def plot_priors(w_max: float = 3.0, sigma: float = 1.0, b: float = 1.0):
    """Left: the log-uniform prior (unnormalised, 1/|w|, scaled to meet the Gaussian at |w| = 1)
    beside N(0, sigma^2) and Laplace(0, b) densities. Right: the same densities over log10|w|,
    where the log-uniform prior is flat (scale invariance)."""
    fig, (ax, ax2) = _fig_axes(2)
    w = np.linspace(-w_max, w_max, 1201)
    w = w[w != 0]
    scale = float(theory.gaussian_density(1.0, sigma))
    ax.plot(w, theory.gaussian_density(w, sigma), color=PALETTE[0], label=f"Gaussian, sigma={sigma:g}")
    ax.plot(w, theory.laplace_density(w, b), color=PALETTE[1], label=f"Laplace, b={b:g}")
    ax.plot(w, theory.log_uniform_density(w, scale), color=PALETTE[2], lw=2,
            label="log-uniform, c/|w| (improper)")
    ax.set_ylim(0, 1.2)
    ax.set(xlabel="weight w (unitless)", ylabel="density p(w) (1 / unit of w)",
           title="Priors over a weight")
    ax.legend(fontsize="small")
    u = np.linspace(-4, 1, 501)  # log10 |w|
    a = 10.0 ** u
    # density of log10|w| = p(|w|) * |w| * ln 10 (both signs)
    jac = a * math.log(10.0) * 2
    ax2.plot(u, theory.gaussian_density(a, sigma) * jac, color=PALETTE[0], label="Gaussian")
    ax2.plot(u, theory.laplace_density(a, b) * jac, color=PALETTE[1], label="Laplace")
    ax2.plot(u, np.full_like(u, scale * 2 * math.log(10.0)), color=PALETTE[2], lw=2,
             label="log-uniform: flat")
    ax2.set(xlabel="log10 |w| (decades)", ylabel="density of log10|w| (1 / decade)",
            title="The same priors over log10|w|")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_posterior(theta: float, alpha: float, w_max: float | None = None):
    """The posterior q(w) = N(theta, alpha theta^2), with the dropout rate alpha / (1 + alpha) and
    the mass that lies on the other side of 0 in the title."""
    sd = float(theory.posterior_std(theta, alpha))
    p = float(theory.dropout_rate(alpha))
    w_max = w_max or max(3.0, abs(theta) + 4 * sd)
    w = np.linspace(-w_max, w_max, 1201)
    fig, (ax,) = _fig_axes(1, size=(6.4, 3.4))
    if sd > 0:
        dens = np.exp(-0.5 * ((w - theta) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.fill_between(w, dens, color=PALETTE[0], alpha=0.35)
        ax.plot(w, dens, color=PALETTE[0], label=f"q(w) = N({theta:g}, {alpha:g} x {theta:g}^2)")
        ax.set_ylim(0, min(dens.max() * 1.15, 5.0))
    ax.axvline(theta, color=PALETTE[3], ls="--", label=f"theta = {theta:g}")
    ax.axvline(0, color="0.3", lw=1)
    ax.set(xlim=(-w_max, w_max), xlabel="weight w (unitless)", ylabel="density q(w) (1 / unit of w)",
           title=f"alpha = {alpha:g}: dropout rate alpha/(1+alpha) = {p:.3f}, std = {sd:.3g}")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# notebook 02: the KL approximation
# --------------------------------------------------------------------------------------------------

def plot_kl(log_alpha, reference, curves: Mapping[str, np.ndarray], reference_label: str = "exact"):
    """Left: -KL against log alpha, the reference and each named curve. Right: each curve minus the
    reference (the approximation error, in nats)."""
    la = np.asarray(log_alpha)
    fig, (ax, ax2) = _fig_axes(2)
    ax.plot(la, reference, color="0.2", lw=3, alpha=0.5, label=reference_label)
    for i, (name, y) in enumerate(curves.items()):
        ax.plot(la, y, color=PALETTE[i % len(PALETTE)], lw=1.3, label=name)
        ax2.plot(la, np.asarray(y) - reference, color=PALETTE[i % len(PALETTE)], label=name)
    ax.axvline(3.0, color="0.5", ls=":", lw=1)
    ax.set(xlabel="log alpha (dimensionless)", ylabel="-KL(q || p) (nats per weight)",
           title="Negative KL to the log-uniform prior")
    ax.legend(fontsize="small")
    ax2.axhline(0, color="0.3", lw=1)
    ax2.set(xlabel="log alpha (dimensionless)", ylabel=f"curve - {reference_label} (nats)",
            title="Approximation error")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


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
    """Bar chart (log scale) of the gradient variance of each estimator (``theory.gradient_variance``)."""
    fig, axes = _fig_axes(2, size=(4.6, 3.4))
    for ax, col in zip(axes, ("grad variance, theta", "grad variance, log sigma2")):
        ax.bar(range(len(table)), table[col], color=PALETTE[:len(table)])
        ax.set_xticks(range(len(table)))
        ax.set_xticklabels([s.replace(" ", "\n", 2) for s in table.index], fontsize="x-small")
        ax.set_yscale("log")
        ax.set(xlabel="gradient estimator", ylabel="variance per parameter (grad. units^2)",
               title=col.replace("grad variance, ", "d loss / d "))
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
        legend_ncol: int = 1):
    """Per-epoch curves from ``fit`` histories: accuracy (%) on the left, sparsity (%) on the right.
    ``history`` is one DataFrame or {model name: DataFrame}. ``legend_loc`` / ``legend_ncol`` place
    the left panel's legend (matplotlib's ``loc`` / ``ncol``), e.g. "lower right" with 2 columns to
    keep it off long curves."""
    runs = {"": history} if isinstance(history, pd.DataFrame) else dict(history)
    fig, axes = _fig_axes(2 if sparsity else 1)
    # a marker per epoch reads well for a short run and overplots a long one (200 epochs)
    marker = "." if max((len(h) for h in runs.values()), default=0) <= 30 else None
    styles = {"train": "-", "test": "--"}
    for i, (name, h) in enumerate(runs.items()):
        for m in metrics:
            if m not in h:
                continue
            y = h[m].astype(float)
            scale = 100.0 if m.endswith("acc") else 1.0
            ax_label = f"{name} {m.replace('_', ' ')}".strip()
            axes[0].plot(h["epoch"], y * scale, styles.get(m.split("_")[0], "-"),
                         color=PALETTE[i % len(PALETTE)], marker=marker, label=ax_label)
        if sparsity and "sparsity_%" in h and h["sparsity_%"].notna().any():
            axes[1].plot(h["epoch"], h["sparsity_%"], color=PALETTE[i % len(PALETTE)], marker=marker,
                         label=name or "Sparse VD")
    acc = any(m.endswith("acc") for m in metrics)
    axes[0].set(xlabel="epoch", ylabel="accuracy (%)" if acc else "MSE (target variance units)",
                title=title or "Training curves")
    axes[0].legend(fontsize="small", loc=legend_loc, ncol=legend_ncol)
    if sparsity:
        axes[1].set(xlabel="epoch", ylabel="weights dropped (%)", ylim=(-2, 102),
                    title="Sparsity (log alpha >= threshold)")
        if axes[1].lines:
            axes[1].legend(fontsize="small")
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


# --------------------------------------------------------------------------------------------------
# notebook 04: weights
# --------------------------------------------------------------------------------------------------

def weight_image(weight: np.ndarray, log_alpha: np.ndarray | None = None,
                 threshold: float = 3.0) -> np.ma.MaskedArray:
    """The weights as a masked array in which dropped weights (log alpha >= threshold) are masked:
    ``WEIGHT_CMAP`` draws them grey (``DROPPED_COLOUR``)."""
    weight = np.asarray(weight, dtype=float)
    dropped = np.zeros(weight.shape, bool) if log_alpha is None else np.asarray(log_alpha) >= threshold
    return np.ma.masked_array(weight, mask=dropped)


def _symmetric_norm(arrays) -> TwoSlopeNorm:
    vmax = max([float(np.max(np.abs(a))) for a in arrays if np.size(a)] + [1e-6])
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def plot_weight_grid(images: Sequence[np.ndarray], ncols: int = 10, titles: Sequence[str] | None = None,
                     suptitle: str = "", vmax: float | None = None, cell: float = 0.9):
    """A grid of weight images (2-d arrays or masked arrays) on one shared diverging scale centred
    at 0, dropped weights grey, with one colour bar."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = _subplots(nrows, ncols, (cell * ncols + 1.2, cell * nrows + 0.6))
    norm = (_symmetric_norm([np.ma.compressed(np.ma.asarray(i)) for i in images]) if vmax is None
            else TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax))
    im = None
    for k, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if k >= n:
            ax.axis("off")
            continue
        im = ax.imshow(images[k], cmap=WEIGHT_CMAP, norm=norm)
        for spine in ax.spines.values():
            spine.set_color("0.7")
        if titles is not None:
            ax.set_title(titles[k], fontsize="x-small")
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        cb.set_label("weight theta (grey: dropped)")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_filters(weight: np.ndarray, log_alpha: np.ndarray | None = None, threshold: float = 3.0,
                 ncols: int = 10, suptitle: str = "", vmax: float | None = None):
    """First-layer conv filters (out, 1, k, k) as a grid; dropped weights grey; title: kept/total."""
    weight = np.asarray(weight)
    la = None if log_alpha is None else np.asarray(log_alpha)
    imgs, titles = [], []
    for i in range(weight.shape[0]):
        img = weight_image(weight[i, 0], None if la is None else la[i, 0], threshold)
        imgs.append(img)
        titles.append(f"{int(img.count())}/{img.size}")
    return plot_weight_grid(imgs, ncols=ncols, titles=titles, suptitle=suptitle, vmax=vmax)


def _draw_log_alpha_hist(ax, log_alpha: Mapping[str, np.ndarray], threshold: float, bins: int,
                         range_: tuple[float, float]) -> None:
    for i, (name, la) in enumerate(log_alpha.items()):
        la = np.asarray(la, dtype=float).ravel()
        dropped = 100.0 * float(np.mean(la >= threshold)) if la.size else 0.0
        ax.hist(np.clip(la, *range_), bins=bins, range=range_, histtype="step", lw=1.6,
                density=True, color=PALETTE[i % len(PALETTE)], label=f"{name}: {dropped:.1f}% dropped")
    ax.axvline(threshold, color="0.2", ls="--", label=f"threshold {threshold:g}")
    ax.set(xlabel="log alpha (dimensionless; clipped to the plot range)",
           ylabel="density (per unit of log alpha)", title="Distribution of log alpha per layer")
    ax.legend(fontsize="small")


def plot_log_alpha_hist(log_alpha: Mapping[str, np.ndarray], threshold: float = 3.0,
                        bins: int = 60, range_: tuple[float, float] = (-10, 15)):
    """Histogram of log alpha per layer (values clipped to ``range_`` for display); the threshold as
    a vertical line; the dropped share in each legend entry. Name the layers as in the paper
    (``layer_names``): the keys are the legend."""
    fig, (ax,) = _fig_axes(1, size=(6.4, 3.4))
    _draw_log_alpha_hist(ax, log_alpha, threshold, bins, range_)
    fig.tight_layout()
    return fig


def plot_pixel_map(kept_per_pixel: np.ndarray, total: int | None = None, image: np.ndarray | None = None):
    """A 28x28 map of how many first-layer weights of each input pixel survive (0 = pixel ignored),
    optionally beside a mean input image."""
    kept = np.asarray(kept_per_pixel, dtype=float)
    ncols = 2 if image is not None else 1
    fig, axes = _fig_axes(ncols, size=(4.2, 3.6))
    shown = np.ma.masked_equal(kept, 0)
    im = axes[0].imshow(shown, cmap=matplotlib.colormaps["viridis"].with_extremes(bad="white"),
                        vmin=0, vmax=max(1, kept.max()))
    n_used = int((kept > 0).sum())
    of = f" of {total}" if total else ""
    axes[0].set(title=f"Kept weights{of} per input pixel\n{n_used} of {kept.size} pixels used",
                xlabel="pixel column", ylabel="pixel row")
    fig.colorbar(im, ax=axes[0], label="kept weights (count; white: 0)")
    if image is not None:
        im2 = axes[1].imshow(image, cmap="gray_r")
        axes[1].set(title="Mean training image", xlabel="pixel column", ylabel="pixel row")
        fig.colorbar(im2, ax=axes[1], label="intensity (mean-subtracted)")
    for ax in axes:
        ax.grid(False)
    fig.tight_layout()
    return fig


def plot_layer_matrix(weight: np.ndarray, log_alpha: np.ndarray | None = None, threshold: float = 3.0,
                      name: str = "fc2", width: float = 12.0, clip_percentile: float = 99.0):
    """A whole dense layer (out x in) as one heat map, kept weights on the diverging map and dropped
    ones grey, so that rows (output units that receive nothing) and columns (input units nobody reads)
    dropped entirely show as grey stripes; beside it, the block of rows and columns that keep a weight,
    gathered (what ``compress`` keeps). The colour scale ends at the ``clip_percentile`` of |kept
    weights| (a few large weights would wash out the rest). Titles count weights, rows and columns."""
    img = weight_image(weight, log_alpha, threshold)
    kept = ~np.ma.getmaskarray(img)
    rows, cols = np.flatnonzero(kept.any(1)), np.flatnonzero(kept.any(0))
    n_out, n_in = img.shape
    height = max(2.8, 0.62 * width * n_out / n_in * 1.1)
    fig = new_figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False, width_ratios=[n_in, max(len(cols), 1) * 1.6])
    values = np.abs(img.compressed())
    vmax = max(float(np.percentile(values, clip_percentile)) if values.size else 0.0, 1e-6)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    ax, ax2 = axes[0]
    im = ax.imshow(img, cmap=WEIGHT_CMAP, norm=norm, aspect="auto")
    ax.set(xlabel=f"input unit of {name} (index)", ylabel="output unit (index)",
           title=f"{name}, all {img.size:,} weights\n{int(kept.sum()):,} kept, the rest grey")
    block = img[np.ix_(rows, cols)] if len(rows) and len(cols) else np.ma.masked_all((1, 1))
    ax2.imshow(block, cmap=WEIGHT_CMAP, norm=norm, aspect="auto")
    ax2.set(xlabel=f"the {len(cols)} input units read (of {n_in})",
            ylabel=f"the {len(rows)} output units (of {n_out})",
            title=f"rows and columns with a kept weight,\ngathered: {block.count():,} of {block.size:,} kept")
    for a in (ax, ax2):
        a.grid(False)
    cb = fig.colorbar(im, ax=[ax, ax2], pad=0.01, extend="both")
    cb.set_label("weight theta (grey: dropped)")
    return fig


def animate_snapshots(frames: Sequence[np.ndarray], path, titles: Sequence[str] | None = None,
                      fps: int = 2, ncols: int = 10, vmax: float | None = None) -> str:
    """Save an animated GIF of weight grids (each frame: a list of 2-d masked arrays) with
    matplotlib's PillowWriter. Written to a temporary name and renamed. Returns the path."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    from .files import atomic_path

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to animate")
    vmax = vmax or max(float(np.max(np.abs(np.ma.compressed(np.ma.asarray(i))), initial=1e-6))
                       for f in frames for i in f)
    fig = plot_weight_grid(frames[0], ncols=ncols, vmax=vmax,
                           suptitle=titles[0] if titles else "")
    axes = [ax for ax in fig.axes if ax.images]

    def update(k):
        for ax, img in zip(axes, frames[k]):
            ax.images[0].set_data(img)
        if titles:
            fig.suptitle(titles[k])
        return []

    anim = FuncAnimation(fig, update, frames=len(frames), blit=False)
    path = str(path)
    try:
        with atomic_path(path) as tmp:
            anim.save(str(tmp), writer=PillowWriter(fps=fps))
    finally:
        plt.close(fig)
    return path


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
