"""The prepared splits: seeded, disjoint calibration / validation / train / test / evaluation subsets, and their reader."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrobust.pipeline.errors import DataError
from qrobust.pipeline.io import load_npz
from qrobust.pipeline.layout import PREPARED
from qrobust.pipeline.params import positive_int


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
class Prepared:
    train: Split
    calib: Split
    val: Split
    test: Split
    eval: Split
    eval_index: np.ndarray  # positions of the evaluation subset in the test split


def split_dataset(
    raw: RawDataset, *, calib_size: int, val_size: int, train_size: int, test_size: int, eval_size: int, seed: int
) -> Prepared:
    """Seeded split: calibration and validation come from training data only, disjoint from each other and
    from the images trained on; the evaluation subset from test data. Every choice the study makes
    (thresholds, the sign-off) reads the validation split; the test split is only reported.

    ``train_size``/``test_size`` of 0 keep everything; smaller values subsample (for the smoke study).
    """
    n_train = len(raw.train.y)
    if calib_size + val_size >= n_train:
        raise DataError(
            f"data.calib_size + data.val_size: {calib_size} + {val_size} leave no training data out of {n_train}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train)
    calib_idx = np.sort(order[:calib_size])
    val_idx = np.sort(order[calib_size : calib_size + val_size])
    train_idx = order[calib_size + val_size :]
    train_idx = np.sort(train_idx[:train_size] if train_size else train_idx)
    test_idx = np.arange(len(raw.test.y))
    if test_size:
        test_idx = np.sort(rng.permutation(len(raw.test.y))[:test_size])
    test = Split(raw.test.x[test_idx], raw.test.y[test_idx])
    if eval_size > len(test.y):
        raise DataError(f"data.eval_size: {eval_size} exceeds the {len(test.y)} test samples kept")
    eval_index = np.sort(rng.permutation(len(test.y))[:eval_size])
    pick = lambda s, i: Split(s.x[i], s.y[i])  # noqa: E731
    return Prepared(
        pick(raw.train, train_idx),
        pick(raw.train, calib_idx),
        pick(raw.train, val_idx),
        test,
        pick(test, eval_index),
        eval_index,
    )


def as_float(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], the only scale attacks, quantizers and defenses see."""
    return x.astype(np.float32) / np.float32(255.0)


def load_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A prepared split as (float32 images in [0, 1], int64 labels)."""
    data = load_npz(path, required=("x", "y"))
    return as_float(data["x"]), data["y"].astype(np.int64)


@functools.cache
def eval_split() -> tuple[np.ndarray, np.ndarray]:
    """The evaluation subset every attack draws its samples from, read once per process."""
    return load_split(PREPARED / "eval.npz")


def calibration_subset(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded subset of the calibration split (all of it when ``size`` exceeds it)."""
    positive_int(size, "quantize.calib_samples")
    if size >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:size])]
