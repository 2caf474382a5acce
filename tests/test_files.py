import os

import pytest

from sparsevd_lab import files


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    assert files.atomic_write(path, lambda fh: fh.write(b"one")) == path
    assert path.read_bytes() == b"one"
    files.atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    assert _listing(path.parent) == ["a.bin"]  # no temporary file left behind
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # the usual permissions, not mkstemp's


def test_crash_during_write_leaves_nothing_under_the_final_name(tmp_path):
    path = tmp_path / "result.json"

    def write(fh):
        fh.write(b"half a fil")
        raise KeyboardInterrupt  # the process is interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(path, write)
    assert _listing(tmp_path) == []


def test_crash_between_write_and_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("power cut between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        with files.atomic_path(path) as tmp:
            tmp.write_bytes(b"new")
    assert path.read_bytes() == b"old"
    assert _listing(tmp_path) == ["model.safetensors"]
    fresh = tmp_path / "fresh.bin"
    with pytest.raises(OSError, match="power cut"):
        files.atomic_write(fresh, lambda fh: fh.write(b"x"))
    assert not fresh.exists() and _listing(tmp_path) == ["model.safetensors"]


def test_atomic_path_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    with files.atomic_path(tmp_path / "anim.gif") as tmp:
        assert tmp.suffix == ".gif" and tmp.parent == tmp_path
        tmp.write_bytes(b"GIF89a")
    assert (tmp_path / "anim.gif").read_bytes() == b"GIF89a"


def test_a_folder_as_destination_is_refused_clearly(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file path"):
        files.atomic_write(tmp_path, lambda fh: fh.write(b"x"))
    assert _listing(tmp_path) == []
