"""The README's table "When an input is bad", row by row: each bad input, given to the real entry point
(a stage script, or `make check`'s validator that every stage runs first), stops with a message naming the
problem and the fix, and leaves the project's files as they were. A hand-edited model, which only DVC
can notice, is the end-to-end test's `test_a_hand_edited_model_is_named_by_dvc_and_restored_by_checkout`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from qrobust.data.datasets import FASHION_MNIST_SHA256
from qrobust.pipeline.io import save_npz
from qrobust.tools.pipelines import LOCKS
from qrobust.tools.study import materialize
from tests.conftest import DVC, ROOT, venv_env
from tests.test_data import FASHION_ROOT

README_ROWS = re.compile(r"^\| ([^|]+?) \|", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    """One row of the table: how to break a fresh project, which command meets it, what it must say."""

    row: str
    command: tuple[str, ...]
    expected: tuple[str, ...]
    breaks: Callable[[Path], None]


def edit_params(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def breaks(project: Path) -> None:
        params = yaml.safe_load((project / "params.yaml").read_text())
        change(params)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    return breaks


def raw_copy(project: Path, flip: str | None = None) -> None:
    """Point data.root at a copy of the real dataset files, one byte of ``flip`` inverted."""
    raw = project / "raw"
    raw.mkdir()
    for name in FASHION_MNIST_SHA256:
        data = bytearray((FASHION_ROOT / name).read_bytes())
        if name == flip:
            data[len(data) // 2] ^= 0xFF
        (raw / name).write_bytes(bytes(data))
    edit_params(lambda p: p["data"].update(root=str(raw)))(project)


def prepared_split(project: Path, damage: Callable[[Path], None]) -> None:
    folder = project / "data" / "prepared"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("train", "calib", "test", "eval"):
        save_npz(
            folder / f"{name}.npz",
            {"x": rng.integers(0, 255, (64, 1, 28, 28), dtype=np.uint8), "y": rng.integers(0, 10, 64)},
        )
    damage(folder / "train.npz")


PREPARE = ("stages/prepare.py",)
TRAIN = ("stages/train.py", "--arch", "lenet", "--recipe", "standard")
CHECK = ("-m", "qrobust.tools.check", "params.yaml")

CASES = [
    Case(
        "dataset package missing",
        PREPARE,
        ("does not exist", "sudo apt-get install --reinstall dataset-fashion-mnist"),
        edit_params(lambda p: p["data"].update(root="/nonexistent/fashion-mnist")),
    ),
    Case(
        "one flipped byte in a raw dataset file",
        PREPARE,
        ("checksum mismatch", "t10k-images-idx3-ubyte.gz", "nothing was written", "--reinstall"),
        lambda project: raw_copy(project, flip="t10k-images-idx3-ubyte.gz"),
    ),
    Case(
        "truncated `.npz` in `data/prepared`",
        TRAIN,
        ("data/prepared/train.npz", "not a readable .npz", "dvc checkout"),
        lambda project: prepared_split(project, lambda f: f.write_bytes(f.read_bytes()[:1000])),
    ),
    Case(
        "foreign `.npz` in `data/prepared`",
        TRAIN,
        ("data/prepared/train.npz", "lacks the arrays ['x', 'y']", "dvc checkout"),
        lambda project: prepared_split(project, lambda f: np.savez(f, images=np.zeros(3))),
    ),
    Case(
        "YAML syntax error in `params.yaml`",
        CHECK,
        ("params.yaml: not valid YAML at line", "fix that line"),
        lambda project: (project / "params.yaml").write_text(
            (project / "params.yaml").read_text().replace("epochs: ", "epochs: [", 1)
        ),
    ),
    Case(
        "wrong type in `params.yaml`",
        CHECK,
        ("train.epochs", "'ten'", "expected"),
        edit_params(lambda p: p["train"].update(epochs="ten")),
    ),
    Case(
        "unknown key in `params.yaml`",
        CHECK,
        ("train: unknown keys ['epoch']", "allowed keys"),
        edit_params(lambda p: p["train"].update(epoch=3)),
    ),
    Case(
        "negative size in `params.yaml`",
        CHECK,
        ("data.eval_size", "expected a positive integer, got -5"),
        edit_params(lambda p: p["data"].update(eval_size=-5)),
    ),
    Case(
        "a replicate at the study's own seed",
        CHECK,
        ("train.seeds: [0, 1] must be distinct and differ from the study's seed 0",),
        edit_params(lambda p: p["train"].update(seeds=[0, 1])),
    ),
    Case(
        "evaluation subset larger than the test split",
        CHECK,
        ("data.eval_size: 20000 exceeds the 10000 test images kept", "at most 10000"),
        edit_params(lambda p: p["data"].update(eval_size=20000)),
    ),
]


def snapshot(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.row for c in CASES])
def test_bad_input_stops_with_the_problem_and_the_fix_and_changes_nothing(case: Case, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    case.breaks(project)
    # An output from an earlier run, which a failed run must leave as it was.
    (project / "models" / "float" / "lenet-standard").mkdir(parents=True)
    (project / "models" / "float" / "lenet-standard" / "model.onnx").write_bytes(b"earlier model")
    before = snapshot(project)
    command = [sys.executable, *(str(ROOT / a) if a.startswith("stages/") else a for a in case.command)]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in case.expected:
        assert fragment in message, (fragment, message)
    assert snapshot(project) == before


def test_the_readme_table_lists_exactly_these_rows() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## When an input is bad", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in README_ROWS.findall(table) if r not in ("Bad input", "---")]
    assert rows == [c.row for c in CASES] + ["hand-edited `model.onnx`"]


SECTION_ERRORS = [
    (lambda p: p["train"].update(lr=-1), "train.lr"),
    (lambda p: p["quantize"]["options"]["ort_int8"].update(calibrate_method="median"), "quantize.options.ort_int8"),
    (lambda p: p["attack"]["attacks"]["linf_pgd"].update(steps=0), "attack.attacks.linf_pgd.steps"),
    (lambda p: p["defend"].update(composite="fgsm_typo"), "defend.composite"),
    (lambda p: p["analysis"].update(samples=10**6), "analysis.samples"),
    (lambda p: p["report"].update(min_float_accuracy=2.0), "report.min_float_accuracy"),
]


@pytest.mark.parametrize(("change", "key"), SECTION_ERRORS, ids=[k for _, k in SECTION_ERRORS])
def test_a_bad_value_in_any_section_stops_dvc_repro_at_its_first_stage(tmp_path: Path, change, key: str) -> None:
    """Every stage checks the whole params file against the catalogues before it computes: a bad value in a
    section only later stages read stops `dvc repro` at prepare, naming the key, with nothing written."""
    project = materialize(ROOT, "smoke", tmp_path / "study")
    edit_params(change)(project)
    result = subprocess.run([DVC, "repro"], cwd=project, env=venv_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert f"prepare: {key}" in result.stderr, result.stderr
    assert not (project / "data" / "prepared").exists() and not any((project / lock).exists() for lock in LOCKS)
