"""params.yaml -> one frozen, checked dataclass per section, gathered in a ``Study``.

``Study.from_params`` parses each section once (a section that names another is handed the parsed one)
against the torch-free catalogues: ``make check`` runs it, and so does every stage before it computes
(``load_study``), so a bad value anywhere fails in milliseconds, at the first stage ``dvc repro`` runs,
naming the key, the value and what is allowed. A stage then reads its own sections from the study.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qrobust.attacks.threats import Norm
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId, with_quantized
from qrobust.quantization.catalogue import QUANTIZERS
from qrobust.settings.analysis import AnalysisSettings
from qrobust.settings.attack import AttackSettings
from qrobust.settings.defend import DefendSettings
from qrobust.settings.findings import FindingsSettings
from qrobust.settings.prepare import PrepareSettings
from qrobust.settings.report import ReportSettings
from qrobust.settings.train import QuantizeSettings, TrainSettings

TOP_LEVEL_KEYS = {"seed", "data", "train", "quantize", "attack", "defend", "analysis", "report", "findings"}


@dataclass(frozen=True)
class Study:
    """The whole params file, parsed and checked once; each stage reads its own section from it."""

    prepare: PrepareSettings
    train: TrainSettings
    quantize: QuantizeSettings
    attack: AttackSettings
    defend: DefendSettings
    analysis: AnalysisSettings
    report: ReportSettings
    findings: FindingsSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Study:
        unknown = sorted(set(params) - TOP_LEVEL_KEYS)
        if unknown:
            raise ConfigError(f"params.yaml: unknown top-level keys {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
        # Each section once, in the order they name each other.
        prepare = PrepareSettings.from_params(params)
        train = TrainSettings.from_params(params, prepare)
        quantize = QuantizeSettings.from_params(params, train)
        attack = AttackSettings.from_params(params, prepare)
        return cls(
            prepare=prepare,
            train=train,
            quantize=quantize,
            attack=attack,
            defend=DefendSettings.from_params(params, prepare, train, quantize, attack),
            analysis=AnalysisSettings.from_params(params, prepare, attack),
            report=ReportSettings.from_params(params, attack),
            findings=FindingsSettings.from_params(params),
        )

    def models(self) -> tuple[ModelId, ...]:
        """Every deployed model: each float model followed by its quantized ones, the sweep's included (its
        widths of the standard models, and the quantization-aware models after the rest)."""
        floats = (*self.train.model_ids(), *self.qat_floats())
        return tuple(m for f in floats for m in with_quantized([f], self.quantize.of(f)))

    def qat_floats(self) -> tuple[ModelId, ...]:
        """The float models of quantize.qat_recipes on quantize.sweep_archs (trained for the sweep only)."""
        return tuple(ModelId(a, r) for a in self.quantize.sweep_archs for r in self.quantize.qat_recipes)

    def sweep_only(self, model: ModelId) -> bool:
        """Whether ``model`` is in the study for the bit-width sweep alone (a width of quantize.sweep, or a
        quantization-aware model): the sweep's section reads it, the study's other tables and verdicts do not."""
        return model.quantizer in self.quantize.sweep or model.recipe in self.quantize.qat_recipes

    def reached_by(self, norm: Norm) -> tuple[ModelId, ...]:
        """The deployed models an attack of ``norm`` is made on: every one, but the sweep's own models only
        when attack.sweep_norms holds ``norm`` (the sweep's section reads the headline norm)."""
        norms = self.attack.sweep_norms
        return tuple(m for m in self.models() if norms is None or norm in norms or not self.sweep_only(m))

    def sweep_models(self) -> tuple[ModelId, ...]:
        """The bit-width sweep's models (none without quantize.sweep): on each arch of quantize.sweep_archs,
        the float model, the model of each width of quantize.sweep and the same backend's native model whose
        weights and activations share one width (ort_int8: the 8-bit point); then each quantization-aware
        model (quantize.qat_recipes) and its widths."""
        sweep = self.quantize.sweep
        if not sweep:
            return ()
        backend = QUANTIZERS.get(sweep[0]).backend
        native = [
            q
            for q in self.quantize.quantizers
            if (e := QUANTIZERS.get(q)).weight_bits == e.activation_bits and not e.placebo and e.backend == backend
        ]
        return tuple(
            m
            for m in self.primary_models()
            if m.arch in self.quantize.sweep_archs
            and (m.recipe in self.quantize.qat_recipes or m.quantizer is None or m.quantizer in (*native, *sweep))
        )

    def primary_models(self) -> tuple[ModelId, ...]:
        """The deployed models trained at the study's seed (``models()`` without the replicates)."""
        return tuple(m for m in self.models() if m.seed is None)


def validate(params: Mapping[str, Any]) -> Study:
    """Check the whole params file: unknown top-level keys, then every section."""
    return Study.from_params(params)


@functools.cache
def load_study(path: str = "params.yaml") -> Study:
    """What every stage reads: the whole file checked first, so any bad value stops the pipeline
    at its first stage, before any compute (checking only fails, it never changes an output). Parsed once
    per process: a stage's worker processes read it from their own first call."""
    return Study.from_params(c.load_params(path))
