"""Tests of sparsevd_lab.widgets without a browser: the pure renders, and the widgets driven by
setting ``slider.value`` as a user would (the Explorer re-renders synchronously)."""
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sparsevd_lab import widgets  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*non-interactive.*:UserWarning")


@pytest.fixture(autouse=True)
def _close():
    warnings.filterwarnings("ignore", message=".*non-interactive.*")
    yield
    plt.close("all")


# ---------------------------------------------------------------------------------------------- prior

def test_prior_render_values():
    table, fig = widgets.prior_render(theta=2.0, alpha=1.0)
    v = table["value"]
    assert v["std sqrt(alpha)|theta|"] == pytest.approx(2.0)
    assert v["dropout rate alpha/(1+alpha)"] == pytest.approx(0.5)
    assert v["P(sign of w != sign of theta)"] == pytest.approx(0.158655, abs=1e-5)
    assert v["KL to prior (eq. 14, nats)"] == pytest.approx(0.4312, abs=1e-3)
    assert v["dropped at threshold 3"] is False or v["dropped at threshold 3"] == False  # noqa: E712
    assert "0.500" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        widgets.prior_render(1.0, -1.0)


def test_prior_render_samples_the_posterior():
    """The render draws 20,000 weights from q (seeded: a setting always renders the same), counts
    the sign flips within a few standard errors of Phi(-1/sqrt(alpha)), and draws them on the same
    frame for every setting."""
    table, fig = widgets.prior_render(theta=-0.5, alpha=4.0)
    measured = table.loc["sign flips among 20,000 samples", "value"]
    exact = table.loc["P(sign of w != sign of theta)", "value"]
    assert exact == pytest.approx(0.308538, abs=1e-5)
    assert abs(measured - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) and measured != exact
    again, fig2 = widgets.prior_render(theta=-0.5, alpha=4.0)
    assert again.equals(table)
    ax, ax2 = fig.axes[0], widgets.prior_render(theta=1.0, alpha=0.1)[1].axes[0]
    assert ax.get_xlim() == ax2.get_xlim() and ax.get_ylim() == ax2.get_ylim()
    assert f"samples of the other sign: {measured:.1%}" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_prior_widget_follows_sliders():
    w = widgets.prior_widget(theta=1.0, alpha=0.5)
    assert w.renders == 1 and set(w.sliders) == {"theta", "alpha"}
    for s in w.sliders.values():
        assert s.continuous_update is False and s.description
    w.sliders["alpha"].value = 100.0
    assert w.renders == 2
    assert w.table.loc["dropout rate alpha/(1+alpha)", "value"] == pytest.approx(100 / 101)
    assert w.table.loc["dropped at threshold 3", "value"]
    w.sliders["theta"].value = -1.5
    assert w.table.loc["std sqrt(alpha)|theta|", "value"] == pytest.approx(15.0)
    assert w.values == {"theta": -1.5, "alpha": 100.0}
    assert "sparsevd-prior" in w._dom_classes


# ------------------------------------------------------------------------------------------ snapshots

def _snapshots():
    rng = np.random.default_rng(0)
    epochs = np.array([0, 5, 10], dtype=np.int32)
    la = np.stack([np.full((4, 1, 5, 5), -5.0), np.where(rng.random((4, 1, 5, 5)) < 0.5, 5.0, -5.0),
                   np.full((4, 1, 5, 5), 5.0)])
    la[2, 0, 0, 0, 0] = -5.0  # one weight survives at epoch 10
    return {"epoch": epochs, "conv1_weight": rng.normal(size=(3, 4, 1, 5, 5)),
            "conv1_log_alpha": la, "fc1_weight": rng.normal(size=(3, 6, 8)),
            "fc1_log_alpha": np.zeros((3, 6, 8))}


def test_snapshot_render_counts_kept_weights():
    snaps = _snapshots()
    table, fig = widgets.snapshot_render(snaps, 10, "conv1")
    assert table.loc["conv1", "kept"] == 1 and table.loc["conv1", "weights"] == 100
    assert table.loc["fc1", "kept"] == 48
    assert "epoch 10: 1 of 100" in fig._suptitle.get_text()
    table, fig = widgets.snapshot_render(snaps, 0, "fc1")
    assert table.loc["conv1", "kept"] == 100
    assert fig.axes[0].get_xlabel() == "input unit (index)"
    with pytest.raises(ValueError, match="stored epochs"):
        widgets.snapshot_render(snaps, 7)


# ------------------------------------------------------------------------------------- sweep (06)

def _points():
    return pd.DataFrame([{"kl_weight": rf, "threshold": t, "error_%": round(2 + rf + t / 10, 3),
                          "compression": (1 + rf) * (1 + t), "sparsity_%": 10.0 * t,
                          "sparsity_per_layer": f"{rf}-{t}"}
                         for rf in (0.01, 0.1, 1.0, 10.0) for t in (0.0, 1.5, 3.0)])


def test_log_options_and_nearest():
    assert widgets.log_options([1.0, 0.01, 0.1]) == [("0.01", 0.01), ("0.1", 0.1), ("1", 1.0)]
    assert widgets.nearest([0.01, 0.1, 1.0], 0.05, log=True) == 0.1
    assert widgets.nearest([0.0, 1e-4, 1e-3], 0.0, log=True) == 0.0
    assert widgets.nearest([0.0, 1.5, 3.0], 2.0) == 1.5


def test_sweep_render_picks_the_point():
    ref = pd.DataFrame([{"method": "dense", "error_%": 1.6, "compression": 1.0, "sparsity_%": 0.0}])
    table, fig = widgets.sweep_render(_points(), 1.0, 3.0, ref)
    sel = table.loc["Sparse VD (selected)"]
    assert sel["kl_weight"] == 1.0 and sel["threshold"] == 3.0
    assert sel["error_%"] == pytest.approx(3.3) and sel["compression"] == pytest.approx(8.0)
    assert table.loc["dense", "error_%"] == 1.6
    ring = fig.axes[0].lines[-1]
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == pytest.approx((8.0, 3.3))
    table, _ = widgets.sweep_render(_points(), 0.03, 1.4)  # nearest on a log scale / linearly
    assert table.iloc[0]["kl_weight"] == 0.01 and table.iloc[0]["threshold"] == 1.5


def test_sweep_widget_sliders_drive_table_and_plot():
    w = widgets.sweep_widget(_points(), kl_weight=1.0, threshold=3.0)
    rf, th = w.sliders["kl_weight"], w.sliders["threshold"]
    assert rf._options_labels == ("0.01", "0.1", "1", "10") and rf.continuous_update is False
    assert "KL weight" in rf.description and "threshold" in th.description
    assert w.table.iloc[0]["error_%"] == pytest.approx(3.3)
    rf.value = 10.0
    assert w.table.iloc[0]["kl_weight"] == 10.0 and w.table.iloc[0]["error_%"] == pytest.approx(12.3)
    th.value = 0.0
    assert w.table.iloc[0]["compression"] == pytest.approx(11.0)
    ring = w.figure.axes[0].lines[-1]
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == pytest.approx((11.0, 12.0))
    assert w.renders == 3


# -------------------------------------------------------------------------------- regression (06)

def _regression():
    rows = [{"model": "dense", "kl_weight": None, "train_mse": 0.1, "test_mse": 0.7,
             "sparsity_%": 0.0, "sparsity_per_layer": ""}]
    for rf, comp in ((0.0, 0.5), (1e-4, 50.0), (1e-3, 60.0), (0.1, 97.0), (1.0, 99.0)):
        rows.append({"model": "sparse-vd", "kl_weight": rf, "train_mse": 0.1 + rf,
                     "test_mse": 0.6 - rf / 10, "sparsity_%": comp, "sparsity_per_layer": "x"})
    return pd.DataFrame(rows)


def test_regression_render():
    table, fig = widgets.regression_render(_regression(), 1e-3)
    assert list(table.index) == ["dense", "sparse-vd"]
    assert table.loc["sparse-vd", "sparsity_%"] == 60.0
    assert table.loc["sparse-vd", "kl_weight"] == 1e-3
    table, _ = widgets.regression_render(_regression(), 0.0)
    assert table.loc["sparse-vd", "sparsity_%"] == 0.5
    assert math.isnan(table.loc["dense", "kl_weight"])


def test_regression_widget_slider():
    w = widgets.regression_widget(_regression())
    s = w.sliders["kl_weight"]
    assert s._options_labels[0] == "0" and s.value == 1e-3
    s.value = 1.0
    assert w.table.loc["sparse-vd", "sparsity_%"] == 99.0
    assert w.figure.axes[0].lines[-1].get_xdata()[0] == 1.0


# ------------------------------------------------------------------------------- retrain, fallback

def test_retrain_button_runs_only_when_clicked():
    calls = []

    def train():
        calls.append(1)
        return pd.DataFrame({"acc": [0.9]})

    box = widgets.retrain_button(train, "Train now")
    assert calls == [] and box.button.description == "Train now"
    box.button.click()
    assert calls == [1] and box.result["acc"][0] == 0.9 and not box.button.disabled


def test_static_fallback_and_show_table(capsys):
    tables = widgets.static_fallback(widgets.prior_render, [{"theta": 1.0, "alpha": 1.0},
                                                            {"theta": 1.0, "alpha": 20.0}])
    assert len(tables) == 2
    assert tables[1].loc["dropout rate alpha/(1+alpha)", "value"] == pytest.approx(20 / 21)
    widgets.show_table(pd.DataFrame({"a": [1.0]}), "caption")
    assert "HTML" in capsys.readouterr().out  # outside IPython the HTML object is printed


def test_table1_puts_ours_beside_the_paper():
    result = {"results": {"rows": [
        {"method": "dense", "error_%": 2.0, "sparsity_per_layer": "0.0-0.0-0.0", "compression": 1.0,
         "paper_mnist": {"error_%": 1.64, "sparsity_per_layer": "", "compression": 1}},
        {"method": "sparse-vd", "error_%": 2.5, "sparsity_per_layer": "99-97-60", "compression": "inf",
         "paper_mnist": {"error_%": 1.92, "sparsity_per_layer": "98.9-97.2-62.0", "compression": 68}}]}}
    t = widgets.table1(result)
    assert list(t.index) == ["dense", "Sparse VD"]
    assert t.loc["Sparse VD", "error % (paper)"] == 1.92
    assert t.loc["Sparse VD", "compression x (paper)"] == 68
    assert math.isinf(t.loc["Sparse VD", "compression x (ours)"])
    assert t.loc["dense", "sparsity per layer % (ours)"] == "0.0-0.0-0.0"


def test_static_fallback_saves_figures_in_default_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEVD_FIGURES", str(tmp_path))
    monkeypatch.setenv("SPARSEVD_FAST", "0")
    widgets.static_fallback(widgets.prior_render, [{"theta": 1.0, "alpha": 1.0},
                                                   {"theta": 1.0, "alpha": 2.0}], save_as=["a.png", None])
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    monkeypatch.setenv("SPARSEVD_FAST", "1")
    widgets.static_fallback(widgets.prior_render, [{"theta": 1.0, "alpha": 1.0}], save_as=["b.png"])
    assert not (tmp_path / "b.png").exists()


def test_explorer_closes_its_figures():
    w = widgets.prior_widget()
    before = len(plt.get_fignums())
    for a in (0.01, 0.1, 1.0, 10.0):
        w.sliders["alpha"].value = a
    assert len(plt.get_fignums()) == before  # displayed, then closed: nothing piles up
    assert w.figure is not None and "0.909" in w.figure.axes[0].get_title()


def test_explorer_renders_outside_pyplot_one_at_a_time():
    """The Explorer's figures never enter pyplot's list of figures while they are built (in
    JupyterLab a widget message handled in a kernel subshell thread runs the inline backend's
    ``flush_figures`` concurrently, which draws and closes every pyplot figure: docs/e2e.md), and
    renders of one explorer do not overlap."""
    import threading
    import time

    import ipywidgets as W

    before = plt.get_fignums()
    seen, active, overlaps = [], [0], []

    def render(theta, alpha):
        active[0] += 1
        overlaps.append(active[0])
        table, fig = widgets.prior_render(theta, alpha)
        seen.append(plt.get_fignums())
        time.sleep(0.02)
        active[0] -= 1
        return table, fig

    w = widgets.Explorer(render, {"theta": W.FloatSlider(value=1.0, min=-2, max=2),
                                  "alpha": W.FloatSlider(value=0.5, min=0.01, max=100)}, "t")
    threads = [threading.Thread(target=setattr, args=(w.sliders["alpha"], "value", a))
               for a in (2.0, 5.0, 10.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert w.renders == 4 and seen == [before] * 4 and max(overlaps) == 1
    assert w.figure.canvas.manager is None and "sparsevd-t-output" in w.output._dom_classes


# ------------------------------------------------------------------------------ threshold (06)

def _remask_model():
    """A 6-4-3 Sparse VD MLP with known log alpha: fc1 keeps 8 of 24 weights at threshold 3, more at
    higher thresholds; fc2 keeps 6 of 12. Test data: 60 random inputs labelled by the model itself at
    threshold 3 (so its error there is 0 %)."""
    import torch

    from sparsevd_lab import models  # noqa: F401  (the layers come with the package)
    from sparsevd_lab.data import TensorLoader
    from sparsevd_lab.layers import LinearSVDO

    torch.manual_seed(0)
    fc1, fc2 = LinearSVDO(6, 4), LinearSVDO(4, 3)
    model = torch.nn.Sequential(fc1, torch.nn.ReLU(), fc2).eval()
    with torch.no_grad():
        for layer, n_keep in ((fc1, 8), (fc2, 6)):
            layer.weight.copy_(torch.randn_like(layer.weight))
            la = torch.full_like(layer.weight, 5.0).flatten()
            la[:n_keep] = -2.0
            la[n_keep:n_keep + 4] = 1.0  # dropped at threshold 0, kept at 3
            layer.log_sigma2.copy_(la.view_as(layer.weight) + torch.log(layer.weight ** 2 + 1e-8))
    x = torch.randn(60, 6)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, TensorLoader(x, y, 30)


def test_threshold_render_remasks_live_and_restores_the_model():
    model, test = _remask_model()
    before = [m.threshold for m in model if hasattr(m, "threshold")]
    table, fig = widgets.threshold_render(model, test, 3.0)
    row = table.loc[3.0]
    assert row["error_%"] == 0.0 and row["kept"] == 8 + 4 + 6 + 4
    assert row["compression"] == pytest.approx(36 / 22)
    table0, _ = widgets.threshold_render(model, test, 0.0)
    assert table0.loc[0.0, "kept"] == 14 and table0.loc[0.0, "compression"] == pytest.approx(36 / 14)
    assert [m.threshold for m in model if hasattr(m, "threshold")] == before
    ring = fig.axes[1].lines[-1]
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == pytest.approx((36 / 22, 0.0))
    assert "fc1" in fig.axes[0].get_legend().get_texts()[0].get_text()  # layer names, not indices
    with pytest.raises(ValueError, match="finite"):
        widgets.threshold_render(model, test, float("nan"))


def test_threshold_widget_slider_changes_error_and_compression():
    model, test = _remask_model()
    w = widgets.threshold_widget(model, test, threshold=3.0)
    s = w.sliders["threshold"]
    assert s.continuous_update is False and "threshold" in s.description
    assert w.table.loc[3.0, "error_%"] == 0.0
    assert list(w.curve["threshold"]) == list(widgets.CURVE_THRESHOLDS)
    s.value = -3.0  # drops every weight: the output is the biases alone
    assert w.table.index[0] == -3.0 and w.table.loc[-3.0, "kept"] == 0
    assert math.isinf(w.table.loc[-3.0, "compression"])
    s.value = 0.0
    assert w.table.loc[0.0, "compression"] == pytest.approx(36 / 14)
    assert w.table.loc[0.0, "error_%"] >= 0.0
    s.value = 8.0  # every weight kept
    assert w.table.loc[8.0, "compression"] == pytest.approx(1.0)
    assert w.renders == 4


def test_threshold_widget_on_the_shipped_model():
    """The shipped Fashion-MNIST LeNet-300-100 re-masked on a real test subset: a lower threshold
    drops more weights (higher compression) and costs accuracy."""
    from sparsevd_lab import experiments, notebook

    try:
        notebook.check_data("fashion-mnist")
    except RuntimeError as err:
        pytest.skip(str(err))
    from sparsevd_lab import data as D

    model = experiments.load_model("lenet300", "fashion-mnist")
    fashion = D.load_dataset("fashion-mnist", verbose=False).subset(100, 2000)
    test = fashion.loaders(batch_size=1000)[1]
    w = widgets.threshold_widget(model, test, threshold=3.0)
    at3 = w.table.iloc[0]
    assert at3["compression"] == pytest.approx(55.632, rel=1e-3)
    w.sliders["threshold"].value = -2.0
    low = w.table.iloc[0]
    assert low["compression"] > 3 * at3["compression"] and low["error_%"] > at3["error_%"]


def test_reference_rows_names_each_baseline():
    result = {"results": {"rows": [
        {"method": "dense", "error_%": 10.0, "compression": 1.0, "sparsity_%": 0.0, "sparsity_per_layer": "0-0-0"},
        {"method": "sparse-vd", "error_%": 11.0, "compression": 55.6, "sparsity_%": 98.2},
        {"method": "pruning-matched", "error_%": 16.8, "compression": 55.6, "sparsity_%": 98.2},
        {"method": "pruning-iterative", "error_%": 10.4, "compression": "inf", "sparsity_%": 50.0}]}}
    ref = widgets.reference_rows(result)
    assert list(ref["method"]) == ["dense", "magnitude pruning, one-shot to Sparse VD's sparsity",
                                   "magnitude pruning, iterative (Han et al.), own operating point"]
    assert math.isinf(ref["compression"].iloc[2])
    table, _ = widgets.sweep_render(_points(), 1.0, 3.0, ref)
    assert table.loc["dense", "error_%"] == 10.0


def test_retrain_button_uses_the_sliders_value_at_the_click():
    w = widgets.sweep_widget(_points(), kl_weight=1.0, threshold=3.0)
    seen = []
    box = widgets.retrain_button(lambda kl_weight: seen.append(kl_weight) or pd.DataFrame({"kl": [kl_weight]}),
                                 "Train", inputs={"kl_weight": w.sliders["kl_weight"]})
    w.sliders["kl_weight"].value = 10.0
    box.button.click()
    w.sliders["kl_weight"].value = 0.01
    box.button.click()
    assert seen == [10.0, 0.01] and box.result["kl"][0] == 0.01


def test_static_fallback_shows_each_figure_once(monkeypatch):
    """06: three settings whose figures differ only by a marker: all three tables, one figure."""
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(plt.gcf()))
    before = len(plt.get_fignums())
    tables = widgets.static_fallback(lambda kl_weight: widgets.regression_render(_regression(), kl_weight),
                                     [{"kl_weight": 0.0}, {"kl_weight": 1e-3}, {"kl_weight": 1.0}],
                                     name="regression", figures=[-1])
    assert len(tables) == 3 and len(shown) == 1
    assert len(plt.get_fignums()) <= before + 1  # the two unseen figures were closed
    widgets.static_fallback(lambda kl_weight: widgets.regression_render(_regression(), kl_weight),
                            [{"kl_weight": 0.0}, {"kl_weight": 1.0}])
    assert len(shown) == 3  # default: every figure
    with pytest.raises(ValueError, match="indices of the 2 settings"):
        widgets.static_fallback(lambda kl_weight: widgets.regression_render(_regression(), kl_weight),
                                [{"kl_weight": 0.0}, {"kl_weight": 1.0}], figures=[5])
    plt.close("all")
