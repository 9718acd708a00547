"""The benchmark suite (`make benchmark`): every figure beside its baseline and, where one exists, its limit.

Run after `make repro` (it reads the default study's models and evaluation subset). Writes
``build/benchmark.json`` and prints the Markdown table the README shows. Sections:

- attack: Linf PGD over the study's whole epsilon grid, adversarial examples per second, through
  qrobust's runner (``attacks.craft``) against a bare Foolbox loop (PyTorchModel + LinfPGD with the
  same grid, nothing else) on the same model and samples, run in a fresh interpreter with glibc's malloc
  defaults as a plain script runs it (a second row gives it in this process, which keeps freed memory as
  every stage does: ``core.allocator``); the limit is the rate of the forward and
  backward passes alone (input gradient only) on the module the runner attacks (``victims.attack_copy``
  run in ``victims.CPU_CHUNK_ROWS`` chunks, as the runner's victim runs it), as many inputs per pass as the runner's; the three are timed in turn. Beside it, the study's L2 DeepFool against Foolbox's on the same frozen victim.
- workers: six sets of the attack stage (Linf PGD over the grid, float and straight-through) spread over
  one single-thread process per core (``workers.run_jobs``) against one after the other in one process on
  every thread, with the same bits required.
- runtime: deployed latency at batch 1 and throughput at batch 256 of every quantized model against
  the float ONNX Runtime session, and INC int8 against float torch eager; ``--compile`` adds INC int8
  lowered by ``torch.compile`` (inductor, frozen weights) with its compile time.
- evaluate: every adversarial set of the study scored on the first architecture's INC int8 runtime,
  each distinct input once (``evaluation.Distinct``) against every row; and the time to find the
  distinct inputs, which the stage pays once for all its targets.
- training: milliseconds per step of ``training.fit`` against a bare torch loop over in-memory tensors.
- scaling: runner time on the first architecture for 100, 500 and 1,000 samples and for 1, 2 and 3
  models; the exponent of a power law fitted to each (1 = linear).
- pipeline: what DVC pays over the study to rewrite a stage's lock after every stage it runs (its own
  ``modify_yaml``: a round-trip parse and dump of the whole file), for the committed locks (one per file
  of ``qrobust.tools.pipelines``, each stage rewriting its own file's) against one lock holding every
  stage; and what it pays to read its YAML files, with ruamel's C loader (ruamel.yaml.clib) against its
  pure-Python one.

Figures are medians or best-of runs on this machine; ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from dvc.utils.serialize import modify_yaml
from torch.nn import functional as F

from qrobust.attacks.runner import craft
from qrobust.attacks.victims import module_victim
from qrobust.data.datasets import DATASETS
from qrobust.data.splits import load_split
from qrobust.deploy.backends import load_runtime, open_artefact
from qrobust.deploy.runtime import OrtRuntime, latencies
from qrobust.models import InputSpec, create_model, input_spec
from qrobust.pipeline.allocator import keep_freed_memory
from qrobust.pipeline.blas import thread_invariant_products
from qrobust.pipeline.layout import ADVERSARIAL, FLOAT_MODELS, PREPARED, QUANT_MODELS
from qrobust.settings.study import load_study
from qrobust.tools.pipelines import LOCKS, PIPELINES
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import create_recipe

OUT = Path("build/benchmark.json")
STEPS = 10
CPU = torch.device("cpu")


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` runs after one warm-up: the least disturbed by other work on the machine
    (``repeats`` 0: one run, no warm-up, for figures too slow to repeat)."""
    if repeats:
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_seconds_each(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """``best_seconds`` of each of ``fns``, their runs taken in turn, so that a burst of other work on the
    machine slows them alike rather than the one that happens to run then."""
    for fn in fns:
        fn()
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def figure(
    section: str,
    name: str,
    unit: str,
    value: float,
    baseline: tuple[str, float],
    limit: tuple[str, float] | None = None,
) -> dict:
    """One row: a figure, its baseline and their ratio (higher is better for rates, lower for times)."""
    row = {"section": section, "name": name, "unit": unit, "value": round(value, 3)}
    row["baseline"] = {"name": baseline[0], "value": round(baseline[1], 3)}
    rate = unit.endswith("/ s")
    row["ratio"] = round(value / baseline[1] if rate else baseline[1] / value, 2)
    if limit is not None:
        row["limit"] = {"name": limit[0], "value": round(limit[1], 3)}
        row["share_of_limit"] = round(value / limit[1], 2)
        # The ratio a figure would reach at its limit: below a target, no runner can meet the target
        # on this model without faster passes of the model itself.
        row["ratio_at_limit"] = round(limit[1] / baseline[1] if rate else baseline[1] / limit[1], 2)
    return row


def float_model(arch: str, spec: InputSpec) -> torch.nn.Module:
    folder = FLOAT_MODELS / f"{arch}-standard"
    if not (folder / "model.pt").exists():
        raise SystemExit(f"{folder / 'model.pt'} is missing: run `make repro` first")
    model = create_model(arch, spec)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.eval()


def correct(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        right = model(torch.from_numpy(x)).argmax(1).numpy() == y
    return x[right], y[right]


def bare_foolbox(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, grid: list[float], batch: int) -> None:
    import foolbox

    fmodel = foolbox.PyTorchModel(model.eval(), bounds=(0.0, 1.0), device=CPU)
    attack = foolbox.attacks.LinfPGD(steps=STEPS, rel_stepsize=0.25, random_start=True)
    for i in range(0, len(x), batch):
        attack(fmodel, torch.from_numpy(x[i : i + batch]), torch.from_numpy(y[i : i + batch]), epsilons=grid)


def runner(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, grid: list[float], batch: int) -> None:
    options = {"steps": STEPS, "rel_stepsize": 0.25, "random_start": True}
    craft(module_victim(model, CPU), "linf_pgd", options, grid, x, y, batch_size=batch, seed=0)


def forward_backward_passes(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, rows: int) -> None:
    """``STEPS`` forward and backward passes over ``x`` in passes of ``rows`` inputs, and nothing else: the
    least work a ``STEPS``-step gradient attack can do. ``autograd.grad`` with respect to the input alone
    computes no weight gradients."""
    for i in range(0, len(x), rows):
        xb = torch.from_numpy(x[i : i + rows]).requires_grad_(True)
        yb = torch.from_numpy(y[i : i + rows])
        for _ in range(STEPS):
            torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="sum"), xb)


def bare_foolbox_seconds(job: tuple[str, InputSpec, np.ndarray, np.ndarray, list[float], int]) -> float:
    """``bare_foolbox`` timed (best of 5) in a fresh interpreter that leaves glibc's malloc at its
    defaults, as a plain Foolbox script runs. Module-level, so a spawned process can run it."""
    arch, spec, x, y, grid, batch = job
    model = float_model(arch, spec)
    return best_seconds(lambda: bare_foolbox(model, x, y, grid, batch), 5)


def in_default_process(fn: Callable[[Any], float], job: Any) -> float:
    """``fn(job)`` in a spawned interpreter, which does not run ``allocator.keep_freed_memory``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, job).result()


def attack_section(archs: list[str], spec: InputSpec, x: np.ndarray, y: np.ndarray, grid: list[float]) -> list[dict]:
    """This process keeps freed memory, as a stage does (``allocator``); the baseline is the bare loop
    as a plain script runs it, glibc's defaults, and a second row gives the bare loop in this process,
    so that the allocator's share and the runner's own are both in the table."""
    rows = []
    batch = 250
    for arch in archs:
        model = float_model(arch, spec)
        xs, ys = correct(model, x, y)
        examples = len(xs) * len(grid)
        attacked = module_victim(model, CPU).module  # the attacked copy, in the victim's chunks
        per_pass = batch // len(grid) * len(grid)  # inputs of one pass, as ``craft`` batches the grid
        stack, labels = np.tile(xs, (len(grid), 1, 1, 1)), np.tile(ys, len(grid))
        seconds = best_seconds_each(
            [
                lambda m=model, a=xs, b=ys: runner(m, a, b, grid, batch),
                lambda m=model, a=xs, b=ys: bare_foolbox(m, a, b, grid, batch),
                lambda m=attacked, a=stack, b=labels, r=per_pass: forward_backward_passes(m, a, b, r),
            ],
            5,
        )
        ours, bare_kept, limit = (examples / t for t in seconds)
        bare = examples / in_default_process(bare_foolbox_seconds, (arch, spec, xs, ys, grid, batch))
        name = f"{arch}: Linf PGD-{STEPS}, grid of {len(grid)}, n={len(xs)}"
        rows.append(
            figure(
                "attack",
                name,
                "examples / s",
                ours,
                ("bare Foolbox loop", bare),
                ("forward+backward passes alone", limit),
            )
        )
        rows.append(
            figure("attack", f"{name}: bare Foolbox loop, freed memory kept", "examples / s", bare_kept,
                   ("the same, glibc's defaults", bare))
        )  # fmt: skip
        rows.append(deepfool_row(arch, model, xs[:100], ys[:100]))
    return rows


def deepfool_row(arch: str, model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> dict:
    """The study's DeepFool (a fooled sample leaves the batch, one forward pass for every candidate)
    against Foolbox's on the same frozen victim, the study's options: the change alone."""
    import foolbox

    from qrobust.attacks.deepfool import L2DeepFool

    victim = module_victim(model, CPU)
    options = {"steps": 50, "candidates": 4}

    def run(attack: Any) -> None:
        criterion = foolbox.criteria.Misclassification(torch.from_numpy(y))
        attack(victim.model, torch.from_numpy(x), criterion, epsilons=None)

    ours = len(x) / best_seconds(lambda: run(L2DeepFool(**options)), 1)
    bare = len(x) / best_seconds(lambda: run(foolbox.attacks.L2DeepFoolAttack(**options)), 1)
    return figure("attack", f"{arch}: L2 DeepFool, n={len(x)}", "examples / s", ours, ("Foolbox's DeepFool", bare))


def evaluate_section(arch: str, x: np.ndarray, targets: int) -> list[dict]:
    """Scoring every adversarial set of the study: finding the distinct inputs of the stacked sets (once per
    stage, for all ``targets``; it was once per target), and one INC int8 runtime (evaluate's slowest)
    answering each distinct input once against every row."""
    from qrobust.attacks.sets import AdversarialSet
    from qrobust.evaluation.scoring import Distinct

    sets = [AdversarialSet.load(path) for path in sorted(ADVERSARIAL.glob("*/*/*.npz"))]
    stack = np.concatenate([adv.x_adv.reshape(-1, *x.shape[1:]) for adv in sets])
    start = time.perf_counter()
    distinct = Distinct.of(stack)
    find = time.perf_counter() - start
    runtime = load_runtime(QUANT_MODELS / f"{arch}-standard" / "inc_int8")
    runtime.predict(x[:64])
    ours = len(stack) / best_seconds(lambda: distinct.predict(runtime), 0)
    every = len(stack) / best_seconds(lambda: runtime.predict(stack), 0)
    name = (
        f"{arch}-standard.inc_int8: score the study's {len(stack)} adversarial rows ({len(distinct.inputs)} distinct)"
    )
    return [
        figure("evaluate", name, "rows / s", ours, ("every row", every)),
        figure(
            "evaluate",
            f"find the distinct inputs of the {len(stack)} rows, for {targets} targets",
            "s",
            find,
            (f"once per target, {targets} times", find * targets),
        ),  # fmt: skip
    ]


def runtime_section(archs: list[str], spec: InputSpec, x: np.ndarray, compile_inc: bool) -> list[dict]:
    rows = []
    for arch in archs:
        source = FLOAT_MODELS / f"{arch}-standard"
        reference = latencies(OrtRuntime(source / "model.onnx"), x)
        model = float_model(arch, spec)
        batch = torch.from_numpy(np.resize(x, (256, *x.shape[1:])))
        with torch.no_grad():
            eager = best_seconds(lambda m=model, b=batch: m(b), 5) * 1e3
        for folder in sorted(p for p in (QUANT_MODELS / f"{arch}-standard").iterdir() if p.is_dir()):
            runtime = load_runtime(folder)
            measured = latencies(runtime, x)
            label = f"{arch}-standard.{folder.name} ({open_artefact(folder)[0].info['backend']})"
            rows.append(
                figure(
                    "runtime",
                    f"{label}, batch 1",
                    "ms",
                    measured["latency_ms_batch1"],
                    ("float ONNX Runtime", reference["latency_ms_batch1"]),
                )  # fmt: skip
            )
            rows.append(
                figure(
                    "runtime",
                    f"{label}, batch 256",
                    "images / s",
                    256e3 / measured["latency_ms_batch256"],
                    ("float ONNX Runtime", 256e3 / reference["latency_ms_batch256"]),
                )  # fmt: skip
            )
            if folder.name.endswith(".inc_int8"):
                rows.append(
                    figure(
                        "runtime",
                        f"{label} vs torch eager, batch 256",
                        "images / s",
                        256e3 / measured["latency_ms_batch256"],
                        ("float torch eager", 256e3 / eager),
                    )  # fmt: skip
                )
                if compile_inc:
                    rows.append(compiled_inc(runtime.module, batch, eager, label))
    return rows


def compiled_inc(module: torch.nn.Module, batch: torch.Tensor, eager_ms: float, label: str) -> dict:
    """INC int8 lowered to oneDNN int8 kernels by inductor; its compile time and output drift ride along."""
    import torch._inductor.config as inductor

    inductor.freezing = True
    start = time.perf_counter()
    compiled = torch.compile(module)
    with torch.no_grad():
        out = compiled(batch)
        seconds = time.perf_counter() - start
        drift = float((out - module(batch)).abs().max())
        ms = best_seconds(lambda: compiled(batch), 5) * 1e3
    row = figure("runtime", f"{label} torch.compile, batch 256", "images / s", 256e3 / ms,
                 ("float torch eager", 256e3 / eager_ms))  # fmt: skip
    row["compile_seconds"], row["max_abs_logit_change"] = round(seconds, 1), drift
    return row


def training_section(archs: list[str], spec: InputSpec, x: np.ndarray, y: np.ndarray) -> list[dict]:
    rows = []
    steps, size = 30, 128
    xs, ys = np.resize(x, (steps * size, *x.shape[1:])), np.resize(y, steps * size)
    config = TrainConfig(epochs=1, batch_size=size, lr=1e-3, weight_decay=1e-4, seed=0, device="cpu")
    for arch in archs:
        ours = best_seconds(lambda a=arch: fit(create_model(a, spec), create_recipe("standard", {}), xs, ys, config), 1)

        def bare(a: str = arch) -> None:
            model = create_model(a, spec).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            images, labels = torch.from_numpy(xs), torch.from_numpy(ys)
            for i in range(steps):
                optimizer.zero_grad()
                F.cross_entropy(model(images[i * size : (i + 1) * size]), labels[i * size : (i + 1) * size]).backward()
                optimizer.step()

        rows.append(
            figure(
                "training",
                f"{arch}: one step, batch {size}",
                "ms",
                ours / steps * 1e3,
                ("bare torch loop", best_seconds(bare, 1) / steps * 1e3),
            )  # fmt: skip
        )
    return rows


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(time) against log(size): 1 is linear, above 1 worse than linear."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def scaling_section(arch: str, spec: InputSpec, x: np.ndarray, y: np.ndarray, grid: list[float]) -> list[dict]:
    model = float_model(arch, spec)
    counts = [100, 500, 1000]
    per_samples = [best_seconds(lambda n=n: runner(model, x[:n], y[:n], grid, 250), 1) for n in counts]
    models = [1, 2, 3]

    def several(k: int) -> None:
        for _ in range(k):
            runner(model, x[:200], y[:200], grid, 250)

    per_models = [best_seconds(lambda k=k: several(k), 1) for k in models]
    rows = []
    for what, sizes, seconds in (("samples", counts, per_samples), ("models", models, per_models)):
        slope = exponent(sizes, seconds)
        row = figure("scaling", f"{arch}: attack time vs {what} {sizes}", "exponent", slope, ("linear", 1.0))
        row["seconds"] = [round(s, 2) for s in seconds]
        row["verdict"] = "linear" if slope <= 1.1 else "worse than linear"  # rule: within 10% of linear
        rows.append(row)
    return rows


def attack_set(job: tuple[str, str, str, int]) -> tuple[float, str]:
    """One set of the attack stage (``craft`` on an opened victim, as stages/attack.py makes it): seconds
    and a digest of the adversarial examples. Module-level, so a spawned worker can run it."""
    from qrobust.attacks.runner import attack_subset
    from qrobust.attacks.threats import ThreatModel
    from qrobust.attacks.victims import open_victim
    from qrobust.pipeline.model_id import ModelId

    attack, threat, source, samples = job
    study = load_study()
    config = study.attack.get(attack)
    x, y = load_split(PREPARED / "eval.npz")
    index = attack_subset(len(x), samples, study.attack.seed)
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    start = time.perf_counter()
    victim = open_victim(ThreatModel(threat), ModelId.parse(source), spec, CPU, labels_only=False)
    crafted = craft(
        victim, attack, config.options, config.epsilons, x[index], y[index],
        batch_size=study.attack.batch_size, seed=study.attack.seed,
    )  # fmt: skip
    return time.perf_counter() - start, hashlib.sha256(crafted.x_adv.tobytes()).hexdigest()


def workers_section(archs: list[str], samples: int) -> list[dict]:
    """The attack stage's sets as independent jobs: spread over one single-thread process per core
    (``workers.run_jobs``, as stages/attack.py runs them) against one after the other in this process on
    every thread; the two must give the same bits. Linf PGD over the grid on every float model and, through
    their straight-through twins, on their ORT int8 models."""
    from qrobust.pipeline.workers import run_jobs, usable_cpus

    jobs = [("linf_pgd", "white_float", f"{a}-standard", samples) for a in archs]
    jobs += [("linf_pgd", "white_qnn_ste", f"{a}-standard.ort_int8", samples) for a in archs]
    start = time.perf_counter()
    alone = [attack_set(job) for job in jobs]
    one_process = time.perf_counter() - start
    start = time.perf_counter()
    spread = run_jobs(attack_set, jobs, workers=usable_cpus())
    workers = time.perf_counter() - start
    if [d for _, d in alone] != [d for _, d in spread]:
        raise SystemExit(
            "workers: the sets differ from one process's: qrobust.pipeline.workers must not change results"
        )
    name = f"{len(jobs)} Linf PGD sets of {samples} samples, {usable_cpus()} workers (same bits)"
    return [figure("workers", name, "s", workers, (f"one process, {torch.get_num_threads()} threads", one_process))]


def pipeline_section() -> list[dict]:
    locks = [yaml.safe_load(lock.read_text()) for lock in LOCKS if lock.is_file()]
    merged = {"schema": "2.0", "stages": {n: s for lock in locks for n, s in lock["stages"].items()}}

    def rewrite(path: Path) -> Callable[[], None]:
        def run() -> None:
            with modify_yaml(path):
                pass

        return run

    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp, "one.lock")
        one.write_text(yaml.safe_dump(merged, sort_keys=False))
        parts = [Path(tmp, f"{i}.lock") for i in range(len(locks))]
        for path, lock in zip(parts, locks, strict=True):
            path.write_text(yaml.safe_dump(lock, sort_keys=False))
        lines = len(one.read_text().splitlines())
        seconds = best_seconds_each([rewrite(one), *map(rewrite, parts)], repeats=3)
    stages = len(merged["stages"])
    per_file = sum(len(lock["stages"]) * s for lock, s in zip(locks, seconds[1:], strict=True))
    name = f"rewrite the locks ({lines:,} lines in all) after each of {stages} stages, {len(locks)} files"
    return [
        figure("pipeline", name, "s", per_file, ("one dvc.lock for every stage", stages * seconds[0])),
        yaml_loader_row(),
    ]


def yaml_loader_row() -> dict:
    """DVC reads the pipeline's files, their locks and params.yaml with ruamel's safe loader (``parse_yaml``),
    several times per stage it runs: with ruamel.yaml.clib installed (requirements.txt) that is the C parser; the
    baseline is the pure-Python parser DVC falls back to without it."""
    from ruamel.yaml import YAML

    texts = [path.read_text() for path in (*PIPELINES, *LOCKS, Path("params.yaml")) if path.is_file()]

    def parse(pure: bool) -> Callable[[], None]:
        def run() -> None:
            for text in texts:
                YAML(typ="safe", pure=pure).load(text)

        return run

    loader = YAML(typ="safe").Parser.__name__  # CParser with ruamel.yaml.clib, Parser without
    c, pure = best_seconds_each([parse(False), parse(True)], repeats=3)
    return figure(
        "pipeline",
        f"read the pipeline's files, locks and params.yaml once ({loader})",
        "s",
        c,
        ("pure-Python loader", pure),
    )


def markdown(rows: list[dict]) -> str:
    lines = [
        "| section | figure | value | baseline | ratio | limit | share of limit | ratio at limit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        limit = r.get("limit")
        lines.append(
            f"| {r['section']} | {r['name']} | {r['value']:g} {r['unit']} | {r['baseline']['name']}: "
            f"{r['baseline']['value']:g} | {r['ratio']:g}x | {limit['name'] + ': ' + format(limit['value'], 'g') if limit else ''}"
            f" | {r.get('share_of_limit', '')} | {format(r['ratio_at_limit'], 'g') + 'x' if limit else ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sections", default="attack,workers,runtime,evaluate,training,scaling,pipeline")
    parser.add_argument("--samples", type=int, default=200, help="samples of the attack section")
    parser.add_argument("--compile", action="store_true", help="also time INC int8 under torch.compile")
    args = parser.parse_args()
    kept = keep_freed_memory()  # as every stage runs (run_stage)
    products = thread_invariant_products()
    study = load_study()
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    archs = sorted({m.arch for m in study.train.model_ids()})
    grid = list(study.attack.get("linf_pgd").epsilons)
    x, y = load_split(PREPARED / "eval.npz")
    sections = {
        "attack": lambda: attack_section(archs, spec, x[: args.samples], y[: args.samples], grid),
        "workers": lambda: workers_section(archs, 250),
        "runtime": lambda: runtime_section(archs, spec, x, args.compile),
        "evaluate": lambda: evaluate_section(archs[0], x, len(study.models())),
        "training": lambda: training_section(archs, spec, x, y),
        "scaling": lambda: scaling_section(archs[0], spec, x, y, grid),
        "pipeline": pipeline_section,
    }
    rows: list[dict] = []
    for name in args.sections.split(","):
        rows += sections[name]()
    machine = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": len(os.sched_getaffinity(0)),
        "keeps_freed_memory": kept,
        "mkl_cbwr": products,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": machine, "figures": rows}, indent=1, sort_keys=True) + "\n")
    print(f"torch {machine['torch']}, {machine['threads']} threads, {machine['cpus']} CPUs; written to {OUT}\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
