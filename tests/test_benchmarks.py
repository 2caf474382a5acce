"""Smoke test of benchmarks/bench_train_step.py (the timing itself is not a test: it is noisy here)."""
import importlib.util
import re
from pathlib import Path

import torch


def _load(name):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_benchmark_fast_mode_prints_a_ratio_row(capsys):
    bench = _load("bench_train_step")
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--fast", "--models", "lenet300"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "SVDO/dense" in out
    row = re.search(r"^lenet300\s+100\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)
    assert row, out
    steps, dense_ms, svdo_ms, ratio = int(row[1]), *map(float, row.groups()[1:])
    assert steps >= 2 and dense_ms > 0 and svdo_ms > 0
    assert abs(ratio - svdo_ms / dense_ms) < 0.01 + 0.01 * ratio  # the printed ratio is the ratio of the times
