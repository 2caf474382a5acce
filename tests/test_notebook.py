"""Tests of sparsevd_lab.notebook: modes, version check, data check, figure files, notebook builds."""
import json
import re
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402

from sparsevd_lab import data, notebook as nb  # noqa: E402


@pytest.mark.parametrize("raw,expected", [("1", True), ("yes", True), ("ON", True), ("0", False),
                                          ("", False), ("false", False)])
def test_env_flag(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert nb.env_flag("X_FLAG") is expected


def test_env_flag_default_and_bad_value(monkeypatch):
    monkeypatch.delenv("X_FLAG", raising=False)
    assert nb.env_flag("X_FLAG", default=True) is True
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ValueError, match="X_FLAG=1"):
        nb.env_flag("X_FLAG")


def test_mode(monkeypatch):
    monkeypatch.setenv("SPARSEVD_FAST", "1")
    assert nb.mode() == "fast"
    monkeypatch.setenv("SPARSEVD_FAST", "0")
    assert nb.mode() == "default"


def test_parse_version():
    assert nb.parse_version("0.1.0") == (0, 1, 0)
    assert nb.parse_version("1.2.3.dev4+abc") == (1, 2, 3)
    assert nb.parse_version("2.0rc1") == (2, 0)
    assert nb.parse_version("0.10") > nb.parse_version("0.9")
    with pytest.raises(ValueError):
        nb.parse_version("abc")


def test_require_ok_and_too_old(monkeypatch, capsys):
    assert nb.require("0.0.1") == nb._installed_version()
    assert "sparsevd_lab" in capsys.readouterr().out
    monkeypatch.setattr(nb, "_installed_version", lambda: "0.0.9")
    with pytest.raises(RuntimeError, match=r"needs sparsevd_lab >= 0\.1\.0, but 0\.0\.9.*pip install"):
        nb.require("0.1.0", verbose=False)


def test_require_checks_the_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEVD_DATA", str(tmp_path))
    monkeypatch.setattr(nb, "_online", lambda url, timeout=3.0: False)
    with pytest.raises(RuntimeError, match="offline"):
        nb.require("0.0.1", dataset="mnist", verbose=False)


def test_check_data(tmp_path):
    assert nb.check_data("offline-digits") == "offline"
    assert nb.check_data("diabetes") == "offline"
    with pytest.raises(RuntimeError, match="unknown data set"):
        nb.check_data("imagenet")
    with pytest.raises(RuntimeError, match="SPARSEVD_DATASET=offline-digits"):
        nb.check_data("mnist", root=tmp_path, online=lambda u: False)
    assert nb.check_data("mnist", root=tmp_path, online=lambda u: True) == "online"
    (tmp_path / "mnist").mkdir()
    for f in data.MNIST_MD5:
        (tmp_path / "mnist" / f).write_bytes(b"x")
    assert nb.check_data("mnist", root=tmp_path, online=lambda u: False) == "cached"
    with pytest.raises(RuntimeError):
        nb.check_data("cifar10", root=tmp_path, online=lambda u: False)


def test_online_false_for_closed_port():
    assert nb._online("http://127.0.0.1:9/", timeout=0.5) is False


def test_figure_path_and_savefig(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEVD_FIGURES", str(tmp_path / "figs"))
    assert nb.figure_dir() == tmp_path / "figs"
    assert nb.figure_path("a.png") == tmp_path / "figs" / "a.png"
    with pytest.raises(ValueError):
        nb.figure_path("../a.png")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    monkeypatch.setenv("SPARSEVD_FAST", "1")
    assert nb.savefig(fig, "a.png") is None
    assert not (tmp_path / "figs" / "a.png").exists()
    assert nb.savefig(fig, "a.png", force=True).read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setenv("SPARSEVD_FAST", "0")
    path = nb.savefig(fig, "b.png")
    assert path.exists() and not list(path.parent.glob("*.part"))
    plt.close(fig)


def test_figure_formats_switch(monkeypatch):
    monkeypatch.delenv("SPARSEVD_FIGURE_FORMATS", raising=False)
    assert nb.figure_formats() == ()
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", "")
    assert nb.figure_formats() == ()
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", " SVG, pdf,,svg, .png ")
    assert nb.figure_formats() == ("svg", "pdf", "png")
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", "svg,eps")
    with pytest.raises(ValueError, match="'eps' is not a figure format.*png, svg, pdf"):
        nb.figure_formats()


def test_savefig_writes_the_extra_formats(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSEVD_FIGURES", str(tmp_path))
    monkeypatch.setenv("SPARSEVD_FAST", "0")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", "svg,pdf,png")
    path = nb.savefig(fig, "c.png")
    assert path == tmp_path / "c.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "c.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:2000]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pdf", "c.png", "c.svg"]  # no .part left
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", "tiff")
    with pytest.raises(ValueError, match="SPARSEVD_FIGURE_FORMATS"):
        nb.savefig(fig, "d.png")
    assert not (tmp_path / "d.png").exists()  # a bad switch writes nothing
    monkeypatch.setenv("SPARSEVD_FAST", "1")  # fast mode saves nothing, whatever the switch
    monkeypatch.setenv("SPARSEVD_FIGURE_FORMATS", "svg")
    assert nb.savefig(fig, "e.png") is None and not (tmp_path / "e.svg").exists()
    plt.close(fig)


def test_elapsed_format():
    assert re.fullmatch(r"\d+ min \d\d s", nb.elapsed())


def test_clean_metadata():
    n = nbformat.v4.new_notebook()
    n.metadata.update({"widgets": {"state": {}}, "language_info": {"name": "python"},
                       "papermill": {}, "kernelspec": {"name": "other"}})
    c = nbformat.v4.new_code_cell("1")
    c.metadata.update({"execution": {"iopub.status.busy": "2024"}, "tags": ["parameters"]})
    n.cells.append(c)
    nb.clean_metadata(n)
    assert set(n.metadata) == {"kernelspec", "jupytext"}
    assert n.metadata["kernelspec"]["name"] == "python3"
    assert n.metadata["jupytext"] == {"formats": "ipynb,py:percent"}
    assert c.metadata == {"tags": ["parameters"]}


TINY = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %%
import os
import ipywidgets
print("fast" if os.environ.get("SPARSEVD_FAST") == "1" else "default")
ipywidgets.IntSlider(description="n")
"""


@pytest.mark.slow
def test_execute_and_main(tmp_path, capsys):
    src = tmp_path / "99_tiny.py"
    src.write_text(TINY)
    info = nb.execute(src, fast=True, timeout=120)
    assert info["notebook"] == "99_tiny.ipynb" and info["mode"] == "fast"
    raw = json.loads((tmp_path / "99_tiny.ipynb").read_text())
    assert set(raw["metadata"]) == {"kernelspec", "jupytext"}  # no widget state, no language_info
    outs = raw["cells"][0]["outputs"]
    assert outs[0]["text"] == ["fast\n"]
    assert "execution" not in raw["cells"][0]["metadata"]
    assert nb.main(["--no-write", str(src)]) == 0
    assert "99_tiny.ipynb: default mode" in capsys.readouterr().out


def test_shipped_result_loads_or_runs_live(monkeypatch, capsys):
    from sparsevd_lab import experiments as ex

    calls = {}

    def fake_load(name, dataset=None, root=None, fast=False):
        calls.setdefault("load", []).append((name, root, fast))
        if root is None and calls.get("missing"):
            raise FileNotFoundError("no result x.json")
        return {"provenance": {"epochs_note": "note", "wall_time_s": 60.0, "device": "cpu"},
                "files": {"result": "x.json"}}

    def fake_run(name, dataset=None, fast=None, epochs=None, out=None):
        calls["run"] = (name, fast, epochs, out)

    monkeypatch.setattr(ex, "load_result", fake_load)
    monkeypatch.setattr(ex, "run_experiment", fake_run)
    res = nb.shipped_result("lenet300", retrain=False)
    assert res["live"] is False and "run" not in calls
    assert "loaded the shipped result x.json" in capsys.readouterr().out
    calls["missing"] = True
    res = nb.shipped_result("lenet300", live_epochs=2, retrain=False)
    assert res["live"] is True and calls["run"][:3] == ("lenet300", True, 2)
    assert "computing a small version live" in capsys.readouterr().out
    del calls["run"]
    res = nb.shipped_result("lenet300", retrain=True, verbose=False)
    assert res["live"] is True and "run" in calls


# ------------------------------------------------------------------------- the committed notebooks

NOTEBOOKS = sorted((__import__("pathlib").Path(__file__).parent.parent / "notebooks").glob("0*.py"))


@pytest.mark.parametrize("py", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_paired_clean_and_complete(py):
    import jupytext

    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: python -m sparsevd_lab.notebook {py}"
    src = jupytext.read(py)
    raw = json.loads(ipynb.read_text())
    # the .ipynb holds the .py's cells (rebuild with python -m sparsevd_lab.notebook when this fails)
    assert [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in raw["cells"]] \
        == [c.source for c in src.cells]
    assert set(raw["metadata"]) == {"kernelspec", "jupytext"}
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    assert raw["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"
    code = [c for c in raw["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] or c["execution_count"] for c in code[:1]), "not executed"
    assert all("execution" not in c["metadata"] for c in code)
    first_md = "".join(raw["cells"][0]["source"])
    name = py.stem
    assert first_md.startswith("# ") and "Learning goals" in first_md and "Time on CPU" in first_md
    assert f"colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/{name}.ipynb" \
        in first_md and "colab-badge.svg" in first_md and "arxiv.org/abs/1701.05369" in first_md
    setup = "".join(code[0]["source"])
    assert '"google.colab" in sys.modules' in setup and "nb.require(MIN_VERSION" in setup
    assert any("parameters" in c["metadata"].get("tags", []) for c in code)
    assert any("# NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c["outputs"])
    assert "mode: default" in "".join(code[0]["outputs"][0]["text"]), "commit a default-mode run"


def test_kernel_env_forces_the_inline_backend_and_the_mode():
    env = nb.kernel_env(fast=True, base={"MPLBACKEND": "Agg", "HOME": "/h"})
    assert env == {"MPLBACKEND": nb.INLINE_BACKEND, "HOME": "/h", "SPARSEVD_FAST": "1"}
    assert nb.kernel_env(fast=False, base={})["SPARSEVD_FAST"] == "0"
    assert nb.STALL_S <= 60 and nb.cell_timeout(True) < nb.cell_timeout(False)


def test_count_images():
    import nbformat

    png = nbformat.v4.new_output("display_data", data={"image/png": "x", "text/plain": "<Figure>"})
    text = nbformat.v4.new_output("stream", name="stdout", text="hi")
    nbk = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a", outputs=[png, text]),
                                          nbformat.v4.new_code_cell("b", outputs=[text]),
                                          nbformat.v4.new_markdown_cell("c")])
    assert nb.count_images(nbk) == 1


FIGURE = """# %%
import matplotlib.pyplot as plt
plt.plot([0, 1], [1, 0])
plt.show()
"""


@pytest.mark.slow
def test_execute_draws_inline_under_a_hostile_backend_and_writes_to_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as a test runner or CI job may export it
    src = tmp_path / "src" / "98_figure.py"
    src.parent.mkdir()
    src.write_text(FIGURE)
    assert nb.main(["--fast", "--out", str(tmp_path / "out"), str(src)]) == 0
    assert "1 image(s)" in capsys.readouterr().out
    written = tmp_path / "out" / "98_figure.ipynb"
    assert written.exists() and not (src.parent / "98_figure.ipynb").exists()
    assert '"image/png"' in written.read_text()


@pytest.mark.slow
def test_a_stalled_cell_fails_with_its_number(monkeypatch):
    """A cell that runs past the limit, and one whose execute reply never arrives although the
    kernel went idle (what nbclient issue 312 looks like), each fail naming the cell."""
    import nbformat
    from queue import Empty

    from nbclient.exceptions import CellTimeoutError

    cells = ["x = 1", "import time\ntime.sleep(60)"]
    nbk = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    start = time.perf_counter()
    with pytest.raises(CellTimeoutError, match=r"cell 1 \(0-based, of 2 cells\)"):
        nb.run_notebook(nbk, ".", fast=True, timeout=3, name="t")
    assert time.perf_counter() - start < 60

    monkeypatch.setattr(nb, "STALL_S", 2)
    real = nb._client_class

    def dropping_client():
        class Dropping(real()):
            async def _async_poll_for_reply(self, msg_id, cell, *args):
                if "drop the reply" in cell.source:
                    channel, get = self.kc.shell_channel, self.kc.shell_channel.get_msg

                    async def lossy(timeout=None):
                        msg = await get(timeout=timeout)
                        if msg["msg_type"] == "execute_reply":
                            raise Empty
                        return msg

                    channel.get_msg = lossy
                return await super()._async_poll_for_reply(msg_id, cell, *args)
        return Dropping

    monkeypatch.setattr(nb, "_client_class", dropping_client)
    nbk = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in
                                          ["x = 1", "y = 2", "z = 3  # drop the reply"]])
    with pytest.raises(CellTimeoutError, match=r"(?s)cell 2 .*no execute reply"):
        nb.run_notebook(nbk, ".", fast=True, timeout=100, name="t")
