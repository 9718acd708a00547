"""Post-training quantizers behind one registry; params pick which run and with what options.

A quantizer turns a float ONNX model plus calibration images (drawn from the training data, never
from test data) into a deployed artefact that an ``OrtRuntime`` can score.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qrobust.config import boolean, choice, positive_int
from qrobust.errors import ConfigError
from qrobust.io import atomic_path
from qrobust.registry import Registry


class Quantizer(Protocol):
    weight_bits: int
    activation_bits: int

    def quantize(self, float_onnx: Path, calib_x: np.ndarray, output: Path) -> None: ...


QUANTIZERS: Registry[Callable[[Mapping[str, Any]], Quantizer]] = Registry("quantizer")


class CalibrationMethod(Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


def _check_keys(name: str, options: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"quantize.options.{name}: unknown keys {unknown}; allowed keys: {sorted(allowed)}")


class _CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator (its CalibrationDataReader protocol)."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int) -> None:
        self._batches: Iterator[np.ndarray] = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        self.input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


@dataclass(frozen=True)
class OrtStaticQDQ:
    """ONNX Runtime static post-training quantization in QDQ format (activations uint8, weights int8).

    ``reduce_range`` quantizes weights to 7 bits, which ONNX Runtime documents for x86 CPUs
    without VNNI, where u8s8 kernels can saturate.
    """

    per_channel: bool = True
    calibrate_method: CalibrationMethod = CalibrationMethod.MINMAX
    reduce_range: bool = True
    weight_bits: int = 8
    activation_bits: int = 8

    def quantize(self, float_onnx: Path, calib_x: np.ndarray, output: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        method = {
            CalibrationMethod.MINMAX: OrtMethod.MinMax,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy,
            CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        }[self.calibrate_method]
        with tempfile.TemporaryDirectory() as scratch, atomic_path(output) as tmp:
            # Shape inference and BatchNorm folding first, as ONNX Runtime's quantization guide asks.
            prepared = Path(scratch) / "preprocessed.onnx"
            quant_pre_process(str(float_onnx), str(prepared))
            quantize_static(
                str(prepared),
                str(tmp),
                _CalibrationReader("input", calib_x, 250),
                quant_format=QuantFormat.QDQ,
                per_channel=self.per_channel,
                reduce_range=self.reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
            )


@QUANTIZERS.register("ort_int8")
def _ort_int8(options: Mapping[str, Any]) -> Quantizer:
    _check_keys("ort_int8", options, {"per_channel", "calibrate_method", "reduce_range"})
    return OrtStaticQDQ(
        per_channel=boolean(options.get("per_channel", True), "quantize.options.ort_int8.per_channel"),
        calibrate_method=choice(
            options.get("calibrate_method", "minmax"), "quantize.options.ort_int8.calibrate_method", CalibrationMethod
        ),
        reduce_range=boolean(options.get("reduce_range", True), "quantize.options.ort_int8.reduce_range"),
    )


def create_quantizer(name: str, options: Mapping[str, Any]) -> Quantizer:
    return QUANTIZERS.get(name, key="quantize.quantizers")(options)


def calibration_subset(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A seeded subset of the calibration split (all of it when ``size`` exceeds it)."""
    positive_int(size, "quantize.calib_samples")
    if size >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).permutation(len(x))[:size])]
