"""The quantizers params may name, as data: backend, nominal widths and options (no torch, no ONNX).

Params are checked against this catalogue in milliseconds; ``quantization.quantizers`` builds the
quantizer itself from the options checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qrobust.pipeline.errors import ConfigError
from qrobust.pipeline.params import boolean, check_options, choice, positive_int
from qrobust.pipeline.registry import Registry


class CalibrationMethod(Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class WeightOnlyAlgorithm(Enum):
    RTN = "rtn"
    GPTQ = "gptq"


PLACEBO_BITS = 16


@dataclass(frozen=True)
class QuantizerEntry:
    name: str
    backend: str  # its entry in qrobust.deploy.backends.BACKENDS
    weight_bits: int  # nominal; the artefact's metrics measure what was stored
    activation_bits: int  # 32: weight-only, activations stay float
    parse: Callable[[Mapping[str, Any], str], dict[str, Any]]  # options -> checked keyword arguments

    @property
    def placebo(self) -> bool:
        """16 bits or more for weights and activations: a negative control, not a quantized model."""
        return min(self.weight_bits, self.activation_bits) >= PLACEBO_BITS


def _ort(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    check_options(options, {"per_channel", "calibrate_method", "reduce_range"}, key)
    return {
        "per_channel": boolean(options.get("per_channel", True), f"{key}.per_channel"),
        "calibrate_method": choice(
            options.get("calibrate_method", "minmax"), f"{key}.calibrate_method", CalibrationMethod
        ),
        "reduce_range": boolean(options.get("reduce_range", True), f"{key}.reduce_range"),
    }


def _none(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    check_options(options, set(), key)
    return {}


def _weight_only(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    check_options(options, {"algorithm", "group_size", "bits"}, key)
    bits = options.get("bits", 4)
    if bits != 4:
        raise ConfigError(f"{key}.bits: expected 4 (this quantizer is 4-bit weight-only), got {bits!r}")
    algorithm = choice(options.get("algorithm", "rtn"), f"{key}.algorithm", WeightOnlyAlgorithm)
    if algorithm is WeightOnlyAlgorithm.GPTQ:
        # Measured with neural-compressor 3.10: its GPTQ (Frantar et al. 2023) quantizes transformer
        # blocks only; on these CNNs it finds none and fails inside convert with an IndexError.
        raise ConfigError(
            f"{key}.algorithm: 'gptq' is not available for these architectures: INC 3.10's GPTQ runs only on "
            "stacks of transformer blocks; use 'rtn'"
        )
    return {"group_size": positive_int(options.get("group_size", 32), f"{key}.group_size")}


QUANTIZERS: Registry[QuantizerEntry] = Registry("quantizer")
for _entry in (
    QuantizerEntry("ort_int8", "onnxruntime", 8, 8, _ort),
    QuantizerEntry("ort_w4a8", "onnxruntime", 4, 8, _ort),
    # The negative control: the same ONNX Runtime QDQ path at 16 bits, numerically the float model (its
    # rounding step is 1/65535 of each tensor's range). No claim about an effect of quantization may hold on it.
    QuantizerEntry("ort_w16a16", "onnxruntime", 16, 16, _ort),
    # The bit-width sweep: weights and activations at one width each, in 8-bit types held to the narrower
    # grid (quantization.restrict), beside the native 8- and 4-bit entries.
    *(QuantizerEntry(f"ort_w{b}a{b}", "onnxruntime", b, b, _ort) for b in (2, 3, 4, 5, 6)),
    QuantizerEntry("inc_int8", "inc_pt2e", 8, 8, _none),
    QuantizerEntry("inc_w4", "inc_woq", 4, 32, _weight_only),
):
    QUANTIZERS.register(_entry.name)(_entry)


def parse_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``quantize.options.<name>`` checked: the keyword arguments its quantizer is built with."""
    return QUANTIZERS.get(name, key="quantize.quantizers").parse(options, f"quantize.options.{name}")
