"""Tests of sparsevd_lab.grading: the nbgrader sources built from the notebook sources (metadata,
points, stable grade ids, the errors of a check cell without an exercise), and nbgrader itself run on
A1 and on lecture notebook 01 with three synthetic submissions (the solution, the untouched student
copy, one typical slip), in fast mode. docs/grading.md."""
import csv
import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

from sparsevd_lab import assignments as asg
from sparsevd_lab import grading

ROOT = Path(__file__).resolve().parents[1]
A1 = "A1_sparse_vd_from_scratch"
NB01 = "01_log_uniform_prior"
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/x/y/blob/main/notebooks/solutions/T.ipynb)")


def _notebook(*cells):
    """A source notebook: a title cell with the badge, then code cells (str) or markdown (("md", s))."""
    out = [nbformat.v4.new_markdown_cell(f"# T\n{BADGE}\n\nSee [the glossary](../../docs/glossary.md).")]
    for c in cells:
        out.append(nbformat.v4.new_markdown_cell(c[1]) if isinstance(c, tuple)
                   else nbformat.v4.new_code_cell(c))
    return nbformat.v4.new_notebook(cells=out)


SOLUTION = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"
CLS = "class Layer:\n    def g(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"


def _meta(nb):
    return [c.metadata["nbgrader"] for c in nb.cells]


# ---------------------------------------------------------------------------------------------
# nbgrader_notebook: the metadata of each kind of cell
# ---------------------------------------------------------------------------------------------

def test_nbgrader_notebook_marks_solution_check_and_locked_cells():
    source = _notebook("import numpy as np", SOLUTION, "checks.check_log_alpha(f)",
                       ("md", "## Why?\n### BEGIN SOLUTION\nbecause\n### END SOLUTION"))
    source.cells[1].metadata["tags"] = ["parameters"]
    nb = grading.nbgrader_notebook(source, "T")
    title, setup, sol, check, answer = _meta(nb)
    assert title == {"grade": False, "grade_id": "cell-000", "locked": True, "schema_version": 3,
                     "solution": False, "task": False}
    assert setup["locked"] and not setup["grade"] and nb.cells[1].metadata["tags"] == ["parameters"]
    assert sol["solution"] and not sol["locked"] and not sol["grade"]
    assert sol["grade_id"] == "solution-f"
    assert check == {"grade": True, "grade_id": "check_log_alpha", "locked": True,
                     "points": grading.POINTS["check_log_alpha"], "schema_version": 3,
                     "solution": False, "task": False}
    assert answer["grade"] and answer["solution"] and answer["points"] == 0
    assert answer["grade_id"] == "answer-why"
    # the solutions stay in the source (nbgrader cuts them); outputs cleared; ids numbered
    assert "return 2 * x" in nb.cells[2].source
    assert [c["id"] for c in nb.cells] == [f"cell-{i:03d}" for i in range(5)]
    assert all(c.get("outputs", []) == [] for c in nb.cells)


def test_badge_removed_and_links_point_at_github():
    nb = grading.nbgrader_notebook(_notebook(SOLUTION, "checks.check_kl(f)"), "T",
                                   source_dir=ROOT / "notebooks" / "solutions")
    assert "colab" not in nb.cells[0].source.lower()
    nb = grading.nbgrader_notebook(_notebook(("md", "[g](../docs/glossary.md#kl) [n](02_x.ipynb)")),
                                   "T", source_dir=ROOT / "notebooks", siblings={"02_x"},
                                   student_dir=ROOT / "notebooks" / "student")
    assert nb.cells[1].source == (f"[g]({grading.GITHUB_URL}docs/glossary.md#kl) "
                                  f"[n]({grading.GITHUB_URL}notebooks/student/02_x.ipynb)")


def test_grade_ids_come_from_the_check_names_and_points_from_the_table():
    source = _notebook(SOLUTION, "checks.check_lrt_linear(f)", CLS,
                       "checks.check_layer(Layer)\nchecks.check_lrt_linear(Layer)",
                       "checks.check_lrt_linear(Layer)", "def h():\n    ### BEGIN SOLUTION\n"
                       "    pass\n    ### END SOLUTION\n", "checks.check_brand_new(h)")
    graded = [m for m in _meta(grading.nbgrader_notebook(source, "T")) if m["grade"]]
    assert [(m["grade_id"], m["points"]) for m in graded] == [
        ("check_lrt_linear", grading.POINTS["check_lrt_linear"]),
        ("check_layer", grading.POINTS["check_layer"]),  # the cell's first check names it
        ("check_lrt_linear_2", grading.POINTS["check_lrt_linear"]),  # a repeat: a suffix
        ("check_brand_new", grading.DEFAULT_POINTS)]  # not in the table: the default


def test_grade_ids_are_stable_across_rebuilds(tmp_path):
    """The same source gives the same text; inserting a cell elsewhere keeps the graded ids."""
    first = grading.nbgrader_notebook(_notebook(SOLUTION, "checks.check_kl(f)"), "T")
    again = grading.nbgrader_notebook(_notebook(SOLUTION, "checks.check_kl(f)"), "T")
    assert nbformat.writes(first) == nbformat.writes(again)
    moved = grading.nbgrader_notebook(_notebook("x = 1", ("md", "text"), SOLUTION,
                                                "checks.check_kl(f)"), "T")
    ids = lambda nb: [m["grade_id"] for m in _meta(nb) if m["grade"] or m["solution"]]  # noqa: E731
    assert ids(first) == ids(moved) == ["solution-f", "check_kl"]


def test_ungraded_check_is_locked_without_points():
    nb = grading.nbgrader_notebook(_notebook(
        SOLUTION, "checks.check_kl(f)", "history = [1]\nout = checks.check_training_outcome(history)"), "T")
    last = _meta(nb)[-1]
    assert last["locked"] and not last["grade"] and "points" not in last
    assert "check_training_outcome" in grading.UNGRADED


@pytest.mark.parametrize("cells, message", [
    (("checks.check_kl(f)",), r"T, cell 1 \(`checks.check_kl\(f\)`\): the check cell cannot be "
                              r"matched to an exercise"),
    (("x = 1", SOLUTION, "checks.check_kl(x)"), r"T, cell 3 .*none of its checks \(check_kl\)"),
    (("checks.check_kl(g)", SOLUTION), r"T, cell 1 .*cannot be matched"),  # the exercise is below
    (("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\nchecks.check_kl(f)",),
     r"T, cell 1: a solution cell calls check_kl; put the check in its own cell"),
    (("def f(x):\n    ### BEGIN SOLUTION\n    return x\n",), r"T, cell 1, line 2: .* never closed"),
])
def test_a_check_cell_without_an_exercise_is_an_error_naming_the_cell(cells, message):
    with pytest.raises(asg.MarkerError, match=message):
        grading.nbgrader_notebook(_notebook(*cells), "T")


def _tree(tmp_path, check_cell):
    """A repository tree with one assignment and one lecture notebook."""
    sol = tmp_path / "notebooks" / "solutions"
    sol.mkdir(parents=True)
    jupytext.write(_notebook(SOLUTION, check_cell), sol / "T.py", fmt="py:percent")
    jupytext.write(_notebook(SOLUTION, "checks.check_kl(f)"), tmp_path / "notebooks" / "01_x.py",
                   fmt="py:percent")
    return tmp_path


def test_build_writes_the_nbgrader_sources_and_checks_them(tmp_path, monkeypatch, capsys):
    root = _tree(tmp_path, "checks.check_kl(f)")
    monkeypatch.chdir(root)
    assert asg.main(["build"]) == 0
    source = root / "notebooks" / "nbgrader" / "source"
    assert sorted(p.relative_to(source).as_posix() for p in source.rglob("*.ipynb")) == [
        "01_x/01_x.ipynb", "T/T.ipynb"]
    assert f"wrote {Path('notebooks/nbgrader/source/T/T.ipynb')}" in capsys.readouterr().out
    assert asg.main(["build", "--check"]) == 0
    assert asg.build_all(check=True, root=root) == []
    (source / "T" / "T.ipynb").write_text("{}", encoding="utf-8")
    (source / "Old").mkdir()
    assert asg.main(["build", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {source.relative_to(root) / 'T' / 'T.ipynb'}: differs from the build" in err
    assert "Old: no source notebook Old.py" in err
    other = tmp_path / "elsewhere"
    assert asg.main(["build", "--nbgrader", str(other)]) == 0
    assert (other / "T" / "T.ipynb").is_file()


def test_build_on_a_check_cell_without_an_exercise_fails_naming_the_cell(tmp_path, monkeypatch,
                                                                          capsys):
    root = _tree(tmp_path, "checks.check_kl(something_else)")
    monkeypatch.chdir(root)
    assert asg.main(["build"]) == 1
    err = capsys.readouterr().err
    assert "error: T, cell 2 (`checks.check_kl(something_else)`): the check cell cannot be matched " \
           "to an exercise" in err
    assert "sparsevd_lab.grading.UNGRADED" in err
    with pytest.raises(asg.MarkerError, match="T, cell 2"):
        asg.build_all(root=root)


def test_committed_nbgrader_sources_are_exactly_the_build():
    assert grading.build_sources(ROOT / grading.SOURCE_DIR, check=True, root=ROOT) == [], \
        "rebuild: python -m sparsevd_lab.assignments build"


def test_points_per_notebook_and_the_points_command(capsys):
    table = grading.points(ROOT)
    assert set(table) == {p.stem for p in (ROOT / "notebooks" / "solutions").glob("*.py")} | {
        p.stem for p in ROOT.glob("notebooks/[0-9][0-9]_*.py")}
    assert table[A1] == {k: grading.POINTS[k] for k in [
        "check_log_alpha", "check_lrt_linear", "check_eval_mask", "check_kl", "check_layer",
        "check_sgvlb", "check_compression_ratio", "check_train_step"]}
    # every check cell of every committed source is graded, or runs only checks listed as ungraded
    for path in sorted((ROOT / grading.SOURCE_DIR).glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            calls = set(re.findall(r"checks\.(check_\w+)\(", cell.source))
            if calls and not cell.metadata["nbgrader"]["grade"]:
                assert calls <= set(grading.UNGRADED), f"{path.name}: {cell.source!r}"
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        assert grading.main(["points"]) == 0
    finally:
        os.chdir(old)
    assert f"{A1}: 12 points (check_log_alpha 1," in capsys.readouterr().out


@pytest.mark.parametrize("src", sorted(ROOT.glob("notebooks/solutions/*.py"))
                         + sorted(ROOT.glob("notebooks/[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_committed_outputs_of_graded_cells_would_score_full_marks(src):
    """nbgrader gives a graded cell 0 for an error OR any stderr output, and partial credit for a
    numeric result: the committed outputs of a real run of each source have none of these."""
    ran = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
    outputs = {c.source: c.get("outputs", []) for c in ran.cells if c.cell_type == "code"}
    built = grading.nbgrader_notebook(jupytext.read(src), src.stem)
    graded = [c for c in built.cells if c.metadata["nbgrader"]["grade"] and c.cell_type == "code"]
    assert graded
    for cell in graded:
        assert cell.source in outputs, f"{src.name}: {cell.source!r} has no committed run"
        kinds = [(o.output_type, o.get("name")) for o in outputs[cell.source]]
        assert ("stream", "stdout") in kinds, f"{cell.source!r}: no OK line"
        assert not [k for k in kinds if k[0] in ("error", "execute_result") or k[1] == "stderr"], \
            f"{src.name}: {cell.source!r} printed {kinds}: nbgrader would not give full marks"


def test_the_package_imports_without_nbgrader():
    code = ("import sys; sys.modules['nbgrader'] = None\n"
            "import sparsevd_lab, sparsevd_lab.grading, sparsevd_lab.assignments, sparsevd_lab.checks\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------------------------
# nbgrader for real: generate_assignment, autograde, generate_feedback, export
# ---------------------------------------------------------------------------------------------

def _nbgrader_bin() -> Path:
    """The nbgrader of this environment; its bin folder must be on PATH (nbgrader runs `alembic`)."""
    exe = Path(sys.executable).parent / "nbgrader"
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("nbgrader is missing: CI installs it with pip install -e .[grading]")
        pytest.skip("nbgrader is not installed (pip install -e .[grading])")
    assert exe.exists(), f"nbgrader is importable but {exe} is missing"
    return exe


def test_nbgrader_accepts_the_metadata_of_every_source():
    _nbgrader_bin()
    from nbgrader.nbgraderformat import MetadataValidator

    validator = MetadataValidator()
    for path in sorted((ROOT / grading.SOURCE_DIR).glob("*/*.ipynb")):
        validator.validate_nb(nbformat.read(path, as_version=nbformat.NO_CONVERT))


def _slip(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, old
    return source.replace(old, new)


CASES = {  # notebook: (the exercise slipped, its graded cell, the slip, the check's message)
    A1: ("compression_ratio", "check_compression_ratio",
         ('return float("inf") if kept == 0 else total / kept',
          'return float("inf") if kept == 0 else kept / total'),
         "CheckFailed: compression_ratio: this is kept / total, the inverse"),
    NB01: ("dropout_rate", "check_dropout_rate",
           ("return alpha / (1.0 + alpha)", "return 1.0 / (1.0 + alpha)"),
           "CheckFailed: dropout_rate: you computed 1 / (1 + alpha), the keep probability"),
}


@pytest.mark.slow
def test_nbgrader_grades_the_solution_the_student_copy_and_a_slip(tmp_path):
    exe = _nbgrader_bin()
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT)}
    env.pop("SPARSEVD_FAST", None)  # the course's nbgrader_config.py must set fast mode itself
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "notebooks" / "nbgrader" / "nbgrader_config.py", course)

    def run(*args):
        out = subprocess.run([str(exe), *args], cwd=course, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"nbgrader {' '.join(args)}:\n{out.stdout}\n{out.stderr[-4000:]}"
        return out

    for src, group in [(ROOT / "notebooks" / "solutions" / f"{A1}.py", asg.GROUPS[0]),
                       (ROOT / "notebooks" / f"{NB01}.py", asg.GROUPS[1])]:
        target = course / "source" / src.stem / f"{src.stem}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(grading.render_source(src, student_dir=ROOT / group.out), encoding="utf-8")
    seconds = {}
    for name, (_, cell, (old, new), _) in CASES.items():
        run("generate_assignment", name)
        source = (course / "source" / name / f"{name}.ipynb").read_text(encoding="utf-8")
        released = (course / "release" / name / f"{name}.ipynb").read_text(encoding="utf-8")
        assert "### BEGIN SOLUTION" not in released and "raise NotImplementedError" in released
        for student, text in [("solution", source), ("untouched", released),
                              ("slip", _slip(source, json_str(old), json_str(new)))]:
            folder = course / "submitted" / student / name
            folder.mkdir(parents=True)
            (folder / f"{name}.ipynb").write_text(text, encoding="utf-8")
        start = time.perf_counter()
        run("autograde", name)
        seconds[name] = (time.perf_counter() - start) / 3
        run("generate_feedback", name)
    run("export", "--to", "grades.csv")
    with open(course / "grades.csv", newline="") as f:
        scores = {(r["assignment"], r["student_id"]): (float(r["score"]), float(r["max_score"]))
                  for r in csv.DictReader(f)}
    table = grading.points(ROOT)
    for name, (exercise, cell, _, message) in CASES.items():
        total = sum(table[name].values())
        assert scores[(name, "solution")] == (total, total)
        assert scores[(name, "untouched")] == (0, total)
        assert scores[(name, "slip")] == (total - table[name][cell], total), exercise
        feedback = (course / "feedback" / "slip" / name / f"{name}.html").read_text(encoding="utf-8")
        text = html.unescape(re.sub(r"<[^>]+>", "", feedback))
        assert message in text
        assert f"Grade cell: {cell}" in text and f"Score: 0.0 / {table[name][cell]:.1f}" in text
        clean = (course / "feedback" / "solution" / name / f"{name}.html").read_text(encoding="utf-8")
        assert "CheckFailed" not in html.unescape(re.sub(r"<[^>]+>", "", clean))
        graded = (course / "autograded" / "solution" / name / f"{name}.ipynb").read_text("utf-8")
        assert "(fast mode)" in graded, "the course config must grade in fast mode"
    print("autograde seconds per submission:", {k: round(v, 1) for k, v in seconds.items()})


def json_str(text: str) -> str:
    """``text`` as it appears inside a JSON string of an .ipynb file."""
    import json

    return json.dumps(text)[1:-1]


def test_render_source_reads_the_py_source_and_is_reproducible(tmp_path):
    jupytext.write(_notebook(SOLUTION, "checks.check_kl(f)"), tmp_path / "T.py", fmt="py:percent")
    text = grading.render_source(tmp_path / "T.ipynb")  # the .py beside it is read
    assert text.endswith("\n") and text == grading.render_source(tmp_path / "T.py")
    nb = nbformat.reads(text, as_version=4)
    assert [c.metadata["nbgrader"]["grade_id"] for c in nb.cells] == ["cell-000", "solution-f",
                                                                      "check_kl"]
    assert nb.metadata == {"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                          "language": "python", "name": "python3"}}
