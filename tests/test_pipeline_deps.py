"""dvc.yaml sees every code change and only those: each stage's deps list exactly its script and the project
modules it imports, directly or through other modules (imports inside functions included), plus the modules
of the attacks it builds by name; and the layout has no import cycle and no oversized file."""

from __future__ import annotations

import ast
import copy
import functools
from collections.abc import Mapping
from pathlib import Path

import pytest

from qrobust.pipeline.params import load_params
from qrobust.tools import code_deps
from qrobust.tools.code_deps import attack_files, built_attacks, imported_files, imported_names, script_files
from qrobust.tools.pipelines import locked_stages, stage_name
from tests.conftest import ROOT


@functools.cache
def dvc_index(root: Path = ROOT):  # DVC's Index, imported only here
    """The pipeline's files as DVC expands them (foreach, matrix, dvc.code.yaml's slots), read once."""
    from dvc.repo import Repo

    return Repo(str(root)).index


@functools.cache
def resolved_stages(root: Path = ROOT) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every stage of the pipeline's files, by name: its script and the code paths (src/, stages/) its deps
    list."""
    stages = {}
    for stage in dvc_index(root).stages:
        script = next(w for w in str(stage.cmd).split() if w.startswith("stages/"))
        deps = tuple(d.def_path for d in stage.deps if d.def_path.startswith(("src/", "stages/")))
        stages[stage_name(stage.addressing)] = (script, deps)
    return stages


def test_every_stage_runs_from_the_root_and_every_lock_entry_is_a_stage() -> None:
    """`dvc repro` at the root runs every stage of the five files (each is upstream of a root stage), and no
    lock keeps a record of a stage that no longer exists (a renamed or merged stage's entry lingers otherwise,
    and DVC rewrites every line of it after each stage)."""
    import networkx as nx

    graph = dvc_index().graph  # an edge runs from a stage to each stage whose outputs it reads
    roots = [s for s in graph if s.path_in_repo == "dvc.yaml"]
    reached = {stage_name(s.addressing) for r in roots for s in nx.descendants(graph, r) | {r}}
    assert reached == set(resolved_stages()), sorted(set(resolved_stages()) - reached)
    stale = set(locked_stages(ROOT)) - set(resolved_stages())
    assert not stale, f"lock entries of no stage: {sorted(stale)}"


def test_a_folder_a_stage_reads_holds_only_what_the_stages_wrote() -> None:
    """A stage that reads a folder of other stages' outputs (models/quant, reports/timing) records the folder's
    hash as the workspace held it. A file no stage wrote there (a leftover of an older layout) gives a hash that
    a clean checkout never has, so every reader would re-run there: each such dep holds exactly its writers'
    files, by count and size."""
    stages = locked_stages(ROOT)
    outs = {o["path"]: o for stage in stages.values() for o in stage.get("outs", [])}
    checked = 0
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            inside = [o for path, o in outs.items() if path.startswith(dep["path"] + "/")]
            if dep["path"] in outs or not inside:
                continue
            written = (sum(o.get("nfiles", 1) for o in inside), sum(o["size"] for o in inside))
            assert (dep.get("nfiles", 1), dep["size"]) == written, (
                f"{name} read {dep['path']} with files no stage wrote"
            )
            checked += 1
    assert checked > 50


def built_by(name: str, params: Mapping) -> list[str]:
    """The attacks a stage builds by name: what its code imports beyond its script's imports."""
    group, _, key = name.partition("@")
    group = group.removesuffix("_replicate")  # a replicate's stage runs its group's script
    if group == "attack":
        return [key]
    return built_attacks(params).get(f"{group}_code", [])


def needed(name: str, script: str, root: Path = ROOT) -> set[str]:
    return script_files(script, root) | attack_files(built_by(name, load_params(root / "params.yaml")), root)


def covered(deps: tuple[str, ...], root: Path = ROOT) -> set[str]:
    """The files the deps cover: a listed folder covers every module under it."""
    files: set[str] = set()
    for dep in deps:
        path = root / dep
        files |= {str(f.relative_to(root)) for f in path.rglob("*.py")} if path.is_dir() else {dep}
    return files


def gaps_and_excess(stages: Mapping[str, tuple[str, tuple[str, ...]]]) -> dict[str, dict[str, list[str]]]:
    report = {}
    for name, (script, deps) in stages.items():
        need, have = needed(name, script), covered(deps)
        if need != have:
            report[name] = {"missing": sorted(need - have), "excess": sorted(have - need)}
    return report


def test_every_stage_lists_exactly_the_modules_it_imports() -> None:
    assert len(resolved_stages()) > 20
    assert gaps_and_excess(resolved_stages()) == {}


def test_a_removed_dep_and_an_extra_one_are_caught() -> None:
    stages = copy.deepcopy(resolved_stages())
    script, deps = stages["attack@square"]
    stages["attack@square"] = (script, tuple(d for d in deps if d != "src/qrobust/attacks/square.py"))
    script, deps = stages["prepare"]
    stages["prepare"] = (script, (*deps, "src/qrobust/report/page.py"))
    report = gaps_and_excess(stages)
    assert report["attack@square"]["missing"] == ["src/qrobust/attacks/square.py"]
    assert report["prepare"]["excess"] == ["src/qrobust/report/page.py"]


def test_an_attack_written_here_is_a_dep_of_its_own_stage_and_of_the_composites_only() -> None:
    """The Square module reaches attack@square and the stages that run Square inside AutoAttack."""
    with_square = {n for n, (_, deps) in resolved_stages().items() if "src/qrobust/attacks/square.py" in deps}
    assert "attack@square" in with_square and "attack@autoattack" in with_square
    assert not any(
        n.startswith(("train", "quantize", "prepare", "evaluate", "findings", "report")) for n in with_square
    )
    assert {n for n in with_square if n.startswith("attack@")} == {"attack@square", "attack@autoattack"}


def test_dvc_code_file_is_up_to_date() -> None:
    assert code_deps.main(["--check", "--root", str(ROOT)]) == 0, "run `make deps`"


def test_walk_follows_imports_inside_functions(tmp_path: Path) -> None:
    (tmp_path / "src" / "qrobust").mkdir(parents=True)
    (tmp_path / "src" / "qrobust" / "a.py").write_text("def f():\n    from qrobust.b import g\n")
    (tmp_path / "src" / "qrobust" / "b.py").write_text("import qrobust.c\n")
    (tmp_path / "src" / "qrobust" / "c.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from qrobust import a\n")
    assert imported_files([tmp_path / "stages" / "s.py"], tmp_path) == {
        "src/qrobust/a.py",
        "src/qrobust/b.py",
        "src/qrobust/c.py",
    }


def _runtime_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports when it runs (not those under ``if TYPE_CHECKING:``)."""
    modules = {str(p.relative_to(ROOT / "src").with_suffix("")).replace("/", ".") for p in (ROOT / "src").rglob("*.py")}
    return set(imported_names(path)) & {m.removesuffix(".__init__") for m in modules}


def test_no_import_cycle() -> None:
    graph = {
        str(p.relative_to(ROOT / "src").with_suffix("")).replace("/", ".").removesuffix(".__init__"): _runtime_imports(
            p
        )
        for p in (ROOT / "src").rglob("*.py")
    }
    state: dict[str, int] = {}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, f"import cycle: {' -> '.join((*trail, module))}"
        state[module] = 1
        for child in sorted(graph.get(module, ())):
            visit(child, (*trail, module))
        state[module] = 2

    for module in sorted(graph):
        visit(module, ())


def test_infrastructure_imports_no_domain_code() -> None:
    for path in (ROOT / "src" / "qrobust" / "pipeline").rglob("*.py"):
        domain = {m for m in _runtime_imports(path) if not m.startswith("qrobust.pipeline") and m != "qrobust"}
        assert not domain, f"{path.name} imports {sorted(domain)}"


@pytest.mark.parametrize(("folder", "limit"), [("src", 450), ("stages", 120)])
def test_files_stay_small(folder: str, limit: int) -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in (ROOT / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > limit} == {}


def test_every_package_says_what_it_holds() -> None:
    for init in (ROOT / "src" / "qrobust").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "TODO" not in doc and len(doc) > 40, f"{init} has no docstring saying what the package holds"
