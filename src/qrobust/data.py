"""Datasets: read offline, verify, split, and hand out images in [0, 1].

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) is read from the Debian package ``dataset-fashion-mnist``;
its four IDX files are checked against pinned SHA-256 digests before a byte is parsed. Other
datasets come through torchvision's dataset classes from a local folder, downloading only when
params ask for it. Images are stored as uint8 NCHW; ``as_float`` maps them to [0, 1].
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrobust.errors import DataError
from qrobust.io import load_npz, sha256_file
from qrobust.registry import Registry


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # uint8, (N, C, H, W)
    y: np.ndarray  # int64, (N,)

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise DataError(
                f"images {self.x.shape} and labels {self.y.shape}: expected (N, C, H, W) images and (N,) labels, one per image"
            )


@dataclass(frozen=True)
class RawDataset:
    train: Split
    test: Split
    sources: dict[str, str]  # file -> sha256, for the manifest


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about the data: shape, classes, and per-channel statistics."""

    channels: int
    size: int
    test_samples: int  # the published test split's size, so params are checked before any file is read
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    load: Callable[[Path, bool], RawDataset]
    install_hint: str


DATASETS: Registry[DatasetSpec] = Registry("dataset")

# Digests of the files shipped by Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_HINT = (
    "(re)install it with `sudo apt-get install --reinstall dataset-fashion-mnist`, "
    "or point data.root in params.yaml at a folder holding the four IDX .gz files"
)


def verify_files(root: Path, digests: dict[str, str], hint: str) -> dict[str, str]:
    """Check every file against its pinned digest before any is read."""
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist: {hint}")
    for name, expected in sorted(digests.items()):
        path = root / name
        if not path.is_file():
            raise DataError(f"dataset file {path} is missing: {hint}")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(
                f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; "
                f"the file is corrupt or not the pinned release, so nothing was written: restore it ({hint})"
            )
    return dict(sorted(digests.items()))


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST family's format: magic, dims, big-endian uint8 payload)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (header {data[:4].hex()})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, payload has {payload.size} bytes")
    return payload.reshape(dims)


def _load_fashion_mnist(root: Path, download: bool) -> RawDataset:
    if download:
        raise DataError("data.download: Fashion-MNIST is read offline from the Debian package; set it to false")
    sources = verify_files(root, FASHION_MNIST_SHA256, FASHION_MNIST_HINT)

    def split(prefix: str) -> Split:
        images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")[:, None, :, :]
        labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return Split(images, labels)

    return RawDataset(train=split("train"), test=split("t10k"), sources=sources)


def _torchvision_loader(
    class_name: str, split_kw: Callable[[bool], dict[str, object]]
) -> Callable[[Path, bool], RawDataset]:
    """Load a torchvision dataset from a local folder; download only when params ask for it."""

    def load(root: Path, download: bool) -> RawDataset:
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, class_name)

        def split(train: bool) -> Split:
            try:
                dataset = dataset_class(str(root), download=download, **split_kw(train))
            except RuntimeError as error:
                raise DataError(
                    f"{class_name} not found under {root}: put its files there or set data.download: true ({error})"
                ) from None
            images = np.asarray(dataset.data)
            images = images[:, None] if images.ndim == 3 else images
            if images.shape[-1] == 3:  # CIFAR stores NHWC
                images = images.transpose(0, 3, 1, 2)
            labels = np.asarray(getattr(dataset, "targets", getattr(dataset, "labels", None)), dtype=np.int64)
            return Split(np.ascontiguousarray(images, dtype=np.uint8), labels)

        train, test = split(True), split(False)
        sources = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
        return RawDataset(train, test, sources)

    return load


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))

DATASETS.register("fashion_mnist")(
    DatasetSpec(1, 28, 10_000, FASHION_CLASSES, (0.2860,), (0.3530,), _load_fashion_mnist, FASHION_MNIST_HINT)
)
DATASETS.register("mnist")(
    DatasetSpec(
        1,
        28,
        10_000,
        DIGITS,
        (0.1307,),
        (0.3081,),
        _torchvision_loader("MNIST", lambda t: {"train": t}),
        "set data.download: true",
    )
)
DATASETS.register("cifar10")(
    DatasetSpec(
        3,
        32,
        10_000,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        _torchvision_loader("CIFAR10", lambda t: {"train": t}),
        "set data.download: true",
    )
)
DATASETS.register("svhn")(
    DatasetSpec(
        3,
        32,
        26_032,
        DIGITS,
        (0.4377, 0.4438, 0.4728),
        (0.1980, 0.2010, 0.1970),
        _torchvision_loader("SVHN", lambda t: {"split": "train" if t else "test"}),
        "set data.download: true",
    )
)


@dataclass(frozen=True)
class Prepared:
    train: Split
    calib: Split
    test: Split
    eval: Split
    eval_index: np.ndarray  # positions of the evaluation subset in the test split


def split_dataset(
    raw: RawDataset, *, calib_size: int, train_size: int, test_size: int, eval_size: int, seed: int
) -> Prepared:
    """Seeded split: calibration comes from training data only; the evaluation subset from test data.

    ``train_size``/``test_size`` of 0 keep everything; smaller values subsample (for the smoke study).
    """
    n_train = len(raw.train.y)
    if calib_size >= n_train:
        raise DataError(f"data.calib_size: {calib_size} leaves no training data out of {n_train}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train)
    calib_idx = np.sort(order[:calib_size])
    train_idx = order[calib_size:]
    train_idx = np.sort(train_idx[:train_size] if train_size else train_idx)
    test_idx = np.arange(len(raw.test.y))
    if test_size:
        test_idx = np.sort(rng.permutation(len(raw.test.y))[:test_size])
    test = Split(raw.test.x[test_idx], raw.test.y[test_idx])
    if eval_size > len(test.y):
        raise DataError(f"data.eval_size: {eval_size} exceeds the {len(test.y)} test samples kept")
    eval_index = np.sort(rng.permutation(len(test.y))[:eval_size])
    pick = lambda s, i: Split(s.x[i], s.y[i])  # noqa: E731
    return Prepared(pick(raw.train, train_idx), pick(raw.train, calib_idx), test, pick(test, eval_index), eval_index)


def as_float(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], the only scale attacks, quantizers and defenses see."""
    return x.astype(np.float32) / np.float32(255.0)


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A prepared split as (float32 images in [0, 1], int64 labels)."""
    data = load_npz(path, required=("x", "y"))
    return as_float(data["x"]), data["y"].astype(np.int64)
