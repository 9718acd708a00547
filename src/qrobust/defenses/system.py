"""A defense of the catalogue made real: deployed in front of the deployed runtimes, and as the
differentiable module an adaptive attacker runs on (BPDA through a non-differentiable step, EOT over a
randomised one; Athalye, Carlini, Wagner 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from qrobust.defenses.catalogue import Defense, DefenseKind
from qrobust.defenses.deployed import EnsembleRuntime, PreprocessedRuntime, RandomPrecisionRuntime, SqueezeDetector
from qrobust.defenses.preprocessors import preprocessor, seeded_generator
from qrobust.defenses.views import DetectionScore, LogMeanProbability, MeanLogProbability, Preprocessed, SoftVote
from qrobust.deploy.runtime import Runtime


def deploy(defense: Defense, runtimes: Sequence[Runtime], seed: int, calib: np.ndarray | None = None) -> Any:
    """The deployed system (``predict(x) -> labels``): one runtime, or an ensemble's members in order.
    Its randomness, if any, is one stream seeded ``seed`` here and drawn from on every query."""
    if defense.kind is DefenseKind.ENSEMBLE:
        return EnsembleRuntime(tuple(runtimes), defense.vote)
    if defense.kind is DefenseKind.RANDOM_PRECISION:
        return RandomPrecisionRuntime(tuple(runtimes), seeded_generator(seed))
    (runtime,) = runtimes
    pre = [preprocessor(t) for t in defense.pre]
    if defense.kind is DefenseKind.PREPROCESSOR:
        return PreprocessedRuntime(runtime, pre[0], seeded_generator(seed))
    if calib is None:
        raise ValueError(f"{defense.name}: a detector needs clean calibration data to set its threshold")
    return SqueezeDetector(runtime, tuple(pre), seeded_generator(seed)).fit(calib, defense.fpr)


def attacker_view(defense: Defense, models: Sequence[nn.Module], seed: int, eot_samples: int) -> nn.Module:
    """What an adaptive attack differentiates: BPDA/EOT through a preprocessor, every squeezed branch of a
    detector at once, or the ensemble's combiner itself (its mean softmax, or the vote's low-temperature
    surrogate)."""
    if defense.kind is DefenseKind.ENSEMBLE:
        return SoftVote(models, EnsembleRuntime.VOTE_TEMPERATURE) if defense.vote else LogMeanProbability(models)
    if defense.kind is DefenseKind.RANDOM_PRECISION:
        # EOT over the widths, computed exactly: the expected softmax under the uniform draw is the members'
        # mean softmax, so there is nothing to sample (eot_samples draws would only estimate it).
        return LogMeanProbability(models)
    (model,) = models
    pre = [preprocessor(t) for t in defense.pre]
    if defense.kind is DefenseKind.PREPROCESSOR:
        draws = eot_samples if defense.randomised else 1
        return MeanLogProbability([Preprocessed(model, pre[0], seed)], draws=draws)
    return MeanLogProbability([model, *(Preprocessed(model, s, seed) for s in pre)])


def detection_view(defense: Defense, model: nn.Module, seed: int) -> DetectionScore:
    """A detector's score as the detector-aware attack differentiates it."""
    if defense.kind is not DefenseKind.DETECTOR:
        raise ValueError(f"{defense.name}: only a detector has a detection score")
    return DetectionScore(model, tuple(preprocessor(t) for t in defense.pre), seed)
