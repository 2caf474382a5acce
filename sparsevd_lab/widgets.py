"""Interactive widgets of the notebooks, each a thin wire around a pure, tested ``*_render`` function.

Every ``*_render(...)`` returns ``(table, figure)``: a pandas DataFrame and a matplotlib Figure for one
setting, computed from stored numbers (never by training). The matching ``*_widget(...)`` builds an
``Explorer``: sliders (``continuous_update=False``, each with a clear ``description``) observed by one
handler that re-renders into one fixed ``Output``: the table, then the figure as PNG bytes. The
figure is built inside ``plots.detached_figures()``, so pyplot never holds it (nothing piles up in
Colab, and nothing else can draw or close it), and renders of one explorer are serialised by a lock.
After every change the explorer keeps the last ``table`` and ``figure`` as attributes, which is how
the tests check it without a browser.

Why not ``interactive_output`` and pyplot figures: JupyterLab 4.6 sends widget messages to a kernel
subshell (setting ``commsOverSubshells``, default ``perCommTarget``), and ipykernel 7 may handle one
comm message there, in another thread, while the slider's update still renders in the main thread;
``comm`` fires IPython's ``post_execute`` event around every comm message, and matplotlib_inline's
``flush_figures`` hook then draws and closes every pyplot figure, the explorer's half-finished one
included. Two threads drawing one figure sent an empty or partly drawn
PNG to the page (docs/e2e.md).

``static_fallback(render, settings)`` renders two or three settings as ordinary output: what GitHub and
nbviewer readers see, where widgets are dead.
"""
from __future__ import annotations

import math
import threading
from typing import Callable, Mapping, Sequence

import ipywidgets as W
from IPython.display import Image, clear_output, display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm

from . import plots, theory
from .layers import kl_approx
from .reports import METHOD_NAMES

__all__ = [
    "Explorer",
    "prior_render",
    "prior_widget",
    "snapshot_render",
    "sweep_render",
    "sweep_widget",
    "threshold_render",
    "threshold_widget",
    "regression_render",
    "regression_widget",
    "retrain_button",
    "static_fallback",
    "show_table",
    "log_options",
    "nearest",
    "table1",
    "reference_rows",
]


def show_table(table: pd.DataFrame, caption: str = "", css_class: str = "sparsevd-table") -> None:
    """Display a DataFrame with a caption and a stable CSS class (end-to-end tests find it by class)."""
    from IPython.display import HTML, display

    html = table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-", classes=css_class)
    cap = f"<p class='{css_class}-caption'><b>{caption}</b></p>" if caption else ""
    display(HTML(f"<div class='{css_class}-box'>{cap}{html}</div>"))


class Explorer(W.VBox):
    """Sliders above one fixed Output; ``render(**slider values) -> (table, figure)``.

    Attributes: ``sliders`` (dict name -> slider), ``output`` (the Output), ``table`` and ``figure``
    (the last render), ``renders`` (how many renders ran).

    A slider change re-renders synchronously in the thread that handles it (the kernel may handle
    widget messages in more than one thread: a lock serialises the renders), with the figure built
    outside pyplot (``plots.detached_figures``) and shown as the PNG bytes of that figure.
    """

    def __init__(self, render: Callable[..., tuple[pd.DataFrame, object]],
                 sliders: Mapping[str, W.Widget], name: str, caption: Callable[..., str] | None = None):
        self.render = render
        self.sliders = dict(sliders)
        self.name = name
        self.caption = caption
        self.table: pd.DataFrame | None = None
        self.figure = None
        self.renders = 0
        self._lock = threading.RLock()
        self.output = W.Output()
        self.output.add_class(f"sparsevd-{name}-output")
        controls = W.HBox(list(self.sliders.values()))
        controls.add_class(f"sparsevd-{name}-controls")
        super().__init__([controls, self.output])
        self.add_class(f"sparsevd-{name}")
        for s in self.sliders.values():
            s.observe(self._refresh, "value")
        self._refresh()

    def _refresh(self, change=None) -> None:
        """Re-render for the sliders' current values into the Output (one render at a time)."""
        with self._lock:
            with self.output:
                clear_output(wait=True)
                self._update(**self.values)

    def _update(self, **values) -> None:
        with plots.detached_figures():  # pyplot never sees the figure: see the module's docstring
            table, fig = self.render(**values)
        self.table, self.figure = table, fig
        self.renders += 1
        cap = self.caption(**values) if self.caption else ", ".join(
            f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())
        show_table(table, cap, css_class=f"sparsevd-{self.name}-table")
        if fig is not None:
            from IPython.core.pylabtools import print_figure

            in_pyplot = getattr(fig.canvas, "manager", None) is not None  # a render using pyplot itself
            # The same PNG the inline backend would send for this figure.
            display(Image(data=print_figure(fig, "png", bbox_inches="tight")))
            if in_pyplot:
                plt.close(fig)

    @property
    def values(self) -> dict:
        return {k: s.value for k, s in self.sliders.items()}


def log_options(values: Sequence[float]) -> list[tuple[str, float]]:
    """(label, value) pairs for a SelectionSlider over stored, log-spaced values, sorted."""
    return [(f"{v:g}", float(v)) for v in sorted(float(v) for v in values)]


def nearest(options: Sequence[float], value: float, log: bool = False) -> float:
    """The stored option nearest to ``value``: on a log scale (0 counts as 1e-12) or linearly."""
    opts = [float(o) for o in options]
    if log:
        key = lambda o: abs(math.log10(max(o, 1e-12)) - math.log10(max(value, 1e-12)))  # noqa: E731
    else:
        key = lambda o: abs(o - value)  # noqa: E731
    return min(opts, key=key)


def _slider(options, value, description: str, tooltip: str = "") -> W.SelectionSlider:
    return W.SelectionSlider(options=options, value=value, description=description,
                             continuous_update=False, tooltip=tooltip,
                             style={"description_width": "initial"},
                             layout=W.Layout(width="420px"))


# --------------------------------------------------------------------------------------------------
# notebook 01: posterior N(theta, alpha theta^2)
# --------------------------------------------------------------------------------------------------

PRIOR_SAMPLES = 20_000  # draws of w per render: the sign-flip share to about +-0.4 % (one std error)


def prior_render(theta: float = 1.0, alpha: float = 0.5, n_samples: int = PRIOR_SAMPLES,
                 seed: int = 0):
    """What sampling one weight from its posterior q(w) = N(theta, alpha theta^2) looks like:
    ``n_samples`` draws w = theta (1 + sqrt(alpha) eps) (seeded, so a setting always renders the
    same), their histogram over the density on a frame that is the same for every setting (so
    sliding theta or alpha changes the curve, not the axes), and a table of the share of samples
    with the other sign beside its formula Phi(-1/sqrt(alpha)), the dropout rate and the KL."""
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0 (a variance ratio); got {alpha}")
    la = math.log(alpha) if alpha > 0 else -math.inf
    kl = float(kl_approx(np.float64(la))) if alpha > 0 else math.inf
    sd = float(theory.posterior_std(theta, alpha))
    eps = np.random.default_rng(seed).standard_normal(n_samples)
    samples = theta * (1.0 + math.sqrt(alpha) * eps)  # w ~ N(theta, alpha theta^2), sec. 3
    flipped = float(np.mean(np.sign(samples) != np.sign(theta))) if theta != 0 else 0.0
    table = pd.DataFrame([{
        "theta": theta, "alpha": alpha, "log alpha": la, "std sqrt(alpha)|theta|": sd,
        "dropout rate alpha/(1+alpha)": float(theory.dropout_rate(alpha)),
        f"sign flips among {n_samples:,} samples": flipped,
        "P(sign of w != sign of theta)": float(norm.cdf(-1 / math.sqrt(alpha)))
        if alpha > 0 and theta != 0 else 0.0,
        "KL to prior (eq. 14, nats)": kl,
        "dropped at threshold 3": la >= 3.0,
    }]).T.rename(columns={0: "value"})
    fig = plots.plot_posterior(theta, alpha, samples=samples)
    return table, fig


def prior_widget(theta: float = 1.0, alpha: float = 0.5) -> Explorer:
    """Sliders over theta (linear) and alpha (log scale, 10^-3 .. 10^2) drawing ``prior_render``: the
    samples of the weight move on a fixed frame as the sliders move."""
    sliders = {
        "theta": W.FloatSlider(value=theta, min=-2.0, max=2.0, step=0.1, description="theta (mean)",
                               continuous_update=False, style={"description_width": "initial"}),
        "alpha": W.FloatLogSlider(value=alpha, base=10, min=-3, max=2, step=0.25,
                                  description="alpha (variance ratio)", continuous_update=False,
                                  style={"description_width": "initial"}),
    }
    return Explorer(prior_render, sliders, "prior")


# --------------------------------------------------------------------------------------------------
# notebook 04: weight snapshots over the epochs (rendered statically: an epoch slider only replayed
# stored numbers that the table under each render and the animation already show, so it was removed)
# --------------------------------------------------------------------------------------------------

def _snap_index(snapshots: Mapping[str, np.ndarray], epoch: int) -> int:
    epochs = [int(e) for e in np.asarray(snapshots["epoch"])]
    if int(epoch) not in epochs:
        raise ValueError(f"no snapshot at epoch {epoch}; stored epochs: {epochs}")
    return epochs.index(int(epoch))


def snapshot_render(snapshots: Mapping[str, np.ndarray], epoch: int, layer: str = "conv1",
                    threshold: float = 3.0):
    """One stored epoch of one layer: a table of kept weights per snapshotted layer and the heat map
    of ``layer`` (conv filters as a grid, a dense slice as one matrix), dropped weights grey."""
    i = _snap_index(snapshots, epoch)
    rows = []
    for key in sorted(k for k in snapshots if k.endswith("_weight")):
        name = key[:-len("_weight")]
        la = snapshots.get(f"{name}_log_alpha")
        w = np.asarray(snapshots[key][i])
        kept = int(w.size if la is None else (np.asarray(la[i]) < threshold).sum())
        rows.append({"layer": name, "shape": "x".join(map(str, w.shape)), "weights": int(w.size),
                     "kept": kept, "sparsity_%": 100.0 * (1 - kept / w.size),
                     "median log alpha": float(np.median(la[i])) if la is not None else float("nan")})
    table = pd.DataFrame(rows).set_index("layer")
    w = np.asarray(snapshots[f"{layer}_weight"][i], dtype=float)
    la_key = f"{layer}_log_alpha"
    la = np.asarray(snapshots[la_key][i], dtype=float) if la_key in snapshots else None
    vmax = float(np.max(np.abs(np.asarray(snapshots[f"{layer}_weight"], dtype=float))))
    title = f"{layer} at epoch {int(epoch)}: {table.loc[layer, 'kept']} of {w.size} weights kept"
    if w.ndim == 4:
        fig = plots.plot_filters(w, la, threshold, suptitle=title, vmax=vmax)
    else:
        img = plots.weight_image(w, la, threshold)
        fig = plots.plot_weight_grid([img], ncols=1, suptitle=title, vmax=vmax, cell=5.5)
        ax = fig.axes[0]
        ax.set_aspect("auto")
        ax.set_xlabel("input unit (index)")
        ax.set_ylabel("output unit (index)")
    return table, fig


# --------------------------------------------------------------------------------------------------
# notebook 06: classification sweep over (KL weight, threshold)
# --------------------------------------------------------------------------------------------------

_SWEEP_COLS = ["kl_weight", "threshold", "error_%", "sparsity_%", "compression", "sparsity_per_layer"]


def _select(points: pd.DataFrame, kl_weight: float, threshold: float) -> pd.DataFrame:
    rf = nearest(points["kl_weight"].unique(), kl_weight, log=True)
    th = nearest(points["threshold"].unique(), threshold)
    return points[np.isclose(points["kl_weight"], rf) & np.isclose(points["threshold"], th)]


def sweep_render(points: pd.DataFrame, kl_weight: float, threshold: float,
                 reference: pd.DataFrame | None = None):
    """The stored sweep point nearest to (kl_weight, threshold) as a one-row table beside the
    ``reference`` rows (e.g. dense and magnitude pruning), and the accuracy-compression plot with
    that point ringed."""
    sel = _select(points, kl_weight, threshold)
    if sel.empty:
        raise ValueError("the sweep has no points")
    cols = [c for c in _SWEEP_COLS if c in sel.columns]
    table = sel[cols].assign(method="Sparse VD (selected)")
    if reference is not None and len(reference):
        ref = reference[[c for c in ("method", "error_%", "sparsity_%", "compression",
                                     "sparsity_per_layer") if c in reference.columns]]
        table = pd.concat([table, ref], ignore_index=True)
    table = table.set_index("method")
    rf, th = float(sel["kl_weight"].iloc[0]), float(sel["threshold"].iloc[0])
    fig = plots.plot_accuracy_compression(points, rf, th, reference)
    return table, fig


def sweep_widget(points: pd.DataFrame, reference: pd.DataFrame | None = None,
                 kl_weight: float = 1.0, threshold: float = 3.0) -> Explorer:
    """A log-spaced KL-weight slider and a threshold slider over the stored grid (instant)."""
    rfs = sorted(float(v) for v in points["kl_weight"].unique())
    ths = sorted(float(v) for v in points["threshold"].unique())
    sliders = {
        "kl_weight": _slider(log_options(rfs), nearest(rfs, kl_weight, log=True),
                              "KL weight (log scale)"),
        "threshold": _slider([(f"{t:g}", t) for t in ths], nearest(ths, threshold),
                             "threshold on log alpha"),
    }
    return Explorer(lambda kl_weight, threshold: sweep_render(points, kl_weight, threshold, reference),
                    sliders, "sweep")


# --------------------------------------------------------------------------------------------------
# notebook 06: re-mask one trained model live
# --------------------------------------------------------------------------------------------------

CURVE_THRESHOLDS = tuple(float(t) for t in np.arange(-4.0, 8.01, 1.0))


def threshold_render(model, test, threshold: float, curve: pd.DataFrame | None = None):
    """Re-mask the trained Sparse VD ``model`` at ``threshold`` (weights with log alpha >= threshold
    dropped; nothing is retrained) and evaluate it on the loader ``test``, now. Returns a one-row
    table (threshold, test error %, compression x, sparsity %, per-layer sparsity, kept weights) and
    a figure: log alpha per layer with the threshold, and error against compression at the
    thresholds of ``curve`` (computed over ``CURVE_THRESHOLDS`` when not given) with this one ringed.
    The model's own threshold is left as it was."""
    from .experiments import threshold_sweep

    if not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a finite number (log alpha); got {threshold!r}")
    row = threshold_sweep(model, test, [float(threshold)])[0]
    if curve is None:
        curve = pd.DataFrame(threshold_sweep(model, test, CURVE_THRESHOLDS))
    table = pd.DataFrame([{k: row[k] for k in ("threshold", "error_%", "compression", "sparsity_%",
                                               "sparsity_per_layer", "kept")}]).set_index("threshold")
    log_alpha = {name: m.log_alpha.detach().cpu().numpy()
                 for name, m in plots.layer_names(model).items() if hasattr(m, "log_alpha")}
    fig = plots.plot_threshold_choice(log_alpha, float(threshold), curve, row)
    return table, fig


def threshold_widget(model, test, threshold: float = 3.0, lo: float = -4.0, hi: float = 8.0,
                     step: float = 0.5) -> Explorer:
    """A threshold slider that re-masks ``model`` and evaluates it on ``test`` at every change (about
    0.1 s for LeNet-300-100 on 10,000 test images). The curve of other thresholds is computed once."""
    from .experiments import threshold_sweep

    curve = pd.DataFrame(threshold_sweep(model, test, CURVE_THRESHOLDS))
    sliders = {"threshold": W.FloatSlider(value=threshold, min=lo, max=hi, step=step,
                                          description="threshold on log alpha", readout_format=".1f",
                                          continuous_update=False,
                                          style={"description_width": "initial"},
                                          layout=W.Layout(width="420px"))}
    explorer = Explorer(lambda threshold: threshold_render(model, test, threshold, curve), sliders,
                        "threshold")
    explorer.curve = curve
    return explorer


# --------------------------------------------------------------------------------------------------
# notebook 06: the regression table
# --------------------------------------------------------------------------------------------------

def regression_render(table: pd.DataFrame, kl_weight: float):
    """The dense row and the Sparse VD row with the stored KL weight nearest to ``kl_weight``
    (0 matches only 0), and the MSE / compression curves with that KL weight marked."""
    sv = table[table["model"] != "dense"]
    rfs = [float(v) for v in sv["kl_weight"]]
    rf = nearest(rfs, kl_weight, log=True)  # 0 counts as 1e-12 on the log scale
    cols = [c for c in ("model", "kl_weight", "train_mse", "test_mse", "sparsity_%",
                        "sparsity_per_layer") if c in table.columns]
    rows = pd.concat([table[table["model"] == "dense"], sv[np.isclose(sv["kl_weight"].astype(float), rf)]])
    out = rows[cols].copy()
    out["kl_weight"] = out["kl_weight"].astype(float)
    fig = plots.plot_regression_sweep(table, rf)
    return out.set_index("model"), fig


def regression_widget(table: pd.DataFrame, kl_weight: float = 1e-3) -> Explorer:
    """A slider over the stored KL weights of the regression table (0 first, then log-spaced)."""
    rfs = sorted(float(v) for v in table.loc[table["model"] != "dense", "kl_weight"])
    sliders = {"kl_weight": _slider(log_options(rfs), nearest(rfs, kl_weight, log=True),
                                     "KL weight (log scale)")}
    return Explorer(lambda kl_weight: regression_render(table, kl_weight), sliders, "regression")


# --------------------------------------------------------------------------------------------------
# opt-in live training, static fallbacks
# --------------------------------------------------------------------------------------------------

def retrain_button(train: Callable[..., object], description: str = "Train a small model live",
                   inputs: Mapping[str, W.Widget] | None = None) -> W.VBox:
    """A button that runs ``train()`` (opt-in: nothing trains until it is clicked) and shows what it
    returns in its own Output. With ``inputs`` ({argument name: widget}, e.g. another explorer's
    sliders) it runs ``train(**{name: widget.value})`` with the values those widgets show at the
    click. The box has ``.button``, ``.output`` and ``.result``."""
    button = W.Button(description=description, button_style="warning", icon="play",
                      layout=W.Layout(width="auto"))
    out = W.Output()
    box = W.VBox([button, out])
    box.button, box.output, box.result = button, out, None
    box.add_class("sparsevd-retrain")

    def on_click(_):
        from IPython.display import display

        button.disabled = True
        try:
            with out:
                out.clear_output()
                kwargs = {k: w.value for k, w in (inputs or {}).items()}
                box.result = train(**kwargs)
                if box.result is not None:
                    display(box.result)
                plt.show()
        finally:
            button.disabled = False

    button.on_click(on_click)
    return box


def static_fallback(render: Callable[..., tuple[pd.DataFrame, object]],
                    settings: Sequence[Mapping[str, object]], name: str = "static",
                    save_as: Sequence[str | None] | None = None,
                    figures: Sequence[int] | None = None) -> list:
    """Render each setting as ordinary output (table, then figure): the same ``render`` the widget
    uses, for readers of a static copy. ``figures`` lists the indices of the settings whose figure is
    shown (default: every one); pass one index when the figures differ only by a marker, so that each
    content is shown once (the other figures are closed unseen). ``save_as`` names a figure file per
    setting (saved with ``notebook.savefig``: default mode only; shown figures only). Returns the
    tables."""
    from .notebook import savefig

    n = len(settings)
    shown = set(range(n)) if figures is None else {i % n if n else i for i in figures}
    if figures is not None and any(not -n <= i < n for i in figures):
        raise ValueError(f"figures must be indices of the {n} settings; got {list(figures)}")
    tables = []
    for i, s in enumerate(settings):
        table, fig = render(**s)
        show_table(table, ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                                    for k, v in s.items()), css_class=f"sparsevd-{name}-table")
        if i in shown:
            if save_as is not None and i < len(save_as) and save_as[i]:
                savefig(fig, save_as[i])
            plt.show()
        elif fig is not None:
            plt.close(fig)
        tables.append(table)
    return tables


# Each row named for what it is (the result files' method keys -> the table's row names)
_METHOD_NAMES = {**METHOD_NAMES,
                 "pruning": METHOD_NAMES["pruning-matched"]}  # files before pruning-matched


def table1(result: dict) -> pd.DataFrame:
    """The paper-style Table 1 of a ``lenet300`` / ``lenet5`` experiment result: our error, per-layer
    sparsity and compression for each row (dense, Sparse VD, magnitude pruning to Sparse VD's
    per-layer sparsity, iterative magnitude pruning at its own operating point), beside the paper's
    numbers (MNIST, 200 epochs) for the rows the paper has: its pruning row (Han et al.) is the
    iterative one. The per-layer sparsities are in layer order; the layer names (fc1-fc2-fc3, ...)
    are the columns' name and ``attrs["layers"]``."""
    rows = []
    layers = None
    for r in result["results"]["rows"]:
        paper = r.get("paper_mnist") or {}
        layers = layers or r.get("layers")
        comp = float(r["compression"]) if not isinstance(r["compression"], str) else float("inf")
        rows.append({"method": _METHOD_NAMES.get(r["method"], r["method"]),
                     "error % (ours)": float(r["error_%"]),
                     "sparsity per layer % (ours)": r.get("sparsity_per_layer", ""),
                     "compression x (ours)": comp,
                     "error % (paper)": paper.get("error_%"),
                     "sparsity per layer % (paper)": paper.get("sparsity_per_layer", ""),
                     "compression x (paper)": paper.get("compression")})
    table = pd.DataFrame(rows).set_index("method")
    if layers and not all(str(name).isdigit() for name in layers):
        table.columns.name = "layers: " + "-".join(layers)
        table.attrs["layers"] = list(layers)
    return table




def reference_rows(result: dict) -> pd.DataFrame:
    """The rows of a ``lenet300`` / ``lenet5`` result as reference points for the accuracy-compression
    plot (``sweep_render``): method (each named for what it is), error_%, compression, sparsity_%,
    sparsity_per_layer. The Sparse VD row is left out (the sweep has its own points)."""
    rows = []
    for r in result["results"]["rows"]:
        if r["method"] == "sparse-vd":
            continue
        comp = float(r["compression"]) if not isinstance(r["compression"], str) else float("inf")
        rows.append({"method": _METHOD_NAMES.get(r["method"], r.get("label", r["method"])),
                     "error_%": float(r["error_%"]), "compression": comp,
                     "sparsity_%": float(r.get("sparsity_%", float("nan"))),
                     "sparsity_per_layer": r.get("sparsity_per_layer", "")})
    return pd.DataFrame(rows, columns=["method", "error_%", "compression", "sparsity_%",
                                       "sparsity_per_layer"])
