import pytest
import torch
from torch import nn

from sparsevd_lab import (Conv2dSVDO, LinearSVDO, build_model, from_dense, lenet5, lenet_300_100,
                          mlp_regressor, svdo_layers, vgg_like)


@pytest.mark.parametrize("svdo", [True, False])
def test_shapes_dense_and_svdo(svdo):
    assert lenet_300_100(svdo)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert lenet5(svdo)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert mlp_regressor(10, svdo)(torch.randn(3, 10)).shape == (3, 1)
    vgg = vgg_like(svdo, k=0.125)
    assert vgg(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert bool(svdo_layers(vgg)) == svdo
    n_params = sum(p.numel() for n, p in lenet_300_100(svdo).named_parameters() if "log_sigma2" not in n)
    assert n_params == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_build_model_and_errors():
    assert isinstance(build_model("lenet5", svdo=False)[0], nn.Conv2d)
    with pytest.raises(ValueError, match="valid"):
        build_model("resnet")
    with pytest.raises(ValueError, match="too small"):
        lenet5(image_size=8)
    with pytest.raises(ValueError, match="width factor"):
        vgg_like(k=0)


def test_from_dense_copies_weights_and_is_a_copy():
    dense = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False, groups=1), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(4 * 4 * 4, 5)))
    svdo = from_dense(dense, log_sigma2_init=-15.0)
    assert isinstance(svdo[0], Conv2dSVDO) and svdo[0].bias is None
    assert isinstance(svdo[3][0], LinearSVDO)
    assert isinstance(dense[0], nn.Conv2d)  # input untouched
    assert torch.equal(svdo[0].weight, dense[0].weight)
    assert torch.all(svdo[3][0].log_sigma2 == -15.0)
    x = torch.randn(3, 1, 6, 6)
    svdo.eval()
    # at log_sigma2 = -15 almost no weight is dropped: eval output ~ dense output
    assert torch.allclose(svdo(x), dense(x), atol=1e-2)
    single = from_dense(nn.Linear(3, 2))
    assert isinstance(single, LinearSVDO)


def test_from_dense_errors():
    with pytest.raises(ValueError, match="no nn.Linear"):
        from_dense(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError):
        from_dense("model")
    with pytest.raises(ValueError, match="zero padding"):
        from_dense(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize("svdo", [True, False])
def test_input_shape_check_names_the_model_to_build(svdo):
    """LeNet-5 on 8x8 digits (issue 20): a message that says what to build, from the model itself."""
    with pytest.raises(ValueError, match=r"lenet5 .* \(N, 1, 28, 28\); got \(2, 1, 8, 8\).*"
                                         r"lenet_300_100\(in_features=64\)"):
        lenet5(svdo)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"lenet5\(in_channels=3, image_size=32\)"):
        lenet5(svdo)(torch.randn(2, 3, 32, 32))
    assert lenet5(svdo, in_channels=3, image_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"lenet_300_100\(in_features=64\)"):
        lenet_300_100(svdo)(torch.randn(2, 1, 8, 8))
    import copy
    import pickle

    model = pickle.loads(pickle.dumps(copy.deepcopy(lenet5(svdo))))  # the check copies and pickles
    with pytest.raises(ValueError, match="lenet5 was built for"):
        model(torch.randn(2, 1, 8, 8))
