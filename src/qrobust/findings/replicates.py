"""Training randomness: the same model trained at several seeds (``train.seeds``) as the unit of replication.

A figure measured on the study's test samples has two sources of noise: which samples were drawn (what a
binomial or paired interval covers) and which training run produced the model (the seed: initial weights,
batch order, the adversarial recipes' random starts). Re-running the study on another CPU changes the second
as surely as another seed does, since training's last bits differ by instruction set. So a replicated
quantity is read across seeds:

- the estimate is the mean of the per-seed estimates;
- its variance is the within-seed variance (the mean of the per-seed squared standard errors, not divided
  by the number of seeds: every seed is scored on the same samples, so their sampling noise is shared)
  plus the between-seed variance over the number of seeds;
- the between-seed variance is the sample variance of the per-seed estimates, pooled over a claim's
  replicated conditions of the same architecture (each gives seeds - 1 degrees of freedom). On shared
  samples it also holds the sample-by-seed interaction, counted twice: conservative;
- a condition measured at one seed only borrows that variance, at one seed: its architecture's, or, for
  an architecture without replicates, the claim's pooled over the others (benchmarks/seed_spread.py shows
  how much that can understate: docs/reproducibility.md); a claim with no replicated condition keeps its
  exact per-seed tests;
- tests and intervals use Student's t with Welch-Satterthwaite degrees of freedom.

``evidence.pool_seeds`` groups a claim's conditions by label and architecture and calls these.

A claim holds only if it holds with this variance; tests/test_findings_calibration.py checks that the
false "holds" under a null with large between-seed variance stays at the level, where a one-seed test
does not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import chdtri, stdtr, stdtrit

from qrobust.findings.tests import Z95, Test, combined, either, missing


@dataclass(frozen=True)
class Between:
    """A pooled between-seed variance and its degrees of freedom (0: nothing replicated), and the mean
    within-seed variance of the estimates it was pooled from."""

    variance: float
    df: int
    within: float = 0.0

    @property
    def beyond_sampling(self) -> float:
        """The between-seed variance less the sampling variance it holds when seeds do not share samples
        (DerSimonian and Laird's moment estimate): what power is computed at, so that a test made
        conservative by counting sampling noise twice does not claim power it lacks."""
        return max(self.variance - self.within, 0.0)

    @property
    def measured(self) -> bool:
        return self.df > 0


def interval_se(low: float, high: float) -> float:
    """The standard error a 95% interval implies (half its width over 1.96)."""
    return (high - low) / (2 * Z95)


def standard_error(test: Test) -> float:
    return interval_se(test.low, test.high)


def satterthwaite(within: float, n: int, between: float, between_df: float) -> float:
    """Welch-Satterthwaite degrees of freedom of ``within + between``: the within part with about n - 1,
    the between part with ``between_df`` (none: it adds nothing)."""
    denominator = within**2 / max(n - 1, 1) + (between**2 / between_df if between_df else 0.0)
    return (within + between) ** 2 / denominator if denominator > 0 else math.inf


def _leaves(test: Test) -> list[Test]:
    return [leaf for part in test.parts for leaf in _leaves(part)] if test.parts else [test]


def between_seeds(groups: Sequence[Sequence[Test]]) -> Between:
    """Pooled sample variance of the per-seed effects over every group (a condition's seeds) with at least
    two seeds, leaf by leaf for tests made of parts."""
    total, df, within, leaves_seen = 0.0, 0, 0.0, 0
    for tests in groups:
        present = [t for t in tests if t.n]
        if len(present) < 2:
            continue
        for leaves in zip(*(_leaves(t) for t in present), strict=True):
            found = [leaf for leaf in leaves if math.isfinite(leaf.effect)]
            if len(found) < 2:
                continue
            mean = sum(leaf.effect for leaf in found) / len(found)
            total += sum((leaf.effect - mean) ** 2 for leaf in found)
            df += len(found) - 1
            within += sum(standard_error(leaf) ** 2 for leaf in found)
            leaves_seen += len(found)
    return Between(total / df if df else 0.0, df, within / leaves_seen if leaves_seen else 0.0)


def across_seeds(tests: Sequence[Test], between: Between, delta: float) -> Test:
    """One condition's per-seed tests read as one: the mean effect, with within- and between-seed
    variance, tested against 0 ("holds") and ``delta`` ("does not hold") with Student's t."""
    present = [t for t in tests if t.n]
    if not present:
        return missing(delta)
    first = present[0]
    if first.parts:
        parts = [across_seeds(list(p), between, delta) for p in zip(*(t.parts for t in present), strict=True)]
        return combined(parts, delta) if first.every_part else either(parts, delta)
    seeds = len(present)
    within = sum(standard_error(t) ** 2 for t in present) / seeds
    spread = between.variance / seeds
    variance = max(within + spread, 1e-12)
    n = min(t.n for t in present)
    df = satterthwaite(within, n, spread, between.df)
    se = math.sqrt(variance)
    effect = sum(t.effect for t in present) / seeds
    value = sum(t.value for t in present) / seeds
    quantile = float(stdtrit(df, 0.975))  # scipy.special's t functions: a null simulator calls these 1e5 times
    return Test(
        value, effect, effect - quantile * se, effect + quantile * se, n,
        float(stdtr(df, -effect / se)), float(stdtr(df, (effect - delta) / se)),
        delta, se * math.sqrt(n), df=df, power_model=SeedPower(within, between, seeds, df, delta),
    )  # fmt: skip


# Quantiles of a chi-square's spread over which ``SeedPower`` averages (midpoints of 16 equal-probability bins).
_BINS = tuple((i + 0.5) / 16 for i in range(16))


@functools.cache
def _chi2_draws(df: int) -> tuple[float, ...]:
    """A chi-square over its degrees of freedom at ``_BINS`` (1 everywhere when there are none)."""
    return tuple(float(chdtri(df, 1 - q)) / df for q in _BINS) if df else (1.0,) * len(_BINS)


@dataclass(frozen=True)
class SeedPower:
    """P(holds) of ``across_seeds``' test when the effect is ``delta``: the estimate spreads with the
    within-seed variance and the between-seed variance beyond sampling (``Between.beyond_sampling``),
    while the test divides by an estimated variance whose between-seed part is a scaled chi-square draw
    (sampling noise included, as the pooled estimate holds it). Averaged over that draw, so that a test
    made conservative by counting sampling noise twice does not claim power it lacks."""

    within: float
    between: Between
    seeds: int
    df: float
    delta: float

    def __call__(self, alpha: float, scale: float = 1.0) -> float:
        within = self.within / scale
        spread = math.sqrt(max(within + self.between.beyond_sampling / self.seeds, 1e-12))
        mean_estimate = self.between.beyond_sampling + self.between.within / scale
        critical = float(stdtrit(self.df, 1 - alpha))
        draws = _chi2_draws(self.between.df)
        total = 0.0
        for draw in draws:
            se = math.sqrt(max(within + mean_estimate * draw / self.seeds, 1e-12))
            total += 0.5 * math.erfc(-(self.delta - critical * se) / spread / math.sqrt(2))
        return total / len(_BINS)


@dataclass(frozen=True)
class Spread:
    """A figure measured at several seeds: each seed's value, their mean, sd, and the 95% interval of the
    mean with within- and between-seed variance."""

    values: tuple[float, ...]
    mean: float
    sd: float
    low: float
    high: float


def spread(values: Sequence[float], errors: Sequence[float], n: int) -> Spread:
    """``values`` (one per seed) with their standard errors, each on the same ``n`` samples."""
    k = len(values)
    mean = sum(values) / k
    between = sum((v - mean) ** 2 for v in values) / (k - 1) if k > 1 else 0.0
    within = sum(e * e for e in errors) / k
    variance = within + between / k
    half = float(stdtrit(satterthwaite(within, n, between / k, k - 1), 0.975)) * math.sqrt(variance)
    return Spread(tuple(values), mean, math.sqrt(between), max(mean - half, 0.0), min(mean + half, 1.0))
