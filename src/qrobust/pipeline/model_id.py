"""``ModelId``: which model an artefact, a result row or an adversarial set belongs to.

Written ``<arch>-<recipe>`` for a float model and ``<arch>-<recipe>.<quantizer>`` for one of its
quantized models (``lenet-standard.ort_int8``); a defended system appends the defense in the quantizer's
place (``lenet-standard.ensemble``). The string form is parsed here and only here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qrobust.pipeline.errors import ConfigError

FLOAT = "float"  # the precision of a model with no quantizer


@dataclass(frozen=True, order=True)
class ModelId:
    arch: str
    recipe: str
    quantizer: str | None = None

    def __post_init__(self) -> None:
        for part in (self.arch, self.recipe, self.quantizer):
            if part is not None and (not part or "-" in part or "." in part):
                raise ConfigError(f"model id part {part!r}: expected a non-empty name without '-' or '.'")

    @classmethod
    def parse(cls, text: str) -> ModelId:
        base, dot, quantizer = str(text).partition(".")
        arch, dash, recipe = base.partition("-")
        if not dash or (dot and not quantizer):
            raise ConfigError(f"model id {text!r}: expected <arch>-<recipe> or <arch>-<recipe>.<quantizer>")
        return cls(arch, recipe, quantizer or None)

    def __str__(self) -> str:
        base = f"{self.arch}-{self.recipe}"
        return base if self.quantizer is None else f"{base}.{self.quantizer}"

    @property
    def parent(self) -> ModelId:
        """The float model this one was quantized from (itself when it is float)."""
        return ModelId(self.arch, self.recipe)

    @property
    def precision(self) -> str:
        """``float`` or the quantizer's name: the column a result row files the model under."""
        return FLOAT if self.quantizer is None else self.quantizer

    def quantized(self, quantizer: str) -> ModelId:
        return ModelId(self.arch, self.recipe, quantizer)

    def at(self, precision: str) -> ModelId:
        """This model's float parent (``float``) or its model quantized by ``precision``."""
        return self.parent if precision == FLOAT else self.quantized(precision)


def with_quantized(models: Iterable[ModelId], quantizers: Iterable[str]) -> tuple[ModelId, ...]:
    """Every deployed model: each float model followed by its quantized models, in the quantizers' order."""
    quantizers = tuple(quantizers)
    return tuple(m for parent in models for m in (parent, *(parent.quantized(q) for q in quantizers)))
