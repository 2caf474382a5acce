import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsevd_lab import SGVLB, LinearSVDO, kl_warmup, lenet_300_100, model_kl


def test_sgvlb_is_mean_loss_plus_scaled_kl():
    torch.manual_seed(0)
    model = nn.Sequential(LinearSVDO(4, 3), nn.ReLU(), LinearSVDO(3, 2))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    out = model(x)
    obj = SGVLB(model, train_size=1000, kl_weight=0.5)
    loss = obj(out, y)
    kl = model[0].kl() + model[2].kl()
    expected = F.cross_entropy(out, y) + 0.5 * kl / 1000
    assert torch.allclose(loss, expected)
    assert obj.data_term == pytest.approx(float(F.cross_entropy(out, y).detach()))
    assert obj.kl_term == pytest.approx(float(kl.detach()))
    assert torch.allclose(obj.kl(), kl) and torch.allclose(model_kl(model), kl)
    assert "train_size=1000" in repr(obj)
    # N matters: the data term is scaled by N relative to the KL (the ELBO)
    assert not torch.allclose(SGVLB(model, train_size=10)(out, y), loss)


def test_sgvlb_regression_loss_and_kl_weight_setter():
    model = nn.Sequential(LinearSVDO(3, 1))
    x, y = torch.randn(6, 3), torch.randn(6, 1)
    obj = SGVLB(model, 6, kl_weight=0.0, loss=F.mse_loss)
    out = model(x)
    assert torch.allclose(obj(out, y), F.mse_loss(out, y))
    obj.kl_weight = 2.0
    assert obj.kl_weight == 2.0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_sgvlb_rejects_bad_train_size(bad):
    with pytest.raises(ValueError, match="train_size"):
        SGVLB(lenet_300_100(), bad)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_sgvlb_rejects_bad_kl_weight(bad):
    with pytest.raises(ValueError, match="kl_weight"):
        SGVLB(lenet_300_100(), 100, kl_weight=bad)


def test_sgvlb_and_model_kl_need_svdo_layers():
    dense = lenet_300_100(svdo=False)
    with pytest.raises(ValueError, match="from_dense"):
        SGVLB(dense, 100)
    with pytest.raises(ValueError, match="from_dense"):
        model_kl(dense)


def test_kl_warmup_authors_default():
    assert [kl_warmup(e) for e in (0, 4, 5)] == [0.0, 0.0, 0.0]
    assert kl_warmup(10) == pytest.approx(1 / 3)
    assert kl_warmup(20) == 1.0 and kl_warmup(150) == 1.0
    assert kl_warmup(12, start=0, end=0, max_weight=0.3) == 0.3
    with pytest.raises(ValueError):
        kl_warmup(1, start=5, end=2)
