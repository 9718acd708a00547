"""Defended systems as deployed: a preprocessor, a detector or an ensemble in front of the deployed runtimes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from qrobust.defenses.catalogue import REJECTED
from qrobust.defenses.preprocessors import Preprocessor, apply
from qrobust.deploy.runtime import Runtime


@dataclass
class PreprocessedRuntime:
    """The preprocessor in front of a runtime; a randomised one draws afresh on every query."""

    runtime: Runtime
    pre: Preprocessor
    generator: torch.Generator

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.runtime.logits(apply(self.pre, x, self.generator)).argmax(1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    return F.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=1).numpy()


@dataclass
class SqueezeDetector:
    """Feature squeezing as a detector (Xu, Evans, Qi 2018): an input is flagged when the L1 distance
    between the softmax of the runtime on it and on a squeezed copy, largest over the squeezers,
    exceeds ``threshold`` (set by ``fit`` to a target false-positive rate on clean data)."""

    runtime: Runtime
    squeezers: tuple[Preprocessor, ...]
    generator: torch.Generator
    threshold: float = np.inf
    threshold_fpr: float = np.nan  # the share of the clean data ``fit`` saw that lies above the threshold

    def scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels on the plain input, detection score per input)."""
        logits = self.runtime.logits(x)
        p = _softmax(logits)
        score = np.zeros(len(x), dtype=np.float64)
        for s in self.squeezers:
            q = _softmax(self.runtime.logits(apply(s, x, self.generator)))
            score = np.maximum(score, np.abs(p - q).sum(axis=1))
        return logits.argmax(1), score

    def fit(self, x_clean: np.ndarray, fpr: float) -> SqueezeDetector:
        """Threshold at the (1 - fpr) quantile of clean scores: at most ``fpr`` of them lie above it."""
        _, score = self.scores(x_clean)
        self.threshold = float(np.quantile(score, 1.0 - fpr, method="higher"))
        self.threshold_fpr = float((score > self.threshold).mean())
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        labels, score = self.scores(x)
        return np.where(score > self.threshold, REJECTED, labels)


@dataclass
class EnsembleRuntime:
    """Float and quantized runtimes combined (Bernhard et al. 2019): the mean softmax, or a majority
    vote of labels whose ties go to the larger mean softmax."""

    members: tuple[Runtime, ...]
    vote: bool

    # The temperature of the vote's differentiable surrogate (``SoftVote``). On members whose logits
    # span a few units, 0.05 agreed with the vote on 95 to 99.5% of inputs and 0.01 on 98.8 to 99.9%
    # (tests/test_defenses.py's members: 99.9%); the study records the agreement per ensemble.
    VOTE_TEMPERATURE = 0.01

    def predict(self, x: np.ndarray) -> np.ndarray:
        probs = np.stack([_softmax(m.logits(x)) for m in self.members])
        mean = probs.mean(axis=0)
        if not self.vote:
            return mean.argmax(1)
        votes = np.zeros_like(mean)
        for p in probs:
            votes[np.arange(len(x)), p.argmax(1)] += 1.0
        return (votes + mean / len(self.members)).argmax(1)


@dataclass
class RandomPrecisionRuntime:
    """Random-precision inference (Fu et al. 2021): every input of every query is answered by one member,
    drawn uniformly from ``generator`` afresh each time, so asking twice may get two widths' answers."""

    members: tuple[Runtime, ...]
    generator: torch.Generator

    def choices(self, n: int) -> np.ndarray:
        """The member answering each of ``n`` inputs: a fresh uniform draw."""
        return torch.randint(len(self.members), (n,), generator=self.generator).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        chosen = self.choices(len(x))
        labels = np.empty(len(x), dtype=np.int64)
        for k, member in enumerate(self.members):
            rows = np.flatnonzero(chosen == k)
            if rows.size:
                labels[rows] = member.logits(x[rows]).argmax(1)
        return labels
