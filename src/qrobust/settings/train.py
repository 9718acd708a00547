"""params.yaml: the train and quantize sections (architectures, recipes, the fit; quantizers and their options)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from qrobust.architectures import ARCHITECTURES
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.catalogue import QUANTIZERS
from qrobust.quantization.catalogue import parse_options as quantizer_options
from qrobust.settings.prepare import PrepareSettings
from qrobust.training.catalogue import RECIPES, TrainConfig
from qrobust.training.catalogue import parse_options as recipe_options


@dataclass(frozen=True)
class TrainSettings:
    dataset: str
    archs: tuple[str, ...]
    recipes: tuple[str, ...]
    recipe_options: Mapping[str, Mapping[str, Any]]
    fit: TrainConfig
    # Replicates: arch -> the seeds its recipes are trained at again (train.seeds on train.seed_archs, beside
    # the study's ``seed``), each a model of its own (``lenet-standard-s1``), quantized (by
    # quantize.replicate_quantizers), attacked and analysed like the primary one. The spread across seeds is
    # training randomness, which headline figures and verdicts carry (qrobust.findings.replicates).
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prepare: PrepareSettings | None = None) -> TrainSettings:
        s = c.section(
            params,
            "train",
            {
                "archs",
                "recipes",
                "recipe_options",
                "epochs",
                "batch_size",
                "lr",
                "weight_decay",
                "device",
                "seeds",
                "seed_archs",
            },
        )
        archs = c.name_list(c.require(s, "archs", "train"), "train.archs", tuple(ARCHITECTURES))
        seed = c.study_seed(params)
        recipes = c.name_list(c.require(s, "recipes", "train"), "train.recipes", RECIPES.names())
        options = s.get("recipe_options") or {}
        for name in options:
            RECIPES.get(name, key="train.recipe_options")
        for name in recipes:
            recipe_options(name, dict(options.get(name) or {}))  # validates the recipe's options now
        return cls(
            dataset=(prepare or PrepareSettings.from_params(params)).dataset,
            archs=archs,
            recipes=recipes,
            recipe_options=MappingProxyType({k: dict(v or {}) for k, v in options.items()}),
            fit=TrainConfig(
                epochs=c.positive_int(c.require(s, "epochs", "train"), "train.epochs"),
                batch_size=c.positive_int(c.require(s, "batch_size", "train"), "train.batch_size"),
                lr=c.number(c.require(s, "lr", "train"), "train.lr", low=0.0, high=10.0, low_open=True),
                weight_decay=c.number(s.get("weight_decay", 0.0), "train.weight_decay", low=0.0, high=1.0),
                seed=seed,
                device=c.device_name(s.get("device", "auto"), "train.device"),
            ),
            seeds=MappingProxyType(_seeds(s.get("seeds") or [], s.get("seed_archs") or [], archs, seed)),
        )

    def model_ids(self) -> tuple[ModelId, ...]:
        """Every float model of the main study: each arch and recipe at the study's seed, then its replicates."""
        return tuple(
            ModelId(a, r, None, s) for a in self.archs for r in self.recipes for s in (None, *self.seeds.get(a, ()))
        )

    def primary_ids(self) -> tuple[ModelId, ...]:
        """The float models trained at the study's seed (what the defense study and the transfer matrix use)."""
        return tuple(m for m in self.model_ids() if m.seed is None)

    def seed_of(self, model: ModelId) -> int:
        """The seed ``model`` is trained at."""
        return self.fit.seed if model.seed is None else model.seed


def _seeds(seeds: Any, seed_archs: Any, archs: tuple[str, ...], study_seed: int) -> dict[str, tuple[int, ...]]:
    """train.seeds on each of train.seed_archs (either empty: no replicates)."""
    if not isinstance(seeds, list):
        raise ConfigError(f"train.seeds: expected a list of seeds, got {seeds!r}")
    seeds = tuple(c.non_negative_int(v, "train.seeds") for v in seeds)
    if len(set(seeds)) != len(seeds) or study_seed in seeds:
        raise ConfigError(f"train.seeds: {list(seeds)} must be distinct and differ from the study's seed {study_seed}")
    chosen = c.name_list(seed_archs, "train.seed_archs", archs) if seed_archs else ()
    return {arch: seeds for arch in chosen} if seeds else {}


@dataclass(frozen=True)
class QuantizeSettings:
    quantizers: tuple[str, ...]
    calib_samples: int
    twin_min_agreement: float
    options: Mapping[str, Mapping[str, Any]]
    seed: int
    replicate_quantizers: tuple[str, ...] = ()  # the quantizers a replicate (train.seeds) is quantized by

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> QuantizeSettings:
        s = c.section(
            params, "quantize", {"quantizers", "calib_samples", "twin_min_agreement", "options", "replicate_quantizers"}
        )
        quantizers = c.name_list(c.require(s, "quantizers", "quantize"), "quantize.quantizers", QUANTIZERS.names())
        replicate = s.get("replicate_quantizers")
        replicate = (
            quantizers if replicate is None else c.name_list(replicate, "quantize.replicate_quantizers", quantizers)
        )
        options = {k: dict(v or {}) for k, v in (s.get("options") or {}).items()}
        for name in options:
            QUANTIZERS.get(name, key="quantize.options")
        for name in quantizers:
            quantizer_options(name, options.get(name, {}))
        return cls(
            quantizers=quantizers,
            calib_samples=c.positive_int(c.require(s, "calib_samples", "quantize"), "quantize.calib_samples"),
            twin_min_agreement=c.number(
                c.require(s, "twin_min_agreement", "quantize"), "quantize.twin_min_agreement", low=0.0, high=1.0
            ),
            options=MappingProxyType(options),
            seed=c.study_seed(params),
            replicate_quantizers=tuple(q for q in quantizers if q in replicate),
        )

    def of(self, model: ModelId) -> tuple[str, ...]:
        """The quantizers ``model`` (a float model) is quantized by: all of them, a replicate's subset."""
        return self.quantizers if model.seed is None else self.replicate_quantizers
