"""params.yaml: the attack section (each attack of the study: its grid, samples and threat models)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Norm, ThreatModel
from qrobust.data.datasets import DATASETS
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.prepare import PrepareSettings


def max_epsilon(norm: Norm, values: int) -> float:
    """The largest perturbation between two inputs in [0, 1] with ``values`` entries: beyond it an
    epsilon means nothing (every input is reachable from every other)."""
    return {Norm.LINF: 1.0, Norm.L2: math.sqrt(values), Norm.L1: float(values), Norm.L0: float(values)}[norm]


RUNNER_KEYS = {"epsilons", "samples", "threat_models"}


@dataclass(frozen=True)
class AttackConfig:
    """One attack of the study: its grid, how many evaluation samples, under which threat models."""

    name: str
    epsilons: tuple[float, ...]
    samples_by_threat: Mapping[ThreatModel, int]
    threat_models: tuple[ThreatModel, ...]
    options: Mapping[str, Any]

    @property
    def samples(self) -> int:
        """The most samples any threat model attacks: the nested subset every other one sits inside."""
        return max(self.samples_by_threat.values())

    def samples_for(self, threat: ThreatModel) -> int:
        return self.samples_by_threat[threat]

    @classmethod
    def from_params(cls, name: str, body: Any, input_values: int) -> AttackConfig:
        """``input_values`` (channels x height x width of the dataset) bounds the epsilon grid."""
        key = f"attack.attacks.{name}"
        entry = ATTACKS.get(name, key="attack.attacks")
        if not isinstance(body, Mapping):
            raise ConfigError(f"{key}: expected a mapping of settings, got {body!r}")
        options = {k: v for k, v in body.items() if k not in RUNNER_KEYS}
        entry.check(options, key)  # unknown or badly typed options fail now
        allowed = [t.value for t in entry.kind.threat_models]
        threats = c.require(body, "threat_models", key)
        if not isinstance(threats, list) or not threats:
            raise ConfigError(f"{key}.threat_models: expected a non-empty list from {allowed}, got {threats!r}")
        for threat in threats:
            if threat not in allowed:
                raise ConfigError(
                    f"{key}.threat_models: {threat!r} is not possible for a {entry.kind.value} attack; allowed: {allowed}"
                )
        return cls(
            name=name,
            epsilons=c.epsilon_grid(
                c.require(body, "epsilons", key), f"{key}.epsilons", max_epsilon(entry.norm, input_values)
            ),
            samples_by_threat=_samples_by_threat(c.require(body, "samples", key), threats, f"{key}.samples"),
            threat_models=tuple(ThreatModel(t) for t in threats),
            options=MappingProxyType(options),
        )


def _samples_by_threat(value: Any, threats: list[str], key: str) -> Mapping[ThreatModel, int]:
    """``samples``: one count for every threat model, or a mapping from each of the attack's threat models to
    its own count (for example fewer through the exact twins, whose sets only diagnose gradient masking)."""
    if not isinstance(value, Mapping):
        count = c.positive_int(value, key)
        return MappingProxyType({ThreatModel(t): count for t in threats})
    if sorted(value) != sorted(threats):
        raise ConfigError(f"{key}: expected a count for each of the threat models {threats}, got {sorted(value)}")
    return MappingProxyType({ThreatModel(t): c.positive_int(value[t], f"{key}.{t}") for t in threats})


@dataclass(frozen=True)
class AttackSettings:
    attacks: tuple[AttackConfig, ...]
    batch_size: int
    device: str
    seed: int
    replicate_samples: int | None = None  # the most samples a replicate (train.seeds) is attacked on
    # The norms whose attacks are made on the bit-width sweep's own models (Study.sweep_only); None: every norm.
    sweep_norms: tuple[Norm, ...] | None = None
    sweep_samples: int | None = None  # the most samples the sweep's own models are attacked on

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prepare: PrepareSettings | None = None) -> AttackSettings:
        s = c.section(
            params, "attack", {"attacks", "batch_size", "device", "replicate_samples", "sweep_norms", "sweep_samples"}
        )
        table = c.require(s, "attacks", "attack")
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"attack.attacks: expected a mapping of attack name -> settings, got {table!r}")
        dataset = DATASETS.get((prepare or PrepareSettings.from_params(params)).dataset)
        values = dataset.channels * dataset.size * dataset.size
        return cls(
            attacks=tuple(AttackConfig.from_params(name, body, values) for name, body in table.items()),
            batch_size=c.positive_int(c.require(s, "batch_size", "attack"), "attack.batch_size"),
            device=c.device_name(s.get("device", "auto"), "attack.device"),
            seed=c.study_seed(params),
            replicate_samples=(
                None
                if s.get("replicate_samples") is None
                else c.positive_int(s["replicate_samples"], "attack.replicate_samples")
            ),
            sweep_norms=(
                None
                if s.get("sweep_norms") is None
                else tuple(
                    Norm(n) for n in c.name_list(s["sweep_norms"], "attack.sweep_norms", tuple(n.value for n in Norm))
                )
            ),
            sweep_samples=(
                None if s.get("sweep_samples") is None else c.positive_int(s["sweep_samples"], "attack.sweep_samples")
            ),
        )

    def samples_on(self, config: AttackConfig, threat: ThreatModel, source: ModelId, *, swept: bool = False) -> int:
        """How many evaluation samples ``config`` attacks ``source`` on under ``threat``: a replicate at most
        ``attack.replicate_samples``, one of the bit-width sweep's own models (``swept``: Study.sweep_only) at most
        ``attack.sweep_samples``, the first of the same nested subset the study's seed is attacked on."""
        count = config.samples_for(threat)
        caps = [self.replicate_samples if source.seed is not None else None, self.sweep_samples if swept else None]
        return min([count, *(cap for cap in caps if cap is not None)])

    def get(self, name: str) -> AttackConfig:
        for attack in self.attacks:
            if attack.name == name:
                return attack
        raise ConfigError(
            f"attack {name!r} is not in attack.attacks; attacks: {', '.join(a.name for a in self.attacks)}"
        )
