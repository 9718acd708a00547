"""Reading params.yaml: safe_load, then typed checks that name the key, the value and what is allowed.

Every stage turns its section into a frozen dataclass through these helpers before any compute,
so a typo or an out-of-range number fails in milliseconds rather than after training.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from qrobust.pipeline.errors import ConfigError

E = TypeVar("E", bound=Enum)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            params = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; run from the project's root, where params.yaml is") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            f"{path}: not valid YAML{where}: {problem}; fix that line (`git diff {path}` shows what changed)"
        ) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(params).__name__}")
    return params


def section(params: Mapping[str, Any], key: str, allowed: Collection[str]) -> Mapping[str, Any]:
    """The mapping at ``key``, refusing keys outside ``allowed`` (no silent acceptance of typos)."""
    value = params.get(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}: unknown keys {unknown}; allowed keys: {sorted(allowed)}")
    return value


def check_options(options: Mapping[str, Any], allowed: Collection[str], key: str) -> None:
    """Refuse option names outside ``allowed`` (a registry entry's options: recipe, quantizer, attack, defense)."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}: unknown options {unknown}; allowed options: {sorted(allowed)}")


def typed_options(
    options: Mapping[str, Any],
    defaults: Mapping[str, Any],
    key: str,
    ranges: Mapping[str, tuple[float, float, bool]] | None = None,
) -> dict[str, Any]:
    """``defaults`` overridden by ``options``, each value checked against its default's type: a bool
    stays a bool, an int is a positive count, a float lies in ``ranges[name]`` = (low, high, low_open),
    by default (0, inf). Unknown names are refused first."""
    check_options(options, defaults, key)
    bounds = ranges or {}
    checked = dict(defaults)
    for name, value in options.items():
        where, default = f"{key}.{name}", defaults[name]
        if isinstance(default, bool):
            checked[name] = boolean(value, where)
        elif isinstance(default, int):
            checked[name] = positive_int(value, where)
        else:
            low, high, low_open = bounds.get(name, (0.0, float("inf"), True))
            checked[name] = number(value, where, low=low, high=high, low_open=low_open)
    return checked


def require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ConfigError(f"{where}.{key}: missing")
    return mapping[key]


def positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
    return value


def non_negative_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key}: expected an integer >= 0, got {value!r}")
    return value


def number(value: Any, key: str, *, low: float, high: float = float("inf"), low_open: bool = False) -> float:
    """A float in [low, high] (or (low, high] with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{key}: expected a number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def choice(value: Any, key: str, enum: type[E]) -> E:
    """Closed sets are Enums; convert the params string at the boundary."""
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(str(member.value) for member in enum)
        raise ConfigError(f"{key}: unknown value {value!r}; valid values: {valid}") from None


def name_list(value: Any, key: str, valid: Collection[str]) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of names, got {value!r}")
    for name in value:
        if name not in valid:
            raise ConfigError(f"{key}: unknown name {name!r}; valid names: {', '.join(sorted(valid))}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{key}: names repeat in {list(value)!r}")
    return tuple(value)


def epsilon_grid(value: Any, key: str, high: float = 1.0) -> tuple[float, ...]:
    """A strictly increasing list of perturbation budgets in (0, high]."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of epsilons, got {value!r}")
    grid = tuple(number(eps, f"{key}[{i}]", low=0.0, high=high, low_open=True) for i, eps in enumerate(value))
    if list(grid) != sorted(set(grid)):
        raise ConfigError(f"{key}: expected strictly increasing epsilons, got {list(value)!r}")
    return grid


def device_name(value: Any, key: str) -> str:
    if value not in ("auto", "cpu") and not (isinstance(value, str) and value.startswith("cuda")):
        raise ConfigError(f"{key}: expected auto, cpu or cuda[:N], got {value!r}")
    return str(value)


def study_seed(params: Mapping[str, Any]) -> int:
    return non_negative_int(require(params, "seed", "params"), "seed")
