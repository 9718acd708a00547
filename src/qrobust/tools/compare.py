"""Compare two revisions of a study (branches, commits, DVC experiments) on one page.

    python -m qrobust.tools.compare main my-experiment      # or: make compare A=main B=my-experiment

Each revision's ``reports/results.csv``, ``reports/findings.json`` and ``params.yaml`` are read through DVC
(``dvc.api.read``: git for the small files, the DVC cache or remote for the outputs), never by re-running
anything; ``workspace`` reads the files on disk. The page gives, per model, both revisions' clean and
headline robust accuracy, the difference and whether it is larger than its sampling noise; the verdicts
that changed; every other result row whose difference exceeds its noise; and both revisions' robust-accuracy
curves overlaid.

Two revisions of one study score the same seeded samples, so a row is compared by McNemar's exact test on
its per-sample outcomes (``reports/outcomes.npz``) where both revisions have them on the same samples, and
by a two-proportion z-test otherwise. Over the thousands of rows, "exceeds its noise" keeps the false
discovery rate at 5% (Benjamini-Hochberg), instead of testing each row at p < 0.05.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result, paired_difference, read_results
from qrobust.evaluation.scoring import outcome_key, set_index_key
from qrobust.evaluation.worstcase import ATTACK as WORST_CASE
from qrobust.findings.headline import HEADLINE_RULE, Headline, headline_budget, headlines
from qrobust.findings.tests import benjamini_hochberg
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.report.figures import Curves, curve_rows, curves_png
from qrobust.report.format import Figure, Report, Table, pct
from qrobust.report.model_tables import _precision_order
from qrobust.report.page import write_pages

WORKSPACE = "workspace"
ALPHA = 0.05  # a difference "exceeds its noise" when its Benjamini-Hochberg q-value is below this (FDR 5%)
MAX_ROWS = 40  # changed result rows listed on the page (all are counted)


@dataclass(frozen=True)
class Revision:
    name: str
    rows: list[Result]
    verdicts: dict[str, str]
    curves: dict[ThreatModel, str]  # report.curves of this revision's params
    outcomes: dict[str, np.ndarray]  # reports/outcomes.npz: per row its per-sample outcome ({} if absent)

    def outcome(self, r: Result) -> tuple[np.ndarray, np.ndarray] | None:
        """A row's per-sample outcome and the samples it covers, when this revision recorded them."""
        if r.attack == WORST_CASE:
            key = f"{outcome_key(r.attack, r.threat_model, r.epsilon, r.source, r.target)}|{r.norm}"
            index_key = f"index|{key}"
        elif r.threat_model == ThreatModel.CLEAN.value:
            key = outcome_key(r.attack, r.threat_model, r.epsilon, r.source, r.target)
            index_key = f"index|{key}"
        else:
            key = outcome_key(r.attack, r.threat_model, r.epsilon, r.source, r.target)
            index_key = set_index_key(r.attack, r.source_threat_model, r.source)
        if key not in self.outcomes or index_key not in self.outcomes:
            return None
        return self.outcomes[key], self.outcomes[index_key]


Reader = Callable[..., "str | bytes"]


def reader(repo: Path, rev: str) -> Reader:
    """``read(path, mode="r")`` of one revision's files: through DVC (git for the small files, the DVC cache
    or remote for the outputs), or from disk for ``workspace`` and for a folder holding another run's project."""
    folder = repo if rev == WORKSPACE else Path(rev) if Path(rev).is_dir() else None
    if folder is not None:

        def read(path: str, mode: str = "r") -> str | bytes:
            if not (folder / path).is_file():
                raise FileNotFoundError(f"{folder / path}: missing; is {folder} a run of the study?")
            return (folder / path).read_bytes() if mode == "rb" else (folder / path).read_text(encoding="utf-8")

        return read
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc.scm import RevError

    def read_dvc(path: str, mode: str = "r") -> str | bytes:
        try:
            return dvc.api.read(path, repo=str(repo), rev=rev, mode=mode)
        except (DvcException, RevError) as exc:
            raise ConfigError(
                f"revision {rev!r} has no readable {path} ({exc}): name a branch, commit or experiment "
                "(dvc exp show) whose study ran, with its outputs in the DVC cache or remote (dvc pull)"
            ) from exc

    return read_dvc


def read_revision(repo: Path, rev: str) -> Revision:
    """A revision's rows, verdicts and figure settings (``reader``)."""
    read = reader(repo, rev)
    with tempfile.TemporaryDirectory() as tmp:  # read_results parses a file
        (Path(tmp) / "results.csv").write_text(read("reports/results.csv"), encoding="utf-8")
        rows = read_results(Path(tmp) / "results.csv")
    findings = json.loads(read("reports/findings.json"))["findings"]
    verdicts = {claim: record["verdict"] for claim, record in findings.items()}
    curves = yaml.safe_load(read("params.yaml"))["report"]["curves"]
    try:
        with np.load(io.BytesIO(read("reports/outcomes.npz", "rb")), allow_pickle=False) as data:
            outcomes = {name: data[name] for name in data.files}
    except (ConfigError, FileNotFoundError):
        outcomes = {}  # an older revision: its rows are compared unpaired
    return Revision(rev, rows, dict(verdicts), {ThreatModel(t): a for t, a in curves.items()}, outcomes)


def two_proportion_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (normal approximation); 1 when either n is 0 or
    both rates are 0, or both 1 (no variance, no difference).

    Written by hand: one line of arithmetic, where scipy.stats has no two-proportion test of its own."""
    if not n_a or not n_b:
        return 1.0
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = k_b / n_b - k_a / n_a
    if se == 0:
        return 1.0
    return math.erfc(abs(diff) / se / math.sqrt(2))


@dataclass(frozen=True)
class Difference:
    label: str
    a: Result | None
    b: Result | None
    p: float = math.nan  # two-sided: McNemar's exact test when paired, else the two-proportion z-test
    paired: bool = False
    q: float = math.nan  # Benjamini-Hochberg over the rows compared together

    @property
    def exceeds(self) -> bool:
        return self.q < ALPHA

    @property
    def points(self) -> float:
        if self.a is None or self.b is None:
            return math.nan
        return 100 * (self.b.robust_accuracy - self.a.robust_accuracy)

    def cells(self) -> tuple[str, ...]:
        def value(r: Result | None) -> str:
            return "absent" if r is None else f"{pct(r.robust_accuracy)} (n={r.n})"

        significant = "n/a" if math.isnan(self.q) else ("yes" if self.exceeds else "no")
        shown_p = "" if math.isnan(self.p) else f"{self.p:.3g} ({'McNemar' if self.paired else 'z-test'})"
        shown_q = "" if math.isnan(self.q) else f"{self.q:.3g}"
        diff = "" if math.isnan(self.points) else f"{self.points:+.1f}"
        return (self.label, value(self.a), value(self.b), diff, shown_p, shown_q, significant)


def tested(label: str, a: Revision, b: Revision, ra: Result | None, rb: Result | None) -> Difference:
    """The two rows' difference with its p-value: paired on the per-sample outcomes when both revisions
    recorded them on the same samples, else unpaired."""
    if ra is None or rb is None:
        return Difference(label, ra, rb)
    oa, ob = a.outcome(ra), b.outcome(rb)
    if oa is not None and ob is not None and np.array_equal(oa[1], ob[1]):
        return Difference(label, ra, rb, paired_difference(oa[0], ob[0])["mcnemar_p"], paired=True)
    return Difference(label, ra, rb, two_proportion_p(ra.n_correct, ra.n, rb.n_correct, rb.n))


def with_q(differences: Sequence[Difference]) -> list[Difference]:
    """Benjamini-Hochberg q-values over every difference that has a p-value."""
    tested_ = [i for i, d in enumerate(differences) if not math.isnan(d.p)]
    q = dict(zip(tested_, benjamini_hochberg([differences[i].p for i in tested_]), strict=True))
    return [replace(d, q=q[i]) if i in q else d for i, d in enumerate(differences)]


HEADERS = ("A", "B", "B - A (points)", "p (two-sided)", "q (Benjamini-Hochberg)", f"exceeds noise (q < {ALPHA:g})")


def _key(r: Result) -> tuple[Any, ...]:
    """What a row measures. The source's threat model and the norm tell apart rows that share the rest: a
    quantized model's exact and straight-through sets transferred to its parent, and the worst cases of
    two norms at one epsilon."""
    return (
        r.attack,
        r.norm,
        r.threat_model,
        r.source_threat_model,
        r.epsilon,
        r.source,
        r.target,
        r.defense,
        r.adaptive,
    )


def _label(r: Result) -> str:
    made = "" if r.source == r.target else f" from {r.source} ({r.source_threat_model})"
    norm = f" {r.norm}" if r.attack == WORST_CASE else ""
    return f"{r.target}: {r.attack}{norm} {r.threat_model}{made} eps {r.epsilon:g}"


def row_differences(a: Revision, b: Revision) -> list[Difference]:
    """Every result row of either revision, matched on what it measures (attack, threat model, epsilon,
    source, target, defense, adaptive), in A's order then B's new rows; q-values over all of them."""
    index_a, index_b = {_key(r): r for r in a.rows}, {_key(r): r for r in b.rows}
    keys = list(index_a) + [k for k in index_b if k not in index_a]
    return with_q(
        [
            tested(_label(index_a.get(k) or index_b[k]), a, b, index_a.get(k), index_b.get(k))
            for k in keys
            if not math.isinf(k[4])  # unbounded outputs: their rates say how often, not how far; see their distances
        ]
    )


def headline_differences(a: Revision, b: Revision, norm: str, epsilon: float) -> list[Difference]:
    def by_model(rev: Revision) -> dict[str, Headline]:
        return {h.model: h for h in headlines(rev.rows, norm, epsilon)}

    ha, hb = by_model(a), by_model(b)
    models = sorted(set(ha) | set(hb), key=_precision_order)
    out = []
    for model in models:
        x, y = ha.get(model), hb.get(model)
        out.append(tested(f"{model}: clean", a, b, x and x.clean, y and y.clean))
        out.append(tested(f"{model}: robust", a, b, x and x.strongest, y and y.strongest))
    return with_q(out)


def budget(rev: Revision) -> tuple[str, float]:
    """The headline budget as the findings stage sets it: the middle of the white-box curve's grid."""
    attack = rev.curves.get(ThreatModel.WHITE_FLOAT) or next(iter(rev.curves.values()))
    drawn = [r for r in rev.rows if r.attack == attack and math.isfinite(r.epsilon)]
    return headline_budget(drawn[0].norm, sorted({r.epsilon for r in drawn}))


def overlay_figure(a: Revision, b: Revision, threat: ThreatModel, attack: str) -> Figure:
    """One panel per architecture: every model's curve in A (solid) and in B (dashed), same colour."""
    series = [
        Curves(curve_rows(rev.rows, threat, attack), style, f" ({label})")
        for rev, style, label in ((a, "-", "A"), (b, "--", "B"))
    ]
    precisions = {ModelId.parse(r.target).precision for rev in (a, b) for r in rev.rows}
    return Figure(
        f"compare_{threat.value}",
        f"Robust accuracy vs epsilon, {threat.value}: {attack}, {a.name} (solid) vs {b.name} (dashed)",
        curves_png(series, precisions, bands=False),
        "Read: a dashed curve below its solid one is a model that the second revision leaves less robust there.",
    )


def compare(a: Revision, b: Revision) -> Report:
    norm, epsilon = budget(a)
    head = headline_differences(a, b, norm, epsilon)
    matched = row_differences(a, b)
    rows = sorted((d for d in matched if d.exceeds), key=lambda d: -abs(d.points))
    claims = sorted(set(a.verdicts) | set(b.verdicts))
    changed = [(c, a.verdicts.get(c, "absent"), b.verdicts.get(c, "absent")) for c in claims]
    changed = [line for line in changed if line[1] != line[2]]
    sections: list[Table | Figure] = [
        Table(
            f"Headline: clean and worst-case robust accuracy at {norm} epsilon {epsilon:g}",
            ("model", *HEADERS),
            tuple(d.cells() for d in head),
            f"Robust accuracy is {HEADLINE_RULE}. Both revisions score the same samples: McNemar's exact test on "
            "the per-sample outcomes (a z-test where a revision lacks them); a difference exceeds its noise when its "
            f"Benjamini-Hochberg q-value over these rows is below {ALPHA:g}.",
        ),
        Table(
            "Verdicts that changed",
            ("claim", "A", "B"),
            tuple(changed) or (("(none)", "", ""),),
            f"{len(claims)} claims judged; their rules are in each revision's report.",
        ),
        Table(
            "Every result row whose difference exceeds its noise",
            ("row", *HEADERS),
            tuple(d.cells() for d in rows[:MAX_ROWS]) or (("(none)", "", "", "", "", "", ""),),
            f"{len(rows)} of {len(matched)} matched rows differ beyond their noise (false discovery rate {ALPHA:g}, "
            f"{sum(d.paired for d in matched)} rows paired)"
            + (f"; the {MAX_ROWS} largest are listed." if len(rows) > MAX_ROWS else "."),
        ),
        *(overlay_figure(a, b, threat, attack) for threat, attack in a.curves.items()),
    ]
    summary = [
        f"A = {a.name}, B = {b.name}. {sum(d.exceeds for d in head)} of {len(head)} headline numbers and "
        f"{len(rows)} result rows differ beyond their sampling noise; {len(changed)} verdicts changed.",
    ]
    return Report(f"qrobust comparison: {a.name} vs {b.name}", summary, sections, lead=2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="a git revision, branch, tag or DVC experiment name, or 'workspace'")
    parser.add_argument("b", help="the revision compared with A")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the project (default: here)")
    parser.add_argument("--out", type=Path, default=Path("build/compare"), help="folder for index.html and compare.md")
    args = parser.parse_args(argv)
    try:
        report = compare(read_revision(args.repo, args.a), read_revision(args.repo, args.b))
    except ConfigError as exc:
        raise SystemExit(f"compare: {exc}") from None
    print(f"{report.summary[0]}\nwrote {write_pages(report, args.out, 'compare.md')}")


if __name__ == "__main__":
    main()
