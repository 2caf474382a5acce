"""How sparsevd_lab.kernels builds: the cache key (a new build exactly when what it depends on changes),
the flags by platform, the line printed before compiling, and SPARSEVD_KERNELS=1 failing loudly.
None of these compile anything: ``torch.utils.cpp_extension.load`` is replaced where it would run."""
from __future__ import annotations

import shutil
import sys
import warnings

import pytest
import torch.utils.cpp_extension

from sparsevd_lab import kernels


@pytest.fixture
def sources(tmp_path):
    """A copy of the kernel sources that a test may edit."""
    folder = tmp_path / "a"
    folder.mkdir()
    return [shutil.copy(src, folder / src.name) for src in kernels.SOURCES]


FLAGS = (["-O3"], [])


def test_cache_key_changes_with_a_source(sources):
    before = kernels.cache_key(sources, FLAGS)
    assert before == kernels.cache_key(sources, FLAGS)  # deterministic
    with open(sources[1], "a") as fh:
        fh.write("// one more line\n")
    assert kernels.cache_key(sources, FLAGS) != before


def test_cache_key_is_the_content_not_the_folder(sources, tmp_path):
    """A second checkout with the same sources shares the build; the package's own sources give the
    key the package uses."""
    other = tmp_path / "b"
    other.mkdir()
    copies = [shutil.copy(src, other / src.name) for src in sources]
    assert kernels.cache_key(copies, FLAGS) == kernels.cache_key(sources, FLAGS)
    assert kernels.cache_key(sources) == kernels.cache_key()


def test_cache_key_changes_with_flags_torch_python_and_cpu(sources, monkeypatch):
    base = kernels.cache_key(sources, FLAGS)
    assert kernels.cache_key(sources, (["-O3", "-march=native"], [])) != base
    assert kernels.cache_key(sources, (["-O3"], ["-lmvec"])) != base
    monkeypatch.setattr(kernels, "cpu_instruction_set", lambda: "x86_64: sse2")
    no_avx = kernels.cache_key(sources, FLAGS)
    monkeypatch.setattr(kernels, "cpu_instruction_set", lambda: "x86_64: avx512f sse2")
    assert kernels.cache_key(sources, FLAGS) != no_avx
    monkeypatch.setattr(kernels.torch, "__version__", "2.4.0")
    assert kernels.cache_key(sources, FLAGS) != base
    monkeypatch.undo()
    monkeypatch.setattr(kernels.sys, "version", "3.99.0 (other)")
    assert kernels.cache_key(sources, FLAGS) != base


def test_flags_by_platform(monkeypatch):
    monkeypatch.setattr(kernels.sys, "platform", "darwin")
    cflags, ldflags = kernels.build_flags()
    # Apple's clang: no OpenMP, no glibc libmvec, no x86-only vector flags
    assert cflags == ["-O3", "-ffast-math"] and ldflags == []
    monkeypatch.setattr(kernels.sys, "platform", "linux")
    monkeypatch.setattr(kernels.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(kernels, "cpu_instruction_set", lambda: "x86_64: avx2 sse2")
    cflags, _ = kernels.build_flags()
    assert "-march=native" in cflags  # keyed by the instruction set above
    monkeypatch.setattr(kernels, "cpu_instruction_set", lambda: "x86_64")  # unknown CPU: portable
    cflags, _ = kernels.build_flags()
    assert "-march=native" not in cflags and "-mprefer-vector-width=512" not in cflags


def test_cpu_instruction_set_names_the_machine():
    isa = kernels.cpu_instruction_set()
    assert isa.startswith(kernels.platform.machine())
    if sys.platform.startswith("linux") and kernels.platform.machine() == "x86_64":
        assert "sse2" in isa.split()  # every x86-64 CPU has it


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No build yet in this process, an empty extensions folder, and a fake ``load``."""
    monkeypatch.setattr(kernels, "_STATE", {})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    calls = []

    def fake_load(name, sources, **kwargs):
        calls.append((name, sources, kwargs))
        return "module"

    monkeypatch.setattr(torch.utils.cpp_extension, "load", fake_load)
    return calls


def test_one_line_before_compiling_and_none_once_built(fresh, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SPARSEVD_KERNELS", "auto")
    assert kernels._build() == "module"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compiling" in err[0] and "minutes" in err[0] and "SPARSEVD_KERNELS=0" in err[0]
    name, srcs, kwargs = fresh[0]
    key = kernels.cache_key()
    assert name == f"sparsevd_lab_{key}" and kwargs["build_directory"] == str(kernels.build_directory(key))
    # the sources compiled are copies in the build folder, the same whichever checkout asked
    assert all(s.startswith(kwargs["build_directory"]) for s in srcs)
    # once the compiled file is there, nothing is printed
    (kernels.build_directory(key) / f"{name}.so").write_bytes(b"")
    monkeypatch.setattr(kernels, "_STATE", {})
    assert kernels._build() == "module"
    assert capsys.readouterr().err == ""


def _failing_load(*args, **kwargs):
    raise RuntimeError("Error building extension: c++: command not found")


def test_required_kernels_fail_loudly(fresh, monkeypatch):
    """SPARSEVD_KERNELS=1 (scripts/test.sh, CI): a failed build is an error, every time it is asked,
    so kernel tests fail instead of skipping."""
    monkeypatch.setattr(torch.utils.cpp_extension, "load", _failing_load)
    monkeypatch.setenv("SPARSEVD_KERNELS", "1")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="SPARSEVD_KERNELS=1 requires .*command not found"):
            kernels.kernels_enabled()


def test_auto_falls_back_with_one_warning(fresh, monkeypatch):
    monkeypatch.setattr(torch.utils.cpp_extension, "load", _failing_load)
    monkeypatch.setenv("SPARSEVD_KERNELS", "auto")
    with pytest.warns(RuntimeWarning, match="could not be built.*command not found"):
        assert kernels.kernels_enabled() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.kernels_enabled() is False  # said once


def test_the_test_command_and_ci_require_the_kernels():
    """scripts/test.sh and .ci/run export SPARSEVD_KERNELS=1 before they set up or test anything."""
    root = kernels.SOURCES[0].parents[2]
    for script in ("scripts/test.sh", ".ci/run"):
        code = [line.split("#")[0].strip() for line in (root / script).read_text().splitlines()]
        export = code.index("export SPARSEVD_KERNELS=1")
        first_run = min(i for i, line in enumerate(code) if line.startswith(("bash ", ".venv/bin/python")))
        assert export < first_run, script
