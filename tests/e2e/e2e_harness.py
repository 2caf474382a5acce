"""The machinery of the end-to-end tests: a JupyterLab server, headless Chromium, and helpers that
drive a notebook in a real JupyterLab page (run all cells, find errors, drag ipywidgets sliders with
the mouse, read the widget's table and figure).

Nothing here is a test. Every failure to set something up raises ``SetupError`` with a message that
names what failed (Chromium or JupyterLab) and why, with the tail of the server's log.
"""
from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps trying to reach Google's services, and a closed network
# answers with a flood of refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
INSTALL_HINT = ("apt-get update && apt-get install -y chromium  (Debian's browser, /usr/bin/chromium); "
                "pip install 'playwright>=1.40' jupyterlab  (no 'playwright install' needed)")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SetupError(AssertionError):
    """Chromium or JupyterLab could not be started; the message says which and why."""


class NotebookRunError(AssertionError):
    """A notebook did not run cleanly: a cell raised, the kernel died, or the run did not finish."""


# --------------------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------------------

def chromium_path() -> str:
    """$SPARSEVD_CHROMIUM, else /usr/bin/chromium (Debian's package ``chromium``)."""
    return os.environ.get("SPARSEVD_CHROMIUM", DEFAULT_CHROMIUM)


def chromium_problem(path: str | None = None) -> str | None:
    """Why Chromium cannot be used (None when it looks usable): missing binary or no playwright."""
    path = path or chromium_path()
    if not os.path.exists(path):
        return f"Chromium is not installed: no file {path}. Install it: {INSTALL_HINT}"
    if not os.access(path, os.X_OK):
        return f"Chromium at {path} is not executable"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"the Python package playwright is missing ({err}). Install it: {INSTALL_HINT}"
    return None


def launch_chromium(playwright, path: str | None = None, timeout_s: float = 60):
    """Start headless Chromium through Playwright; ``SetupError`` naming Chromium when it cannot."""
    path = path or chromium_path()
    problem = chromium_problem(path)
    if problem:
        raise SetupError(problem)
    try:
        return playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS,
                                          timeout=timeout_s * 1000)
    except Exception as err:  # playwright's error carries the browser's own log
        version = _run_quiet([path, "--version"])
        raise SetupError(f"Chromium ({path}, {version or 'version unknown'}) could not start "
                         f"headless with {' '.join(CHROMIUM_ARGS)}: {err}") from err


def _run_quiet(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --------------------------------------------------------------------------------------------------
# JupyterLab
# --------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as err:
        return f"(no log: {err})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


def prepare_notebooks(dest: Path, names: list[str] | None = None) -> list[str]:
    """Write ``NN_name.ipynb`` into ``dest`` from the jupytext sources ``notebooks/NN_name.py`` (the
    source of truth), without outputs, so every output on the page comes from this run and the
    committed notebooks are never touched. Returns the notebook file names."""
    import jupytext

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for py in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        if names is not None and py.stem not in names:
            continue
        nbk = jupytext.read(py)
        nbk.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                      "name": "python3"}
        jupytext.write(nbk, dest / f"{py.stem}.ipynb", fmt="ipynb")
        written.append(f"{py.stem}.ipynb")
    return written


@dataclass
class Lab:
    """A running JupyterLab server (``start_lab``); ``stop()`` ends it and every process it began."""

    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path
    cmd: list[str]
    descendants: set = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5):
        req = urllib.request.Request(self.base + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def _scan_descendants(self) -> None:
        """Remember every live process below the server (kernels run in sessions of their own, so
        killing the server's process group alone would leave them behind)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                ppid = int(text.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        todo = [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in self.descendants:
                    self.descendants.add(child)
                    todo.append(child)

    def stop(self, grace_s: float = 10) -> None:
        """Shut the kernels down, end the server's process group (TERM, then KILL), then any
        process that was below it. Safe to call twice."""
        if self.proc.poll() is None:
            self._scan_descendants()
            try:
                for k in self.api("api/kernels"):
                    self.api(f"api/kernels/{k['id']}", method="DELETE", timeout=10)
            except (OSError, urllib.error.URLError, ValueError):
                pass
            self._scan_descendants()
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace_s)
        for pid in sorted(self.descendants):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_lab(root: Path, workdir: Path, timeout_s: float = 120, python: str | None = None,
              extra_env: dict | None = None) -> Lab:
    """Start ``python -m jupyterlab`` on a free loopback port with a random token, serving ``root``,
    with SPARSEVD_FAST=1 for the kernels and every Jupyter setting/runtime folder inside ``workdir``.
    Waits until the server answers; ``SetupError`` (naming JupyterLab, with its log) otherwise."""
    import secrets

    python = python or sys.executable
    workdir.mkdir(parents=True, exist_ok=True)
    for d in ("config", "data", "runtime", "settings", "workspaces"):
        (workdir / d).mkdir(exist_ok=True)
    config = workdir / "config" / "jupyter_server_config.py"
    config.write_text(
        "c.LabApp.news_url = None\n"
        "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
        "c.LabApp.expose_app_in_browser = True\n"
        "c.ServerApp.open_browser = False\n"
        "c.ServerApp.port_retries = 0\n"
        f"c.ServerApp.allow_root = {os.geteuid() == 0}\n"  # CI containers run as root
        "c.LabApp.extension_manager = 'readonly'\n"  # no look-ups on PyPI
        "c.ServerApp.shutdown_no_activity_timeout = 1800\n"  # a last guard against a leftover server
        "c.MappingKernelManager.cull_idle_timeout = 0\n"
    )
    # User settings of this server only: no "Jupyter news?" toast, no update check over the network.
    notif = workdir / "settings" / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernels must use the inline backend, as for a student
    env.update({
        "SPARSEVD_FAST": "1",
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": str(Path(python).parent) + os.pathsep + env.get("PATH", ""),
    })
    env.update(extra_env or {})
    log = workdir / "jupyterlab.log"
    last_err = None
    for _attempt in range(3):  # a port taken between free_port() and the bind: try another
        port, token = free_port(), secrets.token_hex(16)
        cmd = [python, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               f"--config={config}"]
        if not Path(python).exists():
            raise SetupError(f"JupyterLab cannot start: no Python interpreter at {python}")
        with open(log, "ab") as fh:
            fh.write(f"\n$ {' '.join(cmd[:-4])} --IdentityProvider.token=*** ...\n".encode())
            fh.flush()
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        lab = Lab(proc=proc, port=port, token=token, root=root, log=log, cmd=cmd)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rc = proc.poll()
            if rc is not None:
                break
            try:
                lab.api("api/status", timeout=2)
                return lab
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.3)
        else:
            lab.stop()
            raise SetupError(f"JupyterLab did not answer on 127.0.0.1:{port} within {timeout_s:.0f} s "
                             f"({python} -m jupyterlab). Last lines of its log {log}:\n"
                             f"{lab.log_tail()}")
        lab.stop()
        last_err = (f"JupyterLab exited with code {rc} before it answered on 127.0.0.1:{port} "
                    f"({python} -m jupyterlab). Last lines of its log {log}:\n{lab.log_tail()}")
        if "already in use" not in lab.log_tail(10):
            break
    raise SetupError(last_err)


# --------------------------------------------------------------------------------------------------
# Driving a notebook in the page
# --------------------------------------------------------------------------------------------------

_PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"

_CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((c, i) => ({
    index: i, type: c.model.type, source: c.model.sharedModel.getSource(),
    count: c.model.type === 'code' ? c.model.executionCount : null,
    state: c.model.type === 'code' ? (c.model.executionState || null) : null,
    outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : [],
  }));
}"""

_START_RUN_JS = """() => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  const running = () => panel.content.widgets.findIndex(
      c => c.model.type === 'code' && c.model.executionState === 'running');
  const st = window.__e2e = {done: false, ok: null, error: null, statuses: [], running: -1,
                              lastRunning: -1};
  panel.content.widgets.forEach((c, i) => {
    if (c.model.type === 'code') c.model.stateChanged.connect((m, a) => {
      if (a.name === 'executionState' && a.newValue === 'running') { st.running = i; st.lastRunning = i; }
      if (a.name === 'executionState' && a.newValue === 'idle' && st.running === i) st.running = -1;
    });
  });
  panel.sessionContext.statusChanged.connect((_, s) => {
    const r = running(); st.statuses.push([s, r >= 0 ? r : st.lastRunning]);
  });
  app.commands.execute('notebook:run-all-cells').then(
      r => { st.done = true; st.ok = r; },
      e => { st.done = true; st.error = String(e && e.message || e); });
}"""

_STATUS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget, st = window.__e2e;
  const k = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {done: st.done, ok: st.ok, error: st.error, statuses: st.statuses, running: st.running,
          lastRunning: st.lastRunning, kernel: k ? k.status : 'no kernel',
          connection: k ? k.connectionStatus : null};
}"""

DEAD = ("dead", "autorestarting", "restarting", "terminating")


def open_notebook(page, lab: Lab, name: str, timeout_s: float = 90) -> None:
    """Open ``name`` in JupyterLab (workspace reset) and wait until its kernel is idle."""
    page.goto(lab.url(f"lab/tree/{name}?reset"), wait_until="domcontentloaded",
              timeout=timeout_s * 1000)
    try:
        page.wait_for_function(
            f"() => {_PANEL} && {_PANEL}.context && {_PANEL}.context.path === {json.dumps(name)}",
            timeout=timeout_s * 1000, polling=250)
        page.evaluate("async () => { const p = window.jupyterapp.shell.currentWidget;"
                      " await p.context.ready; await p.sessionContext.ready; }")
        page.wait_for_function(
            f"() => {{ const k = {_PANEL}.sessionContext.session &&"
            f" {_PANEL}.sessionContext.session.kernel; return k && k.status === 'idle'; }}",
            timeout=timeout_s * 1000, polling=250)
    except Exception as err:
        try:
            where = page.evaluate(
                "() => { const a = window.jupyterapp; if (!a) return 'JupyterLab app not loaded';"
                " const w = a.shell.currentWidget; if (!w) return 'no open document';"
                " const k = w.sessionContext && w.sessionContext.session"
                "  && w.sessionContext.session.kernel;"
                " return `open: ${w.title.label}, kernel: ${k ? k.status : 'none'}, dialogs: ` +"
                " Array.from(document.querySelectorAll('.jp-Dialog-header'))"
                "  .map(d => d.textContent).join('; '); }")
            screenshot(page, f"{Path(name).stem}_open_failed")
        except Exception as err2:  # the page itself is gone
            where = f"page unusable: {err2}"
        raise NotebookRunError(f"{name}: the notebook or its kernel did not come up in JupyterLab "
                               f"within {timeout_s:.0f} s ({type(err).__name__}: {err}); page: "
                               f"{where}. Server log:\n{lab.log_tail(25)}") from err


def _cell_head(cells: list[dict], index: int) -> str:
    if index < 0 or index >= len(cells):
        return "(unknown cell)"
    src = cells[index]["source"].strip().splitlines()
    code = [ln for ln in src if ln.strip() and not ln.lstrip().startswith("#")]
    return (code or src or ["(empty)"])[0][:100]


def _cell_label(cells: list[dict], index: int) -> str:
    if index < 0:
        return "an unknown cell"
    code_no = sum(1 for c in cells[:index + 1] if c["type"] == "code")
    return f"cell {index} (code cell {code_no}: {_cell_head(cells, index)!r})"


def _dying_cell(cells: list[dict], fallback: int) -> int:
    """The cell a dead kernel was running: the first code cell of a fresh run that got no execution
    count (the cells before it finished). The front end's 'running' marks race with a quick death,
    so they are only the fallback."""
    for c in cells:
        if c["type"] == "code" and c["count"] is None:
            return c["index"]
    return fallback


def run_all(page, name: str, lab: Lab | None = None, timeout_s: float = 240) -> list[dict]:
    """Run all cells of the open notebook, wait until the run ends and the kernel is idle; report a
    kernel death (with the notebook and the cell it was running) or a run that does not finish.
    Returns the cells (index, type, source, count, outputs) as the notebook model holds them."""
    page.evaluate(_START_RUN_JS)
    deadline = time.monotonic() + timeout_s
    st = None
    while time.monotonic() < deadline:
        st = page.evaluate(_STATUS_JS)
        died = [s for s in st["statuses"] if s[0] in DEAD] or (
            [[st["kernel"], st["lastRunning"]]] if st["kernel"] in DEAD else [])
        if died:
            cells = page.evaluate(_CELLS_JS)
            log = f"\nServer log:\n{lab.log_tail(15)}" if lab else ""
            raise NotebookRunError(f"{name}: the kernel died (status {died[0][0]!r}) while running "
                                   f"{_cell_label(cells, _dying_cell(cells, died[0][1]))}{log}")
        if st["done"] and st["kernel"] == "idle":
            break
        time.sleep(0.5)
    else:
        cells = page.evaluate(_CELLS_JS)
        raise NotebookRunError(f"{name}: Run All Cells did not finish within {timeout_s:.0f} s; "
                               f"kernel {st and st['kernel']!r}, still running "
                               f"{_cell_label(cells, st['running'] if st else -1)}")
    cells = page.evaluate(_CELLS_JS)
    if st["error"]:
        raise NotebookRunError(f"{name}: Run All Cells failed: {st['error']}")
    return cells


def notebook_errors(page, name: str, cells: list[dict]) -> list[str]:
    """Every sign of failure: error outputs in the notebook model, stderr with a traceback, code
    cells that never ran, and error renderings on the page (widget outputs included)."""
    problems = []
    for c in cells:
        if c["type"] != "code":
            continue
        for out in c["outputs"]:
            if out.get("output_type") == "error":
                tb = ANSI.sub("", "\n".join(out.get("traceback") or []))
                problems.append(f"{name}: {_cell_label(cells, c['index'])} raised "
                                f"{out.get('ename')}: {out.get('evalue')}\n{tb[-1500:]}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = ANSI.sub("", "".join(out.get("text") or ""))
                if "Traceback" in text or "Error:" in text:
                    problems.append(f"{name}: {_cell_label(cells, c['index'])} wrote an error to "
                                    f"stderr:\n{text[-1500:]}")
        if c["count"] is None and c["source"].strip():
            problems.append(f"{name}: {_cell_label(cells, c['index'])} never ran")
    # What the page shows, widget Output areas included (their outputs are not in the cells' model).
    shown = page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'))
        .map(e => e.textContent).filter(t => /Traceback|Error:/.test(t))""")
    problems += [f"{name}: the page shows an error output:\n{ANSI.sub('', t)[-1500:]}" for t in shown]
    broken = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .map(e => e.textContent).filter(t => /Error displaying widget|Failed to load model/.test(t))""")
    problems += [f"{name}: a widget did not render: {t[:300]}" for t in broken]
    return problems


def screenshot(page, name: str, locator=None) -> Path:
    """A PNG of the page (or of ``locator``) under tests/e2e/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if locator is not None:
        locator.scroll_into_view_if_needed()
        page.wait_for_function("el => Array.from(el.querySelectorAll('img')).every(i => i.complete)",
                               arg=locator.element_handle(), timeout=10_000)
        page.wait_for_timeout(200)
    (locator or page).screenshot(path=str(path))
    return path


# --------------------------------------------------------------------------------------------------
# ipywidgets 8 sliders (noUiSlider) and the Explorer's output
# --------------------------------------------------------------------------------------------------

def slider(page, explorer_class: str, description: str):
    """The slider with ``description`` in the Explorer ``.sparsevd-<name>`` (widgets.Explorer)."""
    box = page.locator(f".{explorer_class}-controls").first
    loc = box.locator(".widget-slider", has=page.locator(".widget-label",
                                                          has_text=description))
    return loc.first


def slider_state(slider_loc) -> dict:
    """{readout, now, min, max}: the displayed value and the handle's aria range (noUiSlider)."""
    h = slider_loc.locator(".noUi-handle").first
    return {"readout": slider_loc.locator(".widget-readout").first.inner_text().strip(),
            "now": float(h.get_attribute("aria-valuenow")),
            "min": float(h.get_attribute("aria-valuemin")),
            "max": float(h.get_attribute("aria-valuemax"))}


def drag_slider(page, slider_loc, fraction: float, steps: int = 12) -> dict:
    """Drag the slider's handle with the mouse to ``fraction`` (0 = left end, 1 = right end) of its
    track: press on the handle, move in ``steps``, release. Returns the new ``slider_state``."""
    handle_loc = slider_loc.locator(".noUi-handle").first
    now_before = handle_loc.get_attribute("aria-valuenow")
    slider_loc.scroll_into_view_if_needed()
    handle = handle_loc.bounding_box()
    track = slider_loc.locator(".noUi-target").first.bounding_box()
    if not handle or not track:
        raise AssertionError("the slider's handle or track is not visible on the page")
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    tx = track["x"] + min(max(fraction, 0.0), 1.0) * track["width"]
    page.mouse.move(hx, hy)
    page.mouse.down()
    page.mouse.move(tx, hy + 3, steps=steps)
    page.mouse.up()
    try:
        handle_loc.evaluate("(h, v) => new Promise((ok, fail) => { const t0 = Date.now();"
                            " (function poll() { if (h.getAttribute('aria-valuenow') !== v) ok();"
                            " else if (Date.now() - t0 > 10000) fail('unchanged');"
                            " else setTimeout(poll, 100); })(); })", now_before)
    except Exception as err:
        raise AssertionError(f"dragging the slider to {fraction:.2f} of its track did not move it "
                             f"(aria-valuenow stays {now_before})") from err
    return slider_state(slider_loc)


class _TableParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_cells(table_html: str) -> list[list[str]]:
    """The text of every cell of an HTML table, row by row (header rows included)."""
    p = _TableParser()
    p.feed(table_html)
    return p.rows


def expected_cells(table) -> list[list[str]]:
    """What ``widgets.show_table`` puts on the page for DataFrame ``table``, as ``table_cells``."""
    html_text = table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-")
    return table_cells(html_text)


def explorer_output(page, explorer_class: str) -> dict:
    """The Explorer's current caption, table cells and figure (PNG bytes) from the page."""
    out = page.locator(f".{explorer_class}-output").first
    caption = out.locator(f".{explorer_class}-table-caption").first.inner_text().strip()
    table = out.locator(f"table.{explorer_class}-table").first.evaluate("e => e.outerHTML")
    img = out.locator("img").first.get_attribute("src") or ""
    png = base64.b64decode(img.split(",", 1)[1]) if img.startswith("data:image/png") else b""
    return {"caption": caption, "cells": table_cells(table), "png": png}


def wait_for_caption(page, explorer_class: str, caption: str, timeout_s: float = 30) -> None:
    """Wait until the Explorer's output shows ``caption`` (the render for the new setting)."""
    sel = f".{explorer_class}-output .{explorer_class}-table-caption"
    try:
        page.wait_for_function(
            "([sel, cap]) => { const e = document.querySelector(sel);"
            " return e && e.textContent.trim() === cap; }",
            arg=[sel, caption], timeout=timeout_s * 1000, polling=200)
    except Exception as err:
        shown = page.locator(sel).first.inner_text() if page.locator(sel).count() else "(none)"
        raise AssertionError(f"the {explorer_class} output did not update to {caption!r} within "
                             f"{timeout_s:.0f} s; it shows {shown!r}") from err


def expected_png(fig) -> bytes:
    """The PNG the inline backend of a kernel sends for ``fig`` (matplotlib_inline's defaults)."""
    from IPython.core.pylabtools import print_figure

    return print_figure(fig, "png", bbox_inches="tight")


def png_array(data: bytes):
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")


def image_difference(a: bytes, b: bytes) -> float:
    """Mean absolute pixel difference (0..1) of two PNGs; 1.0 when their sizes differ."""
    x, y = png_array(a), png_array(b)
    if x.shape != y.shape:
        return 1.0
    return float(abs(x[..., :3].astype(float) - y[..., :3].astype(float)).mean())


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
