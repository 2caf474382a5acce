"""The package's settings, read from the environment in this one place.

=========================  =====================================================================
``SPARSEVD_FAST``          flag: short runs (tiny data, few epochs) for CI and quick checks
``SPARSEVD_RETRAIN``       flag: notebooks train live what they otherwise load from shipped results
``SPARSEVD_OFFLINE``       flag: never download; data sets that need the network raise OfflineError
``SPARSEVD_KERNELS``       ``auto`` (default), or a flag: the compiled CPU kernels of
                           ``sparsevd_lab.kernels`` (auto: use them when they build; off: never;
                           on: required, a failed build is an error: scripts/test.sh and CI)
``SPARSEVD_DATA``          folder of the data cache (default ``~/.cache/sparsevd_lab``)
``SPARSEVD_DATASET``       the notebooks' data set (default ``offline-digits``)
``SPARSEVD_FIGURES``       folder for saved figures (default ``figures``)
``SPARSEVD_FIGURE_FORMATS``  extra figure formats, comma-separated (``svg,pdf``)
``SPARSEVD_PREDICTIONS``   the file of a student's predictions (default ``predictions.json`` in the
                           current folder, the notebook's folder in Jupyter); see ``predictions``
``SPARSEVD_STUDENT``       the student's name in that file (default: the file's name)
=========================  =====================================================================

Every flag is parsed the same way: ``1/true/yes/on`` (any case) is on, ``0/false/no/off`` or empty is
off, anything else is an error naming the variable. ``settings()`` reads the environment when called,
so a change (``os.environ[...] = ...``, pytest's ``monkeypatch.setenv``) takes effect at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["Settings", "settings", "kernels_mode", "parse_flag", "TRUE", "FALSE"]

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def parse_flag(name: str, raw: str | None, default: bool = False) -> bool:
    """The one parser of yes/no settings: ``1/true/yes/on`` -> True, ``0/false/no/off``/"" -> False
    (any case, surrounding spaces ignored), None (unset) -> ``default``; anything else -> ValueError."""
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a yes/no value; use {name}=1 (or true/yes/on) "
                     f"or {name}=0 (or false/no/off)")


def _kernels(raw: str | None) -> str:
    if raw is None or raw.strip().lower() == "auto":
        return "auto"
    try:
        return "on" if parse_flag("SPARSEVD_KERNELS", raw) else "off"
    except ValueError:
        raise ValueError(f"SPARSEVD_KERNELS={raw!r}: use auto (the default), 1 (on) or 0 (off)") from None


_KERNELS_CACHE: dict = {}


def kernels_mode() -> str:
    """``settings().kernels`` alone, cheaply: asked on every training step by ``sparsevd_lab.kernels``."""
    raw = os.environ.get("SPARSEVD_KERNELS")
    if raw not in _KERNELS_CACHE:
        _KERNELS_CACHE[raw] = _kernels(raw)
    return _KERNELS_CACHE[raw]


@dataclass(frozen=True)
class Settings:
    """A snapshot of the SPARSEVD_* environment variables (see the module docstring)."""

    fast: bool = False
    retrain: bool = False
    offline: bool = False
    kernels: str = "auto"
    data_dir: Path | None = None
    dataset: str = "offline-digits"
    figures: Path = Path("figures")
    figure_formats: str = ""
    predictions: Path = Path("predictions.json")
    student: str = ""


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings as the environment (default ``os.environ``) says now."""
    env = os.environ if environ is None else environ
    data = env.get("SPARSEVD_DATA")
    return Settings(
        fast=parse_flag("SPARSEVD_FAST", env.get("SPARSEVD_FAST")),
        retrain=parse_flag("SPARSEVD_RETRAIN", env.get("SPARSEVD_RETRAIN")),
        offline=parse_flag("SPARSEVD_OFFLINE", env.get("SPARSEVD_OFFLINE")),
        kernels=_kernels(env.get("SPARSEVD_KERNELS")) if environ is not None else kernels_mode(),
        data_dir=Path(data).expanduser() if data else None,
        dataset=env.get("SPARSEVD_DATASET") or "offline-digits",
        figures=Path(env.get("SPARSEVD_FIGURES") or "figures"),
        figure_formats=env.get("SPARSEVD_FIGURE_FORMATS", ""),
        predictions=Path(env.get("SPARSEVD_PREDICTIONS") or "predictions.json").expanduser(),
        student=env.get("SPARSEVD_STUDENT", "").strip(),
    )
