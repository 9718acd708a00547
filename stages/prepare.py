"""prepare: raw dataset -> data/prepared/{train,calib,val,test,eval}.npz + manifest.json.

The raw files are verified against pinned digests before anything is read; on any failure the
output folder is left as it was (everything is written to a temporary folder, then renamed).
"""

from __future__ import annotations

import numpy as np

from qrobust.data.datasets import DATASETS
from qrobust.data.readers import load_dataset
from qrobust.data.splits import Split, split_dataset
from qrobust.pipeline.io import atomic_dir, save_json, save_npz, sha256_file
from qrobust.pipeline.layout import PREPARED
from qrobust.pipeline.process import run_stage
from qrobust.settings.study import load_study


def main() -> None:
    settings = load_study().prepare
    spec = DATASETS.get(settings.dataset)
    raw = load_dataset(spec, settings.root, download=settings.download, sha256=settings.sha256)
    prepared = split_dataset(
        raw,
        calib_size=settings.calib_size,
        val_size=settings.val_size,
        train_size=settings.train_size,
        test_size=settings.test_size,
        eval_size=settings.eval_size,
        seed=settings.seed,
    )
    splits: dict[str, Split] = {
        "train": prepared.train,
        "calib": prepared.calib,
        "val": prepared.val,
        "test": prepared.test,
        "eval": prepared.eval,
    }
    with atomic_dir(PREPARED) as out:
        for name, split in splits.items():
            extra = {"test_index": prepared.eval_index} if name == "eval" else {}
            save_npz(out / f"{name}.npz", {"x": split.x, "y": split.y, **extra})
        save_json(
            out / "manifest.json",
            {
                "dataset": settings.dataset,
                "seed": settings.seed,
                "raw_sha256": raw.sources,
                "files": {
                    f"{name}.npz": {
                        "sha256": sha256_file(out / f"{name}.npz"),
                        "samples": int(len(split.y)),
                        "class_counts": np.bincount(split.y, minlength=len(spec.classes)).tolist(),
                    }
                    for name, split in splits.items()
                },
            },
        )
    print(" ".join(f"{name}={len(split.y)}" for name, split in splits.items()))


if __name__ == "__main__":
    run_stage("prepare", main)
