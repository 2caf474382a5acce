"""The notebooks in a real JupyterLab, driven by headless Chromium (docs/e2e.md).

Every notebook is opened from a temporary copy (built from its jupytext source), run with
"Run All Cells" in fast mode, and must finish with no error anywhere on the page. Then the sliders of
notebooks 01 and 06 are dragged (04 has no slider since its epoch slider was removed) with the mouse, and the widget's table and figure must become
what the package computes from the shipped results (for 06's threshold slider: from the shipped model,
re-masked and evaluated on Fashion-MNIST's test set) for the value the slider shows.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

import e2e_harness as H

pytestmark = pytest.mark.e2e

NOTEBOOKS = sorted(p.stem for p in H.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="session")
def ran(browser, lab):
    """``ran(stem)`` -> a page where notebook ``stem`` has run all its cells (once per session)."""
    done: dict[str, tuple] = {}
    contexts = []

    def get(stem: str):
        if stem not in done:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(30_000)
            contexts.append(context)
            page = context.new_page()
            name = f"{stem}.ipynb"
            try:
                H.open_notebook(page, lab, name)
                cells = H.run_all(page, name, lab, timeout_s=RUN_TIMEOUT_S)
                done[stem] = (page, cells, None)
            except AssertionError as err:
                H.screenshot(page, f"{stem}_failed")
                done[stem] = (page, None, err)
        page, cells, err = done[stem]
        if err is not None:
            raise err
        return page, cells

    yield get
    for c in contexts:
        c.close()


# --------------------------------------------------------------------------------------------------
# every notebook: Run All Cells, no errors
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_run_all_cells_without_errors(ran, stem):
    page, cells = ran(stem)
    problems = H.notebook_errors(page, f"{stem}.ipynb", cells)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.node"
                  ".closest('.jp-WindowedPanel-outer, .jp-Notebook').scrollTo(0, 0)")
    H.screenshot(page, f"{stem}_after_run_all")
    assert not problems, "\n\n".join(problems)
    assert any(c["type"] == "code" and c["count"] for c in cells), "no code cell ran"


# --------------------------------------------------------------------------------------------------
# sliders, dragged with the mouse
# --------------------------------------------------------------------------------------------------

def _style():
    import matplotlib

    matplotlib.use("Agg")
    from sparsevd_lab import plots

    plots.use_style()


def _check_explorer(page, explorer: str, caption: str, table, fig, before: dict, shot: str,
                    row_label: str | None = None):
    """The Explorer's output shows ``caption``; its table's cells are those of ``table`` (only the
    header and the row ``row_label`` when given); its figure changed and equals ``fig``."""
    import matplotlib.pyplot as plt

    H.wait_for_caption(page, explorer, caption)
    expected = H.expected_png(fig)
    plt.close(fig)
    (H.ARTIFACTS / f"{shot}_figure_expected.png").write_bytes(expected)
    # The table comes first and the figure right after it: poll until the figure has arrived.
    deadline, seen = time.monotonic() + 20, []
    while True:
        after = H.explorer_output(page, explorer)
        diff_new = H.image_difference(after["png"], expected) if after["png"] else 1.0
        seen.append(round(diff_new, 4))
        if diff_new < 0.01 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    if after["png"]:
        (H.ARTIFACTS / f"{shot}_figure_page.png").write_bytes(after["png"])
    H.screenshot(page, shot, page.locator(f".{explorer}").first)
    want = H.expected_cells(table)
    got = after["cells"]
    if row_label is not None:
        want = [r for r in want if r and (r[0] in ("", row_label) or r[0] == table.index.name)]
        got = [r for r in got if r and (r[0] in ("", row_label) or r[0] == table.index.name)]
    assert got == want, f"{explorer}: table on the page\n{got}\n!= expected\n{want}"
    assert after["png"], f"{explorer}: no figure under the table"
    assert after["png"] != before["png"], f"{explorer}: the figure did not change"
    diff_old = H.image_difference(after["png"], before["png"])
    assert diff_new < 0.01 and diff_new < diff_old, (
        f"{explorer}: the figure on the page is not the expected one for {caption!r} "
        f"(mean pixel difference {diff_new:.4f} to it, {diff_old:.4f} to the figure before the drag; "
        f"differences seen while waiting: {seen[:10]}...; see {H.ARTIFACTS}/{shot}_figure_*.png)")
    return after


def test_prior_slider_01(ran):
    """01: drag alpha (log slider, 10^-3 .. 10^2) to 10; the table (with the share of sign flips among
    the 20,000 seeded samples) and the figure (the samples over q on its fixed frame) follow: both must
    equal ``prior_render`` for the slider values, which is deterministic (seeded)."""
    from sparsevd_lab import widgets

    page, _ = ran("01_log_uniform_prior")
    explorer = "sparsevd-prior"
    before = H.explorer_output(page, explorer)
    H.screenshot(page, "01_prior_initial", page.locator(f".{explorer}").first)
    alpha = H.slider(page, explorer, "alpha")
    theta = H.slider(page, explorer, "theta")
    st = H.slider_state(alpha)
    target = 1.0  # exponent: alpha = 10
    state = H.drag_slider(page, alpha, (target - st["min"]) / (st["max"] - st["min"]))
    a = float(state["readout"])
    assert math.isclose(a, 10 ** state["now"], rel_tol=2e-3), state
    assert math.isclose(a, 10.0), f"the alpha slider ended on {state['readout']}, not 10"
    t = float(H.slider_state(theta)["readout"])
    _style()
    table, fig = widgets.prior_render(t, a)
    _check_explorer(page, explorer, f"theta = {t:g}, alpha = {a:g}", table, fig, before,
                    "01_prior_alpha_10")


def test_sweep_sliders_06(ran):
    """06: drag the KL-weight slider to its smallest value, then the threshold slider to its
    largest; after each drag the selected row and the accuracy-compression plot follow."""
    from sparsevd_lab import experiments, widgets

    page, _ = ran("06_compression_tables")
    try:
        sweep = experiments.load_result("classification-sweep", dataset="fashion-mnist")
        lenet = experiments.load_result("lenet300", dataset="fashion-mnist")
    except FileNotFoundError as err:
        pytest.fail(f"no shipped Fashion-MNIST sweep or lenet300 result, so notebook 06's sliders cannot "
                    f"be checked against shipped numbers: {err}", pytrace=False)
    points = experiments.result_frame(sweep)
    reference = widgets.reference_rows(lenet)  # as notebook 06 builds it
    explorer = "sparsevd-sweep"
    rf_slider = H.slider(page, explorer, "KL weight")
    th_slider = H.slider(page, explorer, "threshold")
    _style()
    shown = H.explorer_output(page, explorer)
    H.screenshot(page, "06_sweep_initial", page.locator(f".{explorer}").first)
    for step, (sl, fraction) in enumerate([(rf_slider, 0.0), (th_slider, 1.0)], 1):
        state = H.drag_slider(page, sl, fraction)
        rf = float(H.slider_state(rf_slider)["readout"])
        th = float(H.slider_state(th_slider)["readout"])
        table, fig = widgets.sweep_render(points, rf, th, reference)
        shown = _check_explorer(page, explorer, f"kl_weight = {rf:g}, threshold = {th:g}", table,
                                fig, shown, f"06_sweep_step{step}_kl{rf:g}_th{th:g}",
                                row_label="Sparse VD (selected)")
    assert math.isclose(rf, min(points["kl_weight"])), rf
    assert math.isclose(th, max(points["threshold"])), th


def test_threshold_slider_06(ran):
    """06: drag the threshold slider of the live re-mask to 0 (a third of its track, -4 .. 8); the
    table (test error and compression of the shipped model re-masked now) and the figure follow."""
    import pandas as pd

    from sparsevd_lab import data, experiments, notebook, widgets

    page, _ = ran("06_compression_tables")
    try:
        notebook.check_data("fashion-mnist")
    except RuntimeError as err:
        pytest.fail(f"Fashion-MNIST is not on this machine, so notebook 06 skipped its threshold slider: "
                    f"{err}", pytrace=False)
    model = experiments.load_model("lenet300", dataset="fashion-mnist")
    test = data.load_dataset("fashion-mnist", verbose=False).loaders(batch_size=1000)[1]
    curve = pd.DataFrame(experiments.threshold_sweep(model, test, widgets.CURVE_THRESHOLDS))
    explorer = "sparsevd-threshold"
    th_slider = H.slider(page, explorer, "threshold")
    _style()
    before = H.explorer_output(page, explorer)
    H.screenshot(page, "06_threshold_initial", page.locator(f".{explorer}").first)
    st = H.slider_state(th_slider)
    state = H.drag_slider(page, th_slider, (0.0 - st["min"]) / (st["max"] - st["min"]))
    th = float(state["readout"])
    assert math.isclose(th, 0.0, abs_tol=1e-9), f"the threshold slider ended on {state['readout']}, not 0"
    table, fig = widgets.threshold_render(model, test, th, curve)
    _check_explorer(page, explorer, f"threshold = {th:g}", table, fig, before, "06_threshold_0")
