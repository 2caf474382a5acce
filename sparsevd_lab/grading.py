"""nbgrader source notebooks built from the same sources as the student copies (docs/grading.md).

Build tooling for lecturers: nothing a student imports needs it, and nbgrader itself is needed only to
grade (``pip install -e .[grading]``), never to build. ``python -m sparsevd_lab.assignments build``
writes, beside the student copies, one nbgrader source notebook per source into
``notebooks/nbgrader/source/NAME/NAME.ipynb``: copy that folder into a course as ``source/``.

Each cell of a source gets nbgrader's metadata:

- a code cell with a ``### BEGIN SOLUTION`` region: a solution cell ("autograded answer"), id
  ``solution-<its first function, class or name>``; nbgrader's ``generate_assignment`` cuts the regions;
- a check cell (a code cell calling ``checks.check_...``): a graded, locked test cell, id the name of
  its first check (``check_log_alpha``; a repeat gets ``_2``), points from ``POINTS``. Each check
  cell must be matched to an exercise: one of its checks must be given a name that a solution cell
  above it defines (``checks.check_log_alpha(log_alpha)``); else the build stops naming the cell,
  unless all its checks are listed in ``UNGRADED``;
- a markdown cell with a region (a written answer): a manually graded answer, id ``answer-<its
  heading>``, points from ``POINTS`` (0 unless listed: the research questions are optional);
- every other cell: locked (read-only), so that autograding restores it from the source.

Grading runs in fast mode (``SPARSEVD_FAST=1``, set by ``notebooks/nbgrader/nbgrader_config.py``):
every training cell then takes seconds, not minutes, and no grade depends on a timeout. The check
of A1's training run is not graded (``UNGRADED``). A check's ``CheckFailed`` message is the error
output of its cell, which nbgrader's feedback shows to the student.

Commands::

    python -m sparsevd_lab.assignments build    # the student copies and the nbgrader sources
    python -m sparsevd_lab.grading points       # the points of every notebook, per check
"""
from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

from . import assignments as asg

__all__ = ["SOURCE_DIR", "POINTS", "DEFAULT_POINTS", "UNGRADED", "GITHUB_URL", "nbgrader_notebook",
           "render_source", "build_sources", "points", "main"]

SOURCE_DIR = Path("notebooks") / "nbgrader" / "source"
GITHUB_URL = "https://github.com/sparsevd-lab/sparsevd-lab/blob/main/"

# Points of each graded cell, by grade_id (the name of the cell's first check): one point per five
# minutes of the exercise's time estimate in the notebook (its upper end). The one place to change them.
POINTS = {
    # A1 · Sparse VD from scratch (12)
    "check_log_alpha": 1, "check_lrt_linear": 2, "check_eval_mask": 1, "check_kl": 1,
    "check_layer": 3, "check_sgvlb": 1, "check_compression_ratio": 1, "check_train_step": 2,
    # A2 · Compress a trained model for real (13; the research questions are optional: 0)
    "check_remove_dead_units": 3, "check_to_csr": 2, "check_csr_linear": 2, "check_csr_nbytes": 1,
    "check_median_time": 2, "check_magnitude_masks": 2, "check_operating_point": 1,
    "answer-research_questions": 0,
    # 01 · the log-uniform prior (6)
    "check_log_uniform_share": 2, "check_dropout_rate": 1, "check_signal_to_noise": 1,
    "check_sign_flip": 2,
    # 02 · the KL approximation (8)
    "check_mc_neg_kl": 3, "check_neg_kl_eq14": 1, "check_refit": 2, "check_kl_limit": 2,
    # 03 · Sparse VD layers (5)
    "check_theta_grad_variance": 2, "check_preactivation_moments": 2, "check_compression_sparsity": 1,
    # 04 · the weights (4)
    "check_pixels_used": 2, "check_alive_units": 2,
    # 05 · random labels (4)
    "check_chance_level": 2, "check_random_labels_prediction": 2,
    # 06 · compression tables (4)
    "check_frontier_point": 2, "check_csr_bytes": 2,
}
DEFAULT_POINTS = 1  # a check not in POINTS (a new exercise); a written answer not listed gets 0
# Checks that are run (the cell stays, locked) but not graded, with the reason.
UNGRADED = {
    "check_training_outcome": "A1's training run tests exercises 1-8 together, each already graded "
                              "by its own check; in fast mode (3 epochs) its thresholds are low, and "
                              "a second grade for the same slip would count it twice",
}

_BADGE = re.compile(r"^\s*\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*\n?", re.MULTILINE)


def _check_calls(source: str) -> list[tuple[str, set[str]]]:
    """The ``checks.check_...(...)`` calls of a cell, in order: (check name, the names passed to it)."""
    try:
        tree = ast.parse(asg._python_source(source))
    except SyntaxError:
        return []
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks"
                and node.func.attr.startswith("check_")):
            names = {n.id for arg in [*node.args, *(k.value for k in node.keywords)]
                     for n in ast.walk(arg) if isinstance(n, ast.Name)}
            calls.append((node.lineno, node.col_offset, node.func.attr, names))
    return [(name, names) for _, _, name, names in sorted(calls, key=lambda c: c[:2])]


def _first_defined(source: str) -> str | None:
    """The first function, class or assigned name at the top level of a cell."""
    try:
        tree = ast.parse(asg._python_source(source))
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return node.name
    names = sorted(asg._assigned_names(source))
    return names[0] if names else None


def _top_names(source: str) -> set[str]:
    """The functions, classes and names a cell defines at its top level (not a function's locals)."""
    try:
        tree = ast.parse(asg._python_source(source))
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _slug(text: str) -> str:
    """A grade_id piece from text: letters, digits and underscores (nbgrader's rule also allows -)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "cell"


def _unique(grade_id: str, used: set[str]) -> str:
    new, k = grade_id, 2
    while new in used:
        new, k = f"{grade_id}_{k}", k + 1
    used.add(new)
    return new


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
          points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def _absolute_links(text: str, source_dir: Path, siblings: frozenset | set, student_dir: Path) -> str:
    """Relative links -> the repository's pages on GitHub (a course folder has no docs/ beside it);
    a link to another notebook of the group points at its student copy there."""
    root = Path(__file__).resolve().parents[1]
    text = asg.rewrite_links(text, source_dir, student_dir, siblings)

    def fix(match: re.Match) -> str:
        target, _, anchor = match.group(1).partition("#")
        if not target:
            return match.group(0)
        path = Path(os.path.normpath(student_dir / target))
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            return match.group(0)
        return f"]({GITHUB_URL}{rel}{'#' + anchor if anchor else ''})"

    return asg._MD_LINK.sub(fix, text)


def nbgrader_notebook(solution, name: str, source_dir: str | os.PathLike | None = None,
                      siblings: frozenset | set = frozenset(),
                      student_dir: str | os.PathLike | None = None):
    """The nbgrader source (an nbformat notebook) of the source notebook ``solution``.

    The solutions stay in (nbgrader cuts them at ``generate_assignment``); each cell gets nbgrader's
    metadata (see the module docstring); outputs are cleared, the Colab badge is removed (a course
    works on the released file), relative links point at GitHub (``source_dir``: the source's folder;
    skipped when None; ``student_dir``: where a sibling notebook's student copy lies), cell ids are
    numbered. Raises ``MarkerError`` naming the cell when a check cell cannot be matched to an
    exercise, when a solution cell also calls a check, and on bad markers.
    """
    import nbformat

    cells, used = [], set()
    exercises: set[str] = set()  # names defined by the solution cells seen so far
    for index, cell in enumerate(solution.cells):
        where = f"{name}, cell {index}"
        source = cell.source
        asg.strip_solutions(source, markdown=cell.cell_type == "markdown", where=where)  # markers ok
        region = asg.BEGIN in source
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(source)
            calls = _check_calls(source)
            if region and calls:
                raise asg.MarkerError(f"{where}: a solution cell calls {calls[0][0]}; put the check in "
                                      f"its own cell after the exercise (students can edit a "
                                      f"solution cell, so a check there cannot grade)")
            if region:
                exercises |= _top_names(source)
                meta = _meta(_unique(f"solution-{_first_defined(source) or f'cell-{index:03d}'}",
                                     used), solution=True)
            elif calls and any(names & exercises for _, names in calls):
                grade_id = _unique(calls[0][0], used)
                meta = _meta(grade_id, grade=True, locked=True,
                             points=POINTS.get(grade_id, POINTS.get(calls[0][0], DEFAULT_POINTS)))
            elif calls and all(check in UNGRADED for check, _ in calls):
                meta = _meta(_unique(f"cell-{index:03d}", used), locked=True)
            elif calls:
                first = source.strip().splitlines()[0]
                raise asg.MarkerError(
                    f"{where} (`{first}`): the check cell cannot be matched to an exercise: none of "
                    f"its checks ({', '.join(c for c, _ in calls)}) is given a name defined in a "
                    f"{asg.BEGIN} region above it. Pass the student's function to the check, move "
                    f"the check below its exercise, or list the check in "
                    f"sparsevd_lab.grading.UNGRADED (with the reason) to run it ungraded")
            else:
                meta = _meta(_unique(f"cell-{index:03d}", used), locked=True)
            tags = cell.metadata.get("tags")
            if tags:
                new.metadata["tags"] = list(tags)
        elif cell.cell_type == "markdown":
            text = _BADGE.sub("", source)
            if source_dir is not None:
                text = _absolute_links(text, Path(os.path.normpath(source_dir)), siblings,
                                       Path(os.path.normpath(student_dir or source_dir)))
            new = nbformat.v4.new_markdown_cell(text)
            if region:
                heading = next((line.lstrip("#").strip() for line in source.splitlines()
                                if line.startswith("#") and not line.lstrip("#").strip().startswith(
                                    ("BEGIN SOLUTION", "END SOLUTION"))), f"cell {index:03d}")
                grade_id = _unique(f"answer-{_slug(heading)}", used)
                meta = _meta(grade_id, grade=True, solution=True, points=POINTS.get(grade_id, 0))
            else:
                meta = _meta(_unique(f"cell-{index:03d}", used), locked=True)
        else:
            new = nbformat.v4.new_raw_cell(source)
            meta = _meta(_unique(f"cell-{index:03d}", used), locked=True)
        new.metadata["nbgrader"] = meta
        new["id"] = f"cell-{index:03d}"
        cells.append(new)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)",
                                       "language": "python", "name": "python3"}
    return notebook


def render_source(path: str | os.PathLike, siblings: frozenset | set = frozenset(),
                  student_dir: str | os.PathLike | None = None) -> str:
    """The text of the nbgrader source built from ``path`` (its ``.py`` when it exists)."""
    import nbformat

    path = Path(path)
    notebook = nbgrader_notebook(asg._read_solution(path), path.stem,
                                 source_dir=path.parent.resolve(), siblings=siblings,
                                 student_dir=Path(student_dir).resolve() if student_dir else None)
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def _sources(root: Path) -> list[tuple[Path, frozenset, Path]]:
    """(source, its group's names, its group's student folder) for every source of every group."""
    found = []
    for group in asg.GROUPS:
        sources = asg._solution_sources(root / group.sources, group.pattern)
        names = frozenset(s.stem for s in sources)
        found += [(s, names, root / group.out) for s in sources]
    return found


def build_sources(out: str | os.PathLike = SOURCE_DIR, check: bool = False,
                  root: str | os.PathLike | None = None) -> list[str]:
    """Write the nbgrader source ``out/NAME/NAME.ipynb`` of every source of every group (folders
    relative to ``root``, default the working directory). Returns the files written; with ``check``
    writes nothing and returns the problems (missing, differs from the build, no source)."""
    root = Path(root) if root is not None else Path()
    out = Path(out)
    sources = _sources(root)
    problems, written = [], []
    for src, siblings, student_dir in sources:
        target = out / src.stem / f"{src.stem}.ipynb"
        text = render_source(src, siblings, student_dir)
        problem = asg.write_or_check(target, text, src, check)
        if problem:
            problems.append(problem)
        elif not check:
            written.append(str(target))
    if check and out.is_dir():
        stems = {s.stem for s, _, _ in sources}
        problems += [f"{extra}: no source notebook {extra.name}.py"
                     for extra in sorted(p for p in out.iterdir() if p.is_dir())
                     if extra.name not in stems]
    return written if not check else problems


def points(root: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """{notebook: {grade_id: points}} of every source, in notebook order."""
    import nbformat

    root = Path(root) if root is not None else Path()
    table = {}
    for src, siblings, student_dir in _sources(root):
        notebook = nbformat.reads(render_source(src, siblings, student_dir), as_version=4)
        table[src.stem] = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
                           for c in notebook.cells if c.metadata["nbgrader"]["grade"]}
    return table


def main(argv=None) -> int:
    """python -m sparsevd_lab.grading points"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sparsevd_lab.grading",
                                     description="nbgrader sources of the notebooks (docs/grading.md); "
                                                 "build them with python -m sparsevd_lab.assignments "
                                                 "build")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("points", help="print the points of every notebook, per graded cell")
    parser.parse_args(argv)
    try:
        table = points()
    except (asg.MarkerError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for notebook, cells in table.items():
        total = sum(cells.values())
        print(f"{notebook}: {total:g} points ({', '.join(f'{k} {v:g}' for k, v in cells.items())})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
