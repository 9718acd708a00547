"""The training recipes params may name, and their options, as data (no torch).

Params are checked against this catalogue in milliseconds; ``training.recipes`` builds each recipe from
the options checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.params import check_options, number, positive_int
from qrobust.pipeline.registry import Registry


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    device: str


Parse = Callable[[Mapping[str, Any], str], dict[str, Any]]
RECIPES: Registry[Parse] = Registry("training recipe")


def _epsilon(options: Mapping[str, Any], key: str) -> float:
    return number(options.get("epsilon", 0.1), f"{key}.epsilon", low=0.0, high=1.0, low_open=True)


@RECIPES.register("standard")
def _standard(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    check_options(options, set(), key)
    return {}


@RECIPES.register("adversarial")
def _adversarial(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Madry et al. 2018: PGD examples in every batch."""
    check_options(options, {"epsilon", "steps"}, key)
    return {"epsilon": _epsilon(options, key), "steps": positive_int(options.get("steps", 1), f"{key}.steps")}


@RECIPES.register("trades")
def _trades(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Zhang et al. 2019."""
    check_options(options, {"epsilon", "steps", "beta"}, key)
    return {
        "epsilon": _epsilon(options, key),
        "steps": positive_int(options.get("steps", 5), f"{key}.steps"),
        "beta": number(options.get("beta", 6.0), f"{key}.beta", low=0.0),
    }


@RECIPES.register("distillation")
def _distillation(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Papernot et al. 2016 (defensive distillation)."""
    check_options(options, {"temperature"}, key)
    return {"temperature": number(options.get("temperature", 20.0), f"{key}.temperature", low=0.0, low_open=True)}


@RECIPES.register("dq")
def _dq(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Lin et al. 2019 (Defensive Quantization): a Lipschitz (orthogonality) penalty of weight ``beta``."""
    check_options(options, {"beta"}, key)
    return {"beta": number(options.get("beta", 3e-4), f"{key}.beta", low=0.0)}


@RECIPES.register("qat")
def _qat(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Quantization-aware training at widths drawn per batch from ``bits`` (0: float), each weight clipped to
    ``clip`` standard deviations of its channel."""
    check_options(options, {"bits", "momentum", "clip"}, key)
    bits = options.get("bits", [2, 3, 4])
    if (
        not isinstance(bits, list)
        or not bits
        or any(not isinstance(b, int) or not (b == 0 or 2 <= b <= 8) for b in bits)
    ):
        raise ConfigError(f"{key}.bits: expected a list of widths 2..8 (0: float), got {bits!r}")
    momentum = number(options.get("momentum", 0.9), f"{key}.momentum", low=0.0, high=0.999)
    clip = number(options.get("clip", 2.0), f"{key}.clip", low=0.5)
    return {"bits": tuple(bits), "momentum": momentum, "clip": clip}


def parse_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``train.recipe_options.<name>`` checked: the keyword arguments its recipe is built with."""
    return RECIPES.get(name, key="train.recipes")(options, f"train.recipe_options.{name}")
