"""Bad input for the end-to-end machinery: failures must say what failed and why, never time out
with no words."""
from __future__ import annotations


import nbformat
import pytest

import e2e_harness as H

pytestmark = pytest.mark.e2e


def test_missing_chromium_is_named(tmp_path):
    missing = str(tmp_path / "no-chromium")
    assert "Chromium is not installed" in H.chromium_problem(missing)
    with pytest.raises(H.SetupError, match=r"Chromium is not installed: no file .*no-chromium"):
        H.launch_chromium(object(), missing)


def test_chromium_that_cannot_start_is_named(tmp_path, chromium_bin):
    from playwright.sync_api import sync_playwright

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'chromium: broken on purpose' >&2\nexit 3\n")
    fake.chmod(0o755)
    with sync_playwright() as pw:
        with pytest.raises(H.SetupError, match=r"Chromium \(.*chromium.*\) could not start") as err:
            H.launch_chromium(pw, str(fake), timeout_s=20)
    assert "broken on purpose" in str(err.value)


def test_jupyterlab_that_cannot_start_is_named_with_its_log(tmp_path):
    # An interpreter without JupyterLab: the server exits at once, and the error carries its log.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named jupyterlab (on purpose)' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(H.SetupError, match=r"JupyterLab exited with code 1") as err:
        H.start_lab(tmp_path, tmp_path / "j", timeout_s=20, python=str(fake))
    assert "No module named jupyterlab (on purpose)" in str(err.value)


def test_missing_interpreter_is_named(tmp_path):
    with pytest.raises(H.SetupError, match="JupyterLab cannot start: no Python interpreter"):
        H.start_lab(tmp_path, tmp_path / "j", python=str(tmp_path / "nothing"))


@pytest.fixture
def bad_notebooks(lab):
    """Two small notebooks in the server's folder: one whose kernel dies, one whose cell raises."""
    names = {}
    cells = {
        # the sleep lets the kernel flush the first cell's reply: a SIGKILL right after it can drop the
        # reply, and then no one (the page included) can tell that the first cell finished
        "zz_kernel_dies": ["x = 1", "import os, signal, time\ntime.sleep(1)\nos.kill(os.getpid(), signal.SIGKILL)",
                           "y = 2"],
        "zz_cell_raises": ["x = 1", "raise ValueError('broken on purpose')", "y = 2"],
    }
    for stem, sources in cells.items():
        nbk = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
        nbk.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}
        path = lab.root / f"{stem}.ipynb"
        nbformat.write(nbk, path)
        names[stem] = path
    yield {k: v.name for k, v in names.items()}
    for path in names.values():
        path.unlink(missing_ok=True)


def test_kernel_death_names_notebook_and_cell(page, lab, bad_notebooks):
    name = bad_notebooks["zz_kernel_dies"]
    H.open_notebook(page, lab, name)
    with pytest.raises(H.NotebookRunError) as err:
        H.run_all(page, name, lab, timeout_s=90)
    msg = str(err.value)
    assert name in msg and "kernel died" in msg, msg
    assert "cell 1 (code cell 2: 'import os, signal, time')" in msg, msg


def test_cell_error_names_notebook_and_cell(page, lab, bad_notebooks):
    name = bad_notebooks["zz_cell_raises"]
    H.open_notebook(page, lab, name)
    cells = H.run_all(page, name, lab, timeout_s=90)
    problems = H.notebook_errors(page, name, cells)
    text = "\n".join(problems)
    assert "cell 1 (code cell 2: \"raise ValueError('broken on purpose')\") raised ValueError" in text, text
    assert "cell 2 (code cell 3: 'y = 2') never ran" in text, text
