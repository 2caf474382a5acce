"""Student notebooks built from one source: the notebooks with their solutions.

Two groups of notebooks are built the same way (``GROUPS``):

- the assignments: ``notebooks/solutions/NAME.py`` -> ``notebooks/assignments/NAME.ipynb``;
- the lecture notebooks: ``notebooks/NN_name.py`` -> ``notebooks/student/NN_name.ipynb``.

A source (jupytext percent format, paired with ``NAME.ipynb``, committed with the outputs of a real
run) marks each exercise region with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` (nbgrader's
markers). ``build`` writes the student copy: each region becomes ``# YOUR CODE HERE`` and
``raise NotImplementedError`` at the indentation of the marker (markdown regions become
"*YOUR ANSWER HERE*"), outputs are cleared, the Colab badge points at the student copy, and relative
links are rewritten for the student copy's folder (a link to another notebook of the same group
points at that notebook's student copy). Every student code cell must still be valid Python and
define the same functions and classes as the source cell, so names cannot drift apart. An
assignment must have at least one region; a lecture notebook without exercises still gets a copy
(outputs cleared), so that new exercise regions are picked up by the next build.

Commands (docs/assignments.md)::

    python -m sparsevd_lab.assignments build            # write notebooks/assignments/*.ipynb,
                                                        # notebooks/student/*.ipynb and the nbgrader
                                                        # sources (sparsevd_lab.grading)
    python -m sparsevd_lab.assignments build --check    # fail if the committed copies are stale
    python -m sparsevd_lab.assignments verify           # run the student copies (fast mode): only
                                                        # NotImplementedError may be raised
"""
from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write_text

__all__ = [
    "BEGIN",
    "END",
    "STUB",
    "ANSWER_STUB",
    "COLAB_URL",
    "Group",
    "GROUPS",
    "MarkerError",
    "strip_solutions",
    "colab_url",
    "student_notebook",
    "render",
    "rewrite_links",
    "build",
    "build_all",
    "verify",
    "main",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
ANSWER_STUB = "*YOUR ANSWER HERE*"
COLAB_URL = ("https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/"
             "{folder}/{name}.ipynb")
# Any Colab link to a notebook of this repository (the solution's badge points at the solution).
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'\]]+?\.ipynb")
SOLUTIONS_DIR = Path("notebooks") / "solutions"
ASSIGNMENTS_DIR = Path("notebooks") / "assignments"
LECTURE_DIR = Path("notebooks")
STUDENT_DIR = Path("notebooks") / "student"
# A relative markdown link: ](target) where target has no scheme and is not an anchor or absolute.
_MD_LINK = re.compile(r"\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#|/)([^)\s]+)\)")


@dataclass(frozen=True)
class Group:
    """Notebooks built the same way: sources ``sources/PATTERN.py`` (or ``.ipynb``), student copies
    ``out/NAME.ipynb``. ``need_regions``: a source without a solution region is an error."""

    name: str
    sources: Path
    out: Path
    pattern: str = "*"
    need_regions: bool = True


GROUPS = (
    Group("assignments", SOLUTIONS_DIR, ASSIGNMENTS_DIR, "*", True),
    Group("lecture notebooks", LECTURE_DIR, STUDENT_DIR, "[0-9][0-9]_*", False),
)


class MarkerError(ValueError):
    """The solution markers are unbalanced, nested, or leave invalid Python behind."""


def strip_solutions(source: str, markdown: bool = False, where: str = "cell") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region of ``source``.

    Code: by ``# YOUR CODE HERE`` and ``raise NotImplementedError`` at the indentation of the BEGIN
    line. Markdown (``markdown=True``): by ``*YOUR ANSWER HERE*``. Raises ``MarkerError`` (naming
    ``where`` and the line) for an END without BEGIN, a nested BEGIN, or a BEGIN never closed.
    """
    out: list[str] = []
    begin_line = None
    for i, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if begin_line is not None:
                raise MarkerError(f"{where}, line {i}: {BEGIN} inside the region opened on line "
                                  f"{begin_line}; regions cannot nest")
            begin_line = i
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append(indent + ANSWER_STUB)
            else:
                out.extend(indent + s for s in STUB)
        elif stripped.startswith(END):
            if begin_line is None:
                raise MarkerError(f"{where}, line {i}: {END} without a {BEGIN} before it")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise MarkerError(f"{where}, line {begin_line}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def colab_url(name: str, folder: str | os.PathLike = ASSIGNMENTS_DIR) -> str:
    """The Colab address of the student copy ``folder/name.ipynb`` (default folder: the assignments,
    e.g. name "A1_sparse_vd_from_scratch")."""
    return COLAB_URL.format(name=name, folder=Path(folder).as_posix())


def rewrite_links(text: str, source_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  siblings: frozenset | set = frozenset()) -> str:
    """Rewrite the relative markdown links of ``text`` (written for a notebook in ``source_dir``) so
    that they work from ``out_dir``. A link to ``NAME.ipynb`` in ``source_dir`` with NAME in
    ``siblings`` (notebooks that get a student copy too) points at that student copy instead.
    Absolute addresses, anchors (``#...``) and absolute paths are left alone."""
    source_dir, out_dir = Path(os.path.normpath(source_dir)), Path(os.path.normpath(out_dir))

    def fix(match: re.Match) -> str:
        target, _, anchor = match.group(1).partition("#")
        if not target:
            return match.group(0)
        resolved = Path(os.path.normpath(source_dir / target))
        if resolved.suffix == ".ipynb" and resolved.parent == source_dir and resolved.stem in siblings:
            resolved = out_dir / resolved.name
        new = Path(os.path.relpath(resolved, out_dir)).as_posix()
        return f"]({new}{'#' + anchor if anchor else ''})"

    return _MD_LINK.sub(fix, text)


def _python_source(source: str) -> str:
    """Cell source as plain Python (IPython magics such as %pip turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return source


def _defined_names(source: str, where: str) -> set[str]:
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError as err:
        raise MarkerError(f"{where} is not valid Python after stripping the solutions (line "
                          f"{err.lineno}: {err.msg}); put the markers inside a function body or "
                          f"around whole statements") from None
    return {n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def student_notebook(solution, name: str, out_dir: str | os.PathLike = ASSIGNMENTS_DIR,
                     need_regions: bool = True, source_dir: str | os.PathLike | None = None,
                     siblings: frozenset | set = frozenset(),
                     link_dir: str | os.PathLike | None = None):
    """The student copy (an nbformat notebook) of the solution notebook ``solution``.

    Strips the solution regions, clears outputs and execution counts, points the Colab badge at
    ``out_dir/NAME.ipynb`` (default ``notebooks/assignments``, relative to the repository root),
    rewrites relative links from ``source_dir`` to ``link_dir`` (default ``out_dir``;
    ``rewrite_links``; skipped when ``source_dir`` is None), keeps
    only the kernelspec in the metadata (no jupytext pairing: students get the .ipynb alone) and
    numbers the cell ids, so that the build is byte-for-byte reproducible. Raises ``MarkerError`` on
    bad markers, on a code cell that is no longer valid Python, on a function or class of the
    solution missing from the student copy, and (``need_regions``) on a notebook without a region.
    """
    import nbformat

    cells = []
    n_regions = n_badges = 0
    for index, cell in enumerate(solution.cells):
        where = f"{name}, cell {index}"
        source = cell.source
        n_regions += source.count(BEGIN)
        if cell.cell_type == "code":
            student = strip_solutions(source, where=where)
            missing = _defined_names(source, where) - _defined_names(student, where)
            if missing:
                raise MarkerError(f"{where}: the student copy no longer defines "
                                  f"{', '.join(sorted(missing))}; put the markers inside the body "
                                  f"so that the names stay identical")
            new = nbformat.v4.new_code_cell(student)
            tags = cell.metadata.get("tags")
            if tags:
                new.metadata["tags"] = list(tags)
        elif cell.cell_type == "markdown":
            student = strip_solutions(source, markdown=True, where=where)
            student, k = _COLAB_LINK.subn(colab_url(name, out_dir), student)
            if source_dir is not None:
                student = rewrite_links(student, source_dir,
                                        out_dir if link_dir is None else link_dir, siblings)
            n_badges += k
            new = nbformat.v4.new_markdown_cell(student)
        else:
            new = nbformat.v4.new_raw_cell(source)
        new["id"] = f"cell-{index:03d}"
        cells.append(new)
    if n_regions == 0 and need_regions:
        raise MarkerError(f"{name}: no {BEGIN} region; a solution notebook marks its exercises")
    if n_badges == 0:
        raise MarkerError(f"{name}: no Colab badge; add one to the title cell "
                          f"(the build points it at {colab_url(name, out_dir)})")
    student_nb = nbformat.v4.new_notebook(cells=cells)
    student_nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)",
                                         "language": "python", "name": "python3"}
    return student_nb


def _read_solution(path: Path):
    import jupytext

    py = path.with_suffix(".py")
    return jupytext.read(py if py.exists() else path)


def render(solution_path: str | os.PathLike, out_dir: str | os.PathLike = ASSIGNMENTS_DIR,
           need_regions: bool = True, siblings: frozenset | set = frozenset()) -> str:
    """The text of the student notebook built from ``solution_path`` (the ``.py`` source when it
    exists, else the ``.ipynb``) for the folder ``out_dir``."""
    import nbformat

    path = Path(solution_path)
    student = student_notebook(_read_solution(path), path.stem, out_dir=_colab_folder(out_dir),
                               need_regions=need_regions, source_dir=path.parent.resolve(),
                               link_dir=Path(out_dir).resolve(), siblings=siblings)
    text = nbformat.writes(student)
    return text if text.endswith("\n") else text + "\n"


def _colab_folder(out_dir: str | os.PathLike) -> Path:
    """The folder of the Colab address: ``out_dir`` relative to the repository root, so that it does
    not depend on where the build runs; a folder outside the repository (a test's temporary tree)
    counts as ``notebooks/<its name>``."""
    root = Path(__file__).resolve().parents[1]
    try:
        return Path(out_dir).resolve().relative_to(root)
    except ValueError:
        return Path("notebooks") / Path(out_dir).name


def _solution_sources(solutions: Path, pattern: str = "*") -> list[Path]:
    names = sorted({p.stem for p in solutions.glob(f"{pattern}.py")}
                   | {p.stem for p in solutions.glob(f"{pattern}.ipynb")})
    return [solutions / f"{n}.py" if (solutions / f"{n}.py").exists() else solutions / f"{n}.ipynb"
            for n in names]


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def write_or_check(target: Path, text: str, src: Path, check: bool) -> str | None:
    """Write a built notebook (atomically), or with ``check`` compare it with the committed one:
    the problem found, if any. One rule for the student copies and the nbgrader sources."""
    if not check:
        _write_atomic(target, text)
        return None
    if not target.exists():
        return f"{target}: missing"
    if target.read_text(encoding="utf-8") != text:
        return f"{target}: differs from the build of {src}"
    return None


def build(solutions: str | os.PathLike = SOLUTIONS_DIR, out: str | os.PathLike = ASSIGNMENTS_DIR,
          check: bool = False, pattern: str = "*", need_regions: bool = True) -> list[str]:
    """Build every student notebook of ``solutions`` (the sources ``PATTERN.py`` / ``PATTERN.ipynb``)
    into ``out`` (written atomically).

    With ``check``, write nothing and return the problems instead: a student notebook that is
    missing, differs from what the build produces, or has no source. Without ``check``, return the
    names written. ``[]`` from a check means everything is up to date. ``need_regions``: a source
    without a solution region is an error (the assignments); else it gets a copy all the same.
    """
    solutions, out = Path(solutions), Path(out)
    sources = _solution_sources(solutions, pattern)
    if not sources:
        raise FileNotFoundError(f"no source notebooks ({pattern}.py or {pattern}.ipynb) in {solutions}")
    siblings = frozenset(s.stem for s in sources)
    problems, written = [], []
    for src in sources:
        target = out / f"{src.stem}.ipynb"
        text = render(src, out, need_regions=need_regions, siblings=siblings)
        problem = write_or_check(target, text, src, check)
        if problem:
            problems.append(problem)
        elif not check:
            written.append(str(target))
    if check:
        stems = {s.stem for s in sources}
        for extra in sorted(out.glob("*.ipynb")):
            if extra.stem not in stems:
                problems.append(f"{extra}: no solution notebook {solutions / extra.stem}.py")
        return problems
    return written


def build_all(check: bool = False, root: str | os.PathLike | None = None) -> list[str]:
    """``build`` every group of ``GROUPS`` (the assignments and the lecture notebooks), with the
    folders taken relative to ``root`` (default: the working directory). Returns the names written,
    or with ``check`` the problems of all groups."""
    root = Path(root) if root is not None else Path()
    result: list[str] = []
    for group in GROUPS:
        result += build(root / group.sources, root / group.out, check=check, pattern=group.pattern,
                        need_regions=group.need_regions)
    return result + _nbgrader_sources(None, check, root)


def _nbgrader_sources(out, check: bool, root: str | os.PathLike | None = None) -> list[str]:
    """The nbgrader sources of every group (``sparsevd_lab.grading``, docs/grading.md), into ``out``
    (default ``notebooks/nbgrader/source`` under ``root``)."""
    from . import grading  # build tooling, kept apart from what students import

    root = Path(root) if root is not None else Path()
    return grading.build_sources(out if out is not None else root / grading.SOURCE_DIR, check=check,
                                 root=root)


def verify(path: str | os.PathLike, fast: bool = True, timeout: int | None = None,
           write: bool = False, startup_timeout: int = 600) -> list[dict]:
    """Execute the student notebook ``path`` cell by cell (errors allowed, as Neuromatch's executor
    does) and return the errors, one {"cell", "ename", "evalue", "cascade"} per failing cell. Raises
    ``AssertionError`` listing them when any error is not a NotImplementedError from a stub or a
    cascade of one (``cascade``: a NameError for a name that a cell stopped by a stub, or by such a
    NameError, would have defined; e.g. ``net`` in a later cell when ``net = build(...)`` stopped).
    A solution notebook verifies with no error at all. ``write`` saves the executed notebook (with
    its outputs) back to ``path``.

    Runs with ``sparsevd_lab.notebook.run_notebook``: inline figures, ``timeout`` seconds per cell
    (default 300 in fast mode, 600 in default mode; a stall, the kernel idle and no reply,
    fails after 30 s), a cell whose reply never comes named by its
    number; the kernel may take up to ``startup_timeout`` seconds to start."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from .notebook import run_notebook

    path = Path(path)
    # A kernel that dies, or a cell that stalls (seen now and then on a loaded machine), is not the
    # student's mistake: one fresh kernel gets a second try.
    for attempt in (1, 2):
        notebook = nbformat.read(path, as_version=4)
        try:
            run_notebook(notebook, path.parent, fast, timeout, name=path.name, allow_errors=True,
                         startup_timeout=startup_timeout)
            break
        except (CellTimeoutError, DeadKernelError) as err:
            if attempt == 2:
                raise
            print(f"verify {path.name}: {type(err).__name__} ({err}); once more with a fresh "
                  f"kernel", file=sys.stderr, flush=True)
    if write:
        _write_atomic(path, nbformat.writes(notebook))
    errors = []
    missing: set[str] = set()  # names a failed cell would have defined
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            error = {"cell": index, "ename": output["ename"], "evalue": output["evalue"],
                     "cascade": _is_cascade(output["ename"], output["evalue"], missing)}
            errors.append(error)
            if error["ename"] == "NotImplementedError" or error["cascade"]:
                missing |= _assigned_names(cell.source)
    bad = [e for e in errors if e["ename"] != "NotImplementedError" and not e["cascade"]]
    if bad:
        raise AssertionError(f"{path.name}: errors other than NotImplementedError: " + "; ".join(
            f"cell {e['cell']}: {e['ename']}: {e['evalue']}" for e in bad))
    return errors


_NAME_ERROR = re.compile(r"name '([^']+)' is not defined")


def _is_cascade(ename: str, evalue: str, missing: set[str]) -> bool:
    """A NameError for a name that an earlier cell would have defined had it not stopped at a stub
    (or at such a NameError itself): a consequence of an unfilled stub, not a bug of the notebook."""
    match = _NAME_ERROR.search(evalue or "")
    return ename == "NameError" and match is not None and match.group(1) in missing


def _assigned_names(source: str) -> set[str]:
    """The names a cell binds at its top level (assignments, for/with targets, defs, imports)."""
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError:
        return set()
    names: set[str] = set()

    def targets(node) -> None:
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                targets(t)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
            targets(node.target)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets(node.optional_vars)
        elif isinstance(node, ast.NamedExpr):
            targets(node.target)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _groups(args) -> list[Group]:
    """The groups named on the command line: all of ``GROUPS``, or one folder pair."""
    if args.solutions is None and args.out is None:
        return list(GROUPS)
    if args.solutions is None or args.out is None:
        raise FileNotFoundError("give both --solutions and --out (or neither: every group)")
    return [Group("given", Path(args.solutions), Path(args.out), args.pattern, True)]


def main(argv=None) -> int:
    """python -m sparsevd_lab.assignments {build [--check], verify}"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sparsevd_lab.assignments",
                                     description="Build student notebooks from the notebooks with "
                                                 "their solutions.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write notebooks/assignments/*.ipynb from notebooks/solutions/ "
                                     "and notebooks/student/NN_*.ipynb from notebooks/NN_*.py")
    b.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a committed student notebook is stale")
    b.add_argument("--nbgrader", default=None, metavar="DIR",
                   help="where the nbgrader sources go (default notebooks/nbgrader/source; "
                        "docs/grading.md)")
    v = sub.add_parser("verify", help="run the student notebooks: only NotImplementedError allowed")
    v.add_argument("--default", action="store_true", help="run in default mode (not fast)")
    for p in (b, v):
        p.add_argument("--solutions", default=None,
                       help="one source folder (default: every group, assignments and lecture "
                            "notebooks)")
        p.add_argument("--out", default=None, help="its student notebooks folder")
        p.add_argument("--pattern", default="*", help="source names in --solutions (glob, no suffix)")
    args = parser.parse_args(argv)
    try:
        groups = _groups(args)
        if args.command == "build" and args.check:
            problems = []
            for g in groups:
                problems += build(g.sources, g.out, check=True, pattern=g.pattern,
                                  need_regions=g.need_regions)
            if args.solutions is None:
                problems += _nbgrader_sources(args.nbgrader, check=True)
            for p in problems:
                print(f"stale: {p}", file=sys.stderr)
            if problems:
                print("rebuild with: python -m sparsevd_lab.assignments build", file=sys.stderr)
                return 1
            print(f"student notebooks in {', '.join(str(g.out) for g in groups)} are up to date")
            return 0
        if args.command == "build":
            for g in groups:
                for path in build(g.sources, g.out, pattern=g.pattern, need_regions=g.need_regions):
                    print(f"wrote {path}")
            for path in _nbgrader_sources(args.nbgrader, False) if args.solutions is None else []:
                print(f"wrote {path}")
            return 0
        for g in groups:
            for src in _solution_sources(Path(g.sources), g.pattern):
                target = Path(g.out) / f"{src.stem}.ipynb"
                errors = verify(target, fast=not args.default)
                print(f"{target}: {len(errors)} cell(s) stopped at NotImplementedError (unfilled "
                      f"stubs), no other error")
        return 0
    except (MarkerError, FileNotFoundError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
