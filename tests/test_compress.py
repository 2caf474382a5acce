"""Tests for sparsevd_lab.compress: exact outputs, real structural shrink, save/load, reports."""
from __future__ import annotations

import contextlib
import re
import warnings

import pytest
import torch
from torch import nn

import sparsevd_lab as sv
from sparsevd_lab.compression import (
    CompressedFileError,
    CompressedSequential,
    Constant,
    IndexSelect,
    SparseConv2d,
    SparseLinear,
    compress,
    file_size_report,
    flops_report,
    load_compressed,
    save_compressed,
)
from sparsevd_lab.layers import Conv2dSVDO, LinearSVDO

TOL = 1e-5
DEAD = 10.0  # log_sigma2 = 10 makes log_alpha >= 3 for any |theta| < ~20: the weight is dropped


def _kill(model: nn.Module, p: float = 0.9, seed: int = 0, dead_rows=None, dead_cols=None):
    """Deterministically drop a fraction p of every Sparse VD layer's weights (and given rows /
    columns: {layer_name: [indices]}), give biases random values, and switch to eval mode."""
    g = torch.Generator().manual_seed(seed)
    dead_rows, dead_cols = dead_rows or {}, dead_cols or {}
    with torch.no_grad():
        for name, m in sv.svdo_layers(model):
            dead = torch.rand(m.weight.shape, generator=g) < p
            dead[dead_rows.get(name, [])] = True
            dead[:, dead_cols.get(name, [])] = True
            m.log_sigma2[dead] = DEAD
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return model.eval()


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def _no_svdo(model: nn.Module) -> bool:
    return not any(isinstance(m, (LinearSVDO, Conv2dSVDO)) for m in model.modules())


def _weights(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, SparseLinear, SparseConv2d))]


@pytest.fixture(scope="module")
def lenet300():
    torch.manual_seed(0)
    return _kill(sv.lenet_300_100(), p=0.95, dead_rows={"1": list(range(0, 300, 3)), "3": [0, 1, 2]},
                 dead_cols={"1": list(range(100))})


@pytest.fixture(scope="module")
def lenet5():
    torch.manual_seed(1)
    # conv channels 0-4 of the first layer and 0-9 of the second have no kept weight: their output
    # is the constant map relu(bias), which flows through max-pooling and Flatten into fc1's bias.
    return _kill(sv.lenet5(), p=0.8, dead_rows={"0": [0, 1, 2, 3, 4], "3": list(range(10)),
                                                "7": list(range(0, 500, 2))})


@pytest.mark.parametrize("storage", ["dense", "sparse", "auto"])
def test_lenet300_outputs_equal_and_shrink(lenet300, storage):
    x = torch.randn(50, 1, 28, 28)
    c = compress(lenet300, storage=storage, timing_batch=32, timing_repeats=2)
    assert isinstance(c, CompressedSequential) and _no_svdo(c)
    assert _max_diff(c, lenet300, x) <= TOL
    sel = [m for m in c.modules() if isinstance(m, IndexSelect)][0]
    assert len(sel.index) <= 784 - 100  # the first 100 pixels are read by no kept weight
    w = _weights(c)
    assert w[0].out_features <= 200 and w[1].out_features <= 97 and w[2].out_features == 10
    if storage == "sparse":
        assert all(isinstance(m, SparseLinear) for m in w)
    if storage == "dense":
        assert all(type(m) is nn.Linear for m in w)
    assert not any(p.requires_grad for p in c.parameters())


def test_lenet5_dead_channels_fold_into_next_bias(lenet5):
    x = torch.randn(20, 1, 28, 28)
    c = compress(lenet5, storage="dense")
    assert _max_diff(c, lenet5, x) <= TOL
    convs = [m for m in c.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels <= 15 and convs[1].in_channels == convs[0].out_channels
    assert convs[1].out_channels <= 40
    fc = [m for m in c.modules() if isinstance(m, nn.Linear)]
    assert fc[0].out_features <= 250 and fc[1].out_features == 10
    assert c.info["layers"][0]["shape_after"][0] == convs[0].out_channels


def test_lenet5_sparse_conv_and_auto(lenet5):
    x = torch.randn(8, 1, 28, 28)
    c = compress(lenet5, storage="sparse")
    assert any(isinstance(m, SparseConv2d) for m in c)
    assert _max_diff(c, lenet5, x) <= TOL
    a = compress(lenet5, storage="auto", input_shape=(1, 28, 28), timing_batch=8, timing_repeats=2)
    assert _max_diff(a, lenet5, x) <= TOL
    assert all("seconds_dense" in r for r in a.info["layers"])


def test_flatten_feature_select_drops_unread_conv_positions():
    torch.manual_seed(2)
    m = _kill(sv.lenet5(), p=0.5, dead_cols={"7": list(range(0, 800, 2))})
    c = compress(m, storage="dense")
    x = torch.randn(4, 1, 28, 28)
    assert _max_diff(c, m, x) <= TOL
    sels = [s for s in c if isinstance(s, IndexSelect)]
    assert sels and len(sels[-1].index) <= 400


def _custom():
    torch.manual_seed(3)
    m = nn.Sequential(
        nn.Sequential(Conv2dSVDO(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1)),
        nn.MaxPool2d(2), nn.Dropout(0.2),
        Conv2dSVDO(8, 6, 3, padding=1, bias=False), nn.ReLU(),
        nn.Flatten(),
        LinearSVDO(6 * 4 * 4, 20), nn.BatchNorm1d(20), nn.Tanh(),
        nn.Linear(20, 12), nn.ELU(),
        LinearSVDO(12, 5),
    )
    with torch.no_grad():
        for bn in (m[0][1], m[7]):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    # channel 2 of the first conv is dead with a nonzero constant map and the next conv pads with
    # zeros: that channel cannot be folded, so it must be kept (exact outputs come first)
    return _kill(m, p=0.6, dead_rows={"0.0": [1, 2, 5], "3": [0], "6": [3, 4, 5]})


def test_custom_sequential_with_batchnorm_and_padding():
    m = _custom()
    x = torch.randn(16, 3, 8, 8)
    for storage in ("dense", "sparse"):
        c = compress(m, storage=storage)
        assert _no_svdo(c)
        assert _max_diff(c, m, x) <= TOL
    assert [l["shape_after"][0] for l in c.info["layers"]][-1] == 5


class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = LinearSVDO(10, 10)
        self.b = LinearSVDO(10, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x)


def test_skip_connection_falls_back_with_warning():
    torch.manual_seed(4)
    m = _kill(_Skip(), p=0.7)
    with pytest.warns(UserWarning, match="cannot shrink"):
        c = compress(m)
    assert _no_svdo(c)
    x = torch.randn(7, 10)
    assert _max_diff(c, m, x) <= TOL
    assert torch.count_nonzero(c.a.weight) == int(m.a.mask().sum())
    with pytest.raises(ValueError, match="save_compressed"):
        save_compressed(m, "unused.safetensors")


def test_unknown_module_in_sequential_falls_back():
    m = _kill(nn.Sequential(LinearSVDO(6, 4), nn.Softmax(dim=1), LinearSVDO(4, 2)), p=0.3)
    with pytest.warns(UserWarning, match="Softmax"):
        c = compress(m)
    x = torch.randn(3, 6)
    assert _max_diff(c, m, x) <= TOL


def test_all_weights_dropped_gives_constant():
    m = _kill(sv.lenet_300_100(), p=1.0)
    c = compress(m)
    assert isinstance(c[0], Constant)
    x = torch.randn(5, 1, 28, 28)
    assert _max_diff(c, m, x) <= TOL


def test_threshold_override_and_bad_input(lenet300):
    c = compress(lenet300, threshold=1e6, storage="dense")  # keeps every weight
    assert _weights(c)[0].weight.shape == (300, 784)
    with pytest.raises(ValueError, match="finite"):
        compress(lenet300, threshold=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        compress(lenet300, threshold=float("inf"))
    with pytest.raises(ValueError, match="Sparse VD"):
        compress(sv.lenet_300_100(svdo=False))
    with pytest.raises(ValueError, match="storage"):
        compress(lenet300, storage="csr")


def test_modules_directly():
    torch.manual_seed(5)
    w = torch.randn(4, 6) * (torch.rand(4, 6) < 0.5)
    b = torch.randn(4)
    x = torch.randn(3, 6)
    assert torch.allclose(SparseLinear(w, b)(x), x @ w.t() + b, atol=TOL)
    wc = torch.randn(5, 2, 3, 3) * (torch.rand(5, 2, 3, 3) < 0.5)
    xc = torch.randn(2, 2, 7, 7)
    ref = torch.nn.functional.conv2d(xc, wc, b[:1].repeat(5), 2, 1)
    assert torch.allclose(SparseConv2d(wc, b[:1].repeat(5), (2, 2), (1, 1), (1, 1))(xc), ref, atol=TOL)
    assert torch.equal(IndexSelect(torch.tensor([0, 5]), 6)(x), x[:, [0, 5]])
    assert torch.equal(Constant(torch.ones(3))(x), torch.ones(3, 3))


@pytest.mark.parametrize("which", ["lenet300", "lenet5", "custom"])
def test_save_load_round_trip(tmp_path, which, lenet300, lenet5):
    m = {"lenet300": lenet300, "lenet5": lenet5, "custom": None}[which] or _custom()
    x = torch.randn(6, *((3, 8, 8) if which == "custom" else (1, 28, 28)))
    for storage in ("dense", "sparse"):
        c = compress(m, storage=storage)
        path = save_compressed(c, tmp_path / f"{which}_{storage}.safetensors")
        back = load_compressed(path)
        assert [type(a) for a in back.modules()] == [type(a) for a in c.modules()]
        assert _max_diff(back, m, x) <= TOL
        assert back.info["layers"] == c.info["layers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{which}_dense.safetensors",
                                                          f"{which}_sparse.safetensors"]


def test_save_svdo_model_directly_and_float16(tmp_path, lenet300):
    p32 = save_compressed(lenet300, tmp_path / "a.safetensors")
    p16 = save_compressed(lenet300, tmp_path / "b.safetensors", values_dtype="float16")
    assert p16.stat().st_size < p32.stat().st_size
    x = torch.randn(4, 1, 28, 28)
    assert _max_diff(load_compressed(p32), lenet300, x) <= TOL
    assert _max_diff(load_compressed(p16), lenet300, x) <= 1e-2 * (1 + lenet300(x).abs().max())
    with pytest.raises(ValueError, match="values_dtype"):
        save_compressed(lenet300, tmp_path / "c.safetensors", values_dtype="int8")
    with pytest.raises(ValueError, match="compress"):
        save_compressed(sv.lenet_300_100(svdo=False), tmp_path / "d.safetensors")


def test_load_rejects_truncated_foreign_and_missing(tmp_path, lenet300):
    from safetensors.torch import save_file

    good = save_compressed(lenet300, tmp_path / "good.safetensors")
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for n in (len(data) - 100, 200, 5):
        cut.write_bytes(data[:n])
        with pytest.raises(CompressedFileError, match="truncated|not a usable"):
            load_compressed(cut)
    foreign = tmp_path / "state.safetensors"
    save_file({k: v.contiguous() for k, v in lenet300.state_dict().items()}, foreign)
    with pytest.raises(CompressedFileError, match="not written by save_compressed"):
        load_compressed(foreign)
    pickled = tmp_path / "model.pt"
    torch.save(lenet300.state_dict(), pickled)
    with pytest.raises(CompressedFileError, match="safetensors"):
        load_compressed(pickled)
    with pytest.raises(CompressedFileError, match="no such file"):
        load_compressed(tmp_path / "nope.safetensors")
    assert issubclass(CompressedFileError, ValueError)


def test_file_is_plain_named_tensors_with_json_metadata(tmp_path, lenet300):
    """Any safetensors tool reads the file: named tensors, and the architecture as plain JSON."""
    import json

    from safetensors import safe_open

    from sparsevd_lab.compression import FORMAT_VERSION

    path = save_compressed(compress(lenet300, storage="sparse"), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as fh:
        meta, names = fh.metadata(), set(fh.keys())
        values = {k: fh.get_tensor(k) for k in names if k.endswith(".values")}
    assert meta["format"] == "sparsevd_lab.compressed" and meta["format_version"] == str(FORMAT_VERSION) == "3"
    arch = json.loads(meta["architecture"])
    referenced = set()

    def walk(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        elif isinstance(obj, str) and obj in names:
            referenced.add(obj)

    walk(arch["modules"])
    assert referenced == names  # every tensor is named by the architecture, none is hidden in a blob
    kept = sum(int(m.mask().sum()) for _, m in sv.svdo_layers(lenet300))
    assert sum(v.numel() for v in values.values()) <= kept


def test_reads_format_version_2(tmp_path, lenet300):
    """Files written before version 3 (tensors packed in blobs, zlib architecture) still load."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from sparsevd_lab.compression.fileformat import _pack, encode_architecture

    model = compress(lenet300, storage="sparse")
    good = save_compressed(model, tmp_path / "v3.safetensors")
    with safe_open(str(good), "pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    import json

    blobs, index = _pack(tensors)
    v2 = {"format": meta["format"], "format_version": "2",
          "architecture": encode_architecture(json.loads(meta["architecture"])),
          "index": json.dumps(index)}
    save_file(blobs, tmp_path / "v2.safetensors", v2)
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(load_compressed(tmp_path / "v2.safetensors")(x), model(x), atol=1e-6)


def test_load_rejects_tampered_architecture(tmp_path, lenet300):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    good = save_compressed(lenet300, tmp_path / "good.safetensors")
    with safe_open(str(good), "pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    arch = json.loads(meta["architecture"])
    arch["modules"][0] = {"type": "os.system", "args": "echo hi"}
    save_file(tensors, tmp_path / "bad.safetensors", {**meta, "architecture": json.dumps(arch)})
    with pytest.raises(CompressedFileError, match="unknown module type"):
        load_compressed(tmp_path / "bad.safetensors")
    save_file(tensors, tmp_path / "garbled.safetensors", {**meta, "architecture": "{not json"})
    with pytest.raises(CompressedFileError, match="architecture cannot be rebuilt"):
        load_compressed(tmp_path / "garbled.safetensors")
    missing = dict(tensors)
    missing.pop(sorted(missing)[0])
    save_file(missing, tmp_path / "missing.safetensors", meta)
    with pytest.raises(CompressedFileError, match="missing"):
        load_compressed(tmp_path / "missing.safetensors")
    save_file(tensors, tmp_path / "v2noindex.safetensors", {**meta, "format_version": "2", "index": "{}"})
    with pytest.raises(CompressedFileError, match="not a usable"):
        load_compressed(tmp_path / "v2noindex.safetensors")
    save_file(tensors, tmp_path / "v9.safetensors", {**meta, "format_version": "9"})
    with pytest.raises(CompressedFileError, match="version"):
        load_compressed(tmp_path / "v9.safetensors")


def test_save_to_a_folder_says_to_give_a_file_path(tmp_path, lenet300):
    with pytest.raises(IsADirectoryError, match=r"is a folder; give a file path inside it.*model.safetensors"):
        save_compressed(lenet300, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch, lenet300):
    import safetensors.torch

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_compressed(compress(lenet300, storage="dense"), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_flops_report(lenet300, lenet5):
    df = flops_report(lenet300, (1, 28, 28))
    assert df.loc["total", "dense_madds"] == 784 * 300 + 300 * 100 + 100 * 10
    assert (df["kept_madds"] <= df["dense_madds"]).all()
    assert 1 < df.attrs["flop_ratio"] < float("inf")
    df5 = flops_report(lenet5, (1, 28, 28), compress(lenet5, storage="sparse"))
    dense5 = 20 * 25 * 24 * 24 + 50 * 20 * 25 * 8 * 8 + 800 * 500 + 500 * 10
    assert df5.loc["total", "dense_madds"] == dense5
    # sparse storage executes only kept weights (<= the SVDO mask: folded columns are gone)
    assert (df5["compressed_madds"] <= df5["kept_madds"]).all()


def test_file_size_report(lenet300):
    df = file_size_report(lenet300)
    dense = df.loc["dense state_dict", "bytes"]
    assert dense > (784 * 300 + 300 * 100 + 100 * 10) * 4
    assert df.loc["Sparse VD state_dict (with log_sigma2)", "bytes"] > 1.9 * dense
    assert df.attrs["size_ratio"] > 10


def test_benchmark_fast_mode_smoke(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_compress.py"
    spec = importlib.util.spec_from_file_location("bench_compress", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--fast", "--models", "lenet300", "--cache", "none"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "speedup_b1000_x" in out and "outputs equal (max abs diff <= 1e-5): PASS" in out


def test_inference_layout_exact_pool_first_inplace_channels_last_chunks(tmp_path, lenet5):
    from sparsevd_lab.compression import CHUNK_BYTES, inference_layout

    c = compress(lenet5, storage="dense", input_shape=(1, 28, 28))
    kinds = [type(m) for m in c]
    # conv -> relu -> pool became conv -> pool -> relu (in place); the fc relu is in place too
    first = kinds.index(nn.Conv2d)
    assert kinds[first + 1] is nn.MaxPool2d and kinds[first + 2] is nn.ReLU
    assert all(m.inplace for m in c if isinstance(m, nn.ReLU))
    assert c.channels_last and c.chunk_size is not None
    rows_per_chunk = CHUNK_BYTES // (c.chunk_size * 4)
    assert rows_per_chunk >= 1
    x = torch.randn(2 * c.chunk_size + 3, 1, 28, 28)  # three chunks, the last one short
    x_copy = x.clone()
    assert _max_diff(c, lenet5, x) <= TOL
    assert torch.equal(x, x_copy)  # in-place activations never touch the caller's input
    back = load_compressed(save_compressed(c, tmp_path / "l5.safetensors"))
    assert back.channels_last and back.chunk_size == c.chunk_size
    assert [getattr(m, "inplace", None) for m in back] == [getattr(m, "inplace", None) for m in c]
    assert _max_diff(back, lenet5, x) <= TOL

    # on a plain dense Sequential: the same swap, the same outputs (channels_last changes only the
    # order of the convolution's sums); GELU (not monotone)
    # stays before the pool, and an activation after Flatten (a view) is not made in place
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.GELU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(5, 1, 14, 14)
    with torch.no_grad():
        want = dense(x)
    inference_layout(dense)
    assert [type(m) for m in dense][:6] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.GELU,
                                            nn.MaxPool2d]
    assert dense[2].inplace and not dense[7].inplace
    assert dense[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(dense(x), want, rtol=0, atol=1e-6)


def test_linear_model_gets_no_conv_layout(lenet300):
    c = compress(lenet300, storage="dense")
    assert not c.channels_last and c.chunk_size is None


def _sparse_weight(out_f, in_f, density, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, generator=g)
    return w * (torch.rand(out_f, in_f, generator=g) < density)


@pytest.mark.parametrize("n", [1, 8, 13])
@pytest.mark.parametrize("bias", [True, False])
def test_compiled_csr_linear_equals_dense_product(n, bias):
    from sparsevd_lab import kernels

    if not kernels.kernels_enabled():
        pytest.skip("compiled kernels not available")
    w = _sparse_weight(7, 20, 0.2, seed=n)
    b = torch.randn(7) if bias else None
    layer = SparseLinear(w, b)
    x = torch.randn(n, 20)
    with torch.no_grad():
        got = kernels.csr_linear(x, layer._crow, layer._col, layer.weight.values(), b, 7, 20)
        assert got is not None
        assert torch.allclose(got, torch.nn.functional.linear(x, w, b), rtol=1e-5, atol=1e-6)
        assert torch.allclose(layer(x), got)
    # where the kernel does not apply (float64, or an input that needs a gradient) it says so, and
    # the layer computes the same with torch.sparse
    assert kernels.csr_linear(x.double(), layer._crow, layer._col, layer.weight.values(), b, 7, 20) is None
    xg = x.clone().requires_grad_()
    assert kernels.csr_linear(xg, layer._crow, layer._col, layer.weight.values(), b, 7, 20) is None
    assert torch.allclose(layer(xg).detach(), got, rtol=1e-5, atol=1e-6)


def test_sparse_mlp_equals_its_layers_and_survives_save_load(tmp_path):
    from sparsevd_lab import kernels
    from sparsevd_lab.compression import SparseMLP

    if not kernels.kernels_enabled():
        pytest.skip("compiled kernels not available")
    torch.manual_seed(0)
    dense_mid = nn.Linear(6, 5)
    chain = nn.Sequential(IndexSelect(torch.tensor([0, 3, 4, 9, 11, 15]), 16),
                          SparseLinear(_sparse_weight(6, 6, 0.5, 1), torch.randn(6)), nn.ReLU(),
                          dense_mid, nn.ReLU(), SparseLinear(_sparse_weight(3, 5, 0.6, 2), None))
    assert SparseMLP.eligible(list(chain))
    assert not SparseMLP.eligible(list(chain) + [nn.Tanh()])
    assert not SparseMLP.eligible([nn.ReLU(), nn.Linear(2, 2)])
    mlp = SparseMLP(chain)
    model = CompressedSequential(nn.Flatten(), mlp).eval()
    x = torch.randn(13, 4, 4)
    with torch.no_grad():
        want = chain(x.flatten(1))
        assert torch.allclose(model(x), want, rtol=1e-5, atol=1e-6)
        mlp.use_kernel = False
        assert torch.equal(model(x), want)
        mlp.use_kernel = True
    back = load_compressed(save_compressed(model, tmp_path / "mlp.safetensors"))
    assert isinstance(back[1], SparseMLP)
    with torch.no_grad():
        assert torch.allclose(back(x), want, rtol=1e-5, atol=1e-6)


def test_compress_picks_the_sparse_mlp_only_when_it_measures_faster(lenet300):
    c = compress(lenet300, input_shape=(1, 28, 28), timing_batch=256, timing_repeats=3)
    if "seconds_sparse_mlp" in c.info:  # the compiled kernels were available
        from sparsevd_lab.compression import SparseMLP

        used = any(isinstance(m, SparseMLP) for m in c.modules())
        assert used == (c.info["seconds_sparse_mlp"] < c.info["seconds_layers"])
        assert used == (c.info.get("layout") == "sparse_mlp")
    x = torch.randn(20, 1, 28, 28)
    assert _max_diff(c, lenet300, x) <= TOL
    flops = flops_report(lenet300, (1, 28, 28), c)  # the report sees the layers inside a SparseMLP
    assert len(flops) >= 3


def test_compress_api_edges_of_issue_20(tmp_path):
    """A wrong input_shape is a clear error before any work; threshold=None means the layers' own;
    load_compressed(device='cuda') without a GPU says so; storage='auto' records what it measured."""
    torch.manual_seed(0)
    conv = sv.lenet5().eval()
    with pytest.raises(ValueError, match=r"input_shape=\(784,\) does not fit this model.*\(1, 28, 28\)"):
        sv.compress(conv, input_shape=(784,))
    with pytest.raises(ValueError, match="input_shape must be a tuple"):
        sv.compress(conv, input_shape=784)
    mlp = sv.lenet_300_100(in_features=64).eval()
    with torch.no_grad():
        mlp[1].log_sigma2.fill_(5.0)  # most of fc1 dropped
        mlp[1].log_sigma2[:, :8] = -10.0
    same = sv.compress(mlp, threshold=None, storage="dense")
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(same(x), mlp(x), atol=1e-5)
    assert same.info["storage_rule"] == "forced: storage='dense'"
    timed = sv.compress(mlp, timing_repeats=1, timing_batch=8)
    assert timed.info["storage_rule"] == "timed" and timed.info["timing"]["batch"] == 8
    assert all("seconds_dense" in layer for layer in timed.info["layers"])
    path = sv.save_compressed(timed, tmp_path / "m.safetensors")
    assert sv.load_compressed(path).info["timing"]["repeats"] == 1  # the file says what was measured
    assert sv.sparsity_report(mlp, None).equals(sv.sparsity_report(mlp))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            sv.load_compressed(path, device="cuda")


def test_compression_modules_use_each_others_public_names():
    """Issue 20, 6: no sibling imports a private name of another, and is_conv is defined once."""
    import ast
    from pathlib import Path

    folder = Path(sv.__file__).parent / "compression"
    defined = []
    for f in folder.glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert private == [], f"{f.name} imports {private} from {node.module}"
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "is_conv":
                defined.append(f.name)
    assert defined == ["modules.py"]
    lengths = {n.name: n.end_lineno - n.lineno for n in ast.walk(ast.parse((folder / "shrink.py").read_text()))
               if isinstance(n, ast.FunctionDef)}
    assert lengths["_shrink"] < 20  # _shrink calls one function per step
    assert max(v for k, v in lengths.items() if k != "compress") < 60, lengths


def _mlp_model(c: nn.Module) -> CompressedSequential:
    """The compressed LeNet-300-100 ``c`` (sparse storage) with its layers in one SparseMLP: what
    ``compress`` picks where the compiled kernel measures faster."""
    from sparsevd_lab.compression import SparseMLP

    mods = list(c)
    assert isinstance(mods[0], nn.Flatten) and SparseMLP.eligible(mods[1:])
    mlp = CompressedSequential(mods[0], SparseMLP(nn.Sequential(*mods[1:]))).eval()
    for hook in c._forward_pre_hooks.values():  # compress keeps the network's input check
        mlp.register_forward_pre_hook(hook)
    return mlp


@pytest.mark.parametrize("storage", ["dense", "sparse", "sparse_mlp"])
@pytest.mark.parametrize("kernels_on", [True, False], ids=["kernels", "reference"])
@pytest.mark.parametrize("shape", [(4, 700), (4, 8)])
def test_compressed_model_refuses_a_wrong_input_width_as_the_model_does(lenet300, storage, kernels_on, shape):
    """A compressed LeNet-300-100 given (4, 700) or (4, 8) once returned values from 1e18 to 1e35 (the
    compiled kernel read beyond the input); it now raises the uncompressed model's error."""
    from sparsevd_lab import kernels

    x = torch.randn(*shape)
    with pytest.raises(ValueError) as err:
        lenet300(x)
    want = re.escape(str(err.value))
    assert f"got an input of shape {shape}" in str(err.value)
    c = compress(lenet300, storage="sparse" if storage == "sparse_mlp" else storage)
    if storage == "sparse_mlp":
        c = _mlp_model(c)
    with torch.no_grad(), (contextlib.nullcontext() if kernels_on else kernels.disabled()):
        with pytest.raises(ValueError, match=want):
            c(x)
        assert _max_diff(c, lenet300, torch.randn(9, 1, 28, 28)) <= TOL  # the right width still runs


def test_sparse_layers_refuse_a_wrong_width_before_the_kernel():
    layer = SparseLinear(_sparse_weight(7, 20, 0.2, seed=0), torch.randn(7))
    for bad in (torch.randn(3, 19), torch.randn(3, 21), torch.randn(2, 3, 8)):
        with pytest.raises(ValueError, match=r"SparseLinear expected input of shape \(\.\.\., 20\)"):
            layer(bad)
    assert layer(torch.randn(2, 3, 20)).shape == (2, 3, 7)  # any leading dims, as nn.Linear
    sel = IndexSelect(torch.tensor([1, 4]), 6)
    with pytest.raises(ValueError, match=r"IndexSelect expected input of shape \(N, 6, \.\.\.\), got \(2, 5, 3"):
        sel(torch.randn(2, 5, 3, 3))
    assert sel(torch.randn(2, 6, 3, 3)).shape == (2, 2, 3, 3)
