"""Test-time defenses behind one registry: input preprocessors, the feature-squeezing detector and
float+quantized ensembles.

Each defense has two faces:

- the deployed one, which scores inputs on deployed runtimes (ONNX Runtime sessions, INC modules),
  built by ``deploy``; a detector's rejected inputs get the label ``REJECTED``;
- the attacker's one, ``attacker_view``: a differentiable torch module an adaptive attack runs on.
  A non-differentiable step is passed by BPDA (forward exact, backward identity; Athalye, Carlini,
  Wagner 2018), and a randomised one by EOT: the module averages the log-softmax over
  ``eot_samples`` fresh draws, so a gradient attack climbs the expected loss.

Preprocessors are written here in a few lines of torch each, rather than taken from ART's
``FeatureSqueezing``/``SpatialSmoothing``/``JpegCompression``: those wrap the same scipy and Pillow calls
but take ART's (x, y) calling convention and its own BPDA hooks, which only ART's attacks use. Here one
torch function per defense serves the deployed path and the Foolbox attack alike, so what is attacked is
exactly what is deployed. JPEG is Pillow's codec (libjpeg), as ART's is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.core.config import check_options, choice, name_list, number, positive_int
from qrobust.core.errors import ConfigError
from qrobust.core.quantizers import QUANTIZERS
from qrobust.core.registry import Registry
from qrobust.core.runtime import Runtime, batched

REJECTED = -1  # the label a detector gives an input it refuses to classify


class DefenseKind(Enum):
    PREPROCESSOR = "preprocessor"  # transforms inputs in front of the model
    DETECTOR = "detector"  # refuses inputs it flags
    ENSEMBLE = "ensemble"  # combines the float model and its quantized models


class Combine(Enum):
    AVERAGE = "average"  # mean softmax
    VOTE = "vote"  # majority of labels


class Preprocessor(Protocol):
    randomised: bool  # draws randomness each call: an adaptive attack needs EOT
    differentiable: bool  # has useful gradients: otherwise an adaptive attack needs BPDA

    @property
    def min_side(self) -> int:
        """The smallest image side (pixels) it works on; params asking more for the dataset are refused."""
        ...

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class BitDepth:
    """Colour-depth reduction to ``bits`` bits, a feature squeezer (Xu, Evans, Qi 2018)."""

    bits: int
    randomised = False
    differentiable = False  # rounding: zero gradient almost everywhere
    min_side = 1

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        levels = 2**self.bits - 1
        return torch.round(x * levels) / levels


@dataclass(frozen=True)
class MedianSmoothing:
    """Median filter over ``size`` x ``size`` windows per channel, reflecting at the border (the
    feature squeezer of Xu et al.; an even size puts the window's extra row and column after the pixel,
    as scipy's median_filter does, and takes the lower median)."""

    size: int
    randomised = False
    differentiable = True  # its gradient reaches the median pixel of each window (measured stronger than BPDA here)

    @property
    def min_side(self) -> int:
        return self.size  # reflect padding needs the image wider than the window

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        before, after = (self.size - 1) // 2, self.size // 2
        padded = F.pad(x, (before, after, before, after), mode="reflect")
        windows = padded.unfold(2, self.size, 1).unfold(3, self.size, 1)
        return windows.reshape(*x.shape, self.size * self.size).median(dim=-1).values


@dataclass(frozen=True)
class Jpeg:
    """JPEG compression at ``quality`` (Dziugaite et al. 2016; Guo et al. 2018), by Pillow's libjpeg."""

    quality: int
    randomised = False
    differentiable = False
    min_side = 1

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from PIL import Image

        pixels = (x.detach().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        out = np.empty(pixels.shape, dtype=np.float32)
        for i, image in enumerate(pixels):
            buffer = io.BytesIO()
            layout = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            Image.fromarray(layout).save(buffer, format="JPEG", quality=self.quality)
            decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
            out[i] = decoded[None] if image.shape[0] == 1 else decoded.transpose(2, 0, 1)
        return torch.from_numpy(out).to(x.device)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise of standard deviation ``sigma``, clipped to [0, 1], fresh each call
    (the randomised input of Liu et al. 2018 and of randomised smoothing's prediction, one draw)."""

    sigma: float
    randomised = True
    differentiable = True
    min_side = 1

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return (x + self.sigma * noise).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ResizePad:
    """Random resizing and padding (Xie et al. 2018): each image is resized (bilinear) to a random
    side in [min_size, H] and zero-padded back to H x W at a random offset. Xie et al. grow the image;
    these models have fixed input sizes, so it shrinks and pads instead."""

    min_size: int
    randomised = True
    differentiable = True

    @property
    def min_side(self) -> int:
        return self.min_size

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.min_size > min(h, w):
            raise ConfigError(f"resize_pad.min_size: {self.min_size} exceeds the input size {h}x{w}")
        sides = torch.randint(self.min_size, min(h, w) + 1, (n,), generator=generator)
        offsets = torch.rand((n, 2), generator=generator)
        out = torch.zeros_like(x)
        for side in sides.unique().tolist():
            rows = torch.nonzero(sides == side).flatten()
            resized = F.interpolate(x[rows], size=(side, side), mode="bilinear", align_corners=False)
            # Every image of the group pasted at its own offset in one indexed write (one autograd node,
            # where a write per image made as many; resize_pad's defense study took 91 s with those).
            corner = (offsets[rows] * (torch.tensor([h, w]) - side + 1)).long().to(x.device)  # int(): truncation
            span = torch.arange(side, device=x.device)
            top, left = corner[:, 0, None, None] + span[:, None], corner[:, 1, None, None] + span
            out[rows.to(x.device)[:, None, None], :, top, left] = resized.permute(0, 2, 3, 1)
        return out


def apply(pre: Preprocessor, x: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """The deployed preprocessor on a numpy batch. A randomised one draws from ``generator``, a stream the
    deployed system seeds once: a whole run is reproducible, yet two queries of the same input get
    independent draws (and the attacker's views hold streams of their own)."""
    with torch.no_grad():
        out = pre.transform(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), generator)
    return out.numpy().astype(np.float32, copy=False)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bpda(pre: Preprocessor, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The preprocessed input with the preprocessor's own gradient, or, when it has none, the identity's."""
    if pre.differentiable:
        return pre.transform(x, generator)
    with torch.no_grad():
        out = pre.transform(x, generator)
    return x + (out - x).detach()


class MeanLogProbability(nn.Module):
    """The mean over views of the input of each view's log-softmax, each view repeated ``draws`` times.

    The combined model an adaptive attack runs on. Its cross-entropy is, up to a normaliser, the mean
    of the views' cross-entropies, so a gradient attack climbs the expected loss: EOT over fresh random
    draws (Athalye, Engstrom, Ilyas, Kwok 2018), a detector's squeezed branches (an input that fools every
    branch alike is not flagged). The mean of probabilities instead weights
    each draw by its probability, and measured weaker against random resize-and-pad.
    """

    def __init__(self, views: Sequence[Callable[[torch.Tensor], torch.Tensor]], draws: int = 1) -> None:
        super().__init__()
        self.views, self.draws = list(views), draws
        # Registered so .to(device) and .eval() reach the underlying models.
        self.members = nn.ModuleList(v for v in self.views if isinstance(v, nn.Module))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = [F.log_softmax(view(x), dim=1) for view in self.views for _ in range(self.draws)]
        return torch.stack(logp).mean(dim=0)


class LogMeanProbability(nn.Module):
    """log of the mean softmax of the members: the deployed mean-softmax combiner, as an attacker
    differentiates it (its top-1 is the deployed label)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([F.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members))


class SoftVote(nn.Module):
    """A differentiable surrogate of the deployed majority vote (``EnsembleRuntime``): log of each
    member's softmax at ``temperature`` (which tends to its one-hot vote as the temperature falls),
    summed, plus the deployed tie-break (the mean softmax over the number of members). The vote itself
    has zero gradient almost everywhere; ``defenses.view_agreement`` measures how often the top-1s agree."""

    def __init__(self, members: Sequence[nn.Module], temperature: float) -> None:
        super().__init__()
        self.members, self.temperature = nn.ModuleList(members), temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = [m(x) for m in self.members]
        votes = torch.stack([F.softmax(z / self.temperature, dim=1) for z in logits]).sum(dim=0)
        tie_break = torch.stack([F.softmax(z, dim=1) for z in logits]).mean(dim=0) / len(logits)
        return torch.log(votes + tie_break)


class Preprocessed(nn.Module):
    """model(preprocess(x)) for the attacker: BPDA where the step has no gradient."""

    def __init__(self, model: nn.Module, pre: Preprocessor, seed: int) -> None:
        super().__init__()
        self.model, self.pre, self.generator = model, pre, _generator(seed)
        self.randomised = pre.randomised  # read by victims.draws_randomness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_bpda(self.pre, x, self.generator))


class DetectionScore(nn.Module):
    """The squeeze detector as an attacker differentiates it: ``(logits, score)``, the model's logits and
    the largest L1 distance between its softmax on the input and on each squeezed copy (BPDA through
    rounding), the score ``SqueezeDetector`` thresholds."""

    def __init__(self, model: nn.Module, squeezers: Sequence[Preprocessor], seed: int) -> None:
        super().__init__()
        self.model = model
        self.branches = nn.ModuleList(Preprocessed(model, s, seed) for s in squeezers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        p = F.softmax(logits, dim=1)
        distances = [(p - F.softmax(branch(x), dim=1)).abs().sum(dim=1) for branch in self.branches]
        return logits, torch.stack(distances).max(dim=0).values


def view_agreement(
    view: nn.Module, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, device: torch.device | str = "cpu"
) -> float:
    """The share of inputs ``x`` on which the attacker's view and the deployed system give the same label."""
    with torch.no_grad():
        logits = batched(lambda b: view(torch.from_numpy(np.ascontiguousarray(b)).to(device)), x, 250)
    return float((logits.argmax(1) == predict(x)).mean())


# ---- deployed systems: predict(x) -> labels ----------------------------------------------------


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


# ---- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Defense:
    """One configured test-time defense; ``deploy`` and ``attacker_view`` take what its kind needs."""

    name: str
    kind: DefenseKind
    pre: tuple[Preprocessor, ...] = ()  # the preprocessor, or a detector's squeezers
    fpr: float = 0.0  # detector: target false-positive rate on clean calibration data
    members: tuple[str, ...] = ()  # ensemble: "float" and quantizer names
    vote: bool = False  # ensemble: majority vote instead of mean softmax

    @property
    def randomised(self) -> bool:
        return any(p.randomised for p in self.pre)

    def check_input(self, size: int, key: str) -> None:
        """Refuse, before any compute, a preprocessor that cannot work on ``size`` x ``size`` images."""
        need = max((p.min_side for p in self.pre), default=1)
        if need > size:
            raise ConfigError(f"{key}: needs images of at least {need}x{need} pixels; the dataset's are {size}x{size}")

    def deploy(self, runtimes: Sequence[Runtime], seed: int, calib: np.ndarray | None = None) -> Any:
        """The deployed system (``predict(x) -> labels``): one runtime, or an ensemble's members in order.
        Its randomness, if any, is one stream seeded ``seed`` here and drawn from on every query."""
        if self.kind is DefenseKind.ENSEMBLE:
            return EnsembleRuntime(tuple(runtimes), self.vote)
        (runtime,) = runtimes
        if self.kind is DefenseKind.PREPROCESSOR:
            return PreprocessedRuntime(runtime, self.pre[0], _generator(seed))
        if calib is None:
            raise ValueError(f"{self.name}: a detector needs clean calibration data to set its threshold")
        return SqueezeDetector(runtime, self.pre, _generator(seed)).fit(calib, self.fpr)

    def attacker_view(self, models: Sequence[nn.Module], seed: int, eot_samples: int) -> nn.Module:
        """What an adaptive attack differentiates: BPDA/EOT through a preprocessor, every squeezed
        branch of a detector at once, or the ensemble's combiner itself (its mean softmax, or the vote's
        low-temperature surrogate)."""
        if self.kind is DefenseKind.ENSEMBLE:
            return SoftVote(models, EnsembleRuntime.VOTE_TEMPERATURE) if self.vote else LogMeanProbability(models)
        (model,) = models
        if self.kind is DefenseKind.PREPROCESSOR:
            draws = eot_samples if self.randomised else 1
            return MeanLogProbability([Preprocessed(model, self.pre[0], seed)], draws=draws)
        branches = [model, *(Preprocessed(model, s, seed) for s in self.pre)]
        return MeanLogProbability(branches)

    def detection_view(self, model: nn.Module, seed: int) -> DetectionScore:
        """A detector's score as the detector-aware attack differentiates it."""
        if self.kind is not DefenseKind.DETECTOR:
            raise ValueError(f"{self.name}: only a detector has a detection score")
        return DetectionScore(model, self.pre, seed)


DEFENSES: Registry[Callable[[Mapping[str, Any], str], Defense]] = Registry("defense")


def _bits(options: Mapping[str, Any], key: str, default: int = 3) -> int:
    bits = positive_int(options.get("bits", default), f"{key}.bits")
    if bits > 8:
        raise ConfigError(f"{key}.bits: expected 1..8, got {bits}")
    return bits


def _window(options: Mapping[str, Any], key: str, name: str = "size", default: int = 2) -> int:
    size = positive_int(options.get(name, default), f"{key}.{name}")
    if size < 2 or size > 7:
        raise ConfigError(f"{key}.{name}: expected a window of 2..7 pixels, got {size}")
    return size


@DEFENSES.register("bit_depth")
def _bit_depth(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"bits"}, key)
    return Defense("bit_depth", DefenseKind.PREPROCESSOR, (BitDepth(_bits(options, key)),))


@DEFENSES.register("median")
def _median(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"size"}, key)
    return Defense("median", DefenseKind.PREPROCESSOR, (MedianSmoothing(_window(options, key)),))


@DEFENSES.register("jpeg")
def _jpeg(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"quality"}, key)
    quality = positive_int(options.get("quality", 75), f"{key}.quality")
    if quality > 95:
        raise ConfigError(f"{key}.quality: expected 1..95 (Pillow's useful range), got {quality}")
    return Defense("jpeg", DefenseKind.PREPROCESSOR, (Jpeg(quality),))


@DEFENSES.register("gaussian_noise")
def _gaussian_noise(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"sigma"}, key)
    sigma = number(options.get("sigma", 0.1), f"{key}.sigma", low=0.0, high=1.0, low_open=True)
    return Defense("gaussian_noise", DefenseKind.PREPROCESSOR, (GaussianNoise(sigma),))


@DEFENSES.register("resize_pad")
def _resize_pad(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"min_size"}, key)
    min_size = positive_int(options.get("min_size", 24), f"{key}.min_size")
    return Defense("resize_pad", DefenseKind.PREPROCESSOR, (ResizePad(min_size),))


@DEFENSES.register("squeeze_detector")
def _squeeze_detector(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"bits", "median_size", "fpr"}, key)
    squeezers = (BitDepth(_bits(options, key, 1)), MedianSmoothing(_window(options, key, "median_size")))
    fpr = number(options.get("fpr", 0.05), f"{key}.fpr", low=0.0, high=0.5, low_open=True)
    return Defense("squeeze_detector", DefenseKind.DETECTOR, squeezers, fpr=fpr)


@DEFENSES.register("ensemble")
def _ensemble(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"members", "combine"}, key)
    members = name_list(options.get("members", ["float", "ort_int8"]), f"{key}.members", {"float", *QUANTIZERS.names()})
    if len(members) < 2:
        raise ConfigError(f"{key}.members: an ensemble needs at least two members, got {list(members)}")
    combine = choice(options.get("combine", "average"), f"{key}.combine", Combine)
    return Defense("ensemble", DefenseKind.ENSEMBLE, members=members, vote=combine is Combine.VOTE)


def create_defense(name: str, options: Mapping[str, Any], key: str = "defend.defenses") -> Defense:
    return DEFENSES.get(name, key=key)(options, f"{key}.{name}")
