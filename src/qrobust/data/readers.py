"""Reading a dataset of the catalogue: every file checked against its pin before a byte is parsed, then
parsed (IDX, CIFAR-10's pickled batches, SVHN's MATLAB files) into uint8 NCHW images and int64 labels.
Only the prepare stage reads raw files, so only it imports this module."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from qrobust.data.datasets import DatasetSpec
from qrobust.data.splits import RawDataset, Split
from qrobust.pipeline.errors import DataError
from qrobust.pipeline.io import file_digest, sha256_file


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


def read_idx_release(root: Path, folder: str) -> tuple[Split, Split]:
    """The MNIST family: four gzipped IDX files, ``train-*`` and ``t10k-*``."""

    def split(prefix: str) -> Split:
        images = read_idx(root / folder / f"{prefix}-images-idx3-ubyte.gz")[:, None, :, :]
        labels = read_idx(root / folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        return Split(images, labels)

    return split("train"), split("t10k")


def parse_cifar10(root: Path, folder: str) -> tuple[Split, Split]:
    """CIFAR-10's python release: pickled batches of 3072-byte rows (R, G, B planes of 32 x 32).

    Unpickling runs code from the file, which is why it happens only after the batch matched its pin."""
    import pickle

    def split(names: list[str]) -> Split:
        images, labels = [], []
        for name in names:
            with (root / folder / name).open("rb") as handle:
                batch = pickle.load(handle, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch["labels"], dtype=np.int64))
        return Split(np.concatenate(images), np.concatenate(labels))

    return split([f"data_batch_{i}" for i in range(1, 6)]), split(["test_batch"])


def parse_svhn(root: Path, folder: str) -> tuple[Split, Split]:
    """SVHN's cropped digits: MATLAB files with X (32, 32, 3, N) and y (N, 1), the digit 0 labelled 10."""
    from scipy.io import loadmat

    def split(name: str) -> Split:
        mat = loadmat(root / folder / name)
        labels = mat["y"].astype(np.int64).reshape(-1) % 10
        return Split(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8), labels)

    return split("train_32x32.mat"), split("test_32x32.mat")


def _fetch(root: Path, class_name: str, splits: tuple[Mapping[str, object], ...]) -> None:
    """Download through torchvision's class, which checks the release MD5s as it goes."""
    import torchvision.datasets

    for split in splits:
        getattr(torchvision.datasets, class_name)(str(root), download=True, **split)


# Each format of the catalogue (``DatasetSpec.reader``): (data.root, folder) -> (train, test).
READERS: dict[str, Callable[[Path, str], tuple[Split, Split]]] = {
    "idx": read_idx_release,
    "cifar10": parse_cifar10,
    "svhn": parse_svhn,
}


def load_dataset(
    spec: DatasetSpec, root: Path, *, download: bool = False, sha256: Mapping[str, str] | None = None
) -> RawDataset:
    """Fetch if asked, verify every file against its pin, then parse. ``sha256`` (data.sha256) pins a
    copy of one's own (a subset, a re-encoding) instead of the published release."""
    if download:
        if spec.fetch is None:
            raise DataError(f"data.download: this dataset is read offline only; set it to false ({spec.install_hint})")
        _fetch(root, *spec.fetch)
    digests, algorithm = (dict(sha256), "sha256") if sha256 else (spec.release, spec.algorithm)
    sources = verify_files(root, digests, spec.install_hint, algorithm=algorithm)
    train, test = READERS[spec.reader[0]](root, spec.reader[1])
    for name, split in (("train", train), ("test", test)):
        if split.x.shape[1:] != (spec.channels, spec.size, spec.size):
            raise DataError(
                f"{root}: {name} images are {split.x.shape[1:]}, expected {(spec.channels, spec.size, spec.size)}"
            )
        if len(split.y) and (split.y.min() < 0 or split.y.max() >= len(spec.classes)):
            raise DataError(f"{root}: {name} labels outside 0..{len(spec.classes) - 1}")
    return RawDataset(train, test, sources)
