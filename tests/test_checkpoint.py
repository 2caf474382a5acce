"""fit(..., checkpoint=PATH): a resumed run equals an uninterrupted one; checkpoints of another run,
corrupt or truncated ones are refused with the file's name; nothing is half-loaded."""
from __future__ import annotations

import pytest
import torch

from sparsevd_lab import fit, lenet_300_100, load_sklearn_digits, set_seed
from sparsevd_lab.checkpoint import CheckpointError, load_checkpoint, run_config, weights_id


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def small():
    return load_sklearn_digits(verbose=False).subset(300, 100)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _run(data, checkpoint=None, stop_after=None, epochs=5, svdo=True, **kwargs):
    set_seed(1)
    model = lenet_300_100(svdo=svdo, in_features=64)

    def callback(epoch, m, row):
        if stop_after is not None and epoch + 1 == stop_after:
            raise Stop

    history = fit(model, data, epochs=epochs, kl_weight=lambda e: 0.1 * e, progress=False,
                  checkpoint=checkpoint, callback=callback, **kwargs)
    return model, history


@pytest.mark.parametrize("stop_after", [1, 2, 4])
def test_resume_equals_uninterrupted(small, tmp_path, stop_after):
    model0, hist0 = _run(small)
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(small, path, stop_after=stop_after)
    assert path.exists() and load_checkpoint(path, _config_of(path))["epoch"] == stop_after
    model1, hist1 = _run(small, path)
    diff = max((a - b).abs().max().item()
               for a, b in zip(model0.state_dict().values(), model1.state_dict().values()))
    assert diff <= 1e-5
    assert hist1["epoch"].tolist() == [1, 2, 3, 4, 5]  # every epoch exactly once
    assert hist1["data_loss"].tolist() == hist0["data_loss"].tolist()
    # a finished checkpoint: fit returns the whole history at once, with the model restored
    model2, hist2 = _run(small, path)
    assert hist2["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert all(torch.equal(a, b) for a, b in zip(model1.state_dict().values(),
                                                 model2.state_dict().values()))


def _config_of(path):
    return torch.load(path, weights_only=True)["config"]


def test_other_model_or_config_is_refused_and_nothing_loaded(small, tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(small, path, stop_after=2)
    set_seed(5)
    dense = lenet_300_100(svdo=False, in_features=64)
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        fit(dense, small, epochs=5, progress=False, checkpoint=path)
    msg = str(err.value)
    assert str(path) in msg and "the model" in msg and "log_sigma2" in msg
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # untouched
    with pytest.raises(CheckpointError, match=r"lr \(0.001 there, 0.002 here\)"):
        _run(small, path, lr=2e-3)
    with pytest.raises(CheckpointError, match="kl_weights"):
        set_seed(1)
        fit(lenet_300_100(in_features=64), small, epochs=5, kl_weight=1.0, progress=False,
            checkpoint=path)


def test_fewer_epochs_than_the_checkpoint_is_a_clear_error(small, tmp_path):
    path = tmp_path / "run.pt"
    _run(small, path, epochs=4)
    with pytest.raises(CheckpointError, match="finished 4 epochs, more than the epochs=2"):
        _run(small, path, epochs=2)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-pickle"])
def test_corrupt_checkpoint_is_an_error_naming_the_file(small, tmp_path, damage):
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(small, path, stop_after=2)
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError) as err:
        _run(small, path)
    assert str(path) in str(err.value)
    assert path.exists()  # never silently replaced by a fresh start


def test_run_config_describes_model_and_settings():
    cfg = run_config(lenet_300_100(in_features=64), epochs=3, lr=1e-3)
    assert cfg["model_class"] == "Sequential" and cfg["epochs"] == 3
    assert ["1.log_sigma2", [300, 64], "float32"] in cfg["model"]


def test_resume_after_a_reseed_equals_uninterrupted(small, tmp_path):
    """Issue 20, 5: a run's identity is its configuration and the model's structure, not the random
    draw of its starting weights. Interrupted after epoch 1, then resumed with a model rebuilt after
    another global seed (a kernel restart, one extra cell run): the same weights as an
    uninterrupted run."""
    model0, hist0 = _run(small)
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(small, path, stop_after=1)
    set_seed(123)  # another global state: the rebuilt model starts from other random weights
    rebuilt = lenet_300_100(in_features=64)
    assert not torch.equal(rebuilt[1].weight, model0[1].weight)
    hist1 = fit(rebuilt, small, epochs=5, kl_weight=lambda e: 0.1 * e, progress=False, checkpoint=path)
    assert hist1["data_loss"].tolist() == hist0["data_loss"].tolist()
    diff = max((a - b).abs().max().item()
               for a, b in zip(model0.state_dict().values(), rebuilt.state_dict().values()))
    assert diff <= 1e-5


def test_a_declared_start_is_part_of_the_run(small, tmp_path):
    """Where the start matters (fine-tuning a trained net, a pruning mask) the caller says so with
    ``init_id``: a checkpoint made from another start is refused, naming init_id."""
    path = tmp_path / "run.pt"
    set_seed(1)
    a = lenet_300_100(in_features=64)
    with pytest.raises(Stop):
        fit(a, small, epochs=3, progress=False, checkpoint=path, init_id=weights_id(a),
            callback=lambda e, m, r: (_ for _ in ()).throw(Stop()))
    set_seed(2)
    b = lenet_300_100(in_features=64)
    assert weights_id(a) != weights_id(b)
    with pytest.raises(CheckpointError, match="init_id"):
        fit(b, small, epochs=3, progress=False, checkpoint=path, init_id=weights_id(b))


def test_the_module_types_are_part_of_the_run(small, tmp_path):
    """The same parameter names and shapes in other module types (ReLU against Tanh holds nothing,
    so: Linear against a Linear subclass) are another model."""
    class MyLinear(torch.nn.Linear):
        pass

    set_seed(1)
    cfg_a = run_config(torch.nn.Sequential(torch.nn.Linear(3, 2)), epochs=1)
    cfg_b = run_config(torch.nn.Sequential(MyLinear(3, 2)), epochs=1)
    assert cfg_a["model"] == cfg_b["model"] and cfg_a["modules"] != cfg_b["modules"]


def test_a_folder_is_refused_as_a_folder(small, tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fit(lenet_300_100(in_features=64), small, epochs=1, progress=False, checkpoint=tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_checkpoint(tmp_path, {})


def test_legacy_checkpoint_with_an_init_hash_still_resumes(small, tmp_path):
    """A checkpoint written before this change (config with "initial_weights", without "modules"
    and "init_id") resumes: only the keys it has are compared."""
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        _run(small, path, stop_after=2)
    payload = torch.load(path, weights_only=True)
    cfg = payload["config"]
    cfg.pop("modules")
    cfg.pop("init_id")
    cfg["initial_weights"] = "0123456789abcdef"
    torch.save(payload, path)
    model1, hist1 = _run(small, path)
    assert hist1["epoch"].tolist() == [1, 2, 3, 4, 5]
