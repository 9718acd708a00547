"""dvc.yaml sees every code change: each stage's deps list every project module its script imports,
directly or through other modules (imports inside functions included), so editing any of them makes
`dvc status` report the stage."""

from __future__ import annotations

import ast
import copy
import functools
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
        for name in _imported_names(todo.pop()):
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


@functools.cache
def _imported_names(path: Path) -> tuple[str, ...]:
    """Every dotted name ``path`` imports or might import, with the parent packages Python runs first."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from qrobust import x`` may name a module as well as a symbol.
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return tuple(".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 2))


def needed_and_listed(name: str, stage: Mapping[str, Any], root: Path) -> tuple[set[str], set[str]]:
    """A stage's script with every project module it imports, and the paths its deps list."""
    body = stage.get("do", stage)
    script = re.search(r"(stages/\w+\.py)", str(body["cmd"]))
    assert script, f"{name}: no stage script in its cmd"
    deps = {d if isinstance(d, str) else next(iter(d)) for d in body.get("deps", [])}
    return {script.group(1), *imported_modules(root / script.group(1), root)}, deps


def missing_deps(stages: Mapping[str, Any], root: Path = ROOT) -> dict[str, list[str]]:
    """Per stage, the modules its script imports that its deps do not list (a listed folder covers its files)."""
    missing = {}
    for name, stage in stages.items():
        needed, deps = needed_and_listed(name, stage, root)
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


@pytest.mark.parametrize(
    ("entry", "module"),
    [
        ("src/qrobust/core", "src/qrobust/core/settings.py"),
        ("src/qrobust/core", "src/qrobust/core/io.py"),
        ("src/qrobust/models.py", "src/qrobust/models.py"),
    ],
)
def test_removing_a_dep_line_is_caught(stages: dict[str, Any], entry: str, module: str) -> None:
    broken = copy.deepcopy(stages)
    for stage in broken.values():
        body = stage.get("do", stage)
        body["deps"] = [d for d in body["deps"] if d != entry]
    reported = missing_deps(broken)
    assert set(reported) == set(stages) and all(module in lacking for lacking in reported.values())


def excess_deps(stages: Mapping[str, Any], root: Path = ROOT) -> dict[str, list[str]]:
    """Per stage, the project modules its deps cover (one by one or through a folder) that its script
    never imports: an edit to one of them would re-run the stage for nothing."""
    excess = {}
    for name, stage in stages.items():
        needed, deps = needed_and_listed(name, stage, root)
        covered: set[str] = set()
        for dep in deps:
            if not dep.startswith(("src/", "stages/")):
                continue
            folder = root / dep
            files = folder.rglob("*.py") if folder.is_dir() else [folder]
            covered |= {str(f.relative_to(root)) for f in files}
        if covered - needed:
            excess[name] = sorted(covered - needed)
    return excess


def test_no_stage_depends_on_a_module_it_does_not_import(stages: dict[str, Any]) -> None:
    """The folder dependency (src/qrobust/core) is exact: every stage imports every module in it
    (settings.py validates every section of params.yaml against the registries), so one lock entry
    per stage sees the same changes as a line per module."""
    assert excess_deps(stages) == {}


def test_excess_is_caught(stages: dict[str, Any]) -> None:
    extended = copy.deepcopy(stages)
    body = extended["prepare"].get("do", extended["prepare"])
    body["deps"] = [*body["deps"], "src/qrobust/report.py"]
    assert excess_deps(extended) == {"prepare": ["src/qrobust/report.py"]}


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
