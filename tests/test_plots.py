"""Tests of sparsevd_lab.plots: every figure function returns a Figure with labelled axes."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.quiver  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sparsevd_lab import plots, theory  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labelled(fig):
    assert isinstance(fig, Figure)
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if ax.images and not ax.get_xlabel():  # weight grids: images carry no axes
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        assert "(" in ax.get_ylabel() or ax.get_ylabel() in ("pixel row", "output unit (index)")
    return fig


def test_palette_is_colorblind_and_style():
    assert plots.PALETTE == sns.color_palette("colorblind")
    plots.use_style()
    assert plt.rcParams["image.interpolation"] == "nearest"


def test_plot_priors():
    fig = _labelled(plots.plot_priors())
    ax2 = fig.axes[1]
    flat = ax2.lines[2].get_ydata()
    assert np.allclose(flat, flat[0])  # log-uniform is flat over log|w|


def test_plot_posterior():
    fig = _labelled(plots.plot_posterior(1.0, 1.0))
    assert "0.500" in fig.axes[0].get_title()
    line = fig.axes[0].lines[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert x[np.argmax(y)] == pytest.approx(1.0, abs=0.01)
    _labelled(plots.plot_posterior(0.0, 1.0))  # sd = 0: no density, no crash


def _half_width(ax):
    """Width of the density curve at half its height (the first line is q(w))."""
    x, y = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    above = x[y >= y.max() / 2]
    return above.max() - above.min()


def test_plot_posterior_fixed_frame_halving_theta_narrows_the_curve():
    """Two settings share the frame, so halving theta visibly halves the width and doubles the
    height (an autoscaled pair would look the same)."""
    one, half = plots.plot_posterior(1.0, 1.0).axes[0], plots.plot_posterior(0.5, 1.0).axes[0]
    assert one.get_xlim() == half.get_xlim() == (-4.0, 4.0)
    assert one.get_ylim() == half.get_ylim() == (0.0, 1.5)
    assert list(one.get_yticks()) == list(half.get_yticks())
    assert _half_width(half) == pytest.approx(_half_width(one) / 2, rel=0.01)
    assert half.lines[0].get_ydata().max() == pytest.approx(2 * one.lines[0].get_ydata().max(), rel=1e-3)
    wide = plots.plot_posterior(1.0, 20.0).axes[0]
    assert wide.get_xlim() == (-4.0, 4.0) and wide.get_ylim() == (0.0, 1.5)


def test_plot_posterior_samples_and_peak_above_the_frame():
    rng = np.random.default_rng(0)
    samples = 1.0 * (1 + rng.standard_normal(10_000))  # theta = 1, alpha = 1
    flipped = np.mean(samples < 0)
    fig = _labelled(plots.plot_posterior(1.0, 1.0, samples=samples))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"samples of the other sign: {flipped:.1%}" in labels
    # the stacked histogram is a density of all the samples: its area inside the frame is the share
    # of samples inside it
    area = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert area == pytest.approx(np.mean(np.abs(samples) <= 4.0), abs=1e-6)
    assert "outside the frame" in ax.get_title()
    narrow = plots.plot_posterior(0.5, 0.01).axes[0]  # sd 0.05: peak 7.98 above the frame of 1.5
    assert any("peak 7.98, above the frame" in t.get_text() for t in narrow.texts)
    neg = plots.plot_posterior(-1.0, 1.0, samples=-samples).axes[0]
    assert f"samples of the other sign: {flipped:.1%}" in [t.get_text() for t in neg.get_legend().get_texts()]


def test_plot_kl():
    grid = np.linspace(-5, 5, 11)
    ref = theory.neg_kl_exact(grid)
    fig = _labelled(plots.plot_kl(grid, ref, {"sigmoid": theory.neg_kl_sigmoid(grid)}))
    err = fig.axes[1].lines[0].get_ydata()
    assert np.allclose(err, theory.neg_kl_sigmoid(grid) - ref)


def test_plot_lrt_moments_and_gradient_variance():
    df = pd.DataFrame({f"{w} ({k})": np.arange(3.0) for w in ("mean", "var")
                       for k in ("analytic", "weight sampling", "LRT")})
    _labelled(plots.plot_lrt_moments(df))
    gv = pd.DataFrame({"grad variance, theta": [1.0, 2.0, 9.0],
                       "grad variance, log sigma2": [0.1, 0.2, 0.9]},
                      index=["local reparameterisation", "weight sample per example",
                             "weight sample shared by the batch"])
    fig = _labelled(plots.plot_gradient_variance(gv))
    # a dot plot of the ratios to the LRT (no bars on a log scale), linear-scale values on a log axis
    assert not fig.axes[0].patches
    dots = [tuple(line.get_xydata()[0]) for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert dots == [(1.0, 2.0), (2.0, 1.0), (9.0, 0.0)]
    assert fig.axes[0].get_xscale() == "log"
    assert [t.get_text() for t in fig.axes[1].texts] == ["1x", "2x", "9x"]


def test_plot_history_single_and_dict():
    h = pd.DataFrame({"epoch": [1, 2], "train_acc": [0.5, 0.9], "test_acc": [0.4, 0.8],
                      "sparsity_%": [10.0, 90.0]})
    fig = _labelled(plots.plot_history(h))
    assert np.allclose(fig.axes[0].lines[1].get_ydata(), [40.0, 80.0])  # accuracy in %
    fig = _labelled(plots.plot_history({"dense": h.drop(columns="sparsity_%"), "svd": h}))
    assert len(fig.axes[1].lines) == 1
    _labelled(plots.plot_history(h, sparsity=False))
    fig = plots.plot_history(h, legend_loc="lower right", legend_ncol=2)  # placed where asked
    assert fig.axes[0].get_legend()._loc == 4 and fig.axes[0].get_legend()._ncols == 2


def test_plot_history_dashes_held_out_curves():
    """Training solid, held-out data dashed, whether it is the test or the validation split (the
    class run reports validation accuracy): otherwise two curves of one colour cannot be told apart."""
    h = pd.DataFrame({"epoch": [1, 2], "train_acc": [0.5, 0.9], "val_acc": [0.4, 0.8],
                      "test_acc": [0.4, 0.7]})
    fig = plots.plot_history(h, metrics=("train_acc", "val_acc", "test_acc"), sparsity=False)
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].lines}
    assert styles == {"train acc": "-", "val acc": "--", "test acc": "--"}


def test_plot_history_zoom_near_chance():
    """notebook 05: 10.8 % against a 10 % chance level, on a panel that spans 7-13 %, not 0-100 %."""
    epochs = np.arange(1, 21)
    dense = pd.DataFrame({"epoch": epochs, "train_acc": np.linspace(0.1, 0.97, 20),
                          "test_acc": np.full(20, 0.095), "sparsity_%": np.zeros(20)})
    svd = pd.DataFrame({"epoch": epochs, "train_acc": np.full(20, 0.108), "test_acc": np.full(20, 0.1),
                        "sparsity_%": np.full(20, 100.0)})
    fig = _labelled(plots.plot_history({"dense": dense, "Sparse VD": svd}, zoom=(7, 13),
                                       hlines={"chance, 10 %": 10.0}))
    full, near, sparsity = fig.axes
    assert near.get_ylim() == (7.0, 13.0) and full.get_ylim()[1] > 90
    assert np.diff(near.get_yticks())[0] == pytest.approx(1.0)  # ticks every 1 %
    # the same curves on both accuracy panels, the chance line on both, sparsity on the last
    assert len(near.lines) == len(full.lines) == 5
    assert [line.get_ydata()[0] for line in near.lines if line.get_label() == "chance, 10 %"] == [10.0]
    assert "chance, 10 %" in [t.get_text() for t in full.get_legend().get_texts()]
    assert [t.get_text() for t in near.texts] == ["10.8 %"]  # the dense run's 97 % is off the panel
    assert sparsity.get_ylabel() == "weights dropped (%)" and len(sparsity.lines) == 2
    assert len(plots.plot_history(svd).axes) == 2  # no zoom: two panels as before


def test_weight_image_masks_dropped():
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    la = np.array([[0.0, 5.0], [3.0, 2.9]])
    img = plots.weight_image(w, la, threshold=3.0)
    assert img.mask.tolist() == [[False, True], [True, False]]
    assert not plots.weight_image(w).mask.any()


def test_plot_weight_grid_and_filters():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 1, 5, 5))
    la = np.where(rng.random((4, 1, 5, 5)) < 0.5, 5.0, -5.0)
    fig = plots.plot_filters(w, la, ncols=2, suptitle="x")
    imgs = [ax for ax in fig.axes if ax.images]
    assert len(imgs) == 4
    norm = imgs[0].images[0].norm
    assert norm.vcenter == 0 and norm.vmin == -norm.vmax  # diverging, centred at 0
    assert imgs[0].get_title() == f"{int((la[0, 0] < 3).sum())}/25"
    cmap = imgs[0].images[0].get_cmap()
    # dropped weights are grey, a colour the diverging map gives no kept weight
    grey = matplotlib.colors.to_rgba(plots.DROPPED_COLOUR)
    assert np.allclose(cmap.get_bad(), grey)
    rgba = cmap(np.linspace(0, 1, 256))
    assert np.min(np.abs(rgba[:, :3] - np.array(grey[:3])).max(1)) > 0.1
    plots.plot_weight_grid([w[0, 0]] * 3, ncols=2, vmax=2.0)  # an empty cell is switched off


def test_plot_log_alpha_hist():
    fig = _labelled(plots.plot_log_alpha_hist({"fc1": np.array([-5.0, 4.0, 4.0, 10.0])}))
    assert "75.0% dropped" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_plot_pixel_map():
    kept = np.zeros((28, 28))
    kept[10:18, 10:18] = 3
    fig = _labelled(plots.plot_pixel_map(kept, total=300, image=np.zeros((28, 28))))
    assert "64 of 784 pixels" in fig.axes[0].get_title()


def _points():
    return pd.DataFrame([{"kl_weight": rf, "threshold": t, "error_%": 2 + rf + t / 10,
                          "compression": (1 + rf) * (1 + t), "sparsity_%": 50.0}
                         for rf in (0.1, 1.0) for t in (0.0, 3.0)])


def test_plot_accuracy_compression_rings_selection():
    ref = pd.DataFrame([{"method": "dense", "error_%": 1.5, "compression": 1.0}])
    fig = _labelled(plots.plot_accuracy_compression(_points(), 1.0, 3.0, ref))
    ring = fig.axes[0].lines[-1]
    assert ring.get_xdata()[0] == pytest.approx(8.0) and ring.get_ydata()[0] == pytest.approx(3.3)
    assert fig.axes[0].get_xscale() == "log"


def test_plot_regression_sweep():
    t = pd.DataFrame([{"model": "dense", "kl_weight": None, "train_mse": 0.1, "test_mse": 0.6,
                       "sparsity_%": 0.0},
                      {"model": "sparse-vd", "kl_weight": 0.0, "train_mse": 0.2, "test_mse": 0.5,
                       "sparsity_%": 1.0},
                      {"model": "sparse-vd", "kl_weight": 1.0, "train_mse": 0.5, "test_mse": 0.55,
                       "sparsity_%": 95.0}])
    fig = _labelled(plots.plot_regression_sweep(t, kl_weight=1.0))
    assert np.allclose(fig.axes[1].lines[0].get_ydata(), [1.0, 95.0])
    assert fig.axes[0].lines[-1].get_xdata()[0] == 1.0  # the selection marker
    assert fig.axes[0].get_xlabel() == fig.axes[1].get_xlabel()  # "0 drawn at 1e-6" on both panels
    for a in fig.axes:  # the grey line is explained in each panel's legend
        assert "selected KL weight" in " ".join(t.get_text() for t in a.get_legend().get_texts())
    assert plots.plot_regression_sweep(t).axes[1].get_legend() is None  # nothing selected, no line


def test_animate_snapshots(tmp_path):
    frames = [[plots.weight_image(np.full((5, 5), float(k)))] * 2 for k in range(1, 4)]
    path = plots.animate_snapshots(frames, tmp_path / "w.gif", titles=["a", "b", "c"], ncols=2)
    data = open(path, "rb").read()
    assert data[:6] in (b"GIF89a", b"GIF87a")
    assert not list(tmp_path.glob("*.gif.*"))
    with pytest.raises(ValueError):
        plots.animate_snapshots([], tmp_path / "x.gif")


def test_detached_figures_stay_outside_pyplot_and_draw_the_same():
    """Inside ``detached_figures()`` no figure is registered with pyplot (so another thread's
    ``plt.close("all")`` or the inline backend's ``flush_figures`` cannot draw or close it), and the
    figure draws exactly as the pyplot one does."""
    from IPython.core.pylabtools import print_figure

    before = plt.get_fignums()
    with plots.detached_figures():
        figs = [plots.plot_posterior(1.0, 10.0),
                plots.plot_filters(np.ones((3, 1, 5, 5)), np.zeros((3, 1, 5, 5)), suptitle="t")]
        assert plt.get_fignums() == before
    assert all(isinstance(f, Figure) and f.canvas.manager is None for f in figs)
    plt.close("all")  # what matplotlib_inline's flush_figures ends with: the detached figures survive
    assert len(figs[0].axes) == 1 and figs[0].axes[0].lines
    pyplot_fig = plots.plot_posterior(1.0, 10.0)  # outside the block: pyplot again
    assert plt.get_fignums() == before + [pyplot_fig.number]
    png = lambda f: print_figure(f, "png", bbox_inches="tight")  # noqa: E731
    assert png(figs[0]) == png(pyplot_fig)


# --------------------------------------------------------------------------------------------------
# layer names, the whole-layer heat map, the frontier, re-masking
# --------------------------------------------------------------------------------------------------

def test_layer_names_follow_the_paper():
    from sparsevd_lab import models

    assert list(plots.layer_names(models.lenet_300_100())) == ["fc1", "fc2", "fc3"]
    names = plots.layer_names(models.lenet5(svdo=False))
    assert list(names) == ["conv1", "conv2", "fc1", "fc2"]
    assert names["conv2"].out_channels == 50


def test_plot_layer_matrix_gathers_kept_rows_and_columns():
    w = np.arange(1.0, 13.0).reshape(3, 4)
    la = np.full((3, 4), 10.0)
    la[0, 1] = la[2, 3] = la[2, 1] = -1.0  # rows 0 and 2, columns 1 and 3 keep a weight
    fig = _labelled(plots.plot_layer_matrix(w, la, 3.0, "fc2"))
    whole, block = fig.axes[0].images[0].get_array(), fig.axes[1].images[0].get_array()
    assert whole.shape == (3, 4) and whole.count() == 3
    assert block.shape == (2, 2) and block.count() == 3
    assert np.ma.getmaskarray(block).tolist() == [[False, True], [False, False]]
    assert "3 kept" in fig.axes[0].get_title() and "3 of 4 kept" in fig.axes[1].get_title()
    assert np.allclose(fig.axes[0].images[0].get_cmap().get_bad(),
                       matplotlib.colors.to_rgba(plots.DROPPED_COLOUR))
    # dead columns (0, 2) and the dead row (1) are overlaid in DEAD_COLOUR; the rest is transparent
    overlay = np.asarray(fig.axes[0].images[1].get_array())
    dead = overlay[..., 3] > 0
    assert dead.tolist() == [[True, False, True, False], [True] * 4, [True, False, True, False]]
    assert np.allclose(overlay[0, 0], matplotlib.colors.to_rgba(plots.DEAD_COLOUR))
    assert "2 dead columns, 1 dead rows" in fig.axes[0].get_title()


def test_pareto_front_and_frontier_line():
    pts = pd.DataFrame({"kl_weight": [1, 1, 1, 2], "threshold": [0, 1, 2, 0],
                        "error_%": [5.0, 4.0, 4.5, 6.0], "compression": [10.0, 5.0, 4.0, 20.0]})
    front = plots.pareto_front(pts)
    assert front["compression"].tolist() == [5.0, 10.0, 20.0]  # (4, 4.5) is beaten by (5, 4.0)
    fig = plots.plot_accuracy_compression(pts, 1, 1)
    assert any("frontier" in l.get_label() for l in fig.axes[0].lines)
    assert fig.axes[0].lines[-1].get_xdata()[0] == 5.0  # the ring stays last


def test_plot_threshold_choice():
    curve = pd.DataFrame({"threshold": [0.0, 3.0], "error_%": [12.0, 11.0], "compression": [100.0, 50.0]})
    fig = _labelled(plots.plot_threshold_choice({"fc1": np.array([-1.0, 5.0, 9.0])}, 3.0, curve,
                                                {"error_%": 11.0, "compression": 50.0}))
    ring = fig.axes[1].lines[-1]
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == (50.0, 11.0)
    assert "66.7% dropped" in fig.axes[0].get_legend().get_texts()[0].get_text()


# --------------------------------------------------------------------------------------------------
# no figure the notebooks draw has an empty data panel
# --------------------------------------------------------------------------------------------------

def test_empty_panels_finds_masked_images_and_lines_without_points():
    fig, (a, b, c, d) = plt.subplots(1, 4)
    a.imshow(np.ma.masked_all((3, 3)))
    b.plot([np.nan], [np.nan])
    b.axvline(1.0)  # a guide line is not data
    c.plot([1, 2], [3, 4])
    d.imshow(np.ma.masked_array(np.ones((2, 2)), [[True, False], [True, True]]))
    found = plots.empty_panels(fig)
    assert len(found) == 2 and "panel 0" in found[0] and "panel 1" in found[1]


def test_wholly_dropped_panels_drawn_grey_are_data_unless_most_panels_are_so():
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad(plots.DROPPED_COLOUR)
    masked, kept = np.ma.masked_all((5, 5)), np.ma.masked_array(np.ones((5, 5)), False)
    fig, axes = plt.subplots(1, 4)
    for ax, arr in zip(axes, (masked, kept, kept, kept)):
        ax.imshow(arr, cmap=cmap)
    assert plots.empty_panels(fig) == []  # one filter dropped whole, drawn grey: information
    fig, axes = plt.subplots(1, 4)
    for ax, arr in zip(axes, (masked, masked, kept, masked)):
        ax.imshow(arr, cmap=cmap)
    assert len(plots.empty_panels(fig)) == 3  # mostly grey: the figure shows the wrong panels
    plt.close("all")


def _shipped(name, dataset):
    from sparsevd_lab import experiments

    return experiments.load_result(name, dataset=dataset)


def _fig_01():
    from sparsevd_lab import widgets

    yield "plot_priors", plots.plot_priors()
    for theta, alpha in ((1.0, 0.1), (1.0, 1.0), (1.0, 20.0), (0.5, 20.0), (1.0, 0.5)):
        yield "plot_posterior", widgets.prior_render(theta, alpha)[1]


def _fig_02():
    grid = np.linspace(-8, 8, 161)
    exact = theory.neg_kl_exact(grid)
    yield "plot_kl", plots.plot_kl(grid, exact, {"eq. 14": theory.neg_kl_sigmoid(grid)})


def _fig_03():
    import torch

    torch.manual_seed(0)
    x = torch.rand(100, 784)
    y = torch.randint(0, 10, (100,))
    theta = torch.randn(10, 784) * 0.05
    log_sigma2 = torch.log(theta ** 2) + np.log(0.5)
    yield "plot_lrt_moments", plots.plot_lrt_moments(theory.lrt_moments(x, theta, log_sigma2,
                                                                        n_samples=200, seed=0))
    yield "plot_gradient_variance", plots.plot_gradient_variance(
        theory.gradient_variance(x, y, theta, log_sigma2, n_repeats=5, seed=0))
    grid = np.arange(-4.0, 8.5, 2.0)
    yield "plot_additive_reparam", plots.plot_additive_reparam(
        theory.theta_grad_variance(grid, theta=1.0, n_samples=2000, seed=0),
        theory.theta_grad_variance_layer(x, y, theta, grid, n_repeats=3, seed=0))
    res = _shipped("lenet300", "fashion-mnist")
    rows = pd.DataFrame(res["results"]["rows"])
    yield "plot_pruning_curve", plots.plot_pruning_curve(pd.DataFrame(res["results"]["pruning_curve"]),
                                                         rows[rows["method"] != "pruning-iterative"])
    hist = {k: pd.DataFrame(v) for k, v in res["results"]["history"].items() if k in ("dense", "sparse-vd")}
    yield "plot_history", plots.plot_history(hist, title="shipped run", legend_loc="lower right",
                                             legend_ncol=2)


def _fig_04():
    from sparsevd_lab import experiments, widgets

    lenet5 = experiments.load_snapshots(_shipped("lenet5", "offline-digits"))
    for e in lenet5["epoch"]:
        yield "plot_filters", widgets.snapshot_render(lenet5, int(e), "conv1", 3.0)[1]
    model = experiments.load_model("lenet300", "fashion-mnist")
    layers = plots.layer_names(model)
    la = {n: m.log_alpha.detach().numpy() for n, m in layers.items()}
    yield "plot_log_alpha_hist", plots.plot_log_alpha_hist(la, 3.0)
    yield "plot_pixel_map", plots.plot_pixel_map((la["fc1"] < 3).sum(0).reshape(28, 28), 300,
                                                 np.zeros((28, 28)))
    kept = (la["fc1"] < 3).sum(1)
    theta = layers["fc1"].weight.detach().numpy()
    units = np.argsort(-kept, kind="stable")[:16]  # the notebook's ranking: survivors first
    yield "plot_weight_grid", plots.plot_weight_grid(
        [plots.weight_image(theta[u].reshape(28, 28), la["fc1"][u].reshape(28, 28)) for u in units], ncols=8)
    yield "plot_layer_matrix", plots.plot_layer_matrix(layers["fc2"].weight.detach().numpy(), la["fc2"])
    from sparsevd_lab import checks

    steps = np.linspace(0, 1, 8)[:, None]
    yield "plot_kl_flow", plots.plot_kl_flow(checks.kl_gradient_reference, -3.5 - 8 * steps * np.ones((1, 4)),
                                             -10 + 0.5 * steps * np.ones((1, 4)))


def _fig_05():
    res = _shipped("random-labels", "offline-digits")
    hist = {name: pd.DataFrame(h) for name, h in res["results"]["history"].items()}
    yield "plot_history", plots.plot_history(hist, title="random labels")


def _fig_06():
    import torch

    from sparsevd_lab import experiments, widgets
    from sparsevd_lab.data import TensorLoader

    reg = experiments.result_frame(_shipped("regression-sweep", "diabetes"))
    for kw in (0.0, 1e-3, 1.0):
        yield "plot_regression_sweep", widgets.regression_render(reg, kw)[1]
    lenet = _shipped("lenet300", "fashion-mnist")
    points = experiments.result_frame(_shipped("classification-sweep", "fashion-mnist"))
    for kw in sorted(points["kl_weight"].unique()):
        yield "plot_accuracy_compression", widgets.sweep_render(points, kw, 3.0,
                                                                widgets.reference_rows(lenet))[1]
    # the threshold slider's render, on a stand-in test set (the figure's panels are what is tested)
    model = experiments.load_model("lenet300", "fashion-mnist")
    g = torch.Generator().manual_seed(0)
    test = TensorLoader(torch.rand(200, 1, 28, 28, generator=g), torch.randint(0, 10, (200,), generator=g), 200)
    for t in (3.0, 0.0, -2.0):
        yield "plot_threshold_choice", widgets.threshold_render(model, test, t)[1]


NOTEBOOK_FIGURES = {"01": _fig_01, "02": _fig_02, "03": _fig_03, "04": _fig_04, "05": _fig_05, "06": _fig_06}


@pytest.mark.parametrize("notebook", sorted(NOTEBOOK_FIGURES))
def test_no_figure_the_notebooks_draw_has_an_empty_panel(notebook):
    """Every figure notebook ``notebook`` draws through sparsevd_lab.plots, built from the same shipped
    results the notebook reads: every image panel shows data (not all masked), every line panel has
    points."""
    drawn = 0
    for name, fig in NOTEBOOK_FIGURES[notebook]():
        empty = plots.empty_panels(fig)
        if name == "plot_filters":  # a filter dropped whole ('0/25' kept) is drawn all grey on purpose
            empty = [e for e in empty if not re.search(r"\('0/\d+'\): image with every pixel masked", e)]
        assert not empty, f"notebook {notebook}, {name}: {empty}"
        plt.close(fig)
        drawn += 1
    assert drawn


def test_every_plot_function_the_notebooks_call_is_covered():
    """The cases above cover each plot function a notebook calls (directly or through a widget):
    a notebook that starts drawing with a new one needs a case in NOTEBOOK_FIGURES."""
    import re
    from pathlib import Path

    import inspect

    from sparsevd_lab import widgets

    root = Path(__file__).resolve().parents[1]
    called = set()
    for src in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        text = src.read_text()
        called |= set(re.findall(r"plots\.((?:plot_|animate_)\w+)", text))
        for fn in set(re.findall(r"widgets\.(\w+_(?:render|widget))", text)):
            called |= set(re.findall(r"plots\.(plot_\w+)", inspect.getsource(getattr(widgets, fn))))
    covered = set(re.findall(r'"((?:plot_|animate_)\w+)"', inspect.getsource(inspect.getmodule(
        test_every_plot_function_the_notebooks_call_is_covered))))
    covered.add("animate_snapshots")  # its frames are plot_weight_grid figures (covered with 04's data)
    missing = sorted(called - covered)
    assert not missing, f"add a case for {missing} to NOTEBOOK_FIGURES in tests/test_plots.py"


def test_plot_kl_flow_draws_arrows_line_wall_and_trajectories():
    from sparsevd_lab import checks

    # two weights: one runs left past the line and the wall (dropped), one moves right (kept)
    u = np.array([[-4.0, -4.0], [-8.0, -3.0], [-12.0, -2.5]])
    s2 = np.array([[-10.0, -10.0], [-9.8, -10.0], [-9.6, -9.9]])
    fig = _labelled(plots.plot_kl_flow(checks.kl_gradient_reference, u, s2, threshold=3.0))
    ax = fig.axes[0]
    quiver = [c for c in ax.collections if isinstance(c, matplotlib.quiver.Quiver)][0]
    # arrows point along -gradient: left (log|theta| down) and up (log sigma^2 up) away from the wall
    assert np.all(quiver.U <= 0) and np.all(quiver.V >= 0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "trajectory, ends dropped (1)" in labels and "trajectory, ends kept (1)" in labels
    wall = [line for line in ax.lines if line.get_linestyle() == "--"][0]
    assert np.allclose(wall.get_xdata(), 0.5 * np.log(1e-8))
    with pytest.raises(ValueError, match="shape"):
        plots.plot_kl_flow(checks.kl_gradient_reference, u, s2[:2])
