"""The one result schema: every row evaluate writes is a ``Result``; report and plots read only these."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from qrobust.attacks.threats import NORMS
from qrobust.pipeline.io import write_text


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (Wilson 1927); (nan, nan) when n == 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(reference: np.ndarray, other: np.ndarray, z: float = 1.959964) -> dict[str, float]:
    """mean(other) - mean(reference) for two boolean outcomes on the same samples: the difference, its
    95% interval by Newcombe's hybrid score method for paired proportions (Newcombe 1998, method 10; it
    combines the two Wilson intervals with the pairs' continuity-corrected correlation, and stays inside
    [-1, 1]; checked against Fagerland, Lydersen and Laake's table in tests/test_results.py), and the
    exact two-sided McNemar p-value (a binomial test on the discordant pairs). Written out because the
    pinned libraries offer neither for paired proportions (statsmodels is not a dependency).

    Outcomes of shape (draws, N), several draws of a randomised system per sample, give the mean over the
    draws with a normal interval on the per-sample differences of the draws' means (each sample one
    cluster, so the draws' spread widens it), and no McNemar p-value (it needs one outcome per sample)."""
    if reference.ndim == 2:
        if reference.shape[0] > 1:
            return _clustered_difference(reference.mean(axis=0), other.mean(axis=0), z)
        reference, other = reference[0], other[0]
    n = int(reference.size)
    if n == 0:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "mcnemar_p": math.nan, **_NO_COUNTS}
    both, only_ref = int((reference & other).sum()), int((reference & ~other).sum())
    only_other = int((~reference & other).sum())
    neither = n - both - only_ref - only_other
    p_ref, p_other = (both + only_ref) / n, (both + only_other) / n
    (l_ref, u_ref), (l_other, u_other) = (
        wilson_interval(both + only_ref, n, z),
        wilson_interval(both + only_other, n, z),
    )
    product = (both + only_ref) * (only_other + neither) * (both + only_other) * (only_ref + neither)
    # Newcombe's continuity-corrected correlation of the two outcomes: a positive cross-product difference
    # loses n/2 (to no less than 0), a negative one stays.
    cross = both * neither - only_ref * only_other
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = corrected / math.sqrt(product) if product else 0.0
    d = p_other - p_ref
    below = math.sqrt(
        max((p_other - l_other) ** 2 - 2 * phi * (p_other - l_other) * (u_ref - p_ref) + (u_ref - p_ref) ** 2, 0.0)
    )
    above = math.sqrt(
        max((u_other - p_other) ** 2 - 2 * phi * (u_other - p_other) * (p_ref - l_ref) + (p_ref - l_ref) ** 2, 0.0)
    )
    discordant = only_ref + only_other
    tail = sum(math.comb(discordant, k) for k in range(min(only_ref, only_other) + 1)) / 2**discordant
    return {
        "difference": d,
        "low": d - below,
        "high": d + above,
        "mcnemar_p": min(1.0, 2 * tail),
        "n": float(n),
        "only_reference": float(only_ref),
        "only_other": float(only_other),
    }


# The discordant counts a paired test reads; unknown for a randomised system's draws.
_NO_COUNTS = {"n": math.nan, "only_reference": math.nan, "only_other": math.nan}


# Two verified distances closer than this (relative) tie: the placebo showed that the same attack through a
# numerically equal twin lands a percent or so farther on most samples, which a bare sign test counts.
DISTANCE_TIE = 0.1


def sign_counts(reference: np.ndarray, other: np.ndarray, tie: float = DISTANCE_TIE) -> dict[str, int]:
    """Two per-sample verified distances on the same samples (nan: not measured; inf: the attack's output did
    not fool that runtime, so its distance is unknown): over the samples both measured and verified, how
    many lie farther on ``other`` by more than ``tie`` (relative) and how many nearer (a sign test's counts)."""
    both = np.isfinite(reference) & np.isfinite(other)
    r, o = reference[both], other[both]
    return {"n": int(both.sum()), "farther": int((o > r * (1 + tie)).sum()), "nearer": int((o * (1 + tie) < r).sum())}


def paired(row: Result, reference_name: object, reference: np.ndarray, robust: np.ndarray) -> Result:
    """``row`` with the difference of ``robust`` (its per-sample outcome, (N,) or (draws, N)) from
    ``reference``'s on the same samples (``paired_difference``)."""
    fields = {f"paired_{key}": value for key, value in paired_difference(reference, robust).items()}
    return replace(row, paired_reference=str(reference_name), **fields)


def _clustered_difference(reference: np.ndarray, other: np.ndarray, z: float) -> dict[str, float]:
    d = other - reference
    n = d.size
    if n == 0:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "mcnemar_p": math.nan, **_NO_COUNTS}
    half = z * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    mean = float(d.mean())
    return {
        "difference": mean,
        "low": max(-1.0, mean - half),
        "high": min(1.0, mean + half),
        "mcnemar_p": math.nan,
        **_NO_COUNTS,
    }


def cluster_interval(k: np.ndarray, m: np.ndarray, z: float = 1.959964) -> tuple[float, float]:
    """95% interval for sum(k) / sum(m) when each sample i contributes k[i] successes out of m[i] trials
    that are not independent (the draws of a randomised defense on one input). Korn and Graubard's (1998)
    interval: Clopper-Pearson on the effective sample size, p(1 - p) over the ratio estimator's
    delta-method variance across samples (Cochran 1977, 6.3), shrunk by (z / t_{n-1})^2 and at most the
    trials. The Wald interval on that variance covered 86-93% near 0 and 1 in simulation; this one keeps
    93% or more there (tests/test_results.py). Written out because the pinned libraries offer no clustered
    proportion interval. When every sample has the same share the estimate has no spread; the interval is
    then Wilson's on the samples, as if each had one trial."""
    from scipy import stats

    k, m = np.asarray(k, dtype=np.float64), np.asarray(m, dtype=np.float64)
    keep = m > 0
    k, m = k[keep], m[keep]
    n = k.size
    if n == 0:
        return math.nan, math.nan
    ratio = float(k.sum() / m.sum())
    if n == 1 or np.allclose(k / m, ratio):
        return wilson_interval(round(ratio * n), n, z)
    variance = float(np.sum((k - ratio * m) ** 2)) / (n * (n - 1) * m.mean() ** 2)
    level = 2 * float(stats.norm.sf(z))
    shrink = (z / float(stats.t.isf(level / 2, n - 1))) ** 2
    size = min(ratio * (1 - ratio) / variance * shrink, float(m.sum()))
    hits = ratio * size
    low = float(stats.beta.ppf(level / 2, hits, size - hits + 1)) if hits > 0 else 0.0
    high = float(stats.beta.isf(level / 2, hits + 1, size - hits)) if hits < size else 1.0
    return low, high


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else math.nan


def _censored_median(
    keys: Mapping[str, object], success: np.ndarray, attackable: np.ndarray, sizes: Mapping[str, np.ndarray]
) -> float:
    norm = keys.get("norm")
    if keys.get("epsilon") != math.inf or norm not in NORMS or not attackable.any():
        return math.nan
    return float(np.median(np.where(success, sizes[str(norm)], np.inf)[attackable]))


@dataclass(frozen=True)
class Result:
    """Robust accuracy and attack success of one adversarial set at one epsilon on one deployed target.

    ``threat_model`` is how the set was made when the target is the attacked model itself, and
    ``transfer`` otherwise; ``source_threat_model`` always says how it was made. Success counts only
    samples the target classified correctly when clean (for transfer, samples that source and target
    both classified correctly, as in Bernhard et al. 2019). Robust accuracy is the standard one
    (RobustBench, AutoAttack): a sample counts only if the target classifies its clean input correctly and
    its adversarial input too, so it never exceeds the target's clean accuracy on the same samples, and a
    perturbation that happens to fix a misclassified input counts for nothing. ``epsilon`` is ``inf`` for the unbounded
    output of a minimisation attack, whose median perturbation is the distance to the decision boundary.
    """

    attack: str
    norm: str
    epsilon: float
    threat_model: str
    source_threat_model: str
    source: str
    target: str
    target_arch: str
    target_precision: str
    defense: str
    n: int
    n_correct: int
    robust_accuracy: float
    robust_accuracy_low: float
    robust_accuracy_high: float
    n_attackable: int
    n_success: int
    success_rate: float
    success_rate_low: float
    success_rate_high: float
    queries_per_sample: float
    l0_mean_success: float
    l0_median_success: float
    l0_mean_failed: float
    l0_median_failed: float
    l1_mean_success: float
    l1_median_success: float
    l1_mean_failed: float
    l1_median_failed: float
    l2_mean_success: float
    l2_median_success: float
    l2_mean_failed: float
    l2_median_failed: float
    linf_mean_success: float
    linf_median_success: float
    linf_mean_failed: float
    linf_median_failed: float
    # Unbounded rows (epsilon inf) only: the median of the row's norm over every attackable sample, a
    # failure counting as beyond every distance the attack tried (inf when half or more failed). The
    # ``*_median_success`` columns leave failures out, so an attack that fails more looks closer.
    median_distance_censored: float = math.nan
    # Quantized targets: the same set and samples scored on the float parent (``paired_reference``); the
    # difference in robust accuracy, this row minus the parent's, with Newcombe's paired interval and the
    # exact McNemar p-value. Empty / nan on other rows.
    paired_reference: str = ""
    paired_difference: float = math.nan
    paired_low: float = math.nan
    paired_high: float = math.nan
    paired_mcnemar_p: float = math.nan
    paired_n: float = math.nan  # the samples both cover, and the discordant ones: McNemar's and Tango's counts
    paired_only_reference: float = math.nan
    paired_only_other: float = math.nan
    adaptive: bool = False  # the attack knew the row's defense (BPDA, EOT, the ensemble's twin, the recipe model)
    # A randomised defense is scored over ``draws`` independent draws of its randomness: every count above
    # is then over (draw, sample) pairs (n = draws x samples), robust accuracy is the mean over the draws,
    # its interval is clustered by sample (``cluster_interval``), and ``robust_accuracy_every_draw`` is the
    # share of samples robust in every draw (the worst case over draws, as AutoAttack's rand version
    # reports). Empty on rows with one draw.
    draws: int = 1
    robust_accuracy_every_draw: float = math.nan

    @property
    def samples(self) -> int:
        """How many samples the row scored (``n`` counts each draw of a randomised defense)."""
        return self.n // self.draws

    @classmethod
    def score(
        cls,
        *,
        correct: np.ndarray,
        clean: np.ndarray,
        attackable: np.ndarray,
        sizes: Mapping[str, np.ndarray],
        queries_per_sample: float = math.nan,
        **keys: object,
    ) -> Result:
        """Build a row from per-sample booleans (``correct`` after the attack, ``clean``: the target got
        the clean input right, ``attackable``: the samples success is counted on) and per-sample
        perturbation sizes (``sizes[norm]`` for every norm in ``NORMS``)."""
        success = attackable & ~correct
        failed = attackable & correct
        n, k = int(correct.size), int((correct & clean).sum())
        m, s = int(attackable.sum()), int(success.sum())
        spread = {
            f"{norm}_{stat}_{group}": fn(sizes[norm][mask])
            for norm in NORMS
            for group, mask in (("success", success), ("failed", failed))
            for stat, fn in (("mean", _mean), ("median", _median))
        }
        return cls(
            **keys,  # type: ignore[arg-type]
            median_distance_censored=_censored_median(keys, success, attackable, sizes),
            n=n,
            n_correct=k,
            robust_accuracy=_rate(k, n),
            robust_accuracy_low=wilson_interval(k, n)[0],
            robust_accuracy_high=wilson_interval(k, n)[1],
            n_attackable=m,
            n_success=s,
            success_rate=_rate(s, m),
            success_rate_low=wilson_interval(s, m)[0],
            success_rate_high=wilson_interval(s, m)[1],
            queries_per_sample=queries_per_sample,
            **spread,
        )

    @classmethod
    def score_draws(
        cls,
        *,
        correct: np.ndarray,
        clean: np.ndarray,
        attackable: np.ndarray,
        sizes: Mapping[str, np.ndarray],
        queries_per_sample: float = math.nan,
        **keys: object,
    ) -> Result:
        """``score`` over several draws of a randomised system: ``correct``, ``clean`` and ``attackable``
        are (draws, N), ``sizes[norm]`` (N,). One draw gives exactly ``score``'s row."""
        draws = correct.shape[0]
        row = cls.score(
            correct=correct.reshape(-1),
            clean=clean.reshape(-1),
            attackable=attackable.reshape(-1),
            sizes={norm: np.tile(v, draws) for norm, v in sizes.items()},
            queries_per_sample=queries_per_sample,
            **keys,
        )
        if draws == 1:
            return row
        robust = correct & clean
        success = attackable & ~correct
        low, high = cluster_interval(robust.sum(axis=0), np.full(robust.shape[1], draws))
        s_low, s_high = cluster_interval(success.sum(axis=0), attackable.sum(axis=0))
        return replace(
            row,
            draws=draws,
            robust_accuracy_low=low,
            robust_accuracy_high=high,
            success_rate_low=s_low,
            success_rate_high=s_high,
            robust_accuracy_every_draw=float(robust.all(axis=0).mean()),
        )


COLUMNS = tuple(f.name for f in fields(Result))


def write_results(path: str | Path, rows: list[Result]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(row).items()})
    write_text(path, buffer.getvalue())


def read_results(path: str | Path) -> list[Result]:
    types = {f.name: f.type for f in fields(Result)}
    convert = {
        "int": int,
        "float": lambda v: float(v) if v != "" else math.nan,
        "str": str,
        "bool": lambda v: v == "True",
    }
    with open(path, encoding="utf-8", newline="") as handle:
        return [Result(**{k: convert[str(types[k])](v) for k, v in row.items()}) for row in csv.DictReader(handle)]
