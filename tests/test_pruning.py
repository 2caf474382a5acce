"""Tests for sparsevd_lab.pruning: the magnitude-pruning baseline."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import sparsevd_lab as sv
from sparsevd_lab.pruning import (
    magnitude_prune,
    make_permanent,
    match_svdo_sparsity,
    prunable_layers,
    pruned_sparsity,
)


def _plain(model: nn.Module) -> bool:
    return all(not n.endswith(("_orig", "_mask")) for n, _ in model.named_parameters()) and \
        all(not n.endswith("_mask") for n, _ in model.named_buffers())


def test_prunable_layers():
    assert [n for n, _ in prunable_layers(sv.lenet5(svdo=False))] == ["0", "3", "7", "9"]


def test_global_prune_is_permanent_and_smallest_first():
    torch.manual_seed(0)
    dense = sv.lenet_300_100(svdo=False)
    before = [m.weight.clone() for _, m in prunable_layers(dense)]
    pruned = magnitude_prune(dense, 0.9)
    assert _plain(pruned)
    for (_, m), w in zip(prunable_layers(dense), before):
        assert torch.equal(m.weight, w)  # the input model is untouched
    s = pruned_sparsity(pruned)
    assert s["total"] == pytest.approx(0.9, abs=1e-5)
    kept = torch.cat([m.weight[m.weight != 0].abs() for _, m in prunable_layers(pruned)])
    dropped = torch.cat([w[m.weight == 0].abs() for (_, m), w in zip(prunable_layers(pruned), before)])
    assert kept.min() >= dropped.max()


def test_per_layer_amounts_match_svdo_model():
    torch.manual_seed(1)
    svdo = sv.lenet5()
    with torch.no_grad():
        for (_, m), p in zip(sv.svdo_layers(svdo), (0.3, 0.8, 0.95, 0.5)):
            m.log_sigma2[torch.rand(m.weight.shape) < p] = 10.0
    dense = sv.lenet5(svdo=False)
    amounts = match_svdo_sparsity(dense, svdo)
    expected = [1 - kept / n for _, n, kept in sv.reports.layer_sparsity(svdo)]
    assert amounts == pytest.approx(expected) and amounts == pytest.approx([0.3, 0.8, 0.95, 0.5], abs=0.05)
    pruned = magnitude_prune(dense, amounts)
    s = pruned_sparsity(pruned)
    for name, a in zip(["0", "3", "7", "9"], amounts):
        assert s[name] == pytest.approx(a, abs=1e-3)
    with pytest.raises(ValueError, match="do not match"):
        match_svdo_sparsity(sv.lenet_300_100(svdo=False), svdo)


def test_masks_kept_during_fine_tuning_then_permanent():
    torch.manual_seed(2)
    data = sv.DataBundle("toy", "random", torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)),
                         torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    model = magnitude_prune(sv.lenet_300_100(svdo=False), 0.8, permanent=False)
    assert not _plain(model)
    zero_before = {n: (m.weight == 0) for n, m in prunable_layers(model)}
    sv.fit(model, data, epochs=2, batch_size=32, device="cpu", progress=False)
    for n, m in prunable_layers(model):
        assert torch.equal(m.weight == 0, zero_before[n])  # pruned weights stayed at zero
    out = make_permanent(model)
    assert out is model and _plain(model)
    assert pruned_sparsity(model)["total"] == pytest.approx(0.8, abs=1e-4)


def test_bad_input():
    dense = sv.lenet_300_100(svdo=False)
    for bad in (1.5, -0.1, float("nan"), "lots"):
        with pytest.raises(ValueError, match="sparsity"):
            magnitude_prune(dense, bad)
    with pytest.raises(ValueError, match="per-layer amounts"):
        magnitude_prune(dense, [0.5, 0.5])
    with pytest.raises(ValueError, match="Sparse VD"):
        magnitude_prune(sv.lenet_300_100(), 0.5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        magnitude_prune(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        pruned_sparsity(nn.Sequential(nn.ReLU()))
    masked = magnitude_prune(dense, 0.5, permanent=False)
    with pytest.raises(ValueError, match="already carries"):
        magnitude_prune(masked, 0.5, copy_model=False)
