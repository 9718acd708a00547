"""Input-preprocessing defenses placed in front of a deployed runtime, behind one registry.

Each maps a float32 batch in [0, 1] to another batch in [0, 1] before the runtime scores it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qrobust.config import positive_int
from qrobust.errors import ConfigError
from qrobust.registry import Registry


class Defense(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


DEFENSES: Registry[Callable[[Mapping[str, Any], str], Defense]] = Registry("defense")


def _check_keys(options: Mapping[str, Any], allowed: set[str], key: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"{key}: unknown options {unknown}; allowed options: {sorted(allowed)}")


@dataclass(frozen=True)
class NoDefense:
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x


@dataclass(frozen=True)
class BitDepthReduction:
    """Feature squeezing by colour-depth reduction (Xu, Evans, Qi 2018)."""

    bits: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        levels = np.float32(2**self.bits - 1)
        return np.round(x * levels) / levels


@DEFENSES.register("none")
def _none(options: Mapping[str, Any], key: str) -> Defense:
    _check_keys(options, set(), key)
    return NoDefense()


@DEFENSES.register("bit_depth")
def _bit_depth(options: Mapping[str, Any], key: str) -> Defense:
    _check_keys(options, {"bits"}, key)
    bits = positive_int(options.get("bits", 4), f"{key}.bits")
    if bits > 8:
        raise ConfigError(f"{key}.bits: expected 1..8, got {bits}")
    return BitDepthReduction(bits)


def create_defense(name: str, options: Mapping[str, Any], key: str = "evaluate.defenses") -> Defense:
    return DEFENSES.get(name, key=key)(options, f"{key}.{name}")
