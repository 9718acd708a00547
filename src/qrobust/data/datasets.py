"""Datasets: read offline, verify, split, and hand out images in [0, 1].

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) is read from the Debian package ``dataset-fashion-mnist``;
MNIST, CIFAR-10 and SVHN from a local folder in torchvision's layout (downloaded by torchvision only when
params ask for it). Every file is checked against its pinned digest before a byte is parsed: the
release's, or the user's own (``data.sha256``) for a copy of their own. Images are stored as uint8 NCHW;
``as_float`` maps them to [0, 1].
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrobust.pipeline.errors import DataError
from qrobust.pipeline.io import file_digest, sha256_file
from qrobust.pipeline.registry import Registry


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
    """What a model needs to know about the data (shape, classes, per-channel statistics), and where its files
    are, pinned: ``release`` maps each file (relative to ``data.root``) to its published digest."""

    channels: int
    size: int
    test_samples: int  # the published test split's size, so params are checked before any file is read
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    release: dict[str, str]
    algorithm: str  # of the release digests: sha256 where we pinned them, md5 where torchvision publishes them
    parse: Callable[[Path], tuple[Split, Split]]  # (train, test), called only on verified files
    install_hint: str
    fetch: Callable[[Path], None] | None = None  # download into the root (data.download: true)

    def load(self, root: Path, *, download: bool = False, sha256: Mapping[str, str] | None = None) -> RawDataset:
        """Fetch if asked, verify every file against its pin, then parse. ``sha256`` (data.sha256) pins a
        copy of one's own (a subset, a re-encoding) instead of the published release."""
        if download:
            if self.fetch is None:
                raise DataError(
                    f"data.download: this dataset is read offline only; set it to false ({self.install_hint})"
                )
            self.fetch(root)
        digests, algorithm = (dict(sha256), "sha256") if sha256 else (self.release, self.algorithm)
        sources = verify_files(root, digests, self.install_hint, algorithm=algorithm)
        train, test = self.parse(root)
        for name, split in (("train", train), ("test", test)):
            if split.x.shape[1:] != (self.channels, self.size, self.size):
                raise DataError(
                    f"{root}: {name} images are {split.x.shape[1:]}, expected {(self.channels, self.size, self.size)}"
                )
            if len(split.y) and (split.y.min() < 0 or split.y.max() >= len(self.classes)):
                raise DataError(f"{root}: {name} labels outside 0..{len(self.classes) - 1}")
        return RawDataset(train, test, sources)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def verify_files(root: Path, digests: Mapping[str, str], hint: str, *, algorithm: str = "sha256") -> dict[str, str]:
    """Check every file against its pinned digest before any is read; return each file's SHA-256."""
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist: {hint}")
    sources = {}
    for name, expected in sorted(digests.items()):
        path = root / name
        if not path.is_file():
            raise DataError(f"dataset file {path} is missing: {hint}")
        actual = file_digest(path, algorithm)
        if actual != expected:
            raise DataError(
                f"checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}; "
                f"the file is corrupt or not the pinned release, so nothing was written: restore it ({hint})"
            )
        sources[name] = actual if algorithm == "sha256" else sha256_file(path)
    return sources


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


def idx_parser(folder: str) -> Callable[[Path], tuple[Split, Split]]:
    """The MNIST family: four gzipped IDX files, ``train-*`` and ``t10k-*``."""

    def parse(root: Path) -> tuple[Split, Split]:
        def split(prefix: str) -> Split:
            images = read_idx(root / folder / f"{prefix}-images-idx3-ubyte.gz")[:, None, :, :]
            labels = read_idx(root / folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
            return Split(images, labels)

        return split("train"), split("t10k")

    return parse


def parse_cifar10(root: Path) -> tuple[Split, Split]:
    """CIFAR-10's python release: pickled batches of 3072-byte rows (R, G, B planes of 32 x 32).

    Unpickling runs code from the file, which is why it happens only after the batch matched its pin."""
    import pickle

    def split(names: list[str]) -> Split:
        images, labels = [], []
        for name in names:
            with (root / CIFAR10_FOLDER / name).open("rb") as handle:
                batch = pickle.load(handle, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch["labels"], dtype=np.int64))
        return Split(np.concatenate(images), np.concatenate(labels))

    return split([f"data_batch_{i}" for i in range(1, 6)]), split(["test_batch"])


def parse_svhn(root: Path) -> tuple[Split, Split]:
    """SVHN's cropped digits: MATLAB files with X (32, 32, 3, N) and y (N, 1), the digit 0 labelled 10."""
    from scipy.io import loadmat

    def split(name: str) -> Split:
        mat = loadmat(root / name)
        labels = mat["y"].astype(np.int64).reshape(-1) % 10
        return Split(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8), labels)

    return split("train_32x32.mat"), split("test_32x32.mat")


def torchvision_fetch(class_name: str, *splits: dict[str, object]) -> Callable[[Path], None]:
    """Download through torchvision's class, which checks the release MD5s as it goes."""

    def fetch(root: Path) -> None:
        import torchvision.datasets

        for split in splits:
            getattr(torchvision.datasets, class_name)(str(root), download=True, **split)

    return fetch


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


# The other releases' MD5s as torchvision publishes them (torchvision.datasets.MNIST.resources,
# CIFAR10.train_list/test_list, SVHN.split_list), laid out as its classes download them.
MNIST_FOLDER = "MNIST/raw"


MNIST_MD5 = {
    f"{MNIST_FOLDER}/train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    f"{MNIST_FOLDER}/train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    f"{MNIST_FOLDER}/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    f"{MNIST_FOLDER}/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


CIFAR10_FOLDER = "cifar-10-batches-py"


CIFAR10_MD5 = {
    f"{CIFAR10_FOLDER}/data_batch_1": "c99cafc152244af753f735de768cd75f",
    f"{CIFAR10_FOLDER}/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    f"{CIFAR10_FOLDER}/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    f"{CIFAR10_FOLDER}/data_batch_4": "634d18415352ddfa80567beed471001a",
    f"{CIFAR10_FOLDER}/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    f"{CIFAR10_FOLDER}/test_batch": "40351d587109b95175f43aff81a1287e",
}


SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}


def torchvision_hint(name: str) -> str:
    return (
        f"put the {name} release under data.root as torchvision lays it out, set data.download: true to fetch it, "
        "or pin your own copy with data.sha256"
    )


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


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


DATASETS.register("fashion_mnist")(
    DatasetSpec(
        1,
        28,
        10_000,
        FASHION_CLASSES,
        (0.2860,),
        (0.3530,),
        FASHION_MNIST_SHA256,
        "sha256",
        idx_parser("."),
        FASHION_MNIST_HINT,
    )
)


DATASETS.register("mnist")(
    DatasetSpec(
        1,
        28,
        10_000,
        DIGITS,
        (0.1307,),
        (0.3081,),
        MNIST_MD5,
        "md5",
        idx_parser(MNIST_FOLDER),
        torchvision_hint("MNIST"),
        torchvision_fetch("MNIST", {"train": True}),
    )
)


DATASETS.register("cifar10")(
    DatasetSpec(
        3,
        32,
        10_000,
        CIFAR10_CLASSES,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        CIFAR10_MD5,
        "md5",
        parse_cifar10,
        torchvision_hint("CIFAR-10"),
        torchvision_fetch("CIFAR10", {"train": True}),
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
        SVHN_MD5,
        "md5",
        parse_svhn,
        torchvision_hint("SVHN"),
        torchvision_fetch("SVHN", {"split": "train"}, {"split": "test"}),
    )
)
