"""params.yaml: the findings section (the family-wise error level, and per claim of the literature the
boundary its quantity must cross and the smallest effect beyond it that counts, with the paper's words
as the reason)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError

# The claims qrobust.findings judges, in the report's order (qrobust.findings.claims holds their rules;
# a test keeps the two lists equal).
CLAIM_KEYS = (
    "bernhard2019_masking",
    "bernhard2019_transfer",
    "bernhard2019_transfer_mechanism",
    "bernhard2019_ensemble",
    "gorsline2021_crossing",
    "lin2019_amplification",
    "lin2019_defensive_quantization",
    "costa2024_boundary_distance",
    "costa2024_gradients",
    "costa2024_noise",
    "costa2024_preprocessing",
    "costa2024_train_defenses_boundary",
    "costa2024_transfer_persists",
    "xiao2023_low_bits",
    "hao2022_evasion",
)


@dataclass(frozen=True)
class Threshold:
    """Where a claim's quantity must lie (``boundary``), and the smallest effect beyond it that counts
    (``delta``): the study must find an effect of that size at least 80% of the time, or say it cannot."""

    boundary: float
    delta: float
    reason: str


@dataclass(frozen=True)
class FindingsSettings:
    alpha: float  # family-wise error rate of each claim's verdicts over its conditions (Holm)
    thresholds: Mapping[str, Threshold]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FindingsSettings:
        s = c.section(params, "findings", {"alpha", "claims"})
        alpha = c.require(s, "alpha", "findings")
        if not isinstance(alpha, float) or not 0.0 < alpha < 0.5:
            raise ConfigError(f"findings.alpha: expected a number in (0, 0.5), got {alpha!r}")
        claims = c.require(s, "claims", "findings")
        if not isinstance(claims, Mapping):
            raise ConfigError(f"findings.claims: expected a mapping of claim -> threshold, got {claims!r}")
        unknown = sorted(set(claims) - set(CLAIM_KEYS))
        if unknown:
            raise ConfigError(f"findings.claims: unknown claims {unknown}; valid: {', '.join(CLAIM_KEYS)}")
        missing = [k for k in CLAIM_KEYS if k not in claims]
        if missing:
            raise ConfigError(f"findings.claims: every claim needs its threshold; missing: {', '.join(missing)}")
        thresholds = {}
        for name in CLAIM_KEYS:
            key = f"findings.claims.{name}"
            spec = c.section({"spec": claims[name]}, "spec", {"boundary", "delta", "reason"})
            boundary, delta, reason = (c.require(spec, k, key) for k in ("boundary", "delta", "reason"))
            if not isinstance(boundary, int | float) or isinstance(boundary, bool) or not -1.0 <= boundary <= 1.0:
                raise ConfigError(f"{key}.boundary: expected a number in [-1, 1], got {boundary!r}")
            if not isinstance(delta, int | float) or isinstance(delta, bool) or not 0.0 < delta <= 1.0:
                raise ConfigError(f"{key}.delta: expected a number in (0, 1], got {delta!r}")
            if not isinstance(reason, str) or not reason.strip():
                raise ConfigError(f"{key}.reason: expected the paper's words the threshold stands for, got {reason!r}")
            thresholds[name] = Threshold(float(boundary), float(delta), reason.strip())
        return cls(alpha=alpha, thresholds=MappingProxyType(thresholds))
