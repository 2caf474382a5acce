"""The common style and helpers of the figures: the colour-blind palette, the weight colour map
(dropped weights in ``DROPPED_COLOUR``), paper layer names, ``use_style``, ``detached_figures`` /
``new_figure`` (figures outside pyplot, for the widgets) and ``empty_panels``."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "PALETTE",
    "DROPPED_COLOUR",
    "DEAD_COLOUR",
    "WEIGHT_CMAP",
    "layer_names",
    "use_style",
    "detached_figures",
    "new_figure",
    "empty_panels",
]


PALETTE = sns.color_palette("colorblind")
# A neutral mid grey for dropped weights: the diverging map runs blue - white - red, so no kept weight
# (however small) is ever drawn grey, and "19/25 kept" can be counted off a filter.
DROPPED_COLOUR = "0.55"
# A near-black for a whole dead row or column (a unit with no kept weight): darker than DROPPED_COLOUR
# and than any colour of the diverging map, so dead units stand out from scattered dropped weights.
DEAD_COLOUR = "0.2"
# RdBu is a ColorBrewer scheme marked colour-blind safe; a masked (dropped) weight is drawn grey.
WEIGHT_CMAP = matplotlib.colormaps["RdBu_r"].with_extremes(bad=DROPPED_COLOUR)


def layer_names(model) -> dict:
    """{name: layer} for the weight layers of ``model`` in order, named as in the paper: conv1,
    conv2, ... for convolutions, fc1, fc2, ... for dense layers (never nn.Sequential indices such as
    "1" or "3"). Sparse VD layers and plain ``nn.Linear`` / ``nn.Conv2d`` both count."""
    from torch import nn

    from ..layers import Conv2dSVDO, LinearSVDO

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
