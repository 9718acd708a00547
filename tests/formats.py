"""Small files in each dataset's published format, written the way the releases are, for tests.

``write_release`` lays them out under a root as ``DATASETS[name].release`` names them and returns the
SHA-256 pins (``data.sha256``) that let ``prepare`` read them instead of the published release."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np

from qrobust.data.datasets import DATASETS


def learnable_images(n: int, channels: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NCHW images: noise plus a bright stripe whose row encodes the class (one channel per class mod C
    brighter still, so three-channel models see colour too)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 70, (n, channels, size, size), dtype=np.uint8)
    for i, label in enumerate(y):
        x[i, :, 2 + 2 * label : 4 + 2 * label, 4 : size - 4] = 180
        x[i, label % channels, 2 + 2 * label : 4 + 2 * label, 4 : size - 4] = 250
    return x, y.astype(np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _cifar_batch(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    batch = {"batch_label": path.name, "labels": y.tolist(), "data": x.reshape(len(x), -1), "filenames": []}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _svhn(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    from scipy.io import savemat

    labels = np.where(y == 0, 10, y).astype(np.uint8)[:, None]  # SVHN labels the digit 0 as 10
    savemat(path, {"X": np.transpose(x, (2, 3, 1, 0)), "y": labels})


def write_release(name: str, root: Path, train: int, test: int, seed: int = 0) -> dict[str, str]:
    spec = DATASETS.get(name)
    x_train, y_train = learnable_images(train, spec.channels, spec.size, seed)
    x_test, y_test = learnable_images(test, spec.channels, spec.size, seed + 1)
    files = [root / relative for relative in spec.release]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    if name in ("fashion_mnist", "mnist"):
        by_name = {path.name: path for path in files}
        for prefix, x, y in (("train", x_train, y_train), ("t10k", x_test, y_test)):
            write_idx(by_name[f"{prefix}-images-idx3-ubyte.gz"], x[:, 0])
            write_idx(by_name[f"{prefix}-labels-idx1-ubyte.gz"], y)
    elif name == "cifar10":
        for path, part in zip(files[:5], np.array_split(np.arange(train), 5), strict=True):
            _cifar_batch(path, x_train[part], y_train[part])
        _cifar_batch(files[5], x_test, y_test)
    elif name == "svhn":
        _svhn(root / "train_32x32.mat", x_train, y_train)
        _svhn(root / "test_32x32.mat", x_test, y_test)
    else:
        raise ValueError(f"no writer for dataset {name!r}")
    return {relative: hashlib.sha256((root / relative).read_bytes()).hexdigest() for relative in spec.release}
