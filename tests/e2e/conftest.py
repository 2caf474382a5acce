"""Fixtures of the end-to-end tests: one JupyterLab server and one headless Chromium per session.

Skips only where Chromium (or playwright) is missing and $CI is unset; under CI a missing browser is a
failure. See docs/e2e.md.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_harness as H  # noqa: E402


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    """The Chromium binary; skip (outside CI) or fail (under CI) when it cannot be used."""
    problem = H.chromium_problem()
    if problem:
        if _in_ci():
            pytest.fail(f"CI is set but the end-to-end tests cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    return H.chromium_path()


@pytest.fixture(scope="session")
def lab(chromium_bin, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of the notebooks (fast mode);
    stopped at the end of the session whatever happens, kernels included."""
    base = tmp_path_factory.mktemp("e2e")
    root = base / "notebooks"
    H.prepare_notebooks(root)
    server = H.start_lab(root, base / "jupyter")
    try:
        yield server
    finally:
        server.stop()
        H.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            (H.ARTIFACTS / "jupyterlab.log").write_text(server.log.read_text(errors="replace"))
        except OSError:
            pass


@pytest.fixture(scope="session")
def browser(chromium_bin):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = H.launch_chromium(pw, chromium_bin)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab):
    """A fresh browser context and page (1400 px wide, so sliders and tables fit side by side)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console = []
    pg.on("pageerror", lambda e: console.append(f"page error: {e}"))
    pg.console_errors = console
    try:
        yield pg
    finally:
        context.close()
