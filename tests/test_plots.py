"""Tests of sparsevd_lab.plots: every figure function returns a Figure with labelled axes."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 2.0, 9.0]


def test_plot_history_single_and_dict():
    h = pd.DataFrame({"epoch": [1, 2], "train_acc": [0.5, 0.9], "test_acc": [0.4, 0.8],
                      "sparsity_%": [10.0, 90.0]})
    fig = _labelled(plots.plot_history(h))
    assert np.allclose(fig.axes[0].lines[1].get_ydata(), [40.0, 80.0])  # accuracy in %
    fig = _labelled(plots.plot_history({"dense": h.drop(columns="sparsity_%"), "svd": h}))
    assert len(fig.axes[1].lines) == 1
    _labelled(plots.plot_history(h, sparsity=False))


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
    assert np.allclose(cmap.get_bad(), (1, 1, 1, 1))  # dropped weights are white
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
