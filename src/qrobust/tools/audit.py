"""Audit a run of the study against the committed one: is every difference within its noise?

    python -m qrobust.tools.audit                   # this workspace's outputs against HEAD's (make audit)
    python -m qrobust.tools.audit ../their-run      # another run's project folder (its reports/, params.yaml)
    python -m qrobust.tools.audit my-exp --against v1.0   # any two revisions or experiments

Bytes differ between machines (training's last bits depend on the CPU's instruction set, and everything
downstream follows: docs/performance.md), so the question a reviewer asks of a re-run is not "are the
bytes the same" but "do the two runs disagree beyond noise". Each number is classified:

- **identical**: the same value on the same n;
- **within noise**: the difference is what drawing the samples and training the model again give;
- **beyond noise**: it is not (Benjamini-Hochberg over every number at a false discovery rate of 5%).

The noise of a difference is its sampling variance (paired on the per-sample outcomes where both runs
recorded them on the same samples, else two independent proportions) plus twice the between-seed
variance of that kind of number: both runs are one training draw each. The between-seed variance comes
from the committed run's replicates (train.seeds), pooled per attack, threat model, epsilon and norm, and over
all of them for a kind no replicate measured; a committed run without replicates gives sampling noise
only, and the page says so. Every result row (results.csv, the defense study's csv files) is a number;
each verdict, per claim and per condition, is identical, within noise (one run decides where the other
is inconclusive) or beyond noise (one run says "holds" where the other says "does not hold": each
rejects what the other accepts at its error rate). A number or verdict only one run reports is listed
apart ("in one run only") and fails the audit too: a re-run of the same study reports them all.

The page goes to build/audit (index.html, audit.md); the exit status is 1 when anything is beyond noise.
Rows are matched as ``qrobust.tools.compare`` matches them, and read through its ``reader``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qrobust.evaluation.results import Result, read_results
from qrobust.findings.tests import benjamini_hochberg
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Report, Table, pct
from qrobust.report.page import write_pages
from qrobust.tools.compare import ALPHA, Revision, _key, _label, read_revision, reader

IDENTICAL, WITHIN, BEYOND, ONE_RUN = "identical", "within noise", "beyond noise", "in one run only"
OPPOSITE = {"holds", "does not hold"}
MAX_ROWS = 40


@dataclass(frozen=True)
class Run:
    """A revision as the audit reads it: its rows (the defense study's too) and its verdicts per condition."""

    revision: Revision
    rows: list[Result]
    conditions: dict[str, str]  # "<claim>: <condition>" -> verdict


def read_run(repo: Path, rev: str) -> Run:
    revision = read_revision(repo, rev)
    read = reader(repo, rev)
    defend = yaml.safe_load(read("params.yaml"))["defend"]
    rows = list(revision.rows)
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*defend.get("defenses", {}), *defend.get("recipes", [])]:
            path = Path(tmp) / f"{name}.csv"
            path.write_text(read(f"reports/defenses/{name}.csv"), encoding="utf-8")
            rows += read_results(path)
    evidence = json.loads(read("reports/findings_evidence.json"))["findings"]
    conditions = {
        f"{claim}: {c['condition']}{' (placebo)' if placebo else ''}": c["verdict"]
        for claim, record in evidence.items()
        for placebo in (False, True)
        for c in record["placebo" if placebo else "conditions"]
    }
    return Run(revision, rows, {**{f"{k}: overall": v for k, v in revision.verdicts.items()}, **conditions})


def _family_key(r: Result) -> tuple[Any, ...]:
    """What a row measures (``compare._key``) with the seed taken out of its models: replicates share it."""
    return _key(replace(r, source=str(ModelId.parse(r.source).unseeded), target=str(ModelId.parse(r.target).unseeded)))


def seed_variance(rows: Sequence[Result]) -> tuple[dict[tuple[str, str, float, str], float], float, int]:
    """The between-seed variance of robust accuracy per (attack, threat model, epsilon, norm), pooled over the
    replicated rows of that kind, the same pooled over every kind, and its degrees of freedom."""
    groups: dict[tuple[Any, ...], list[Result]] = defaultdict(list)
    for r in rows:
        if math.isfinite(r.epsilon) and r.n:
            groups[_family_key(r)].append(r)
    sums: dict[tuple[str, str, float, str], list[float]] = defaultdict(lambda: [0.0, 0])
    total, df = 0.0, 0
    for found in groups.values():
        if len(found) < 2:
            continue
        mean = sum(r.robust_accuracy for r in found) / len(found)
        ss = sum((r.robust_accuracy - mean) ** 2 for r in found)
        kind = sums[_kind(found[0])]
        kind[0] += ss
        kind[1] += len(found) - 1
        total, df = total + ss, df + len(found) - 1
    return {k: ss / d for k, (ss, d) in sums.items()}, (total / df if df else 0.0), df


def _kind(r: Result) -> tuple[str, str, float, str]:
    return (r.attack, r.threat_model, r.epsilon, r.norm)


@dataclass(frozen=True)
class Number:
    label: str
    a: Result | None
    b: Result | None
    status: str
    z: float = math.nan
    p: float = math.nan
    q: float = math.nan

    def cells(self) -> tuple[str, ...]:
        def value(r: Result | None) -> str:
            return "absent" if r is None else f"{pct(r.robust_accuracy)} (n={r.n})"

        diff = (
            ""
            if self.a is None or self.b is None
            else f"{100 * (self.b.robust_accuracy - self.a.robust_accuracy):+.1f}"
        )
        shown = "" if math.isnan(self.z) else f"{self.z:+.2f}"
        return (
            self.label,
            value(self.a),
            value(self.b),
            diff,
            shown,
            "" if math.isnan(self.q) else f"{self.q:.3g}",
            self.status,
        )


def _sampling_variance(a: Run, b: Run, ra: Result, rb: Result) -> float:
    """The variance of B - A from the samples drawn: paired on the per-sample outcomes when both runs have
    them on the same samples, else two independent proportions."""
    oa, ob = a.revision.outcome(ra), b.revision.outcome(rb)
    if oa is not None and ob is not None and np.array_equal(oa[1], ob[1]) and len(oa[0]):
        diff = ob[0].astype(float) - oa[0].astype(float)
        return float(diff.var(ddof=1) / len(diff)) if len(diff) > 1 else 0.0
    pa, pb = ra.robust_accuracy, rb.robust_accuracy
    return pa * (1 - pa) / max(ra.n, 1) + pb * (1 - pb) / max(rb.n, 1)


def classify_rows(a: Run, b: Run) -> tuple[list[Number], int]:
    """Every row of either run, classified; and the degrees of freedom of the seed variance used."""
    by_kind, pooled, df = seed_variance(a.rows)
    index_a, index_b = {_key(r): r for r in a.rows}, {_key(r): r for r in b.rows}
    keys = list(index_a) + [k for k in index_b if k not in index_a]
    out: list[Number] = []
    for key in keys:
        ra, rb = index_a.get(key), index_b.get(key)
        label = _label(ra or rb)
        if ra is None or rb is None:
            out.append(Number(label, ra, rb, ONE_RUN))  # a number one run reports and the other does not
            continue
        if math.isinf(ra.epsilon):
            continue  # unbounded outputs: their rates say how often, not how far
        if ra.n == rb.n and ra.n_correct == rb.n_correct:
            out.append(Number(label, ra, rb, IDENTICAL))
            continue
        variance = _sampling_variance(a, b, ra, rb) + 2 * by_kind.get(
            (ra.attack, ra.threat_model, ra.epsilon, ra.norm), pooled
        )
        gap = rb.robust_accuracy - ra.robust_accuracy
        z = gap / math.sqrt(variance) if variance > 0 else math.copysign(math.inf, gap)
        out.append(Number(label, ra, rb, WITHIN, z, math.erfc(abs(z) / math.sqrt(2))))
    tested = [i for i, n in enumerate(out) if not math.isnan(n.p)]
    q = benjamini_hochberg([out[i].p for i in tested])
    for i, qi in zip(tested, q, strict=True):
        n = out[i]
        out[i] = Number(n.label, n.a, n.b, BEYOND if qi < ALPHA else WITHIN, n.z, n.p, qi)
    return out, df


def classify_verdicts(a: Mapping[str, str], b: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """(claim or condition, A, B, status) for every verdict either run gives."""
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, "absent"), b.get(key, "absent")
        if va == vb:
            status = IDENTICAL
        elif "absent" in (va, vb):
            status = ONE_RUN
        elif {va, vb} == OPPOSITE:
            status = BEYOND
        else:
            status = WITHIN
        out.append((key, va, vb, status))
    return out


@dataclass(frozen=True)
class Audit:
    numbers: list[Number]
    verdicts: list[tuple[str, str, str, str]]
    seed_df: int

    def count(self, status: str) -> int:
        return sum(n.status == status for n in self.numbers) + sum(v[3] == status for v in self.verdicts)

    @property
    def beyond(self) -> bool:
        """Anything beyond noise, or a number only one run reports (a re-run of one study has them all)."""
        return self.count(BEYOND) + self.count(ONE_RUN) > 0


def audit(a: Run, b: Run) -> Audit:
    numbers, df = classify_rows(a, b)
    return Audit(numbers, classify_verdicts(a.conditions, b.conditions), df)


def page(result: Audit, a: str, b: str) -> Report:
    beyond = sorted(
        (n for n in result.numbers if n.status == BEYOND), key=lambda n: -abs(n.z) if math.isfinite(n.z) else -math.inf
    )
    within = sorted((n for n in result.numbers if n.status == WITHIN), key=lambda n: -abs(n.z))
    verdicts = [v for v in result.verdicts if v[3] != IDENTICAL]
    headers = ("number", "committed", "this run", "difference (points)", "z", "q", "status")
    noise = (
        f"sampling noise plus twice the between-seed variance from the committed run's replicates ({result.seed_df} df)"
        if result.seed_df
        else "sampling noise only: the committed run has no replicates (train.seeds), so training randomness is not counted"
    )
    counts = {s: sum(n.status == s for n in result.numbers) for s in (IDENTICAL, WITHIN, BEYOND, ONE_RUN)}
    one_run = [n for n in result.numbers if n.status == ONE_RUN]
    verdict_counts = {s: sum(v[3] == s for v in result.verdicts) for s in (IDENTICAL, WITHIN, BEYOND)}
    summary = [
        f"{'FAILS' if result.beyond else 'Passes'}: of {len(result.numbers)} numbers, "
        f"{counts[IDENTICAL]} identical, {counts[WITHIN]} within noise, {counts[BEYOND]} beyond, "
        f"{counts[ONE_RUN]} in one run only; of "
        f"{len(result.verdicts)} verdicts, {verdict_counts[IDENTICAL]} identical, {verdict_counts[WITHIN]} within "
        f"noise, {verdict_counts[BEYOND]} beyond.",
        f"Committed run: {a}; this run: {b}. Noise: {noise}; beyond noise at a false discovery rate of {ALPHA:g} "
        "(Benjamini-Hochberg over every number that differs).",
    ]
    sections = [
        Table(
            "Numbers beyond noise",
            headers,
            tuple(n.cells() for n in beyond[:MAX_ROWS]) or (("(none)", "", "", "", "", "", ""),),
            f"{len(beyond)} numbers" + (f"; the {MAX_ROWS} largest are listed." if len(beyond) > MAX_ROWS else "."),
        ),
        Table(
            "Verdicts that differ",
            ("claim: condition", "committed", "this run", "status"),
            tuple(verdicts) or (("(none)", "", "", ""),),
            "Beyond noise: one run says 'holds' where the other says 'does not hold', each at its controlled error "
            "rate. Within noise: one run decides where the other is inconclusive.",
        ),
        Table(
            "Numbers only one run reports",
            ("number", "committed", "this run"),
            tuple(n.cells()[:3] for n in one_run[:MAX_ROWS]) or (("(none)", "", ""),),
            f"{len(one_run)} numbers: a model, attack or defense one run has and the other lacks (a re-run of the "
            "same study has none; two revisions of different params do)"
            + (f"; the first {MAX_ROWS} are listed." if len(one_run) > MAX_ROWS else "."),
        ),
        Table(
            "Numbers that differ within noise (largest first)",
            headers,
            tuple(n.cells() for n in within[:MAX_ROWS]) or (("(none)", "", "", "", "", "", ""),),
            f"{len(within)} numbers differ within their noise; z is the difference over its noise's sd.",
        ),
    ]
    return Report(f"qrobust audit: {b} against {a}", summary, sections, lead=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="workspace", help="this run: 'workspace', a folder, a revision")
    parser.add_argument("--against", default="HEAD", help="the committed run (default: HEAD)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the project (default: here)")
    parser.add_argument("--out", type=Path, default=Path("build/audit"), help="folder for index.html and audit.md")
    args = parser.parse_args(argv)
    try:
        result = audit(read_run(args.repo, args.against), read_run(args.repo, args.run))
    except (ConfigError, FileNotFoundError) as exc:
        raise SystemExit(f"audit: {exc}") from None
    report = page(result, args.against, args.run)
    print(f"{report.summary[0]}\nwrote {write_pages(report, args.out, 'audit.md')}")
    return 1 if result.beyond else 0


if __name__ == "__main__":
    raise SystemExit(main())
