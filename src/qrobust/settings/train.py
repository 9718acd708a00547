"""params.yaml: the train and quantize sections (architectures, recipes, the fit; quantizers and their options)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from qrobust.architectures import ARCHITECTURES
from qrobust.pipeline import params as c
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

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prepare: PrepareSettings | None = None) -> TrainSettings:
        s = c.section(
            params,
            "train",
            {"archs", "recipes", "recipe_options", "epochs", "batch_size", "lr", "weight_decay", "device"},
        )
        recipes = c.name_list(c.require(s, "recipes", "train"), "train.recipes", RECIPES.names())
        options = s.get("recipe_options") or {}
        for name in options:
            RECIPES.get(name, key="train.recipe_options")
        for name in recipes:
            recipe_options(name, dict(options.get(name) or {}))  # validates the recipe's options now
        return cls(
            dataset=(prepare or PrepareSettings.from_params(params)).dataset,
            archs=c.name_list(c.require(s, "archs", "train"), "train.archs", tuple(ARCHITECTURES)),
            recipes=recipes,
            recipe_options=MappingProxyType({k: dict(v or {}) for k, v in options.items()}),
            fit=TrainConfig(
                epochs=c.positive_int(c.require(s, "epochs", "train"), "train.epochs"),
                batch_size=c.positive_int(c.require(s, "batch_size", "train"), "train.batch_size"),
                lr=c.number(c.require(s, "lr", "train"), "train.lr", low=0.0, high=10.0, low_open=True),
                weight_decay=c.number(s.get("weight_decay", 0.0), "train.weight_decay", low=0.0, high=1.0),
                seed=c.study_seed(params),
                device=c.device_name(s.get("device", "auto"), "train.device"),
            ),
        )

    def model_ids(self) -> tuple[ModelId, ...]:
        return tuple(ModelId(a, r) for a in self.archs for r in self.recipes)


@dataclass(frozen=True)
class QuantizeSettings:
    quantizers: tuple[str, ...]
    calib_samples: int
    twin_min_agreement: float
    options: Mapping[str, Mapping[str, Any]]
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> QuantizeSettings:
        s = c.section(params, "quantize", {"quantizers", "calib_samples", "twin_min_agreement", "options"})
        quantizers = c.name_list(c.require(s, "quantizers", "quantize"), "quantize.quantizers", QUANTIZERS.names())
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
        )
