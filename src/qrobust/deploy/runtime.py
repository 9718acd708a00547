"""Deployed runtimes: ONNX export of float models and ONNX Runtime sessions that score inputs.

Every number in the study is measured on a model as it would be deployed, i.e. through an
ONNX Runtime session, never only on the torch graph it came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from qrobust.pipeline.errors import VerificationError
from qrobust.pipeline.io import atomic_path

INPUT_NAME, OUTPUT_NAME = "input", "logits"


class Runtime(Protocol):
    """A deployed model: float32 logits for inputs in [0, 1]. ONNX Runtime sessions, INC modules and the
    Foolbox victims built on them all have this shape."""

    def logits(self, x: np.ndarray) -> np.ndarray: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def batches(x: Any, size: int) -> Iterator[Any]:
    """Consecutive slices of at most ``size`` rows."""
    return (x[i : i + size] for i in range(0, len(x), size))


def batched(fn: Callable[[np.ndarray], Any], x: np.ndarray, size: int) -> np.ndarray:
    """``fn`` on consecutive batches of ``x``, its outputs (arrays or tensors) joined as one float32 array."""
    parts = [
        part.detach().cpu().numpy() if isinstance(part, torch.Tensor) else part for part in map(fn, batches(x, size))
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)


STACK_TRACE = "pkg.torch.onnx.stack_trace"


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Float torch logits, model in eval mode, inputs checked to lie in [0, 1]."""
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0, "inputs must lie in [0, 1]"
    model.eval()
    device = next(model.parameters()).device
    return batched(lambda b: model(torch.from_numpy(b).to(device)), x, batch_size)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> None:
    """Export with torch's exporter (torch.export based) and a dynamic batch axis.

    The exporter records in each node the Python stack that made it: absolute paths of the checkout
    and the virtual environment, and source line numbers. Those entries are dropped, so the same
    weights give the same bytes from any clone and after edits that move no computation."""
    import onnx

    model = model.cpu().eval()
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(path) as tmp:
        program = torch.onnx.export(
            model,
            (example.cpu(),),
            dynamo=True,
            external_data=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
        )
        proto = program.model_proto
        for node in [*proto.graph.node, *(n for f in proto.functions for n in f.node)]:
            kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
        onnx.save(proto, str(tmp))


class OrtRuntime:
    """An ONNX Runtime CPU session behind a numpy ``logits(x)`` call."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # As many threads as torch runs (its default, like ONNX Runtime's, is one per physical core): a
        # process that shares the cores with others (qrobust.pipeline.workers) sets torch's count for both.
        options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    # Measured on 2 CPU cores: ONNX Runtime is fastest at about 256 images a call.
    def logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return batched(lambda b: self.session.run(None, {self.input_name: b})[0], x, batch_size)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)

    def latency_ms(self, example: np.ndarray, *, repeats: int = 20) -> float:
        """Median wall time of one ``session.run`` on ``example`` after a warm-up run."""
        feed: dict[str, Any] = {self.input_name: np.ascontiguousarray(example, dtype=np.float32)}
        self.session.run(None, feed)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.session.run(None, feed)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)


class TorchRuntime:
    """A deployed torch module (an INC-converted model) behind the same numpy ``logits(x)`` call."""

    def __init__(self, module: nn.Module, path: str | Path) -> None:
        self.module = module
        self.path = Path(path)

    # Eager torch graphs run 2-3x faster per image at 64 images a call than at 1000 (their
    # intermediate tensors stay in cache); measured on INC's int8 and weight-only modules.
    @torch.no_grad()
    def logits(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return batched(lambda b: self.module(torch.from_numpy(b)).float(), x, batch_size)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)

    @torch.no_grad()
    def latency_ms(self, example: np.ndarray, *, repeats: int = 20) -> float:
        batch = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
        self.module(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.module(batch)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)


def latencies(runtime: OrtRuntime | TorchRuntime, x: np.ndarray, *, repeats: int = 20) -> dict[str, float]:
    """ONNX Runtime latency at batch 1 and batch 256 (images repeated from ``x`` as needed)."""
    batch256 = np.resize(x, (256, *x.shape[1:]))
    return {
        "latency_ms_batch1": runtime.latency_ms(x[:1], repeats=repeats),
        "latency_ms_batch256": runtime.latency_ms(batch256, repeats=repeats),
    }


def verify_export(model: nn.Module, runtime: OrtRuntime, x: np.ndarray, *, atol: float = 1e-3) -> dict[str, float]:
    """The ONNX export must give the float model's logits and predictions; fail loudly if not. The tolerance is
    ``atol`` on logits up to 1 in size, relative beyond: float32 rounding grows with the logits (LeNet trained
    quantization-aware at 2 bits has logits in the hundreds, where kernels' summation order alone moved them
    by 1.2e-3)."""

    reference = predict_logits(model, x)
    exported = runtime.logits(x)
    max_diff = float(np.abs(reference - exported).max())
    limit = atol * max(1.0, float(np.abs(reference).max()))
    agreement = float((reference.argmax(1) == exported.argmax(1)).mean())
    if max_diff > limit or agreement < 1.0:
        raise VerificationError(
            f"{runtime.path}: ONNX Runtime disagrees with torch (max |logit diff| {max_diff:.2e} > {limit:.2e}, "
            f"{atol} of the largest logit, at least {atol}; top-1 agreement {agreement:.4f})"
        )
    return {"onnx_max_abs_logit_diff": max_diff, "onnx_top1_agreement": agreement}
