"""How numbers read on the page (percentages, intervals, points) and the page's building blocks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qrobust.evaluation.results import Result

Metrics = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: bytes
    note: str = ""


@dataclass
class Report:
    title: str
    summary: list[str] = field(default_factory=list)
    sections: list[Table | Figure] = field(default_factory=list)
    lead: int = 0  # sections shown before the contents list (the answer first)


def _distance(value: float) -> str:
    """A censored median distance: "beyond" when it lies past every distance the attack tried."""
    return "beyond" if math.isinf(value) else "n/a" if math.isnan(value) else f"{value:.3g}"


def pct(value: float | None) -> str:
    """A rate as a percentage; "n/a" where there was nothing to measure (nan, or null in JSON)."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def num(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def points(difference: float, low: float, high: float) -> str:
    """A difference of proportions in percentage points with its interval: ``+3.0 [-1.2, +7.1]``."""
    return f"{100 * difference:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def with_ci(r: Result) -> str:
    return f"{pct(r.robust_accuracy)} [{pct(r.robust_accuracy_low)}, {pct(r.robust_accuracy_high)}]"


def _index(rows: Sequence[Result]) -> dict[tuple[str, str, float, str, str, str], Result]:
    return {(r.attack, r.threat_model, r.epsilon, r.source, r.target, r.defense): r for r in rows}
