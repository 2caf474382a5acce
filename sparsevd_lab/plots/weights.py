"""Figures for notebook 04: what the weights look like (filters, weight grids, log alpha histograms,
pixel maps, layer matrices, animations)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

import matplotlib.patches

from .style import PALETTE, DEAD_COLOUR, DROPPED_COLOUR, WEIGHT_CMAP, new_figure, _subplots, _fig_axes

__all__ = [
    "weight_image",
    "plot_weight_grid",
    "plot_filters",
    "plot_log_alpha_hist",
    "plot_pixel_map",
    "plot_layer_matrix",
    "animate_snapshots",
    "plot_kl_flow",
]

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
    dropped entirely are drawn in a dark ``DEAD_COLOUR`` (unlike the mid grey of a single dropped
    weight in a live row or column, so dead units stand out as dark stripes); beside it, the block of
    rows and columns that keep a weight, gathered (what ``compress`` keeps). The colour scale ends at
    the ``clip_percentile`` of |kept weights| (a few large weights would wash out the rest). Titles count weights, rows and columns."""
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
    # Whole dead rows and columns on top, in a colour of their own (RGBA overlay, transparent elsewhere)
    dead = np.zeros(img.shape, bool)
    dead[:, ~kept.any(0)] = True
    dead[~kept.any(1), :] = True
    overlay = np.zeros(img.shape + (4,))
    overlay[dead] = matplotlib.colors.to_rgba(DEAD_COLOUR)
    ax.imshow(overlay, aspect="auto", interpolation="nearest")
    n_dead_cols, n_dead_rows = int((~kept.any(0)).sum()), int((~kept.any(1)).sum())
    ax.set(xlabel=f"input unit of {name} (index)", ylabel="output unit (index)",
           title=f"{name}, all {img.size:,} weights: {int(kept.sum()):,} kept\n"
                 f"dark: {n_dead_cols} dead columns, {n_dead_rows} dead rows; grey: other dropped")
    ax.legend(handles=[matplotlib.patches.Patch(color=DEAD_COLOUR, label="dead unit (whole row/column)"),
                       matplotlib.patches.Patch(color=DROPPED_COLOUR, label="dropped weight")],
              loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize="small", frameon=False)
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

    from ..files import atomic_path

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


def plot_kl_flow(kl_gradient, log_abs_theta: np.ndarray, log_sigma2: np.ndarray, threshold: float = 3.0,
                 eps: float = 1e-8, xlim=(-14.0, -1.0), ylim=(-14.0, -1.0)):
    """Weights in the (log|theta|, log sigma^2) plane: arrows of the KL's descent direction
    (-``kl_gradient(log_abs_theta, log_sigma2)``, one weight's KL of eq. 14) on a grid, shaded by the
    gradient's size; the line log alpha = ``threshold`` (log sigma^2 = threshold + log(theta^2 + eps));
    the wall theta^2 = ``eps``; and trajectories (``log_abs_theta``, ``log_sigma2`` of shape
    (steps, weights); ringed at the start, filled at the end), red when a weight ends dropped
    (log alpha >= threshold), blue when kept."""
    u_traj = np.asarray(log_abs_theta, dtype=float)
    s_traj = np.asarray(log_sigma2, dtype=float)
    if u_traj.shape != s_traj.shape or u_traj.ndim != 2:
        raise ValueError(f"log_abs_theta and log_sigma2 must both have shape (steps, weights); got "
                         f"{u_traj.shape} and {s_traj.shape}")
    fig, ax = _fig_axes(1, size=(7.0, 5.2))
    ax = ax[0]
    fu, fs = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    fdu, fds = (np.asarray(v, dtype=float) for v in kl_gradient(fu, fs))
    shade = ax.pcolormesh(fu, fs, np.log10(np.hypot(fdu, fds) + 1e-12), cmap="Greys", vmin=-8, vmax=1,
                          shading="auto", alpha=0.5, rasterized=True)
    fig.colorbar(shade, ax=ax, pad=0.01).set_label("log10 |gradient of the KL| (nats per unit)")
    gu, gs = np.meshgrid(np.linspace(*xlim, 20), np.linspace(*ylim, 16))
    du, ds = (np.asarray(v, dtype=float) for v in kl_gradient(gu, gs))
    size = np.hypot(du, ds)
    norm = np.where(size > 0, size, 1.0)
    ax.quiver(gu, gs, -du / norm, -ds / norm, color="0.25", angles="xy", scale=32, width=0.0025)
    u_line = np.linspace(*xlim, 400)
    ax.plot(u_line, threshold + np.log(np.exp(2 * u_line) + eps), color="k", lw=1.5,
            label=f"log alpha = {threshold:g} (above: dropped)")
    ax.axvline(0.5 * np.log(eps), color=PALETTE[2], ls="--", lw=1.5,
               label=f"the wall theta^2 = {eps:g}")
    end_la = s_traj[-1] - np.log(np.exp(2 * u_traj[-1]) + eps)
    dropped = end_la >= threshold
    for j in range(u_traj.shape[1]):
        c = PALETTE[3] if dropped[j] else PALETTE[0]
        ax.plot(np.clip(u_traj[:, j], *xlim), s_traj[:, j], color=c, lw=0.8, alpha=0.7)
        ax.plot(u_traj[0, j], s_traj[0, j], "o", mfc="none", color=c, ms=4)
        ax.plot(np.clip(u_traj[-1, j], *xlim), s_traj[-1, j], "o", color=c, ms=4)
    ax.plot([], [], color=PALETTE[3], label=f"trajectory, ends dropped ({int(dropped.sum())})")
    ax.plot([], [], color=PALETTE[0], label=f"trajectory, ends kept ({int((~dropped).sum())})")
    ax.set(xlim=xlim, ylim=ylim, xlabel="log |theta| (natural log)", ylabel="log sigma^2 (natural log)",
           title="Weights in the (log|theta|, log sigma^2) plane; arrows: the KL's descent direction")
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return fig
