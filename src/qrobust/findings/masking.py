"""Gradient-masking indicators per model and threat model, from the result rows and the analysis.

The checks of AutoAttack (Croce & Hein 2020) and "Indicators of Attack Failure" (Pintor et al. 2022)
that these rows can answer. Each check compares rates with their 95% Wilson intervals and flags only
when the intervals separate:

- ``black_beats_white``: a black-box attack at some epsilon leaves lower robust accuracy than the
  strongest white-box attack of the same norm at that epsilon;
- ``rises_with_epsilon``: an attack's robust accuracy is higher at a larger epsilon than at a smaller one;
- ``unbounded_short``: a minimisation attack's unbounded output fools fewer than 95% of the samples it
  attacked (upper interval bound below 95%);
- ``noise_beats_gradient``: random noise leaves lower robust accuracy than a gradient attack of the same
  norm and epsilon;
- ``zero_gradients``: most samples' input gradient through the model the attack differentiates is all
  zero (from the analysis stage; exact-rounding twins);
- ``loss_plateau``: of the samples the analysis's traced PGD did not flip, more than half (Wilson
  interval above one half) stopped improving their loss on the deployed model by a quarter of the steps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result, wilson_interval

WHITE = (ThreatModel.WHITE_FLOAT.value, ThreatModel.WHITE_QNN_EXACT.value, ThreatModel.WHITE_QNN_STE.value)
CHECKS = (
    "black_beats_white", "rises_with_epsilon", "unbounded_short", "noise_beats_gradient", "zero_gradients",
    "loss_plateau",
)  # fmt: skip
# The analysis's loss-trace keys and the threat model each traced attack stands for.
TRACES = {
    "loss_plateau": ThreatModel.WHITE_FLOAT,
    "loss_plateau/ste": ThreatModel.WHITE_QNN_STE,
    "loss_plateau/exact": ThreatModel.WHITE_QNN_EXACT,
}
TOTAL = 0.95  # the success an unbounded attack should reach


@dataclass(frozen=True)
class Flag:
    model: str
    threat_model: str
    check: str
    detail: str

    def record(self) -> dict[str, str]:
        return {"model": self.model, "threat_model": self.threat_model, "check": self.check, "detail": self.detail}


@dataclass(frozen=True)
class Rate:
    """A robust accuracy (or a proportion) with its 95% Wilson interval, as a flag quotes it."""

    label: str
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.label} {100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] n={self.n}"


def above(a: Rate, b: Rate) -> bool:
    """``a`` is above ``b`` with non-overlapping 95% intervals: a flag is raised only then."""
    return a.low > b.high


def _rate(r: Result) -> Rate:
    return Rate(f"{r.attack} eps {r.epsilon:g}", r.robust_accuracy, r.robust_accuracy_low, r.robust_accuracy_high, r.n)


def masking_flags(
    rows: Iterable[Result], noise_attacks: Iterable[str], analysis: Mapping[str, Mapping[str, Any]]
) -> list[Flag]:
    """Every flag raised on the undefended models' rows (the defense study has its own adaptive check)."""
    noise = set(noise_attacks)
    plain = [r for r in rows if r.defense == "none" and r.threat_model != ThreatModel.CLEAN.value]
    flags: list[Flag] = []
    own = [r for r in plain if r.source == r.target]
    white: dict[tuple[str, str, str, float], list[Result]] = defaultdict(list)
    for r in own:
        if r.threat_model in WHITE and math.isfinite(r.epsilon):
            white[(r.target, r.threat_model, r.norm, r.epsilon)].append(r)
    strongest = {k: min(v, key=lambda r: r.robust_accuracy) for k, v in white.items()}

    for r in own:
        if r.threat_model != ThreatModel.BLACK_RUNTIME.value or r.attack in noise or not math.isfinite(r.epsilon):
            continue
        for threat in WHITE:
            best = strongest.get((r.target, threat, r.norm, r.epsilon))
            if best is not None and above(_rate(best), _rate(r)):
                flags.append(Flag(r.target, threat, "black_beats_white", f"{_rate(r)} below {_rate(best)}"))

    series: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
    for r in own:
        if math.isfinite(r.epsilon):
            series[(r.target, r.threat_model, r.attack)].append(r)
    for (target, threat, _), found in series.items():
        found.sort(key=lambda r: r.epsilon)
        for i, small in enumerate(found):
            for large in found[i + 1 :]:
                if above(_rate(large), _rate(small)):
                    flags.append(Flag(target, threat, "rises_with_epsilon", f"{_rate(large)} above {_rate(small)}"))

    for r in own:
        if math.isinf(r.epsilon) and r.n_attackable and r.success_rate_high < TOTAL:
            flags.append(
                Flag(
                    r.target,
                    r.threat_model,
                    "unbounded_short",
                    f"{r.attack} unbounded fools {100 * r.success_rate:.1f}% [{100 * r.success_rate_low:.1f}, "
                    f"{100 * r.success_rate_high:.1f}] of n={r.n_attackable}",
                )
            )

    for r in plain:  # noise is drawn once on the float inputs and scored on every model
        if r.attack not in noise or not math.isfinite(r.epsilon):
            continue
        for threat in WHITE:
            best = strongest.get((r.target, threat, r.norm, r.epsilon))
            if best is not None and above(_rate(best), _rate(r)):
                flags.append(Flag(r.target, threat, "noise_beats_gradient", f"{_rate(r)} below {_rate(best)}"))

    for float_model, record in analysis.items():
        for name, m in record.items():
            if not isinstance(m, Mapping):
                continue
            model = float_model if name == "float" else name
            count = m.get("zero_gradient/exact")
            if count and count["rate"] > 0.5:
                flags.append(
                    Flag(
                        name,
                        ThreatModel.WHITE_QNN_EXACT.value,
                        "zero_gradients",
                        f"{100 * count['rate']:.1f}% of n={count['n']} samples have an all-zero input gradient",
                    )
                )
            for key, threat in TRACES.items():
                if key in m and m[key]["n"] and wilson_interval(m[key]["k"], m[key]["n"])[0] > 0.5:
                    flags.append(
                        Flag(
                            str(model),
                            threat.value,
                            "loss_plateau",
                            f"{100 * m[key]['rate']:.1f}% of the n={m[key]['n']} samples the traced PGD did not flip "
                            "stopped improving by a quarter of its steps",
                        )
                    )
    return flags
