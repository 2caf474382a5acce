import pytest
import torch

from sparsevd_lab import (evaluate, fit, lenet_300_100, load_regression, load_sklearn_digits,
                          lr_factor, make_optimizer, mlp_regressor, resolve_device, set_seed)
from sparsevd_lab.data import TensorLoader


@pytest.fixture(scope="module")
def digits():
    return load_sklearn_digits(verbose=False)


def test_fit_svdo_learns_and_sparsifies(digits):
    model = lenet_300_100(in_features=64)
    snapshots = []
    hist = fit(model, digits, epochs=8, kl_weight=lambda e: 0.05, lr=3e-3, progress=True,
               callback=lambda e, m, row: snapshots.append(row["epoch"]))
    assert list(hist["epoch"]) == list(range(1, 9)) and snapshots == list(range(1, 9))
    for col in ["lr", "kl_weight", "data_loss", "kl", "train_acc", "test_acc", "sparsity_%",
                "compression", "seconds"]:
        assert col in hist
    assert hist["test_acc"].iloc[-1] > 0.85
    assert hist["sparsity_%"].iloc[-1] > hist["sparsity_%"].iloc[0]
    assert hist["kl"].iloc[-1] < hist["kl"].iloc[0]
    assert not model.training


def test_fit_dense_and_regression_and_eval_train(digits):
    dense = lenet_300_100(svdo=False, in_features=64)
    hist = fit(dense, digits, epochs=2, progress=False, eval_train=True)
    assert "sparsity_%" not in hist and hist["train_acc"].iloc[-1] > 0.5
    reg = load_regression(verbose=False)
    h = fit(mlp_regressor(10), reg, epochs=3, progress=False, batch_size=32)
    assert "test_mse" in h and h["test_mse"].iloc[-1] < 1.5


def test_fit_is_seeded(digits):
    small = digits.subset(200, 50)
    runs = []
    for _ in range(2):
        set_seed(3)  # the initialisation is the caller's; fit seeds noise and shuffling
        runs.append(fit(lenet_300_100(in_features=64), small, epochs=2, seed=3, progress=False)["data_loss"])
    assert runs[0].tolist() == runs[1].tolist()


def test_fit_with_loaders_and_warmup_schedule(digits):
    tr = TensorLoader(digits.x_train, digits.y_train, 100, shuffle=True)
    hist = fit(lenet_300_100(in_features=64), (tr, None), epochs=7, progress=False)
    assert hist["kl_weight"].tolist()[:6] == [0, 0, 0, 0, 0, 0] and hist["kl_weight"].iloc[6] > 0
    assert "test_acc" not in hist


def test_fit_bad_epochs(digits):
    with pytest.raises(ValueError, match="epochs"):
        fit(lenet_300_100(in_features=64), digits, epochs=0)


def test_lr_factor_recipes():
    # LeNet-300-100: flat to epoch 100, then linear to 0 at 200
    assert lr_factor(99, 200, 0.5) == 1.0 and lr_factor(150, 200, 0.5) == pytest.approx(0.5)
    # LeNet-5: linear decay from the start
    assert lr_factor(0, 200, 0.0) == 1.0 and lr_factor(100, 200, 0.0) == pytest.approx(0.5)
    assert lr_factor(200, 200, 0.0) == 0.0


def test_make_optimizer_excludes_log_sigma2_from_weight_decay():
    model = lenet_300_100()
    opt = make_optimizer(model, lr=1e-3, weight_decay=5e-4)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (not name.endswith("log_sigma2")), name


def test_evaluate_and_devices(digits):
    model = lenet_300_100(in_features=64)
    _, te = digits.loaders()
    res = evaluate(model, te)
    assert set(res) == {"loss", "acc"} and 0 <= res["acc"] <= 1 and model.training
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_set_seed():
    set_seed(5)
    a = torch.rand(3)
    set_seed(5)
    assert torch.equal(a, torch.rand(3))
