"""params.yaml: the seed and the data section (which dataset, which pins, the split sizes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrobust.data.datasets import DATASETS, DatasetSpec
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError


def _pins(value: Any, spec: DatasetSpec) -> dict[str, str]:
    """data.sha256: one's own digest for every file the dataset's parser reads, or none at all."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"data.sha256: expected a mapping of file -> SHA-256, got {value!r}")
    if value and set(value) != set(spec.release):
        raise ConfigError(
            f"data.sha256: pins {sorted(value)}; expected a digest for each of {sorted(spec.release)} "
            "(paths relative to data.root), or {} for the published release's"
        )
    for name, digest in sorted(value.items()):
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ConfigError(f"data.sha256.{name}: expected 64 lowercase hex digits (sha256sum), got {digest!r}")
    return dict(value)


@dataclass(frozen=True)
class PrepareSettings:
    dataset: str
    root: Path
    download: bool
    sha256: dict[str, str]  # empty: the published release's pins
    calib_size: int
    val_size: int
    train_size: int
    test_size: int
    eval_size: int
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PrepareSettings:
        s = c.section(
            params,
            "data",
            {"dataset", "root", "download", "sha256", "calib_size", "val_size", "train_size", "test_size", "eval_size"},
        )
        dataset = c.require(s, "dataset", "data")
        spec = DATASETS.get(dataset, key="data.dataset")
        settings = cls(
            dataset=dataset,
            root=Path(str(c.require(s, "root", "data"))),
            download=c.boolean(s.get("download", False), "data.download"),
            sha256=_pins(s.get("sha256") or {}, spec),
            calib_size=c.positive_int(c.require(s, "calib_size", "data"), "data.calib_size"),
            val_size=c.positive_int(c.require(s, "val_size", "data"), "data.val_size"),
            train_size=c.non_negative_int(s.get("train_size", 0), "data.train_size"),
            test_size=c.non_negative_int(s.get("test_size", 0), "data.test_size"),
            eval_size=c.positive_int(c.require(s, "eval_size", "data"), "data.eval_size"),
            seed=c.study_seed(params),
        )
        if settings.test_size > spec.test_samples:
            raise ConfigError(
                f"data.test_size: {settings.test_size} exceeds the {spec.test_samples} images of {dataset}'s "
                "test split; lower it, or set 0 to keep them all"
            )
        kept = settings.test_size or spec.test_samples
        if settings.eval_size > kept:
            raise ConfigError(
                f"data.eval_size: {settings.eval_size} exceeds the {kept} test images kept "
                f"(data.test_size: {settings.test_size}); the evaluation subset is drawn from them, "
                f"so set it to at most {kept}"
            )
        return settings
