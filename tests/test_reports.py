import math

import pytest
import torch
from torch import nn

from sparsevd_lab import LinearSVDO, compression_ratio, lenet_300_100, sparsity_report, sparsity_string
from sparsevd_lab.reports import layer_sparsity


def _model_with_known_sparsity():
    model = nn.Sequential(LinearSVDO(10, 10), nn.ReLU(), LinearSVDO(10, 4), nn.Linear(4, 2))
    with torch.no_grad():
        for layer, n_drop in ((model[0], 90), (model[2], 10)):
            layer.weight.fill_(1.0)
            layer.log_sigma2.fill_(-10.0)
            layer.log_sigma2.view(-1)[:n_drop] = 10.0
    return model


def test_sparsity_report_counts():
    df = sparsity_report(_model_with_known_sparsity())
    assert list(df.index) == ["fc1", "fc2", "total"]  # glossary names, not nn.Sequential indices
    assert df.loc["fc1", "weights"] == 100 and df.loc["fc1", "kept"] == 10
    assert df.loc["fc2", "kept"] == 30
    assert df.loc["total", "kept"] == 40 and df.loc["total", "weights"] == 140
    assert df.loc["fc1", "sparsity_%"] == pytest.approx(90.0)
    assert df.loc["total", "compression"] == pytest.approx(140 / 40)
    assert df.attrs["paper_string"] == "90.0-25.0" == df.loc["total", "per_layer"]


def test_compression_ratio_and_string_and_threshold_override():
    m = _model_with_known_sparsity()
    assert compression_ratio(m) == pytest.approx(3.5)  # dense nn.Linear and biases not counted
    assert sparsity_string(m) == "90.0-25.0"
    assert compression_ratio(m, threshold=100.0) == 1.0
    assert math.isinf(compression_ratio(m, threshold=-100.0))
    assert layer_sparsity(m) == [("0", 100, 10), ("2", 40, 30)]


def test_report_requires_svdo_layers():
    with pytest.raises(ValueError, match="no Sparse VD layers"):
        sparsity_report(lenet_300_100(svdo=False))
    with pytest.raises(ValueError, match="no Sparse VD layers"):
        compression_ratio(nn.Linear(2, 2))
