"""The pipeline's five files, their locks, and how DVC names the stages in them.

DVC rewrites the whole lock file of a stage's ``dvc.yaml`` after the stage runs: a round trip through
ruamel's pure-Python parser and emitter (its C loader serves plain reads only), about 0.13 ms per line on
this project's machines. With every stage in one file, each of the study's 72 stages rewrote an
18,700-line lock (25,500 with the entries of stages merged away since), about 3 s a stage and 4 minutes of
the study. So the stages live in five files, one per phase, each with a lock of its own: training,
quantization, the attacks, scoring (evaluate and the defense study), and the root's ``dvc.yaml``
(analysis, findings, report). The root's stages read, through their inputs, every other stage's outputs,
so ``dvc repro`` there runs all five files (tests/test_pipeline_deps.py checks it, and that no lock keeps
an entry of a stage that is gone). ``benchmarks/run.py``'s pipeline section measures the rewrite both ways.

From the root DVC addresses a stage of another file by its path (``pipelines/attacks/dvc.yaml:attack@fgsm``);
``address`` gives that, and ``stage_name`` the plain name back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PIPELINES = tuple(
    Path(p)
    for p in (
        "pipelines/training/dvc.yaml",
        "pipelines/quantization/dvc.yaml",
        "pipelines/attacks/dvc.yaml",
        "pipelines/scoring/dvc.yaml",
        "dvc.yaml",
    )
)
LOCKS = tuple(p.with_name("dvc.lock") for p in PIPELINES)


def stage_name(address: str) -> str:
    """``pipelines/attacks/dvc.yaml:attack@fgsm`` -> ``attack@fgsm``; a root stage's name is its address."""
    return address.rpartition(":")[2]


def address(root: Path, name: str) -> str:
    """What ``dvc repro`` at ``root`` takes for the stage ``name`` (``attack@fgsm``, ``prepare``)."""
    group = name.partition("@")[0]
    for pipeline in PIPELINES:
        if group in yaml.safe_load((root / pipeline).read_text(encoding="utf-8"))["stages"]:
            return name if pipeline == Path("dvc.yaml") else f"{pipeline}:{name}"
    raise ValueError(f"stage {name!r} is in none of {', '.join(map(str, PIPELINES))}")


def locked_stages(root: Path) -> dict[str, dict[str, Any]]:
    """Every stage the locks at ``root`` record, by name (a lock not yet written records none)."""
    stages: dict[str, dict[str, Any]] = {}
    for lock in LOCKS:
        if (root / lock).is_file():
            stages.update(yaml.safe_load((root / lock).read_text(encoding="utf-8"))["stages"])
    return stages
