"""Where and with what a study ran: the git commit, Python and package versions, the CPU (its model and
the instruction-set flags int8 kernels depend on: VNNI, AVX-512, AMX), thread counts, the dataset's
SHA-256s and the seed.

Nothing here goes into a cached model or attack output, so those stay byte-identical across machines.
Each stage's timing file, machine-specific by nature, carries the machine that ran the stage
(``save_timing``); the report stage gathers them with the rest into ``reports/provenance.json``.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from qrobust.pipeline.io import save_json
from qrobust.pipeline.layout import timing_path

PACKAGES = (
    "torch", "torchvision", "onnx", "onnxruntime", "neural-compressor", "foolbox", "dvc", "numpy", "pyyaml",
)  # fmt: skip
# CPU flags that change which int8 / float kernels ONNX Runtime and torch pick, hence speed and saturation.
KERNEL_FLAGS = re.compile(r"^(sse4_\d|avx|avx2|fma|f16c|avx512\w*|avx_vnni|amx\w*)$")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ORT_NUM_THREADS")


def cpu() -> dict[str, Any]:
    """The CPU model and its kernel-relevant flags, from /proc/cpuinfo (Linux); the platform's name elsewhere."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        info = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = sorted(f for f in value.split() if KERNEL_FLAGS.match(f))
    return {"model": model, "kernel_flags": flags, "vnni": any("vnni" in f for f in flags)}


def threads() -> dict[str, Any]:
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        **{name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
    }


def machine() -> dict[str, Any]:
    """What a stage's timing depends on: the CPU, its threads, the accelerator if one was used."""
    import torch

    return {
        "cpu": cpu(),
        "threads": threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "system": f"{platform.system()} {platform.release()}",
    }


def save_timing(stage: str, name: str, record: Mapping[str, Any]) -> None:
    """A stage's timing file: its figures and the machine that measured them."""
    save_json(timing_path(stage, name), {**record, "machine": machine()})


def packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(root: Path) -> dict[str, Any]:
    """The commit checked out and whether tracked files differ from it; nulls outside a git work tree."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance(
    root: Path, manifest: Mapping[str, Any], seed: int, stage_machines: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """The whole record: this checkout and environment, the dataset as prepare hashed it, the seed, and
    which machine ran each timed stage (grouped: most studies run on one; None for a timing file
    written before machines were recorded)."""
    groups: dict[str, dict[str, Any]] = {}
    for stage, found in sorted(stage_machines.items()):
        key = repr(sorted(found.items())) if found is not None else "None"
        groups.setdefault(key, {"machine": None if found is None else dict(found), "stages": []})["stages"].append(
            stage
        )
    return {
        "git": git_state(root),
        "python": platform.python_version(),
        "packages": packages(),
        "report_machine": machine(),
        "stage_machines": list(groups.values()),
        "dataset": {k: manifest[k] for k in sorted(manifest) if "sha256" in k or k in ("dataset", "splits")},
        "seed": seed,
    }
