"""params.yaml -> one frozen, validated dataclass per stage.

``Study.from_params`` checks every section at once (``make repro`` runs it before ``dvc repro``);
each stage also parses only its own section before touching data, so a bad value fails in
milliseconds naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qrobust import config as c
from qrobust.attacks import ATTACKS
from qrobust.data import DATASETS
from qrobust.defenses import create_defense
from qrobust.errors import ConfigError
from qrobust.models import ARCHITECTURES
from qrobust.quantizers import QUANTIZERS, create_quantizer
from qrobust.training import RECIPES, TrainConfig


def model_id(arch: str, recipe: str) -> str:
    return f"{arch}-{recipe}"


def _device(value: Any, key: str) -> str:
    if value not in ("auto", "cpu") and not (isinstance(value, str) and value.startswith("cuda")):
        raise ConfigError(f"{key}: expected auto, cpu or cuda[:N], got {value!r}")
    return str(value)


def _seed(params: Mapping[str, Any]) -> int:
    return c.non_negative_int(c.require(params, "seed", "params"), "seed")


@dataclass(frozen=True)
class PrepareSettings:
    dataset: str
    root: Path
    download: bool
    calib_size: int
    train_size: int
    test_size: int
    eval_size: int
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PrepareSettings:
        s = c.section(
            params, "data", {"dataset", "root", "download", "calib_size", "train_size", "test_size", "eval_size"}
        )
        dataset = c.require(s, "dataset", "data")
        DATASETS.get(dataset, key="data.dataset")
        return cls(
            dataset=dataset,
            root=Path(str(c.require(s, "root", "data"))),
            download=c.boolean(s.get("download", False), "data.download"),
            calib_size=c.positive_int(c.require(s, "calib_size", "data"), "data.calib_size"),
            train_size=c.non_negative_int(s.get("train_size", 0), "data.train_size"),
            test_size=c.non_negative_int(s.get("test_size", 0), "data.test_size"),
            eval_size=c.positive_int(c.require(s, "eval_size", "data"), "data.eval_size"),
            seed=_seed(params),
        )


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

    def model_ids(self) -> tuple[str, ...]:
        return tuple(model_id(a, r) for a in self.archs for r in self.recipes)


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


@dataclass(frozen=True)
class AttackConfig:
    name: str
    epsilons: tuple[float, ...]
    options: Mapping[str, Any]


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
        attacks = []
        for name, body in table.items():
            entry = ATTACKS.get(name, key="attack.attacks")
            body = dict(body or {})
            epsilons = c.epsilon_grid(body.pop("epsilons", None), f"attack.attacks.{name}.epsilons")
            entry.build(body, f"attack.attacks.{name}")  # unknown or bad options fail now
            attacks.append(AttackConfig(name, epsilons, MappingProxyType(body)))
        return cls(
            attacks=tuple(attacks),
            batch_size=c.positive_int(c.require(s, "batch_size", "attack"), "attack.batch_size"),
            device=_device(s.get("device", "auto"), "attack.device"),
            seed=_seed(params),
        )


@dataclass(frozen=True)
class EvaluateSettings:
    defenses: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EvaluateSettings:
        s = c.section(params, "evaluate", {"defenses"})
        table = c.require(s, "defenses", "evaluate")
        if not isinstance(table, Mapping) or "none" not in table:
            raise ConfigError(f"evaluate.defenses: expected a mapping that includes 'none', got {table!r}")
        defenses = {name: dict(body or {}) for name, body in table.items()}
        for name, body in defenses.items():
            create_defense(name, body)
        return cls(MappingProxyType(defenses))


@dataclass(frozen=True)
class ReportSettings:
    transfer_attack: str
    transfer_epsilon: float
    min_float_accuracy: float
    max_quant_drop_points: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ReportSettings:
        s = c.section(
            params, "report", {"transfer_attack", "transfer_epsilon", "min_float_accuracy", "max_quant_drop_points"}
        )
        attacks = AttackSettings.from_params(params).attacks
        by_name = {a.name: a for a in attacks}
        name = c.require(s, "transfer_attack", "report")
        if name not in by_name:
            raise ConfigError(f"report.transfer_attack: {name!r} is not run; attacks run: {', '.join(by_name)}")
        eps = c.number(c.require(s, "transfer_epsilon", "report"), "report.transfer_epsilon", low=0.0, high=1.0)
        if eps not in by_name[name].epsilons:
            raise ConfigError(f"report.transfer_epsilon: {eps} is not in {name}'s grid {list(by_name[name].epsilons)}")
        return cls(
            name,
            eps,
            min_float_accuracy=c.number(
                c.require(s, "min_float_accuracy", "report"), "report.min_float_accuracy", low=0.0, high=1.0
            ),
            max_quant_drop_points=c.number(
                c.require(s, "max_quant_drop_points", "report"), "report.max_quant_drop_points", low=0.0, high=100.0
            ),
        )


SECTIONS = (PrepareSettings, TrainSettings, QuantizeSettings, AttackSettings, EvaluateSettings, ReportSettings)
TOP_LEVEL_KEYS = {"seed", "data", "train", "quantize", "attack", "evaluate", "report"}


def validate(params: Mapping[str, Any]) -> None:
    """Check the whole params file: unknown top-level keys, then every section."""
    unknown = sorted(set(params) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"params.yaml: unknown top-level keys {unknown}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    for settings in SECTIONS:
        settings.from_params(params)


def load_validated(path: str = "params.yaml") -> dict[str, Any]:
    """What every stage reads: the whole file checked first, so any bad value stops the pipeline
    at its first stage, before any compute (checking only fails, it never changes an output)."""
    params = c.load_params(path)
    validate(params)
    return params


def main(argv: list[str] | None = None) -> int:
    """``python -m qrobust.settings [params.yaml]``: validate a params file, print what is wrong."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "params.yaml"
    try:
        validate(c.load_params(path))
    except ConfigError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
