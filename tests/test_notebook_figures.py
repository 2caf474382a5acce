"""Every figure is committed: a cell of a committed lecture or solution notebook that draws has an
image, HTML or widget output.

A notebook executed under a non-inline matplotlib backend (MPLBACKEND=Agg in the environment of the
run) keeps its text and loses every figure without an error; only its outputs tell. A cell "draws"
when, outside a function or class definition, it calls ``plt.show``, a ``savefig``, or a plotting
function of the package (``plots.plot_*``, ``svd.plot_*``, ``sv.plot_*``). The executor forces the
inline backend (``sparsevd_lab.notebook.kernel_env``); re-execute a notebook that fails here with
``python -m sparsevd_lab.notebook notebooks/NN_name.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from sparsevd_lab.assignments import _python_source

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb")) + sorted(
    (ROOT / "notebooks" / "solutions").glob("*.ipynb"))
# what shows a figure in a committed notebook: an image, an HTML animation, a widget (its view)
SHOWN = ("image/png", "image/svg+xml", "image/jpeg", "text/html",
         "application/vnd.jupyter.widget-view+json")


def _call_name(node: ast.Call) -> str:
    parts, f = [], node.func
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def draws(source: str) -> list[str]:
    """The drawing calls a cell makes at its top level (not inside a def or a class)."""
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError:
        return []
    found: list[str] = []

    def visit(node) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, ast.Call):
            name = _call_name(node)
            last = name.rsplit(".", 1)[-1]
            if (name == "plt.show" or last == "savefig"
                    or (name.split(".")[0] in ("plots", "svd", "sv") and last.startswith("plot_"))):
                found.append(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def shown(cell) -> bool:
    return any(key in out.get("data", {}) for out in cell.get("outputs", []) for key in SHOWN)


def missing_figures(path: Path) -> list[str]:
    """One line per cell of ``path`` that draws and shows nothing."""
    notebook = nbformat.read(path, as_version=4)
    return [f"{path.name} cell {i}: {', '.join(sorted(set(calls)))} but no image, HTML or widget "
            f"output" for i, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and (calls := draws(cell.source)) and not shown(cell)]


def test_draws_finds_the_calls_that_draw_and_ignores_definitions():
    assert draws("fig = plots.plot_priors(x)\nplt.show()") == ["plots.plot_priors", "plt.show"]
    assert draws("nb.savefig(fig, '01_priors.png')") == ["nb.savefig"]
    assert draws("for t in ts:\n    svd.plot_history(h)") == ["svd.plot_history"]
    assert draws("def f():\n    plt.show()\n") == []  # defined, not called here
    assert draws("plots.use_style()\nnames = plots.layer_names(model)") == []
    assert draws("%matplotlib inline\nplt.show()") == ["plt.show"]


def test_missing_figures_flags_a_drawing_cell_without_an_image(tmp_path):
    nbk = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("plots.plot_kl(grid)\nplt.show()"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("plt.show()", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]),
    ])
    path = tmp_path / "99_x.ipynb"
    nbformat.write(nbk, path)
    assert missing_figures(path) == [
        "99_x.ipynb cell 0: plots.plot_kl, plt.show but no image, HTML or widget output"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_drawing_cell_of_a_committed_notebook_shows_its_figure(path):
    missing = missing_figures(path)
    assert not missing, ("figures missing (executed under a non-inline backend? re-execute with "
                         "python -m sparsevd_lab.notebook): " + "; ".join(missing))
