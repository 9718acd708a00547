"""The statistics behind a verdict: one-sided p-values for a claim's primary quantity on both sides of
its threshold, Holm's step-down adjustment over a claim's conditions, and the power of each test.

A claim says its quantity lies beyond a boundary in a direction (``effect = direction * (value -
boundary) > 0``); the smallest effect that counts is ``delta``. Per condition two one-sided tests run:

- *holds* rejects "effect <= 0": the data place the quantity beyond the paper's boundary;
- *does not hold* rejects "effect >= delta": the data rule out every effect that would count.

Under "effect = 0" a false "holds" is at most the test's level, and under "effect = delta" a false
"does not hold" is too; ``power`` is the chance of "holds" when the effect is exactly ``delta``, so a
condition whose test cannot find the smallest effect that counts says so instead of reading as a null.

Three tests cover every quantity the claims use, all on counts the study records:

- ``binomial``: a share ``k`` of ``n`` against a fixed value (exact binomial tails);
- ``paired``: the difference of two proportions on the same samples from the discordant counts (exact
  McNemar against zero, Tango's score test against a non-zero margin; Tango 1998, Stat Med 17:891);
- ``two_sample``: the difference of two proportions on disjoint samples (Agresti & Caffo 2000's
  adjusted Wald statistic, whose coverage holds at small n).

The two normal-approximation tests carry a continuity correction: tests/test_findings_calibration.py
measured their family-wise error just above 5% at the margin without it.

Scipy gives the binomial tails; the rest is written here because the pinned packages offer neither
Tango's test nor Holm's adjustment (statsmodels is not a dependency), and a null simulator calls them a
hundred thousand times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scipy.stats import binom

from qrobust.evaluation.results import wilson_interval

Z95 = 1.959964


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """Inverse of ``normal_cdf`` by bisection on erfc (exact to 1e-12; p in (0, 1))."""
    low, high = -40.0, 40.0
    for _ in range(100):
        mid = (low + high) / 2
        if normal_cdf(mid) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def binom_upper(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return 1.0 if k <= 0 else float(binom.sf(k - 1, n, p))


def binom_lower(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return 1.0 if k >= n else float(binom.cdf(k, n, p))


@dataclass(frozen=True)
class Test:
    """One condition's primary test: the quantity, the effect with its 95% interval, n, and the two
    one-sided p-values (before adjustment). ``sd`` is the per-sample standard deviation of the estimate
    when the effect is exactly ``delta``, from which ``power`` follows."""

    value: float  # the quantity itself (a share, or a difference of shares)
    effect: float  # direction * (value - boundary)
    low: float  # 95% interval of the effect
    high: float
    n: int
    p_holds: float  # H0: effect <= 0
    p_fails: float  # H0: effect >= delta
    delta: float
    sd: float
    sd_null: float = math.nan  # per-sample sd at the boundary (effect 0); nan: the same as ``sd``
    parts: tuple[Test, ...] = ()  # a claim of several parts: ``combined`` (all) or ``either`` (any)
    every_part: bool = True
    df: float = math.inf  # degrees of freedom of a Student-t test (qrobust.findings.replicates); inf: normal
    # (alpha, scale) -> power, for a test whose variance is itself estimated (qrobust.findings.replicates)
    power_model: Callable[[float, float], float] | None = None

    def power(self, alpha: float, scale: float = 1.0) -> float:
        """P(holds) at one-sided level ``alpha`` when the effect is exactly ``delta`` (normal approximation),
        at ``scale`` times this n. All parts: the product of theirs (they hold together); either form:
        the best form's at alpha / forms."""
        if self.parts:
            if self.every_part:
                return math.prod(p.power(alpha, scale) for p in self.parts)
            return max(p.power(alpha / len(self.parts), scale) for p in self.parts)
        if self.n <= 0 or not math.isfinite(self.sd):
            return 0.0
        if self.power_model is not None:
            return self.power_model(alpha, scale)
        if self.sd <= 0:
            return 1.0
        null = self.sd if math.isnan(self.sd_null) else self.sd_null
        return normal_cdf((self.delta * math.sqrt(self.n * scale) - normal_quantile(1 - alpha) * null) / self.sd)

    def n_needed(self, alpha: float, target: float = 0.8) -> int:
        """The n at which the power reaches ``target`` at one-sided level ``alpha`` (0: no data to say)."""
        if self.n <= 0 or self.power(alpha, 1e6) < target:
            return 0
        low, high = 0.0, 1.0
        while self.power(alpha, high) < target:
            low, high = high, 2 * high
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if self.power(alpha, mid) < target else (low, mid)
        return math.ceil(self.n * high)


def missing(delta: float) -> Test:
    """No data for the condition: nothing can be rejected."""
    return Test(math.nan, math.nan, math.nan, math.nan, 0, 1.0, 1.0, delta, math.nan)


def combined(parts: Sequence[Test], delta: float) -> Test:
    """A claim made of parts that must all hold (an intersection-union test, Berger 1982): it holds at
    level alpha when every part does, so its p-value is the largest; it fails when any part's effect is
    ruled out, at most ``len(parts)`` times the smallest p-value (Bonferroni). The effect and interval
    shown are the weakest part's; n and sd the least precise part's."""
    if not parts or any(p.n == 0 for p in parts):
        return missing(delta)
    weakest = min(parts, key=lambda p: p.effect)
    thinnest = max(parts, key=lambda p: p.sd / math.sqrt(p.n))
    p_fails = min(1.0, len(parts) * min(p.p_fails for p in parts))
    return Test(
        weakest.value, weakest.effect, weakest.low, weakest.high, thinnest.n,
        max(p.p_holds for p in parts), p_fails, delta, thinnest.sd, parts=tuple(parts),
    )  # fmt: skip


def either(options: Sequence[Test], delta: float) -> Test:
    """A claim that holds in any of several forms (the curves cross one way or the other): it holds when
    one form does (the smallest p-value times their number), and fails only when every form is ruled out."""
    present = [o for o in options if o.n]
    if not present:
        return missing(delta)
    best = min(present, key=lambda o: o.p_holds)
    return Test(
        best.value, best.effect, best.low, best.high, best.n,
        min(1.0, len(present) * best.p_holds), max(o.p_fails for o in present), delta, best.sd,
        parts=tuple(present), every_part=False,
    )  # fmt: skip


def binomial(k: int, n: int, boundary: float, direction: int, delta: float) -> Test:
    """A share ``k / n`` claimed above (``direction`` 1) or below (-1) ``boundary``: exact binomial tails."""
    if n == 0:
        return missing(delta)
    share = k / n
    low, high = wilson_interval(k, n)
    far = boundary + direction * delta
    if direction > 0:
        p_holds, p_fails = binom_upper(k, n, boundary), binom_lower(k, n, min(far, 1.0))
        interval = (low - boundary, high - boundary)
    else:
        p_holds, p_fails = binom_lower(k, n, boundary), binom_upper(k, n, max(far, 0.0))
        interval = (boundary - high, boundary - low)
    sd = math.sqrt(max(far * (1 - far), 1e-12))
    sd_null = math.sqrt(max(boundary * (1 - boundary), 1e-12))
    return Test(share, direction * (share - boundary), *interval, n, p_holds, p_fails, delta, sd, sd_null)


def _tango_restricted(b: int, c: int, n: int, margin: float) -> float:
    """Restricted maximum-likelihood estimate of P(only the reference right) under "difference =
    margin" (the difference being P(only the other right) - P(only the reference right))."""
    m = n - b - c
    coef_b = b * (1 - 3 * margin) + c * (1 - margin) - 2 * m * margin
    coef_c = b * margin * (1 - margin)
    return max((coef_b + math.sqrt(max(coef_b * coef_b + 8 * n * coef_c, 0.0))) / (4 * n), 0.0)


def _tango_z(b: int, c: int, n: int, margin: float, correction: float = 0.0) -> float:
    """Tango's score statistic for "difference = margin" (positive when the data lie above it); a
    ``correction`` (continuity, in the difference's units) moves the difference towards the margin."""
    q = _tango_restricted(b, c, n, margin)
    variance = (2 * q + margin - margin * margin) / n
    gap = (c - b) / n - margin
    gap = math.copysign(max(abs(gap) - correction, 0.0), gap)
    if variance <= 0:
        return math.inf if gap > 0 else -math.inf if gap < 0 else 0.0
    return gap / math.sqrt(variance)


def paired(b: int, c: int, n: int, direction: int, delta: float, boundary: float = 0.0) -> Test:
    """The difference (other - reference) of two proportions on the same ``n`` samples, from ``b``
    samples only the reference got right and ``c`` only the other did, claimed above (``direction`` 1) or
    below (-1) ``boundary``. ``boundary`` 0 uses the exact McNemar tail for "holds"."""
    if n == 0:
        return missing(delta)
    if direction < 0:  # the effect is the reference above the other: swap the sides
        b, c, boundary = c, b, -boundary
    value = (c - b) / n
    effect = value - boundary
    if boundary == 0.0:
        p_holds = binom_upper(c, b + c, 0.5) if b + c else 1.0
    else:
        p_holds = 1 - normal_cdf(_tango_z(b, c, n, boundary, 1 / n))
    p_fails = normal_cdf(_tango_z(b, c, n, boundary + delta, 1 / n))
    low, high = _paired_interval(b, c, n)
    q = _tango_restricted(b, c, n, boundary + delta)
    sd = math.sqrt(max(2 * q + (boundary + delta) - (boundary + delta) ** 2, 1e-12))
    sign = 1 if direction > 0 else -1
    return Test(sign * value, effect, low - boundary, high - boundary, n, p_holds, p_fails, delta, sd)


def _paired_interval(b: int, c: int, n: int) -> tuple[float, float]:
    """95% interval of (c - b) / n by inverting Tango's score test (bisection on the margin)."""

    def edge(target: float, low: float, high: float) -> float:
        for _ in range(30):
            mid = (low + high) / 2
            if (_tango_z(b, c, n, mid) > target) == (target > 0):
                low, high = (mid, high) if target > 0 else (low, mid)
            else:
                low, high = (low, mid) if target > 0 else (mid, high)
        return (low + high) / 2

    d = (c - b) / n
    return edge(Z95, -1.0 + 1e-9, d), edge(-Z95, d, 1.0 - 1e-9)


def two_sample(k1: int, n1: int, k2: int, n2: int, direction: int, delta: float) -> Test:
    """``k1 / n1 - k2 / n2`` on disjoint samples claimed above (``direction`` 1) or below (-1) zero."""
    if n1 == 0 or n2 == 0:
        return missing(delta)
    p1, p2 = (k1 + 1) / (n1 + 2), (k2 + 1) / (n2 + 2)  # Agresti & Caffo: one success and one failure added
    se = math.sqrt(p1 * (1 - p1) / (n1 + 2) + p2 * (1 - p2) / (n2 + 2))
    value = k1 / n1 - k2 / n2
    effect = direction * value
    adjusted = direction * (p1 - p2)
    correction = 0.5 / n1 + 0.5 / n2  # continuity: the score's normal tails run slightly light at these n
    p_holds = 1 - normal_cdf((adjusted - correction) / se)
    p_fails = normal_cdf((adjusted - delta + correction) / se)
    n = min(n1, n2)
    return Test(value, effect, adjusted - Z95 * se, adjusted + Z95 * se, n, p_holds, p_fails, delta, se * math.sqrt(n))


def normal(estimate: float, low: float, high: float, n: int, direction: int, delta: float) -> Test:
    """An estimate with a 95% normal interval and no counts (a randomised defense's clustered
    difference), claimed above (``direction`` 1) or below (-1) zero."""
    if n == 0 or not all(math.isfinite(v) for v in (estimate, low, high)):
        return missing(delta)
    se = max((high - low) / (2 * Z95), 1e-12)
    effect = direction * estimate
    interval = sorted((direction * low, direction * high))
    p_holds, p_fails = 1 - normal_cdf(effect / se), normal_cdf((effect - delta) / se)
    return Test(estimate, effect, interval[0], interval[1], n, p_holds, p_fails, delta, se * math.sqrt(n))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): reject where the adjusted p <= alpha, which keeps
    the family-wise error rate at alpha under any dependence between the tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values): reject where <= q keeps the false discovery
    rate at q for independent or positively dependent tests (Benjamini & Hochberg 1995)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [1.0] * m
    running = 1.0
    for rank, i in enumerate(order):
        running = min(running, p_values[i] * m / (m - rank))
        adjusted[i] = min(1.0, running)
    return adjusted
