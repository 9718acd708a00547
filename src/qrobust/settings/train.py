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
    # The bit-width sweep: the standard models of ``sweep_archs`` (at the study's seed) are also quantized by
    # these, deployed, attacked and scored like any quantized model; the report draws robust accuracy against
    # bit width from them. The analysis and the verdicts read ``quantizers`` only.
    sweep: tuple[str, ...] = ()
    sweep_archs: tuple[str, ...] = ()
    # Quantization-aware training in the sweep: these recipes trained on ``sweep_archs`` (at the study's seed)
    # and deployed at ``qat_widths`` only, attacked and scored like the sweep's other models.
    qat_recipes: tuple[str, ...] = ()
    qat_widths: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any], train: TrainSettings | None = None) -> QuantizeSettings:
        s = c.section(
            params,
            "quantize",
            {
                "quantizers",
                "calib_samples",
                "twin_min_agreement",
                "options",
                "replicate_quantizers",
                "sweep",
                "sweep_archs",
                "qat_recipes",
                "qat_widths",
            },
        )
        quantizers = c.name_list(c.require(s, "quantizers", "quantize"), "quantize.quantizers", QUANTIZERS.names())
        train = train or TrainSettings.from_params(params)
        sweep, sweep_archs = _sweep(s, quantizers, train.archs)
        qat_recipes, qat_widths = _qat(s, sweep_archs, train)
        replicate = s.get("replicate_quantizers")
        replicate = (
            quantizers if replicate is None else c.name_list(replicate, "quantize.replicate_quantizers", quantizers)
        )
        options = {k: dict(v or {}) for k, v in (s.get("options") or {}).items()}
        for name in options:
            QUANTIZERS.get(name, key="quantize.options")
        for name in (*quantizers, *sweep, *qat_widths):
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
            sweep=sweep,
            sweep_archs=sweep_archs,
            qat_recipes=qat_recipes,
            qat_widths=qat_widths,
        )

    def of(self, model: ModelId, *, sweep: bool = True) -> tuple[str, ...]:
        """The quantizers ``model`` (a float model) is quantized by: all of them, a replicate's subset; the
        sweep's too on a model of quantize.sweep_archs at the study's seed, unless ``sweep`` is false."""
        if model.seed is not None:
            return self.replicate_quantizers
        if model.recipe in self.qat_recipes:
            return self.qat_widths if sweep else ()
        in_sweep = sweep and model.arch in self.sweep_archs
        return (*self.quantizers, *self.sweep) if in_sweep else self.quantizers


def _both_or_neither(s: Mapping[str, Any], first: str, second: str) -> tuple[list, list]:
    """Two lists of the quantize section that only mean something together: both given, or neither."""
    a, b = s.get(first) or [], s.get(second) or []
    if bool(a) != bool(b):
        raise ConfigError(f"quantize.{first} {list(a)!r} and quantize.{second} {list(b)!r}: give both or neither")
    return a, b


def _qat(s: Mapping[str, Any], sweep_archs: tuple[str, ...], train: TrainSettings) -> tuple[tuple, tuple]:
    """quantize.qat_recipes (trained on quantize.sweep_archs only, so not in train.recipes, with their options in
    train.recipe_options) and quantize.qat_widths (one width for weights and activations each, among those the
    recipe trains at): both or neither."""
    recipes, widths = _both_or_neither(s, "qat_recipes", "qat_widths")
    if not recipes:
        return (), ()
    if not sweep_archs:
        raise ConfigError("quantize.qat_recipes: the recipes are trained on quantize.sweep_archs, which is empty")
    recipes = c.name_list(recipes, "quantize.qat_recipes", RECIPES.names())
    both = [r for r in recipes if r in train.recipes]
    if both:
        raise ConfigError(f"quantize.qat_recipes: {both} are in train.recipes already; the sweep trains them apart")
    widths = c.name_list(widths, "quantize.qat_widths", QUANTIZERS.names())
    for recipe in recipes:
        trained = recipe_options(recipe, dict(train.recipe_options.get(recipe) or {})).get("bits", ())
        for q in widths:
            entry = QUANTIZERS.get(q)
            if entry.weight_bits != entry.activation_bits or entry.weight_bits not in trained:
                raise ConfigError(
                    f"quantize.qat_widths: {q!r} (w{entry.weight_bits}a{entry.activation_bits}) is not one width "
                    f"that train.recipe_options.{recipe}.bits {list(trained)} trains at"
                )
    return recipes, widths


def _sweep(s: Mapping[str, Any], quantizers: tuple[str, ...], archs: tuple[str, ...]) -> tuple[tuple, tuple]:
    """quantize.sweep (quantizers beside quantize.quantizers) and quantize.sweep_archs (of train.archs):
    both or neither."""
    sweep, sweep_archs = _both_or_neither(s, "sweep", "sweep_archs")
    if not sweep:
        return (), ()
    sweep = c.name_list(sweep, "quantize.sweep", QUANTIZERS.names())
    both = [q for q in sweep if q in quantizers]
    if both:
        raise ConfigError(
            f"quantize.sweep: {both} are in quantize.quantizers already; the sweep adds widths beside them"
        )
    return sweep, c.name_list(sweep_archs, "quantize.sweep_archs", archs)
