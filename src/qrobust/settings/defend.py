"""params.yaml: the defend section (the defense study)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind, ThreatModel
from qrobust.data.datasets import DATASETS
from qrobust.defenses.catalogue import create_defense
from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.attack import AttackConfig, AttackSettings
from qrobust.settings.prepare import PrepareSettings
from qrobust.settings.train import QuantizeSettings, TrainSettings
from qrobust.training.catalogue import RECIPES
from qrobust.training.catalogue import parse_options as recipe_options


@dataclass(frozen=True)
class DefendSettings:
    """The defense study: on the standard models of ``archs`` (float and every quantizer), each
    test-time defense, and each train-based recipe trained on those archs; every one attacked
    non-adaptively (the suite's sets of ``attack``, made without knowing the defense) and adaptively
    (the same attack through the defense: BPDA, EOT over ``eot_samples`` draws, the combined twin, then
    ``composite`` on the samples that attack left)."""

    archs: tuple[str, ...]
    recipes: tuple[str, ...]
    quantizers: tuple[str, ...]
    attack: str
    composite: str  # a stronger fixed-epsilon gradient attack of attack.attacks (AutoAttack) run after the adaptive one
    composite_options: Mapping[str, Any]  # over attack.attacks.<composite>'s options, on deterministic systems
    randomised_composite_options: Mapping[str, Any]  # the same, through a randomised defense's EOT view
    epsilons: tuple[float, ...]
    eot_samples: int
    eval_draws: int  # independent draws of a randomised defense each adversarial and clean input is scored under
    threshold_samples: int  # clean validation images that set a detector's threshold
    defenses: Mapping[str, Mapping[str, Any]]
    boundary_attack: str  # a gradient minimisation attack: boundary distances of recipe vs standard models
    seed: int

    BASELINE = "standard"  # the recipe whose models the test-time defenses wrap and the recipes are compared with

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, Any],
        prepare: PrepareSettings | None = None,
        train: TrainSettings | None = None,
        quantize: QuantizeSettings | None = None,
        attack: AttackSettings | None = None,
    ) -> DefendSettings:
        """The defend section, read against the sections it names (parsed here unless given)."""
        prepare = prepare or PrepareSettings.from_params(params)
        train = train or TrainSettings.from_params(params, prepare)
        quantize = quantize or QuantizeSettings.from_params(params)
        attack = attack or AttackSettings.from_params(params, prepare)
        keys = {
            "archs", "recipes", "quantizers", "attack", "composite", "composite_options",
            "randomised_composite_options", "epsilons", "eot_samples",
            "eval_draws", "threshold_samples", "defenses", "boundary_attack",
        }  # fmt: skip
        s = c.section(params, "defend", keys)
        if cls.BASELINE not in train.recipes:
            raise ConfigError(
                f"defend: the defense study compares with the {cls.BASELINE!r} recipe, "
                f"which train.recipes {list(train.recipes)} lacks"
            )
        archs = c.name_list(c.require(s, "archs", "defend"), "defend.archs", train.archs)
        recipes = c.name_list(c.require(s, "recipes", "defend"), "defend.recipes", RECIPES.names())
        for name in recipes:
            if name in train.recipes:
                raise ConfigError(
                    f"defend.recipes: {name!r} is already trained on every arch by train.recipes; list it in one only"
                )
            recipe_options(name, dict(train.recipe_options.get(name, {})))  # validates its options now
        name = c.require(s, "attack", "defend")
        by_name = {a.name: a for a in attack.attacks}
        if name not in by_name:
            raise ConfigError(f"defend.attack: {name!r} is not in attack.attacks; attacks: {', '.join(by_name)}")
        needed = {ThreatModel.WHITE_FLOAT, ThreatModel.WHITE_QNN_STE}
        if not needed <= set(by_name[name].threat_models):
            raise ConfigError(
                f"defend.attack: {name!r} must run under white_float and white_qnn_ste (its sets are the "
                f"non-adaptive attack); it runs under {[t.value for t in by_name[name].threat_models]}"
            )
        counts = {t.value: by_name[name].samples_for(t) for t in sorted(needed, key=lambda t: t.value)}
        if len(set(counts.values())) > 1:
            raise ConfigError(
                f"attack.attacks.{name}.samples: the defense study compares float and quantized systems on the same "
                f"samples, so white_float and white_qnn_ste need one count; got {counts}"
            )
        composite = c.require(s, "composite", "defend")
        fixed = [
            n
            for n in by_name
            if ATTACKS.get(n).kind is Kind.GRADIENT
            and not ATTACKS.get(n).minimises
            and ATTACKS.get(n).norm is ATTACKS.get(name).norm
        ]
        if composite not in fixed:
            raise ConfigError(
                f"defend.composite: {composite!r} is not a fixed-epsilon gradient attack of attack.attacks in "
                f"{name}'s norm; such attacks: {fixed}"
            )
        overrides: dict[str, Mapping[str, Any]] = {}
        for key in ("composite_options", "randomised_composite_options"):
            options = c.require(s, key, "defend")
            if not isinstance(options, Mapping):
                raise ConfigError(f"defend.{key}: expected a mapping of {composite}'s options, got {options!r}")
            ATTACKS.get(composite).check({**by_name[composite].options, **options}, f"defend.{key}")
            overrides[key] = MappingProxyType(dict(options))
        boundary = c.require(s, "boundary_attack", "defend")
        minimisers = [n for n in by_name if ATTACKS.get(n).kind is Kind.GRADIENT and ATTACKS.get(n).minimises]
        if boundary not in minimisers:
            raise ConfigError(
                f"defend.boundary_attack: {boundary!r} is not a gradient minimisation attack of attack.attacks; "
                f"such attacks: {minimisers}"
            )
        grid = by_name[name].epsilons
        epsilons = c.epsilon_grid(c.require(s, "epsilons", "defend"), "defend.epsilons", max(grid))
        for eps in epsilons:
            if eps not in grid:
                raise ConfigError(f"defend.epsilons: {eps!r} is not in {name}'s grid {list(grid)}")
        table = c.require(s, "defenses", "defend")
        if not isinstance(table, Mapping):
            raise ConfigError(f"defend.defenses: expected a mapping of defense name -> options, got {table!r}")
        defenses = {k: dict(v or {}) for k, v in table.items()}
        run = quantize.quantizers
        quantizers = c.name_list(c.require(s, "quantizers", "defend"), "defend.quantizers", run)
        size = DATASETS.get(prepare.dataset).size
        for key, body in defenses.items():
            defense = create_defense(key, body)
            defense.check_input(size, f"defend.defenses.{key}")
            # A member may be any width every defended arch is deployed at: defend.quantizers, or the bit-width
            # sweep's when every arch of defend.archs is swept.
            swept = quantize.sweep if set(archs) <= set(quantize.sweep_archs) else ()
            missing = [m for m in defense.members if m != "float" and m not in (*quantizers, *swept)]
            if missing:
                raise ConfigError(
                    f"defend.defenses.{key}.members: {missing} not in defend.quantizers {list(quantizers)}"
                    + (f" or quantize.sweep {list(swept)}" if swept else "")
                )
        return cls(
            archs=archs,
            recipes=recipes,
            quantizers=quantizers,
            attack=name,
            composite=composite,
            composite_options=overrides["composite_options"],
            randomised_composite_options=overrides["randomised_composite_options"],
            epsilons=epsilons,
            eot_samples=c.positive_int(c.require(s, "eot_samples", "defend"), "defend.eot_samples"),
            eval_draws=c.positive_int(c.require(s, "eval_draws", "defend"), "defend.eval_draws"),
            threshold_samples=c.positive_int(c.require(s, "threshold_samples", "defend"), "defend.threshold_samples"),
            defenses=MappingProxyType(defenses),
            boundary_attack=boundary,
            seed=c.study_seed(params),
        )

    def composite_attack(self, attacks: AttackSettings, randomised: bool = False) -> AttackConfig:
        """attack.attacks.<composite> with defend.composite_options (or, through a randomised defense,
        defend.randomised_composite_options) over its options."""
        attack = attacks.get(self.composite)
        overrides = self.randomised_composite_options if randomised else self.composite_options
        return replace(attack, options=MappingProxyType({**attack.options, **overrides}))

    def model_ids(self) -> tuple[ModelId, ...]:
        """The recipe models the defense study trains and quantizes (beside the study's own models)."""
        return tuple(ModelId(a, r) for a in self.archs for r in self.recipes)
