"""params.yaml: the report section (which attack each figure draws, heat maps, sign-off thresholds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.settings.attack import AttackSettings


@dataclass(frozen=True)
class HeatMap:
    attack: str
    epsilon: float


@dataclass(frozen=True)
class ReportSettings:
    curves: Mapping[ThreatModel, str]  # the attack drawn in each threat model's robust-accuracy figure
    heat_maps: tuple[HeatMap, ...]
    min_float_accuracy: float
    max_quant_drop_points: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any], attack: AttackSettings | None = None) -> ReportSettings:
        s = c.section(params, "report", {"curves", "heat_maps", "min_float_accuracy", "max_quant_drop_points"})
        by_name = {a.name: a for a in (attack or AttackSettings.from_params(params)).attacks}
        curves = c.require(s, "curves", "report")
        threats = [t.value for t in ThreatModel if t is not ThreatModel.CLEAN]
        if not isinstance(curves, Mapping) or not curves:
            raise ConfigError(f"report.curves: expected a mapping of threat model -> attack, got {curves!r}")
        parsed: dict[ThreatModel, str] = {}
        for threat, name in curves.items():
            key = f"report.curves.{threat}"
            if threat not in threats:
                raise ConfigError(f"{key}: unknown threat model; valid: {', '.join(threats)}")
            if name not in by_name:
                raise ConfigError(f"{key}: {name!r} is not run; attacks run: {', '.join(by_name)}")
            # The transfer figure draws sets made white-box on each float parent.
            needed = ThreatModel.WHITE_FLOAT.value if threat == ThreatModel.TRANSFER.value else threat
            if needed not in {t.value for t in by_name[name].threat_models}:
                runs = sorted(n for n, a in by_name.items() if needed in {t.value for t in a.threat_models})
                raise ConfigError(f"{key}: {name!r} does not run under {needed}; attacks that do: {runs}")
            parsed[ThreatModel(threat)] = name
        maps = c.require(s, "heat_maps", "report")
        if not isinstance(maps, list):
            raise ConfigError(f"report.heat_maps: expected a list of {{attack, epsilon}}, got {maps!r}")
        heat_maps = []
        for i, spec in enumerate(maps):
            key = f"report.heat_maps[{i}]"
            spec = c.section({"spec": spec}, "spec", {"attack", "epsilon"})
            name = c.require(spec, "attack", key)
            if name not in by_name:
                raise ConfigError(f"{key}.attack: {name!r} is not run; attacks run: {', '.join(by_name)}")
            eps = c.require(spec, "epsilon", key)
            if eps not in by_name[name].epsilons:
                raise ConfigError(f"{key}.epsilon: {eps!r} is not in {name}'s grid {list(by_name[name].epsilons)}")
            heat_maps.append(HeatMap(name, float(eps)))
        return cls(
            MappingProxyType(parsed),
            tuple(heat_maps),
            min_float_accuracy=c.number(
                c.require(s, "min_float_accuracy", "report"), "report.min_float_accuracy", low=0.0, high=1.0
            ),
            max_quant_drop_points=c.number(
                c.require(s, "max_quant_drop_points", "report"), "report.max_quant_drop_points", low=0.0, high=100.0
            ),
        )
