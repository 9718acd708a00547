"""``ModelId``: which model an artefact, a result row or an adversarial set belongs to.

Written ``<arch>-<recipe>`` for a float model and ``<arch>-<recipe>.<quantizer>`` for one of its
quantized models (``lenet-standard.ort_int8``); a defended system appends the defense in the quantizer's
place (``lenet-standard.ensemble``). A replicate trained at another seed than the study's (``train.seeds``)
carries it after the recipe: ``lenet-standard-s1.ort_int8``. The string form is parsed here and only here.
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
    seed: int | None = None  # None: trained at the study's seed; else a replicate (train.seeds)

    def __post_init__(self) -> None:
        for part in (self.arch, self.recipe, self.quantizer):
            if part is not None and (not part or "-" in part or "." in part):
                raise ConfigError(f"model id part {part!r}: expected a non-empty name without '-' or '.'")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"model id seed {self.seed!r}: expected a non-negative integer")

    @classmethod
    def parse(cls, text: str) -> ModelId:
        base, dot, quantizer = str(text).partition(".")
        arch, dash, rest = base.partition("-")
        recipe, dash_seed, seed = rest.partition("-")
        if not dash or (dot and not quantizer) or (dash_seed and not (seed.startswith("s") and seed[1:].isdigit())):
            raise ConfigError(
                f"model id {text!r}: expected <arch>-<recipe>[-s<seed>] or <arch>-<recipe>[-s<seed>].<quantizer>"
            )
        return cls(arch, recipe, quantizer or None, int(seed[1:]) if dash_seed else None)

    def __str__(self) -> str:
        base = f"{self.arch}-{self.recipe}" + ("" if self.seed is None else f"-s{self.seed}")
        return base if self.quantizer is None else f"{base}.{self.quantizer}"

    @property
    def parent(self) -> ModelId:
        """The float model this one was quantized from (itself when it is float)."""
        return ModelId(self.arch, self.recipe, None, self.seed)

    @property
    def unseeded(self) -> ModelId:
        """The same model at the study's seed: what the replicates of one model have in common."""
        return ModelId(self.arch, self.recipe, self.quantizer)

    @property
    def precision(self) -> str:
        """``float`` or the quantizer's name: the column a result row files the model under."""
        return FLOAT if self.quantizer is None else self.quantizer

    def quantized(self, quantizer: str) -> ModelId:
        return ModelId(self.arch, self.recipe, quantizer, self.seed)

    def at(self, precision: str) -> ModelId:
        """This model's float parent (``float``) or its model quantized by ``precision``."""
        return self.parent if precision == FLOAT else self.quantized(precision)


def with_quantized(models: Iterable[ModelId], quantizers: Iterable[str]) -> tuple[ModelId, ...]:
    """Every deployed model: each float model followed by its quantized models, in the quantizers' order."""
    quantizers = tuple(quantizers)
    return tuple(m for parent in models for m in (parent, *(parent.quantized(q) for q in quantizers)))
