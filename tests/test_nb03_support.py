"""Tests of what notebook 03 adds to the package: the additive reparameterisation measured
(theory.theta_grad_variance, theory.theta_grad_variance_layer) and drawn (plots.plot_additive_reparam),
the pruning curve (plots.plot_pruning_curve), the readable long history plot, Table 1's named rows
(widgets.table1) and the layer names of the sparsity report."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import sparsevd_lab as svd  # noqa: E402
from sparsevd_lab import experiments, plots, theory, widgets  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_theta_grad_variance_matches_the_exact_values():
    df = theory.theta_grad_variance([-2.0, 0.0, 3.0, 6.0], theta=0.5, n_samples=200_000, seed=1)
    assert list(df["alpha"]) == pytest.approx([math.exp(v) for v in (-2.0, 0.0, 3.0, 6.0)])
    # Monte Carlo within a few per cent of alpha theta^2 and theta^2 (4 alpha + 2 alpha^2)
    assert np.allclose(df["var (theta, sigma)"], df["var (theta, sigma), exact"], rtol=0.02)
    assert np.allclose(df["var (theta, alpha)"], df["var (theta, alpha), exact"], rtol=0.05)
    assert np.allclose(df["var (theta, sigma), exact"], df["alpha"] * 0.25)
    assert np.allclose(df["ratio, exact 4 + 2 alpha"], 4 + 2 * df["alpha"])
    assert np.allclose(df["ratio"], df["ratio, exact 4 + 2 alpha"], rtol=0.05)
    assert df["ratio"].is_monotonic_increasing
    again = theory.theta_grad_variance([-2.0, 0.0, 3.0, 6.0], theta=0.5, n_samples=200_000, seed=1)
    pd.testing.assert_frame_equal(df, again)  # seeded


def test_theta_grad_variance_rejects_bad_input():
    with pytest.raises(ValueError, match="theta must be non-zero"):
        theory.theta_grad_variance([0.0], theta=0.0)
    with pytest.raises(ValueError, match="finite"):
        theory.theta_grad_variance([np.inf])
    with pytest.raises(ValueError, match="n_samples"):
        theory.theta_grad_variance([0.0], n_samples=1)


def test_theta_grad_variance_layer_grows_with_alpha_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 20, generator=g)
    y = torch.randint(0, 5, (32,), generator=g)
    w = 0.3 * torch.randn(5, 20, generator=g)
    df = theory.theta_grad_variance_layer(x, y, w, [-4.0, 2.0, 8.0], n_repeats=40, seed=0)
    assert (df["var (theta, alpha)"] > 0).all() and (df["var (theta, sigma)"] > 0).all()
    assert df["ratio"].iloc[0] == pytest.approx(1.0, abs=0.6)  # small alpha: about the same
    assert df["ratio"].iloc[-1] > 5 * df["ratio"].iloc[0]  # large alpha: far noisier
    again = theory.theta_grad_variance_layer(x, y, w, [-4.0, 2.0, 8.0], n_repeats=40, seed=0)
    pd.testing.assert_frame_equal(df, again)
    with pytest.raises(ValueError, match="inputs"):
        theory.theta_grad_variance_layer(x, y, w[:, :5], [0.0])
    with pytest.raises(ValueError, match="n_repeats"):
        theory.theta_grad_variance_layer(x, y, w, [0.0], n_repeats=1)


def _has_data(fig):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        assert any(len(line.get_xdata()) for line in ax.lines), ax.get_title()


def test_plot_additive_reparam_draws_both_panels():
    single = theory.theta_grad_variance([-2.0, 0.0, 4.0], n_samples=2000)
    layer = pd.DataFrame({"log_alpha": [-2.0, 4.0], "ratio": [1.2, 3.0]})
    fig = plots.plot_additive_reparam(single, layer)
    assert len(fig.axes) == 2
    _has_data(fig)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "softmax layer on digits (LRT)" in labels
    assert len(plots.plot_additive_reparam(single).axes[1].lines) == 4  # two ratio series, 2 lines


def test_plot_pruning_curve_marks_the_operating_point_and_the_rows():
    result = experiments.load_result("lenet300", dataset="fashion-mnist")
    curve = pd.DataFrame(result["results"]["pruning_curve"])
    rows = pd.DataFrame(result["results"]["rows"])
    fig = plots.plot_pruning_curve(curve, rows)
    _has_data(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "pruning's own operating point (chosen on validation)" in labels
    assert {"dense", "sparse-vd", "pruning-matched"} <= set(labels)
    ringed = [line for line in ax.lines if line.get_label().startswith("pruning's own")][0]
    assert list(ringed.get_xdata()) == [2.0]  # the shipped run chose 50 % sparsity (2x)
    dense = [line for line in ax.lines if line.get_label() == "dense"][0]
    assert list(dense.get_ydata()) == [10.0, 10.0]  # a horizontal line at the dense error
    top = [c for c in ax.child_axes if c.get_xlabel()][0]  # the secondary axis: the same points as sparsity
    assert top.get_xlabel() == "sparsity (% of weights dropped)"
    assert [t.get_text() for t in top.get_xticklabels()] == ["50", "80", "90", "95", "98", "99"]
    assert top.get_xticks() == pytest.approx([2, 5, 10, 20, 50, 100])
    _has_data(plots.plot_pruning_curve(curve))


def test_plot_history_puts_markers_only_on_short_runs():
    short = pd.DataFrame({"epoch": range(1, 11), "train_acc": 0.5, "test_acc": 0.5, "sparsity_%": 1.0})
    long = pd.DataFrame({"epoch": range(1, 201), "train_acc": 0.5, "test_acc": 0.5, "sparsity_%": 1.0})
    assert {line.get_marker() for line in plots.plot_history(short).axes[0].lines} == {"."}
    fig = plots.plot_history({"a": long, "b": short})
    assert {line.get_marker() for ax in fig.axes for line in ax.lines} == {"None"}


def test_table1_names_each_row_for_what_it_is():
    result = experiments.load_result("lenet300", dataset="fashion-mnist")
    t = widgets.table1(result)
    assert list(t.index) == ["dense", "Sparse VD", "magnitude pruning, one-shot to Sparse VD's sparsity",
                             "magnitude pruning, iterative (Han et al.), own operating point"]
    assert t.columns.name == "layers: fc1-fc2-fc3" and t.attrs["layers"] == ["fc1", "fc2", "fc3"]
    # the paper's pruning row (Han et al., 12x) stands beside the iterative row, not the matched one
    assert t.iloc[3]["compression x (paper)"] == 12
    assert t.iloc[2]["error % (paper)"] is None or math.isnan(t.iloc[2]["error % (paper)"])
    assert t.loc["Sparse VD", "error % (ours)"] == pytest.approx(11.03)
    old = {"results": {"rows": [{"method": "pruning", "error_%": 3.0, "compression": 2.0,
                                 "layers": ["1", "3", "5"]}]}}
    t_old = widgets.table1(old)
    assert list(t_old.index) == ["magnitude pruning, one-shot to Sparse VD's sparsity"]
    assert "layers" not in t_old.attrs  # indices are not layer names


def test_sparsity_report_names_layers_not_indices():
    assert list(svd.sparsity_report(svd.lenet_300_100()).index) == ["fc1", "fc2", "fc3", "total"]
    named = nn.Sequential()
    named.add_module("encoder", svd.LinearSVDO(4, 3))
    named.add_module("head", svd.LinearSVDO(3, 2))
    assert list(svd.sparsity_report(named).index) == ["encoder", "head", "total"]
