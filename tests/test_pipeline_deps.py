"""dvc.yaml sees every code change: each stage's deps list every project module its script imports,
directly or through other modules (imports inside functions included), so editing any of them makes
`dvc status` report the stage."""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

PACKAGE = "qrobust"


def imported_modules(script: Path, root: Path = ROOT) -> set[str]:
    """Project files (relative paths) that ``script`` imports, transitively."""
    seen: set[str] = set()
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from qrobust import x`` may name a module as well as a symbol.
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                if name.split(".")[0] != PACKAGE:
                    continue
                for candidate in (
                    Path("src", *name.split(".")).with_suffix(".py"),
                    Path("src", *name.split("."), "__init__.py"),
                ):
                    if (root / candidate).is_file() and str(candidate) not in seen:
                        seen.add(str(candidate))
                        todo.append(root / candidate)
    return seen


def missing_deps(stages: Mapping[str, Any], root: Path = ROOT) -> dict[str, list[str]]:
    """Per stage, the modules its script imports that its deps do not list (a listed folder covers its files)."""
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = re.search(r"(stages/\w+\.py)", str(body["cmd"]))
        assert script, f"{name}: no stage script in its cmd"
        deps = {d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])}
        needed = {script.group(1), *imported_modules(root / script.group(1), root)}
        lacking = sorted(
            f for f in needed if f not in deps and not any(f.startswith(d.rstrip("/") + "/") for d in deps)
        )
        if lacking:
            missing[name] = lacking
    return missing


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def test_every_stage_lists_every_module_it_imports(stages: dict[str, Any]) -> None:
    assert missing_deps(stages) == {}


@pytest.mark.parametrize("module", ["src/qrobust/settings.py", "src/qrobust/data.py", "src/qrobust/io.py"])
def test_removing_a_dep_line_is_caught(stages: dict[str, Any], module: str) -> None:
    broken = copy.deepcopy(stages)
    for stage in broken.values():
        body = stage.get("do", stage)
        body["deps"] = [d for d in body["deps"] if d != module]
    reported = missing_deps(broken)
    assert set(reported) == set(stages) and all(module in lacking for lacking in reported.values())


def test_walk_follows_imports_inside_functions(tmp_path: Path) -> None:
    (tmp_path / "src" / PACKAGE).mkdir(parents=True)
    (tmp_path / "src" / PACKAGE / "a.py").write_text("def f():\n    from qrobust.b import g\n")
    (tmp_path / "src" / PACKAGE / "b.py").write_text("import qrobust.c\n")
    (tmp_path / "src" / PACKAGE / "c.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from qrobust import a\n")
    assert imported_modules(tmp_path / "stages" / "s.py", tmp_path) == {
        "src/qrobust/a.py",
        "src/qrobust/b.py",
        "src/qrobust/c.py",
    }
