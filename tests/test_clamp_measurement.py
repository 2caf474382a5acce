"""Tests of scripts/clamp_measurement.py (the measurement behind docs/glossary.md, "clamp")."""
import importlib.util
from pathlib import Path

import pandas as pd
import torch

import sparsevd_lab as sv
from sparsevd_lab import kernels
from sparsevd_lab.layers import compute_log_alpha, kl_approx

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "clamp_measurement.py"


def _script():
    spec = importlib.util.spec_from_file_location("clamp_measurement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clamped_layers_clamp_log_alpha_in_the_kl_only():
    cm = _script()
    model = cm.clamped(sv.lenet_300_100())
    layers = [m for _, m in sv.svdo_layers(model)]
    assert len(layers) == 3 and all(type(m) is cm.ClampedLinearSVDO for m in layers)
    fc3 = layers[-1]
    with torch.no_grad():
        fc3.weight.fill_(1.0)
        fc3.log_sigma2.copy_(torch.linspace(-30, 30, fc3.weight.numel()).view_as(fc3.weight))
    raw = compute_log_alpha(fc3.weight, fc3.log_sigma2)
    la = fc3.log_alpha.detach()
    assert float(la.min()) == -10.0 and float(la.max()) == 10.0
    with kernels.disabled():  # the reference KL reads the layer's log_alpha, as in the script's runs
        assert torch.allclose(fc3.kl(), kl_approx(raw.clamp(-10, 10)).sum())
        assert not torch.allclose(fc3.kl(), kl_approx(raw).sum())
    # the package's own layer, beside it, is unclamped
    plain = sv.LinearSVDO(fc3.in_features, fc3.out_features)
    plain.load_state_dict(fc3.state_dict())
    assert float(plain.log_alpha.detach().max()) == float(raw.detach().max()) > 29


def test_summary_reports_error_compression_and_the_log_alpha_range():
    cm = _script()
    model = sv.lenet_300_100()
    history = pd.DataFrame({"test_acc": [0.5, 0.889], "compression": [1.0, 14.23]})
    row = cm.summary("x", model, history, 90.0)
    assert row["test_error_%"] == 11.1 and row["compression_x"] == 14.2 and row["minutes"] == 1.5
    assert row["log_alpha_min"] < row["log_alpha_max"] and row["below_-10_%"] == 0.0
