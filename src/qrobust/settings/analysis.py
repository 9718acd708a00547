"""params.yaml: the analysis section (the mechanism analysis and the convergence check)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind, ThreatModel
from qrobust.data.datasets import DATASETS
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.settings.attack import AttackSettings, max_epsilon
from qrobust.settings.prepare import PrepareSettings


@dataclass(frozen=True)
class AnalysisSettings:
    """The mechanism analysis: ``attack`` (white-box on each float model, with its options from
    attack.attacks) at ``epsilons`` on ``samples`` images of the evaluation subset."""

    attack: str
    epsilons: tuple[float, ...]
    samples: int
    boundary_attack: str  # a minimisation attack run on every deployed runtime: its unbounded outputs
    trace_epsilon: float  # the traced PGD behind the loss-plateau indicator: its Linf budget,
    trace_steps: int  # steps
    trace_samples: int  # and the first this many of the analysis samples
    convergence_samples: int  # the first this many of each white-box minimisation set, re-run at twice its steps
    seed: int

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], prepare: PrepareSettings | None = None, attack: AttackSettings | None = None
    ) -> AnalysisSettings:
        """The analysis section, read against the data and attack sections (parsed here unless given)."""
        prepare = prepare or PrepareSettings.from_params(params)
        attack = attack or AttackSettings.from_params(params, prepare)
        s = c.section(
            params, "analysis", {"attack", "epsilons", "samples", "boundary_attack", "trace", "convergence_samples"}
        )
        trace = c.section(
            {"analysis.trace": c.require(s, "trace", "analysis")}, "analysis.trace", {"epsilon", "steps", "samples"}
        )
        by_name = {a.name: a for a in attack.attacks}
        name = c.require(s, "attack", "analysis")
        if name not in by_name:
            raise ConfigError(f"analysis.attack: {name!r} is not in attack.attacks; attacks: {', '.join(by_name)}")
        if ATTACKS.get(name).kind is not Kind.GRADIENT:
            raise ConfigError(
                f"analysis.attack: {name!r} is not a gradient attack; the analysis attacks each float model white-box"
            )
        dataset = DATASETS.get(prepare.dataset)
        high = max_epsilon(ATTACKS.get(name).norm, dataset.channels * dataset.size * dataset.size)
        samples = c.positive_int(c.require(s, "samples", "analysis"), "analysis.samples")
        eval_size = prepare.eval_size
        if samples > eval_size:
            raise ConfigError(f"analysis.samples: {samples} exceeds data.eval_size {eval_size}")
        boundary = c.require(s, "boundary_attack", "analysis")
        runs_everywhere = [
            n for n, a in by_name.items() if ThreatModel.BLACK_RUNTIME in a.threat_models and ATTACKS.get(n).minimises
        ]
        if boundary not in runs_everywhere:
            raise ConfigError(
                f"analysis.boundary_attack: {boundary!r} is not a minimisation attack run under black_runtime "
                f"(on every deployed runtime); such attacks in attack.attacks: {runs_everywhere}"
            )
        return cls(
            attack=name,
            epsilons=c.epsilon_grid(c.require(s, "epsilons", "analysis"), "analysis.epsilons", high),
            samples=samples,
            boundary_attack=boundary,
            trace_epsilon=c.number(
                c.require(trace, "epsilon", "analysis.trace"),
                "analysis.trace.epsilon",
                low=0.0,
                high=1.0,
                low_open=True,
            ),
            trace_steps=c.positive_int(c.require(trace, "steps", "analysis.trace"), "analysis.trace.steps"),
            trace_samples=min(
                samples, c.positive_int(c.require(trace, "samples", "analysis.trace"), "analysis.trace.samples")
            ),
            convergence_samples=c.positive_int(
                c.require(s, "convergence_samples", "analysis"), "analysis.convergence_samples"
            ),
            seed=c.study_seed(params),
        )
