"""Input-preprocessing defenses (Xu et al. 2018, Guo et al. 2018, Xie et al. 2018): the transform, and its BPDA gradient."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.nn import functional as F

from qrobust.defenses.catalogue import Transform
from qrobust.pipeline.errors import ConfigError


class Preprocessor(Protocol):
    randomised: bool  # draws randomness each call: an adaptive attack needs EOT
    differentiable: bool  # has useful gradients: otherwise an adaptive attack needs BPDA

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class BitDepth:
    """Colour-depth reduction to ``bits`` bits, a feature squeezer (Xu, Evans, Qi 2018)."""

    bits: int
    randomised = False
    differentiable = False  # rounding: zero gradient almost everywhere

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


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bpda(pre: Preprocessor, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The preprocessed input with the preprocessor's own gradient, or, when it has none, the identity's."""
    if pre.differentiable:
        return pre.transform(x, generator)
    with torch.no_grad():
        out = pre.transform(x, generator)
    return x + (out - x).detach()


PREPROCESSORS: dict[str, type] = {
    "bit_depth": BitDepth,
    "median": MedianSmoothing,
    "jpeg": Jpeg,
    "gaussian_noise": GaussianNoise,
    "resize_pad": ResizePad,
}


def preprocessor(transform: Transform) -> Preprocessor:
    """The code of one transform of the catalogue."""
    return PREPROCESSORS[transform.name](transform.value)  # type: ignore[no-any-return]
