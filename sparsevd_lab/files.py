"""Atomic file writes: the one helper every module of the package uses to write a file.

A file is written under a temporary name in the destination folder, flushed to disk, then renamed onto
its final name with ``os.replace`` (atomic on POSIX and Windows). If anything fails before the rename,
the temporary file is removed: an interrupted write never leaves a half-written file under the final
name, and an existing file there stays as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "check_file_path"]


def check_file_path(path: str | os.PathLike, example: str = "model.safetensors") -> Path:
    """``path`` as a Path; IsADirectoryError, saying what to give instead, when it is a folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file path inside it instead "
                                f"(e.g. {path / example})")
    return path


def _destination(path: str | os.PathLike) -> Path:
    path = check_file_path(path, Path(path).name + ".out")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _usual_permissions(tmp: str) -> None:
    """mkstemp creates 0600; a finished file gets the usual 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for writers that want a file name (safetensors,
    matplotlib, nbformat); when the block ends without an error it is renamed onto ``path``,
    otherwise removed.

        with atomic_path("model.safetensors") as tmp:
            save_file(tensors, tmp)
    """
    path = _destination(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _usual_permissions(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb",
                 **open_kwargs) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path`` (opened with ``mode``), then rename it
    onto ``path``. If ``write`` raises, nothing appears under ``path``. Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            write(fh)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 with ``\\n`` line ends, atomically."""
    return atomic_write(path, lambda fh: fh.write(text), mode="w", encoding="utf-8", newline="\n")
