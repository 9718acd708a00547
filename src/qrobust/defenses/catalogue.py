"""Test-time defenses behind one registry: input preprocessors, the feature-squeezing detector and
float+quantized ensembles.

This module holds each defense's facts and options as data (no torch: params are checked against it in
milliseconds, and a stage imports only what it runs). ``defenses.system`` gives each defense two faces:

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.params import check_options, choice, name_list, number, positive_int
from qrobust.pipeline.registry import Registry
from qrobust.quantization.catalogue import QUANTIZERS

REJECTED = -1  # the label a detector gives an input it refuses to classify


class DefenseKind(Enum):
    PREPROCESSOR = "preprocessor"  # transforms inputs in front of the model
    DETECTOR = "detector"  # refuses inputs it flags
    ENSEMBLE = "ensemble"  # combines the float model and its quantized models
    RANDOM_PRECISION = "random_precision"  # answers each query with one of its widths, drawn at random


class Combine(Enum):
    AVERAGE = "average"  # mean softmax
    VOTE = "vote"  # majority of labels


@dataclass(frozen=True)
class Transform:
    """One input transform as data (``defenses.preprocessors`` holds the code): its name and its one setting."""

    name: str  # bit_depth | median | jpeg | gaussian_noise | resize_pad
    value: int | float  # bits, window size, JPEG quality, noise sigma or smallest resized side

    @property
    def randomised(self) -> bool:
        """It draws randomness at every call: an adaptive attack needs EOT."""
        return self.name in {"gaussian_noise", "resize_pad"}

    @property
    def min_side(self) -> int:
        """The smallest image side it works on (a median window reflects; a resize needs room to shrink)."""
        return int(self.value) if self.name in {"median", "resize_pad"} else 1


@dataclass(frozen=True)
class Defense:
    """One configured test-time defense, as data; ``defenses.system`` deploys it and builds the attacker's view."""

    name: str
    kind: DefenseKind
    pre: tuple[Transform, ...] = ()  # the preprocessor, or a detector's squeezers
    fpr: float = 0.0  # detector: target false-positive rate on clean calibration data
    members: tuple[str, ...] = ()  # ensemble: "float" and quantizer names
    vote: bool = False  # ensemble: majority vote instead of mean softmax

    @property
    def randomised(self) -> bool:
        return self.kind is DefenseKind.RANDOM_PRECISION or any(p.randomised for p in self.pre)

    @property
    def combines(self) -> bool:
        """It answers from several deployed models of one float model (an ensemble, random precision)."""
        return self.kind in (DefenseKind.ENSEMBLE, DefenseKind.RANDOM_PRECISION)

    def check_input(self, size: int, key: str) -> None:
        """Refuse, before any compute, a preprocessor that cannot work on ``size`` x ``size`` images."""
        need = max((p.min_side for p in self.pre), default=1)
        if need > size:
            raise ConfigError(f"{key}: needs images of at least {need}x{need} pixels; the dataset's are {size}x{size}")


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
    return Defense("bit_depth", DefenseKind.PREPROCESSOR, (Transform("bit_depth", _bits(options, key)),))


@DEFENSES.register("median")
def _median(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"size"}, key)
    return Defense("median", DefenseKind.PREPROCESSOR, (Transform("median", _window(options, key)),))


@DEFENSES.register("jpeg")
def _jpeg(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"quality"}, key)
    quality = positive_int(options.get("quality", 75), f"{key}.quality")
    if quality > 95:
        raise ConfigError(f"{key}.quality: expected 1..95 (Pillow's useful range), got {quality}")
    return Defense("jpeg", DefenseKind.PREPROCESSOR, (Transform("jpeg", quality),))


@DEFENSES.register("gaussian_noise")
def _gaussian_noise(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"sigma"}, key)
    sigma = number(options.get("sigma", 0.1), f"{key}.sigma", low=0.0, high=1.0, low_open=True)
    return Defense("gaussian_noise", DefenseKind.PREPROCESSOR, (Transform("gaussian_noise", sigma),))


@DEFENSES.register("resize_pad")
def _resize_pad(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"min_size"}, key)
    min_size = positive_int(options.get("min_size", 24), f"{key}.min_size")
    return Defense("resize_pad", DefenseKind.PREPROCESSOR, (Transform("resize_pad", min_size),))


@DEFENSES.register("squeeze_detector")
def _squeeze_detector(options: Mapping[str, Any], key: str) -> Defense:
    check_options(options, {"bits", "median_size", "fpr"}, key)
    squeezers = (
        Transform("bit_depth", _bits(options, key, 1)),
        Transform("median", _window(options, key, "median_size")),
    )
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


@DEFENSES.register("random_precision")
def _random_precision(options: Mapping[str, Any], key: str) -> Defense:
    """Random-precision inference (Fu et al., ICML 2021, "Double-Win Quant"): each query is answered by one
    of ``members`` (quantizer names, "float" allowed), drawn uniformly at random afresh for every input."""
    check_options(options, {"members"}, key)
    members = name_list(
        options.get("members", ["ort_int8", "ort_w4a8"]), f"{key}.members", {"float", *QUANTIZERS.names()}
    )
    if len(members) < 2:
        raise ConfigError(f"{key}.members: random precision needs at least two widths, got {list(members)}")
    return Defense("random_precision", DefenseKind.RANDOM_PRECISION, members=members)


def create_defense(name: str, options: Mapping[str, Any], key: str = "defend.defenses") -> Defense:
    return DEFENSES.get(name, key=key)(options, f"{key}.{name}")
