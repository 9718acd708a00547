"""What an edit re-runs: for every module of src/, the stages of the pipeline whose deps cover it, here and at
an earlier revision, and the average over edited lines (each line of the source weighted alike).

    python benchmarks/edit_reach.py [--before REV]

Reads the pipeline's dvc.yaml files as DVC expands them (foreach, matrix, vars), so the figures are the
stages `dvc status` lists after an edit to that module; it computes nothing of the study. The earlier
revision is read from a temporary git worktree.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def reach(root: Path) -> tuple[dict[str, list[str]], int]:
    """Per module of src/ (path relative to ``root``), the stages whose code deps cover it; and the stage count."""
    from dvc.repo import Repo

    stages = list(Repo(str(root)).index.stages)
    covered: dict[str, list[str]] = {}
    for stage in stages:
        for dep in stage.deps:
            path = root / dep.def_path
            if not dep.def_path.startswith("src/"):
                continue
            for file in path.rglob("*.py") if path.is_dir() else [path]:
                users = covered.setdefault(str(file.relative_to(root)), [])
                if stage.addressing not in users:  # a slot of dvc.code.yaml may repeat a module
                    users.append(stage.addressing)
    modules = {
        str(p.relative_to(root)): covered.get(str(p.relative_to(root)), []) for p in (root / "src").rglob("*.py")
    }
    return modules, len(stages)


def lines(root: Path, module: str) -> int:
    return len((root / module).read_text(encoding="utf-8").splitlines())


def groups(stages: list[str]) -> str:
    """``attack@square, attack@autoattack, defend@*`` -> ``attack 2, defend 7``."""
    count = Counter(s.split("@")[0] for s in stages)
    return ", ".join(f"{g} {n}" for g, n in sorted(count.items()))


def average(root: Path, modules: dict[str, list[str]]) -> float:
    weights = {m: lines(root, m) for m in modules}
    return sum(len(s) * weights[m] for m, s in modules.items()) / sum(weights.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="ce4d1c9", help="the revision to compare with (default: before the layout)")
    args = parser.parse_args()
    after, total = reach(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.before], cwd=ROOT, check=True)
        try:
            before, old_total = reach(old)
            old_average = average(old, before)
            old_lines = sum(lines(old, m) for m in before)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=True)
    print(
        f"before ({args.before}): {len(before)} modules, {old_lines} lines, {old_total} stages; an edited line re-runs "
        f"{old_average:.1f} stages on average"
    )
    new_lines = sum(lines(ROOT, m) for m in after)
    print(
        f"after (working tree): {len(after)} modules, {new_lines} lines, {total} stages; an edited line re-runs "
        f"{average(ROOT, after):.1f} stages on average\n"
    )
    print("| module | lines | stages re-run | by stage group |")
    print("|---|---:|---:|---|")
    for module in sorted(after):
        print(
            f"| {module.removeprefix('src/qrobust/')} | {lines(ROOT, module)} | {len(after[module])} | {groups(after[module])} |"
        )
    print("\nbefore:\n\n| module | lines | stages re-run |\n|---|---:|---:|")
    for module in sorted(before):
        print(f"| {module.removeprefix('src/qrobust/')} | {lines(old, module)} | {len(before[module])} |")


if __name__ == "__main__":
    main()
