"""Setup helpers for the notebooks: version check, run modes, figure files, data checks.

Every notebook's first cell imports the package and calls ``require(MIN_VERSION)``; it stops there
with a message that says what to do when the package is too old, or when the chosen data set needs a
download and this machine is offline. The modes come from the environment (docs/CONVENTIONS.md):

- ``SPARSEVD_FAST=1``: fast (CI) mode, tiny data and few epochs, no figure files;
- default: the student mode, at most 10 minutes per notebook on a 2-core CPU, no network;
- ``SPARSEVD_RETRAIN=1``: opt in to live training of what is otherwise loaded from shipped results;
- ``SPARSEVD_DATASET``: the data set (default ``offline-digits``; ``mnist`` downloads full MNIST);
- ``SPARSEVD_FIGURES``: the folder for saved figures (default ``figures`` beside the notebook);
- ``SPARSEVD_FIGURE_FORMATS``: extra formats every saved figure is also written in, for slides
  (comma-separated, from png, svg, pdf; e.g. ``SPARSEVD_FIGURE_FORMATS=svg,pdf``).
"""
from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from .files import atomic_path
from .settings import parse_flag, settings

__all__ = [
    "FAST",
    "RETRAIN",
    "DATASET",
    "env_flag",
    "mode",
    "parse_version",
    "require",
    "check_data",
    "figure_dir",
    "figure_path",
    "FIGURE_FORMATS",
    "figure_formats",
    "savefig",
    "elapsed",
    "PIP_SPEC",
    "shipped_result",
    "clean_metadata",
    "execute",
    "run_notebook",
    "kernel_env",
    "cell_timeout",
    "count_images",
    "INLINE_BACKEND",
    "main",
]

PIP_SPEC = "sparsevd-lab @ git+https://github.com/sparsevd-lab/sparsevd-lab"
_START = time.perf_counter()


def env_flag(name: str, default: bool = False) -> bool:
    """True for "1", "true", "yes", "on" (any case); False for "", "0", "false", "no", "off"
    (``sparsevd_lab.settings.parse_flag``, the one parser of every SPARSEVD_* flag)."""
    return parse_flag(name, os.environ.get(name), default)


FAST = settings().fast
RETRAIN = settings().retrain
DATASET = settings().dataset


def mode() -> str:
    """"fast" when SPARSEVD_FAST is set, else "default" (read from the environment at call time)."""
    return "fast" if settings().fast else "default"


def parse_version(version: str) -> tuple[int, ...]:
    """"0.1.0" -> (0, 1, 0); a suffix such as ".dev3" or "+local" is ignored."""
    parts = []
    for piece in str(version).split("+")[0].split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(parts)


def _installed_version() -> str:
    from . import __version__

    return __version__


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def require(min_version: str, dataset: str | None = None, verbose: bool = True) -> str:
    """Check that the installed package is at least ``min_version``; return the installed version.

    With ``dataset``, also check that the data set can be had (``check_data``). Raises
    ``RuntimeError`` with what to do; prints one line about the setup when ``verbose``.
    """
    installed = _installed_version()
    if parse_version(installed) < parse_version(min_version):
        how = ("rerun the first cell (Runtime > Restart session first)" if _in_colab() else
               f'pip install -U "{PIP_SPEC}"  (or, in a clone: pip install -e .)')
        raise RuntimeError(
            f"this notebook needs sparsevd_lab >= {min_version}, but {installed} is installed. "
            f"Update it: {how}; then restart the kernel."
        )
    if dataset is not None:
        check_data(dataset)
    if verbose:
        import torch

        print(f"sparsevd_lab {installed} | mode: {mode()} | retrain: {settings().retrain} "
              f"| torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
              f"{', CUDA' if torch.cuda.is_available() else ''}")
    return installed


def _online(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_data(dataset: str, root=None, online=_online) -> str:
    """Return "offline", "cached" or "online" for ``dataset`` (``sparsevd_lab.data.DATASETS``); raise
    ``RuntimeError`` with what to do when it needs a download that cannot happen (no cached copy and
    no network, or SPARSEVD_OFFLINE on)."""
    from . import data

    if dataset not in data.DATASETS:
        raise RuntimeError(f"unknown data set {dataset!r}; choose one of {', '.join(data.DATASETS)}")
    info = data.DATASETS[dataset]
    have = info.available(root)
    if have is not None:
        return have
    if not settings().offline and any(online(u) for u in info.download[2]):
        return "online"
    raise RuntimeError(
        f"the data set {dataset!r} must be downloaded, but this machine is offline (or SPARSEVD_OFFLINE "
        f"is on) and it is not in the cache {data.cache_dir(root)}. Connect to the internet, copy the "
        f"files into that folder, or run with SPARSEVD_DATASET=offline-digits (5,000 real MNIST digits, "
        f"no network needed)."
    )


def figure_dir() -> Path:
    """The folder for saved figures: $SPARSEVD_FIGURES, else ``figures`` in the working directory
    (the notebooks folder when a notebook runs)."""
    return settings().figures


def figure_path(name: str) -> Path:
    """Path for figure file ``name`` (a bare file name such as "01_priors.png"); creates the folder."""
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a bare file name like '01_priors.png'; got {name!r}")
    folder = figure_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_formats() -> tuple[str, ...]:
    """The extra formats of $SPARSEVD_FIGURE_FORMATS (comma-separated, any case, e.g. "svg,pdf"),
    in the order given, without repeats; () when unset or empty. The one place the switch is read.
    Raises ``ValueError`` naming the allowed formats for anything else."""
    raw = settings().figure_formats
    formats: list[str] = []
    for piece in raw.split(","):
        fmt = piece.strip().lower().lstrip(".")
        if not fmt:
            continue
        if fmt not in FIGURE_FORMATS:
            raise ValueError(f"SPARSEVD_FIGURE_FORMATS={raw!r}: {fmt!r} is not a figure format this "
                             f"package writes; use a comma-separated list of {', '.join(FIGURE_FORMATS)} "
                             f"(e.g. SPARSEVD_FIGURE_FORMATS=svg,pdf), or unset it")
        if fmt not in formats:
            formats.append(fmt)
    return tuple(formats)


def _write_figure(fig, path: Path, dpi: int) -> None:
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")


def savefig(fig, name: str, force: bool = False, dpi: int = 110) -> Path | None:
    """Save ``fig`` as ``figures/name`` in default mode (not in fast mode unless ``force``), and
    also in each format of $SPARSEVD_FIGURE_FORMATS (``figure_formats``): with
    ``SPARSEVD_FIGURE_FORMATS=svg,pdf``, "01_priors.png" also gives 01_priors.svg and 01_priors.pdf.

    Each file is written to a temporary file and renamed, so no half-written figure is left behind.
    Returns the path of ``name``, or None when nothing was saved.
    """
    if mode() == "fast" and not force:
        return None
    extra = figure_formats()  # read (and a bad value reported) before anything is written
    path = figure_path(name)
    _write_figure(fig, path, dpi)
    for fmt in extra:
        if fmt != path.suffix.lstrip(".").lower():
            _write_figure(fig, path.with_suffix("." + fmt), dpi)
    return path


def elapsed() -> str:
    """Time since this module was imported (the notebook's first cell), e.g. "1 min 05 s"."""
    s = time.perf_counter() - _START
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def shipped_result(name: str, dataset: str | None = None, live_epochs: int | None = None,
                   retrain: bool | None = None, verbose: bool = True) -> dict:
    """The shipped result of experiment ``name`` (``sparsevd_lab.experiments.load_result``).

    When it is missing, or with ``retrain`` (default: $SPARSEVD_RETRAIN), run a small live version
    instead (fast mode: a data subset and ``live_epochs`` epochs) and say so; its files go to a
    temporary folder. ``result["live"]`` tells which happened."""
    from . import experiments as ex

    retrain = settings().retrain if retrain is None else retrain
    if not retrain:
        try:
            res = ex.load_result(name, dataset=dataset)
            res["live"] = False
            if verbose:
                p = res["provenance"]
                # a run resumed over sittings: the epochs of all of them, not its last sitting
                seconds = (p.get("train_time_s") if p.get("resumed_checkpoints") else None) \
                    or p["wall_time_s"]
                print(f"loaded the shipped result {res['files']['result']} ({p['epochs_note']}; "
                      f"{seconds / 60:.0f} min on {p.get('device', 'cpu')})")
            return res
        except FileNotFoundError as err:
            if verbose:
                print(f"no shipped result ({err}); computing a small version live instead")
    out = tempfile.mkdtemp(prefix=f"sparsevd_{name}_")
    start = time.perf_counter()
    ex.run_experiment(name, dataset=dataset, fast=True, epochs=live_epochs, out=out)
    res = ex.load_result(name, dataset=dataset, root=out, fast=True)
    res["live"] = True
    if verbose:
        print(f"trained live in {time.perf_counter() - start:.0f} s: "
              f"{res['provenance']['epochs_note']}")
    return res


# --------------------------------------------------------------------------------------------------
# Building the committed notebooks: .py (jupytext, the source) -> executed .ipynb with clean metadata
# --------------------------------------------------------------------------------------------------

KEEP_METADATA = ("kernelspec", "jupytext")


def clean_metadata(notebook) -> object:
    """Strip what must not be committed: widget state, execution timestamps, language_info, papermill
    and other tool metadata. Keeps the kernelspec (python3) and jupytext's ``formats`` only."""
    md = notebook.metadata
    for key in list(md):
        if key not in KEEP_METADATA:
            del md[key]
    md["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                        "name": "python3"}
    md["jupytext"] = {"formats": "ipynb,py:percent"}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("scrolled", None)
    return notebook


# The kernel draws with the inline backend whatever the caller's environment says (a test runner or
# a CI job often exports MPLBACKEND=Agg, and then plt.show() leaves no image in the notebook).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# Per-cell limits (seconds) for a cell that keeps the kernel busy: a fast (CI) cell may still build
# the compiled kernels on a cold cache (minutes on a loaded 2-core machine), a default-mode cell may
# train for minutes. A stall is told apart and fails sooner: STALL_S after the kernel said "idle" for
# the cell without its execute reply being seen (what nbclient issue 312 looks like).
CELL_TIMEOUT = {"fast": 300, "default": 600}
STALL_S = 30
# Each wait on a kernel channel is cut into slices this long. A wait on a zmq socket from asyncio can
# miss the wake-up of a message that is already there (nbclient issue 312, seen on the widget cells of
# notebook 06): the poll then only returns at its timeout, which nbclient sets to the whole cell
# timeout. A short slice ends with one more look at the socket, so a missed reply costs a second.
POLL_S = 1.0


def kernel_env(fast: bool, base: dict | None = None) -> dict[str, str]:
    """The environment of a kernel that executes a notebook headless: ``base`` (default: this
    process's), the run mode (SPARSEVD_FAST) and the inline matplotlib backend (MPLBACKEND), so that
    every figure lands in the notebook as an image."""
    env = dict(os.environ if base is None else base)
    env["SPARSEVD_FAST"] = "1" if fast else "0"
    env["MPLBACKEND"] = INLINE_BACKEND
    return env


def cell_timeout(fast: bool) -> int:
    """The per-cell limit in seconds of a headless run in that mode (``CELL_TIMEOUT``)."""
    return CELL_TIMEOUT["fast" if fast else "default"]


def _client_class():
    """NotebookClient with its two channel waits cut into ``POLL_S`` slices (see POLL_S), a stall
    (kernel idle, reply unseen for ``STALL_S``) reported as a CellTimeoutError, and the index of the
    running cell kept for error messages."""
    import asyncio
    from queue import Empty
    from time import monotonic

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete, CellTimeoutError
    from nbclient.util import ensure_async

    class SlicedPollClient(NotebookClient):
        cell_index: int | None = None

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            self.cell_index = cell_index
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            while True:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=POLL_S))
                except Empty:
                    continue
                if msg["parent_header"].get("msg_id") == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)  # raises when the cell is done
                    except CellExecutionComplete:
                        return

        async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg,
                                        task_poll_kernel_alive):
            deadline = None if timeout is None else monotonic() + timeout
            idle_since = None
            while True:
                try:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=POLL_S))
                except Empty:
                    now = monotonic()
                    if task_poll_output_msg.done():  # the kernel is idle: the reply is due
                        idle_since = now if idle_since is None else idle_since
                        if now - idle_since > STALL_S:
                            task_poll_kernel_alive.cancel()
                            raise CellTimeoutError.error_from_timeout_and_cell(
                                f"Kernel idle but no execute reply for {STALL_S} s", STALL_S, cell)
                    if deadline is not None and now > deadline:
                        task_poll_kernel_alive.cancel()
                        await self._async_check_alive()
                        await self._async_handle_timeout(timeout, cell)  # raises CellTimeoutError
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                try:
                    await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
                except (asyncio.TimeoutError, Empty):
                    task_poll_kernel_alive.cancel()
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Timeout waiting for the cell's last output", self.iopub_timeout, cell) from None
                task_poll_kernel_alive.cancel()
                return msg

    return SlicedPollClient


def run_notebook(notebook, cwd: str | os.PathLike, fast: bool, timeout: int | None = None,
                 name: str = "notebook", **options):
    """Execute ``notebook`` (an nbformat NotebookNode, in place) headless in a fresh python3 kernel
    started in ``cwd``, in fast or default mode, with the inline backend (``kernel_env``).

    Each cell gets ``timeout`` seconds (default ``cell_timeout(fast)``); a cell that runs longer, or
    whose reply never arrives, fails with ``CellTimeoutError`` naming its cell number. ``options``
    go to nbclient's NotebookClient (e.g. ``allow_errors=True``, ``startup_timeout=600``)."""
    from nbclient.exceptions import CellTimeoutError

    timeout = cell_timeout(fast) if timeout is None else int(timeout)
    options.setdefault("kernel_name", "python3")
    # the iopub wait after the reply is short: with sliced polls nothing is missed, so a cell whose
    # outputs stop coming for this long is a fault worth naming
    options.setdefault("iopub_timeout", 30)
    options.setdefault("raise_on_iopub_timeout", True)
    client = _client_class()(notebook, timeout=timeout,
                             resources={"metadata": {"path": str(Path(cwd).resolve())}}, **options)
    try:
        client.execute(env=kernel_env(fast))
    except CellTimeoutError as err:
        index = client.cell_index
        raise CellTimeoutError(f"{name}: cell {index} (0-based, of {len(notebook.cells)} cells) did "
                               f"not finish: {err}") from err
    return notebook


def execute(source: str | os.PathLike, fast: bool = False, timeout: int | None = None,
            write: bool = True, out: str | os.PathLike | None = None) -> dict:
    """Execute notebook ``source`` (``NN_name.py`` or ``.ipynb``; the .py is the source of truth)
    from its own folder with nbclient, in fast or default mode (``run_notebook``: inline figures, a
    per-cell ``timeout``, default ``cell_timeout(fast)``, a stalled cell named by its number), clean
    its metadata and write ``NN_name.ipynb`` atomically beside the source, or into the folder
    ``out``. Returns {"notebook", "mode", "seconds", "path", "images"}: ``images`` counts the image
    outputs (PNG, SVG or JPEG)."""
    import jupytext
    import nbformat

    source = Path(source)
    py = source.with_suffix(".py")
    nbk = jupytext.read(py if py.exists() else source)
    start = time.perf_counter()
    run_notebook(nbk, py.parent, fast, timeout, name=py.stem, store_widget_state=True,
                 record_timing=False)
    seconds = time.perf_counter() - start
    clean_metadata(nbk)
    target = (Path(out) if out is not None else py.parent) / py.with_suffix(".ipynb").name
    if write:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            nbformat.write(nbk, str(tmp))
    return {"notebook": target.name, "mode": "fast" if fast else "default",
            "seconds": round(seconds, 1), "path": str(target), "images": count_images(nbk)}


IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


def count_images(notebook) -> int:
    """The number of image outputs (PNG, SVG, JPEG) in an executed notebook."""
    return sum(1 for cell in notebook.cells for o in cell.get("outputs", [])
               if any(t in o.get("data", {}) for t in IMAGE_TYPES))


def main(argv=None) -> int:
    """``python -m sparsevd_lab.notebook [--fast] [--no-write] [--out DIR] NOTEBOOK...``: execute
    and write."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sparsevd_lab.notebook", description=main.__doc__)
    parser.add_argument("notebooks", nargs="+", help="notebooks/NN_name.py (or .ipynb)")
    parser.add_argument("--fast", action="store_true", help="run in fast (CI) mode")
    parser.add_argument("--no-write", action="store_true", help="execute only, write nothing")
    parser.add_argument("--out", default=None,
                        help="write the executed notebooks into this folder (default: beside the source)")
    parser.add_argument("--timeout", type=int, default=None,
                        help=f"seconds per cell (default {CELL_TIMEOUT['fast']} in fast mode, "
                             f"{CELL_TIMEOUT['default']} in default mode)")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        info = execute(path, fast=args.fast, timeout=args.timeout, write=not args.no_write,
                       out=args.out)
        print(f"{info['notebook']}: {info['mode']} mode, {info['seconds']} s, {info['images']} "
              f"image(s){'' if args.no_write else ' -> ' + info['path']}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
