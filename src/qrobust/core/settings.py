"""params.yaml -> one frozen, validated dataclass per stage.

``Study.from_params`` checks every section at once (``make repro`` runs it before ``dvc repro``);
each stage also parses only its own section before touching data, so a bad value fails in
milliseconds naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qrobust.core import config as c
from qrobust.core.attacks import ATTACKS, Kind, Norm
from qrobust.core.data import DATASETS, DatasetSpec
from qrobust.core.defenses import create_defense
from qrobust.core.errors import ConfigError
from qrobust.core.model_id import ModelId, with_quantized
from qrobust.core.quantizers import QUANTIZERS, create_quantizer
from qrobust.core.results import ThreatModel
from qrobust.core.training import RECIPES, TrainConfig
from qrobust.models import ARCHITECTURES


def _device(value: Any, key: str) -> str:
    if value not in ("auto", "cpu") and not (isinstance(value, str) and value.startswith("cuda")):
        raise ConfigError(f"{key}: expected auto, cpu or cuda[:N], got {value!r}")
    return str(value)


def _seed(params: Mapping[str, Any]) -> int:
    return c.non_negative_int(c.require(params, "seed", "params"), "seed")


def _pins(value: Any, spec: DatasetSpec) -> dict[str, str]:
    """data.sha256: one's own digest for every file the dataset's parser reads, or none at all."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"data.sha256: expected a mapping of file -> SHA-256, got {value!r}")
    if value and set(value) != set(spec.release):
        raise ConfigError(
            f"data.sha256: pins {sorted(value)}; expected a digest for each of {sorted(spec.release)} "
            "(paths relative to data.root), or {} for the published release's"
        )
    for name, digest in sorted(value.items()):
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ConfigError(f"data.sha256.{name}: expected 64 lowercase hex digits (sha256sum), got {digest!r}")
    return dict(value)


@dataclass(frozen=True)
class PrepareSettings:
    dataset: str
    root: Path
    download: bool
    sha256: dict[str, str]  # empty: the published release's pins
    calib_size: int
    val_size: int
    train_size: int
    test_size: int
    eval_size: int
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PrepareSettings:
        s = c.section(
            params,
            "data",
            {"dataset", "root", "download", "sha256", "calib_size", "val_size", "train_size", "test_size", "eval_size"},
        )
        dataset = c.require(s, "dataset", "data")
        spec = DATASETS.get(dataset, key="data.dataset")
        settings = cls(
            dataset=dataset,
            root=Path(str(c.require(s, "root", "data"))),
            download=c.boolean(s.get("download", False), "data.download"),
            sha256=_pins(s.get("sha256") or {}, spec),
            calib_size=c.positive_int(c.require(s, "calib_size", "data"), "data.calib_size"),
            val_size=c.positive_int(c.require(s, "val_size", "data"), "data.val_size"),
            train_size=c.non_negative_int(s.get("train_size", 0), "data.train_size"),
            test_size=c.non_negative_int(s.get("test_size", 0), "data.test_size"),
            eval_size=c.positive_int(c.require(s, "eval_size", "data"), "data.eval_size"),
            seed=_seed(params),
        )
        if settings.test_size > spec.test_samples:
            raise ConfigError(
                f"data.test_size: {settings.test_size} exceeds the {spec.test_samples} images of {dataset}'s "
                "test split; lower it, or set 0 to keep them all"
            )
        kept = settings.test_size or spec.test_samples
        if settings.eval_size > kept:
            raise ConfigError(
                f"data.eval_size: {settings.eval_size} exceeds the {kept} test images kept "
                f"(data.test_size: {settings.test_size}); the evaluation subset is drawn from them, "
                f"so set it to at most {kept}"
            )
        return settings


@dataclass(frozen=True)
class TrainSettings:
    dataset: str
    archs: tuple[str, ...]
    recipes: tuple[str, ...]
    recipe_options: Mapping[str, Mapping[str, Any]]
    fit: TrainConfig

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainSettings:
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
            RECIPES.get(name)(dict(options.get(name) or {}))  # validates the recipe's options now
        return cls(
            dataset=PrepareSettings.from_params(params).dataset,
            archs=c.name_list(c.require(s, "archs", "train"), "train.archs", ARCHITECTURES.names()),
            recipes=recipes,
            recipe_options=MappingProxyType({k: dict(v or {}) for k, v in options.items()}),
            fit=TrainConfig(
                epochs=c.positive_int(c.require(s, "epochs", "train"), "train.epochs"),
                batch_size=c.positive_int(c.require(s, "batch_size", "train"), "train.batch_size"),
                lr=c.number(c.require(s, "lr", "train"), "train.lr", low=0.0, high=10.0, low_open=True),
                weight_decay=c.number(s.get("weight_decay", 0.0), "train.weight_decay", low=0.0, high=1.0),
                seed=_seed(params),
                device=_device(s.get("device", "auto"), "train.device"),
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
            create_quantizer(name, options.get(name, {}))
        return cls(
            quantizers=quantizers,
            calib_samples=c.positive_int(c.require(s, "calib_samples", "quantize"), "quantize.calib_samples"),
            twin_min_agreement=c.number(
                c.require(s, "twin_min_agreement", "quantize"), "quantize.twin_min_agreement", low=0.0, high=1.0
            ),
            options=MappingProxyType(options),
            seed=_seed(params),
        )


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
        entry.build(options, key)  # unknown or bad options fail now
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

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AttackSettings:
        s = c.section(params, "attack", {"attacks", "batch_size", "device"})
        table = c.require(s, "attacks", "attack")
        if not isinstance(table, Mapping) or not table:
            raise ConfigError(f"attack.attacks: expected a mapping of attack name -> settings, got {table!r}")
        dataset = DATASETS.get(PrepareSettings.from_params(params).dataset)
        values = dataset.channels * dataset.size * dataset.size
        return cls(
            attacks=tuple(AttackConfig.from_params(name, body, values) for name, body in table.items()),
            batch_size=c.positive_int(c.require(s, "batch_size", "attack"), "attack.batch_size"),
            device=_device(s.get("device", "auto"), "attack.device"),
            seed=_seed(params),
        )

    def get(self, name: str) -> AttackConfig:
        for attack in self.attacks:
            if attack.name == name:
                return attack
        raise ConfigError(
            f"attack {name!r} is not in attack.attacks; attacks: {', '.join(a.name for a in self.attacks)}"
        )


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
    composite_options: Mapping[str, Any]  # over attack.attacks.<composite>'s options, in the defense study only
    epsilons: tuple[float, ...]
    eot_samples: int
    eval_draws: int  # independent draws of a randomised defense each adversarial and clean input is scored under
    threshold_samples: int  # clean validation images that set a detector's threshold
    defenses: Mapping[str, Mapping[str, Any]]
    boundary_attack: str  # a gradient minimisation attack: boundary distances of recipe vs standard models
    seed: int

    BASELINE = "standard"  # the recipe whose models the test-time defenses wrap and the recipes are compared with

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DefendSettings:
        keys = {
            "archs", "recipes", "quantizers", "attack", "composite", "composite_options", "epsilons", "eot_samples",
            "eval_draws", "threshold_samples", "defenses", "boundary_attack",
        }  # fmt: skip
        s = c.section(params, "defend", keys)
        train = TrainSettings.from_params(params)
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
            RECIPES.get(name)(dict(train.recipe_options.get(name, {})))  # validates its options now
        name = c.require(s, "attack", "defend")
        by_name = {a.name: a for a in AttackSettings.from_params(params).attacks}
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
            and not ATTACKS.get(n).minimises()
            and ATTACKS.get(n).norm is ATTACKS.get(name).norm
        ]
        if composite not in fixed:
            raise ConfigError(
                f"defend.composite: {composite!r} is not a fixed-epsilon gradient attack of attack.attacks in "
                f"{name}'s norm; such attacks: {fixed}"
            )
        composite_options = c.require(s, "composite_options", "defend")
        if not isinstance(composite_options, Mapping):
            raise ConfigError(
                f"defend.composite_options: expected a mapping of {composite}'s options, got {composite_options!r}"
            )
        ATTACKS.get(composite).build({**by_name[composite].options, **composite_options}, "defend.composite_options")
        boundary = c.require(s, "boundary_attack", "defend")
        minimisers = [n for n in by_name if ATTACKS.get(n).kind is Kind.GRADIENT and ATTACKS.get(n).minimises()]
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
        run = QuantizeSettings.from_params(params).quantizers
        quantizers = c.name_list(c.require(s, "quantizers", "defend"), "defend.quantizers", run)
        size = DATASETS.get(PrepareSettings.from_params(params).dataset).size
        for key, body in defenses.items():
            defense = create_defense(key, body)
            defense.check_input(size, f"defend.defenses.{key}")
            missing = [m for m in defense.members if m != "float" and m not in quantizers]
            if missing:
                raise ConfigError(
                    f"defend.defenses.{key}.members: {missing} not in defend.quantizers {list(quantizers)}"
                )
        return cls(
            archs=archs,
            recipes=recipes,
            quantizers=quantizers,
            attack=name,
            composite=composite,
            composite_options=MappingProxyType(dict(composite_options)),
            epsilons=epsilons,
            eot_samples=c.positive_int(c.require(s, "eot_samples", "defend"), "defend.eot_samples"),
            eval_draws=c.positive_int(c.require(s, "eval_draws", "defend"), "defend.eval_draws"),
            threshold_samples=c.positive_int(c.require(s, "threshold_samples", "defend"), "defend.threshold_samples"),
            defenses=MappingProxyType(defenses),
            boundary_attack=boundary,
            seed=_seed(params),
        )

    def composite_attack(self, attacks: AttackSettings) -> AttackConfig:
        """attack.attacks.<composite> with defend.composite_options over its options."""
        attack = attacks.get(self.composite)
        return replace(attack, options=MappingProxyType({**attack.options, **self.composite_options}))

    def model_ids(self) -> tuple[ModelId, ...]:
        """The recipe models the defense study trains and quantizes (beside the study's own models)."""
        return tuple(ModelId(a, r) for a in self.archs for r in self.recipes)


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
    def from_params(cls, params: Mapping[str, Any]) -> AnalysisSettings:
        s = c.section(
            params, "analysis", {"attack", "epsilons", "samples", "boundary_attack", "trace", "convergence_samples"}
        )
        trace = c.section(
            {"analysis.trace": c.require(s, "trace", "analysis")}, "analysis.trace", {"epsilon", "steps", "samples"}
        )
        by_name = {a.name: a for a in AttackSettings.from_params(params).attacks}
        name = c.require(s, "attack", "analysis")
        if name not in by_name:
            raise ConfigError(f"analysis.attack: {name!r} is not in attack.attacks; attacks: {', '.join(by_name)}")
        if ATTACKS.get(name).kind is not Kind.GRADIENT:
            raise ConfigError(
                f"analysis.attack: {name!r} is not a gradient attack; the analysis attacks each float model white-box"
            )
        dataset = DATASETS.get(PrepareSettings.from_params(params).dataset)
        high = max_epsilon(ATTACKS.get(name).norm, dataset.channels * dataset.size * dataset.size)
        samples = c.positive_int(c.require(s, "samples", "analysis"), "analysis.samples")
        eval_size = PrepareSettings.from_params(params).eval_size
        if samples > eval_size:
            raise ConfigError(f"analysis.samples: {samples} exceeds data.eval_size {eval_size}")
        boundary = c.require(s, "boundary_attack", "analysis")
        runs_everywhere = [
            n for n, a in by_name.items() if ThreatModel.BLACK_RUNTIME in a.threat_models and ATTACKS.get(n).minimises()
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
            seed=_seed(params),
        )


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
    def from_params(cls, params: Mapping[str, Any]) -> ReportSettings:
        s = c.section(params, "report", {"curves", "heat_maps", "min_float_accuracy", "max_quant_drop_points"})
        by_name = {a.name: a for a in AttackSettings.from_params(params).attacks}
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


TOP_LEVEL_KEYS = {"seed", "data", "train", "quantize", "attack", "defend", "analysis", "report"}


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

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Study:
        unknown = sorted(set(params) - TOP_LEVEL_KEYS)
        if unknown:
            raise ConfigError(f"params.yaml: unknown top-level keys {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
        return cls(
            prepare=PrepareSettings.from_params(params),
            train=TrainSettings.from_params(params),
            quantize=QuantizeSettings.from_params(params),
            attack=AttackSettings.from_params(params),
            defend=DefendSettings.from_params(params),
            analysis=AnalysisSettings.from_params(params),
            report=ReportSettings.from_params(params),
        )

    def models(self) -> tuple[ModelId, ...]:
        """The main study's deployed models: each float model followed by its quantized ones."""
        return with_quantized(self.train.model_ids(), self.quantize.quantizers)


def validate(params: Mapping[str, Any]) -> Study:
    """Check the whole params file: unknown top-level keys, then every section."""
    return Study.from_params(params)


def load_study(path: str = "params.yaml") -> Study:
    """What every stage reads: the whole file checked first, so any bad value stops the pipeline
    at its first stage, before any compute (checking only fails, it never changes an output)."""
    return Study.from_params(c.load_params(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m qrobust.core.settings [params.yaml]``: validate a params file, print what is wrong."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "params.yaml"
    try:
        params = c.load_params(path)
    except ConfigError as error:  # its message names the file
        print(error, file=sys.stderr)
        return 2
    try:
        validate(params)
    except ConfigError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
