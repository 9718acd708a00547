"""The default study before and after the speed-ups, on one machine and the same work.

``python benchmarks/before_after.py`` checks out two revisions as git worktrees under
``build/before_after/``, gives the later one the earlier study's work (``OLD_WORK``), runs ``dvc repro -f``
in each, one after the other, and prints every phase's seconds in both runs with their ratio;
``build/before_after/before_after.json`` keeps each stage's seconds. Both trees run this checkout's venv (DVC's stage
commands call ``python``; each stage's ``PYTHONPATH=src`` picks its own tree's code).

The whole machine for 80 minutes on a 2-core AMD EPYC with AVX2 (the earlier study 54 of them): run nothing else
meanwhile, since another process's work lands in whichever run is going. Ratios move with the machine
(the earlier code's speed-ups are larger on slower CPUs), so compare the two runs of one invocation,
never runs from two machines or two days.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

OUT = Path("build/before_after")
# The code before issue 13's speed-ups, with the dvc.lock of its own study.
BEFORE = "3364ebf"

DELETE = object()
# What the later study computes beyond the earlier one's work, set back to the earlier params.yaml
# (dotted keys; DELETE drops a key the earlier study did not have, so the attack takes its default).
# What the later code added and cannot switch off stays at its smallest: a validation split of 1,000
# images (the detectors' thresholds read 1,000), APGD-T at one step after the defense table's PGD, one
# sample of the convergence check, and the analyses added since. So the later run does a little more.
OLD_WORK: dict[str, Any] = {
    "data.val_size": 1000,
    "attack.attacks.linf_pgd.samples": 100,
    "attack.attacks.autoattack.threat_models": ["white_float"],
    "attack.attacks.cw_l2.steps": 40,
    "attack.attacks.cw_l2.binary_search_steps": 3,
    "attack.attacks.cw_l2.stepsize": DELETE,
    "attack.attacks.cw_l2.initial_const": DELETE,
    "attack.attacks.ead.steps": 50,
    "attack.attacks.ead.binary_search_steps": 3,
    "attack.attacks.ead.initial_stepsize": DELETE,
    "attack.attacks.ead.initial_const": DELETE,
    "attack.attacks.deepfool_l2.steps": 50,
    "defend.composite_options.steps": 1,
    "defend.eval_draws": 1,
    "analysis.convergence_samples": 1,
}

# Phases of the table, by stage name (the part before '@'); attacks split by threat model below.
PHASES = {
    "prepare": "prepare, train, train_defense",
    "train": "prepare, train, train_defense",
    "train_defense": "prepare, train, train_defense",
    "quantize": "quantize, quantize_defense",
    "quantize_defense": "quantize, quantize_defense",
    "evaluate": "evaluate",
    "defend": "defend, defend_recipe",
    "defend_recipe": "defend, defend_recipe",
}
LATER_PHASE = "analyse, findings, report"


def parent_of(params: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """The mapping that holds ``dotted``'s last key, and that key; a missing mapping fails, naming it."""
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise SystemExit(f"before_after: params.yaml has no {dotted!r} (no mapping at {key!r})")
        node = node[key]
    return node, leaf


def with_old_work(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``OLD_WORK`` applied; a key that is not there fails, naming it, before any run."""
    for dotted, value in OLD_WORK.items():
        node, leaf = parent_of(params, dotted)
        if value is DELETE:
            node.pop(leaf, None)
        elif leaf not in node:
            raise SystemExit(f"before_after: params.yaml has no {dotted!r}; OLD_WORK names keys it has")
        else:
            node[leaf] = value
    return params


def phase_of(stage: str, black_box: set[str]) -> str:
    """The phase a stage's seconds count towards: attacks split into gradient and black-box, the rest by
    ``PHASES``; a stage it does not name (analyse, findings, report) joins the last phase."""
    name, _, item = stage.partition("@")
    if name == "attack":
        return "black-box attacks" if item in black_box else "gradient attacks"
    return PHASES.get(name, LATER_PHASE)


def black_box_attacks(params: dict[str, Any]) -> set[str]:
    """Attacks that only query the deployed runtime: every threat model they run under is black_runtime."""
    attacks = params["attack"]["attacks"]
    return {name for name, entry in attacks.items() if set(entry["threat_models"]) == {"black_runtime"}}


def worktree(revision: str, path: Path) -> None:
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision], check=True)


def timed_repro(tree: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """``dvc repro -f`` in ``tree``: each stage's seconds, from its 'Running stage' line to the next one
    (DVC runs stages one at a time, so the gap holds the stage's command and DVC's own work on it)."""
    seconds: dict[str, float] = {}
    current, started = None, time.monotonic()
    with subprocess.Popen(["dvc", "repro", "-f"], cwd=tree, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc, log.open("w") as out:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            match = re.match(r"Running stage '([^']+)'", line)
            if match:
                now = time.monotonic()
                if current is not None:
                    seconds[current] = round(now - started, 1)
                current, started = match.group(1), now
    if proc.returncode:
        raise SystemExit(f"before_after: dvc repro -f failed in {tree} (exit {proc.returncode}); see {log}")
    if current is not None:
        seconds[current] = round(time.monotonic() - started, 1)
    return seconds


def by_phase(seconds: dict[str, float], black_box: set[str]) -> dict[str, float]:
    phases: dict[str, float] = {}
    for stage, value in seconds.items():
        phase = phase_of(stage, black_box)
        phases[phase] = round(phases.get(phase, 0.0) + value, 1)
    return phases


def table(before: dict[str, float], after: dict[str, float]) -> str:
    lines = ["| stages | before (s) | after (s) | ratio |", "|---|---|---|---|"]
    for phase in list(dict.fromkeys([*before, *after])) + ["every stage"]:
        b = sum(before.values()) if phase == "every stage" else before.get(phase, 0.0)
        a = sum(after.values()) if phase == "every stage" else after.get(phase, 0.0)
        ratio = f"{b / a:.2f}x" if a else "-"
        lines.append(f"| {phase} | {b:,.0f} | {a:,.0f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, help=f"the earlier revision (default {BEFORE})")
    parser.add_argument("--after", default="HEAD", help="the later revision, given the earlier work (default HEAD)")
    parser.add_argument("--keep", action="store_true", help="keep both worktrees and their artefacts")
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    OUT.mkdir(parents=True, exist_ok=True)
    trees = {"before": OUT / "before", "after": OUT / "after"}
    worktree(args.before, trees["before"])
    worktree(args.after, trees["after"])
    params_file = trees["after"] / "params.yaml"
    params = with_old_work(yaml.safe_load(params_file.read_text()))
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    check = [sys.executable, "-m", "qrobust.tools.check", "params.yaml"]
    subprocess.run(check, cwd=trees["after"], env=dict(env, PYTHONPATH="src"), check=True)
    stages, phases = {}, {}
    for side, tree in trees.items():
        print(f"{side}: dvc repro -f in {tree}", flush=True)
        black_box = black_box_attacks(yaml.safe_load((tree / "params.yaml").read_text()))
        stages[side] = timed_repro(tree, env, OUT / f"{side}.log")
        phases[side] = by_phase(stages[side], black_box)
    old_work = {key: "(removed)" if value is DELETE else value for key, value in OLD_WORK.items()}
    record = {"before": args.before, "after": args.after, "old_work": old_work, "stages": stages, "phases": phases}
    (OUT / "before_after.json").write_text(json.dumps(record, indent=1) + "\n")
    print(table(phases["before"], phases["after"]))
    if not args.keep:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False)


if __name__ == "__main__":
    main()
