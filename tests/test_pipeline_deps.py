"""dvc.yaml sees every code change: each stage depends on the fingerprint of its script
(``build/code/<script>.json``), which hashes the script and every project module it imports, directly or
through other modules (imports inside functions included); the ``code`` stage writes one for every script."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from qrobust.fingerprint import fingerprint, fingerprint_path, imported_files, write_fingerprints
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def script_of(stage: dict[str, Any]) -> str:
    found = re.search(r"(stages/\w+\.py)", str(stage.get("do", stage)["cmd"]))
    assert found, f"no stage script in {stage}"
    return found.group(1)


def test_every_stage_depends_on_its_scripts_fingerprint(stages: dict[str, Any]) -> None:
    for name, stage in stages.items():
        if name == "code":
            continue
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("do", stage)["deps"]]
        assert str(fingerprint_path(script_of(stage))) in deps, name
        # A module listed by hand would be a second, partial record of the same code.
        assert not [d for d in deps if d.startswith(("src/", "stages/"))], name


def test_the_code_stage_writes_a_fingerprint_for_every_script(stages: dict[str, Any]) -> None:
    code = stages["code"]
    assert set(code["deps"]) == {"src/qrobust", "stages"}  # any edit to the code re-runs it
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in code["outs"]}
    assert outs == {str(fingerprint_path(s)) for s in (ROOT / "stages").glob("*.py")}


def test_a_fingerprint_covers_what_its_script_imports_and_nothing_else() -> None:
    train = fingerprint(Path("stages/train.py"), ROOT)
    report = fingerprint(Path("stages/report.py"), ROOT)
    assert {"stages/train.py", "src/qrobust/training.py", "src/qrobust/settings.py"} <= set(train)
    assert "src/qrobust/report.py" in report and "src/qrobust/report.py" not in train


def test_walk_follows_imports_inside_functions(tmp_path: Path) -> None:
    (tmp_path / "src" / "qrobust").mkdir(parents=True)
    (tmp_path / "src" / "qrobust" / "a.py").write_text("def f():\n    from qrobust.b import g\n")
    (tmp_path / "src" / "qrobust" / "b.py").write_text("import qrobust.c\n")
    (tmp_path / "src" / "qrobust" / "c.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from qrobust import a\n")
    assert imported_files(tmp_path / "stages" / "s.py", tmp_path) == {
        "src/qrobust/a.py",
        "src/qrobust/b.py",
        "src/qrobust/c.py",
    }


def test_an_edit_changes_the_fingerprints_of_exactly_the_scripts_that_reach_it(tmp_path: Path) -> None:
    package, scripts = tmp_path / "src" / "qrobust", tmp_path / "stages"
    package.mkdir(parents=True)
    scripts.mkdir()
    (package / "shared.py").write_text("X = 1\n")
    (package / "only_b.py").write_text("from qrobust.shared import X\n")
    (scripts / "a.py").write_text("from qrobust import shared\n")
    (scripts / "b.py").write_text("import qrobust.only_b\n")

    def contents() -> dict[str, bytes]:
        return {str(p): (tmp_path / p).read_bytes() for p in write_fingerprints(tmp_path)}

    before = contents()
    assert contents() == before  # nothing edited: the same bytes
    (package / "only_b.py").write_text("from qrobust.shared import X\nY = 2\n")
    after_b = contents()
    assert after_b["build/code/a.json"] == before["build/code/a.json"]
    assert after_b["build/code/b.json"] != before["build/code/b.json"]
    (package / "shared.py").write_text("X = 3\n")
    after_shared = contents()
    assert all(after_shared[k] != after_b[k] for k in after_b)
