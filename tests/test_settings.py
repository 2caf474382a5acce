from pathlib import Path

import pytest

from sparsevd_lab import notebook
from sparsevd_lab.settings import Settings, parse_flag, settings


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "On"])
def test_flag_on(raw):
    assert parse_flag("SPARSEVD_FAST", raw) is True


@pytest.mark.parametrize("raw", ["", "0", "false", "No", "OFF "])
def test_flag_off(raw):
    assert parse_flag("SPARSEVD_FAST", raw) is False


def test_flag_unset_and_bad():
    assert parse_flag("X", None) is False and parse_flag("X", None, default=True) is True
    with pytest.raises(ValueError, match=r"SPARSEVD_FAST='maybe' is not a yes/no value"):
        parse_flag("SPARSEVD_FAST", "maybe")


@pytest.mark.parametrize("name,field", [("SPARSEVD_FAST", "fast"), ("SPARSEVD_RETRAIN", "retrain"),
                                        ("SPARSEVD_OFFLINE", "offline")])
@pytest.mark.parametrize("raw,expected", [("true", True), ("yes", True), ("on", True), ("1", True),
                                          ("0", False), ("off", False)])
def test_every_flag_parsed_the_same_way(name, field, raw, expected):
    assert getattr(settings({name: raw}), field) is expected


def test_defaults_and_values():
    assert settings({}) == Settings()
    s = settings({"SPARSEVD_DATA": "~/d", "SPARSEVD_DATASET": "mnist", "SPARSEVD_FIGURES": "f",
                  "SPARSEVD_FIGURE_FORMATS": "svg", "SPARSEVD_KERNELS": "off"})
    assert s.data_dir == Path("~/d").expanduser() and s.dataset == "mnist"
    assert s.figures == Path("f") and s.figure_formats == "svg" and s.kernels == "off"


@pytest.mark.parametrize("raw,expected", [("auto", "auto"), ("AUTO", "auto"), ("1", "on"), ("true", "on"),
                                          ("0", "off"), ("no", "off")])
def test_kernels_setting(raw, expected):
    assert settings({"SPARSEVD_KERNELS": raw}).kernels == expected
    assert settings({}).kernels == "auto"  # unset: use them where they build; 1: required (CI)
    with pytest.raises(ValueError, match="SPARSEVD_KERNELS"):
        settings({"SPARSEVD_KERNELS": "maybe"})


def test_read_at_call_time_by_notebooks_and_experiments(monkeypatch):
    """SPARSEVD_FAST=true means fast for the notebooks and the experiments alike."""
    from sparsevd_lab.experiments import runners

    monkeypatch.setenv("SPARSEVD_FAST", "true")
    assert settings().fast and notebook.mode() == "fast"
    assert runners._settings.settings().fast
    monkeypatch.setenv("SPARSEVD_FAST", "off")
    assert notebook.mode() == "default"
