"""Which modules of ``src/`` each stage imports, and the file ``dvc.yaml`` reads them from.

A stage's code dependencies are its script and every project module it imports, directly or through
other modules, imports inside functions included (``imported_files`` walks them). A stage that builds
attacks by name (``attacks.factory``) also imports each one's module; which attacks those are comes
from params.yaml, and DVC can neither look a list up by a stage's key nor interpolate a list into its
deps. So ``dvc.code.yaml`` holds, per such stage, those extra modules as numbered slots
(``code1``, ``code2``, ...; an unused slot repeats ``attacks/factory.py``, which the stage imports
anyway), and the attack stages iterate over its ``attack_code``: one stage per attack of params.yaml.

``python -m qrobust.tools.code_deps`` writes the file; ``--check`` fails when it is out of date (``make
check`` runs it before ``dvc repro``; a study's copy is written by ``qrobust.tools.study``).
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from qrobust.attacks.catalogue import ATTACKS, steps_bounded
from qrobust.pipeline.params import load_params

PACKAGE = "qrobust"
CODE_FILE = "dvc.code.yaml"
FILLER = "src/qrobust/attacks/factory.py"
# How many slots dvc.yaml gives each group's deps (``${attack_code.<key>.code1}`` ... or ``${defend_code.code1}``).
SLOTS = {"attack_code": 4, "defend_code": 5, "defend_recipe_code": 5, "analyse_code": 3}
SCRIPTS = {
    "attack_code": "stages/attack.py",
    "defend_code": "stages/defend.py",
    "defend_recipe_code": "stages/defend_recipe.py",
    "analyse_code": "stages/analyse.py",
}
HEADER = """\
# Written by `python -m qrobust.tools.code_deps` (make deps) from params.yaml and the imports: the modules
# of src/ that each stage building attacks by name imports beyond its script's own (qrobust.tools.code_deps
# says why they live here). `make check` and the tests fail while it is out of date.
"""


@functools.cache
def imported_names(path: Path) -> tuple[str, ...]:
    """Every dotted name ``path`` imports or might import when it runs, with the parent packages Python runs
    first (imports under ``if TYPE_CHECKING:`` never run, so they are no dependency)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from qrobust import x`` may name a module as well as a symbol.
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return tuple(".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 2))


def imported_files(start: Iterable[Path], root: Path) -> set[str]:
    """Project files (paths relative to ``root``) that the files ``start`` import, transitively."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for name in imported_names(todo.pop()):
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


def module_file(module: str) -> Path:
    return Path("src", *module.split(".")).with_suffix(".py")


def script_files(script: str, root: Path) -> set[str]:
    """A stage script and every project module it imports."""
    return {script, *imported_files([root / script], root)}


def attack_files(names: Iterable[str], root: Path) -> set[str]:
    """The modules of these attacks of the catalogue (this package's, not Foolbox's) and what they import."""
    files = {str(module_file(ATTACKS.get(n).module)) for n in names if ATTACKS.get(n).written_here()}
    return files | imported_files([root / f for f in files], root)


def built_attacks(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per group but ``attack_code`` (whose stages build their own attack), the attacks its stages build by
    name: the defense study's attacks, and the analysis's attack with every minimisation attack it re-runs."""
    defend, analysis = params["defend"], params["analysis"]
    rerun = [n for n, body in params["attack"]["attacks"].items() if steps_bounded(n, body or {})]
    return {
        "defend_code": [defend["attack"], defend["composite"]],
        "defend_recipe_code": [defend["attack"], defend["composite"], defend["boundary_attack"]],
        "analyse_code": [analysis["attack"], *rerun],
    }


def code_file(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """What ``dvc.code.yaml`` holds for ``params``."""

    def slots(group: str, names: list[str]) -> dict[str, str]:
        extra = sorted(attack_files(names, root) - script_files(SCRIPTS[group], root))
        if len(extra) > SLOTS[group]:
            raise SystemExit(
                f"{group}: {names} import {len(extra)} modules beyond {SCRIPTS[group]} ({extra}); dvc.yaml gives "
                f"{SLOTS[group]} slots: add `${{...code{SLOTS[group] + 1}}}` there and raise SLOTS in {__name__}"
            )
        filled = extra + [FILLER] * (SLOTS[group] - len(extra))
        return {f"code{i + 1}": path for i, path in enumerate(filled)}

    code: dict[str, Any] = {"attack_code": {n: slots("attack_code", [n]) for n in params["attack"]["attacks"]}}
    for group, names in built_attacks(params).items():
        code[group] = slots(group, names)
    return code


def render(code: Mapping[str, Any]) -> str:
    return HEADER + yaml.safe_dump(dict(code), sort_keys=False, width=120, default_flow_style=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date; write nothing")
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    text = render(code_file(load_params(args.root / "params.yaml"), args.root))
    path = args.root / CODE_FILE
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path}: out of date with params.yaml and the imports; run `make deps`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
