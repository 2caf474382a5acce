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


# ---- issue 20, 4 and issue 18, 3: the data forms, the task, the device-resident path ----------

@pytest.fixture(scope="module")
def tiny(digits):
    return digits.subset(300, 100)


def _fit(data, seed=1, **kwargs):
    set_seed(seed)
    model = lenet_300_100(in_features=64)
    kwargs.setdefault("epochs", 2)
    return model, fit(model, data, kl_weight=0.1, progress=False, seed=seed, **kwargs)


def test_resident_path_equals_loader_path_on_the_cpu(tiny):
    """The same seed draws the same permutation in both paths: the same losses, bit for bit."""
    m_dev, h_dev = _fit(tiny, resident=True, epochs=3)
    m_ld, h_ld = _fit(tiny, resident=False, epochs=3)
    assert h_dev.attrs["data_path"] == "device" and h_ld.attrs["data_path"] == "loader"
    assert h_dev["data_loss"].tolist() == h_ld["data_loss"].tolist()
    assert h_dev["test_acc"].tolist() == h_ld["test_acc"].tolist()
    assert all(torch.equal(a, b) for a, b in zip(m_dev.state_dict().values(), m_ld.state_dict().values()))
    # on the CPU the default keeps the data where they are: the resident path
    assert _fit(tiny, epochs=1)[1].attrs["data_path"] == "device"


def test_too_large_for_the_device_falls_back_to_the_loader_and_says_so(tiny, monkeypatch):
    import sparsevd_lab.train as train

    monkeypatch.setattr(train, "_device_budget", lambda device: 1000)  # bytes: far too small
    with pytest.warns(UserWarning, match="do not fit .* loader"):
        _, h = _fit(tiny, epochs=1)
    assert h.attrs["data_path"] == "loader"


def test_fit_takes_tensors_and_dataloaders(tiny):
    from torch.utils.data import DataLoader, TensorDataset

    _, h = _fit((tiny.x_train, tiny.y_train), epochs=1)
    assert "test_acc" not in h and h["train_acc"].iloc[0] > 0
    _, h = _fit((tiny.x_train, tiny.y_train, tiny.x_test, tiny.y_test), epochs=1)
    assert 0 <= h["test_acc"].iloc[0] <= 1
    tr = DataLoader(TensorDataset(tiny.x_train, tiny.y_train), batch_size=50, shuffle=True)
    te = DataLoader(TensorDataset(tiny.x_test, tiny.y_test), batch_size=100)
    _, h = _fit((tr, te), epochs=3, lr=3e-3)
    assert h.attrs["data_path"] == "loader" and len(h) == 3 and "test_acc" in h
    assert h["data_loss"].iloc[-1] < h["data_loss"].iloc[0]  # it trains
    with pytest.raises(TypeError, match="DataBundle .* tensors .* DataLoader"):
        _fit([tiny.x_train.numpy(), tiny.y_train.numpy()])
    with pytest.raises(ValueError, match="differ in length"):
        _fit((tiny.x_train, tiny.y_train[:10]))
    with pytest.raises(TypeError, match=r"pass \(loader, None\)"):
        _fit(tr)


def test_task_comes_from_the_bundle_or_the_argument_never_the_dtype(tiny):
    onehot = torch.nn.functional.one_hot(tiny.y_train, 10).float()
    with pytest.raises(ValueError, match="one-hot.*argmax\\(1\\).*task='regression'"):
        _fit((tiny.x_train, onehot))
    with pytest.raises(ValueError, match="one-hot"):
        _fit((tiny.x_train, onehot), task="classification")
    # the same float targets with task="regression" train as regression (MSE on 10 outputs)
    _, h = _fit((tiny.x_train, onehot), task="regression", epochs=1)
    assert "train_mse" in h
    with pytest.raises(ValueError, match="task='regression', but the DataBundle"):
        _fit(tiny, task="regression")
    with pytest.raises(ValueError, match="task must be one of"):
        _fit(tiny, task="classify")
    with pytest.raises(ValueError, match="regression targets must be floating-point"):
        _fit((tiny.x_train, tiny.y_train), task="regression")


def test_labels_one_to_ten_name_the_fix(tiny):
    with pytest.raises(ValueError, match=r"0\.\.9 .* got labels 1\.\.10: they look 1-based: pass y - 1"):
        _fit((tiny.x_train, tiny.y_train + 1))
    with pytest.raises(ValueError, match="0..9"):  # also through a DataLoader, batch by batch
        from torch.utils.data import DataLoader, TensorDataset
        _fit((DataLoader(TensorDataset(tiny.x_train, tiny.y_train + 1), batch_size=50), None))


@pytest.mark.parametrize("epochs", [2.5, "3", True, float("nan")])
def test_epochs_must_be_a_whole_number(tiny, epochs):
    with pytest.raises(ValueError, match="epochs must be a whole number"):
        _fit(tiny, epochs=epochs)


def test_float64_inputs_and_wrong_shapes_are_clear_errors(tiny):
    with pytest.raises((ValueError, TypeError), match="float64"):
        _fit((tiny.x_train.double(), tiny.y_train))
    set_seed(0)
    with pytest.raises(ValueError, match="in_features=64"):
        fit(lenet_300_100(), tiny, epochs=1, progress=False)  # 784 inputs, 8x8 digits


def test_device_cuda_without_a_gpu_is_a_clear_error(tiny):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        _fit(tiny, device="cuda")


def test_evaluate_on_a_model_without_parameters_and_on_tensors(tiny):
    res = evaluate(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
                   (tiny.x_test, tiny.y_test))
    assert 0 <= res["acc"] <= 1
    # no parameter at all: it runs where its inputs are (the CPU)
    res = evaluate(torch.nn.Flatten(), (torch.randn(6, 10), torch.arange(6)))
    assert set(res) == {"loss", "acc"}
    with pytest.raises(ValueError, match="no examples"):
        evaluate(torch.nn.Flatten(), TensorLoader(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (not run on the CPU CI)")
def test_resident_path_on_a_gpu_syncs_per_epoch_not_per_step(tiny):
    """Issue 18, 3: on a GPU the device-resident path waits for the device once per epoch, not once
    per step: 2 and 10 steps per epoch give the same number of synchronising calls."""
    import warnings

    counts = []
    for batch in (150, 30):  # 2 and 10 steps per epoch over 300 examples
        set_seed(1)
        model = lenet_300_100(in_features=64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                h = fit(model, tiny, epochs=1, batch_size=batch, device="cuda", progress=False)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        assert h.attrs["data_path"] == "device"
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    assert counts[0] == counts[1], counts
