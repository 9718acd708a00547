"""Latency and size of every model the pipeline built: float (torch eager, ONNX Runtime) vs each quantizer.

Run after `make repro` (or inside build/smoke after `make smoke`): `python benchmarks/runtime_latency.py`.
Prints one line per model; figures are medians of repeated runs on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from qrobust.backends import load_runtime, open_artefact
from qrobust.data import DATASETS, load_split
from qrobust.layout import FLOAT_MODELS, PREPARED, QUANT_MODELS
from qrobust.models import create_model, input_spec
from qrobust.runtime import OrtRuntime, latencies
from qrobust.settings import load_study


def torch_latency_ms(model: torch.nn.Module, x: np.ndarray, repeats: int) -> float:
    batch = torch.from_numpy(x)
    with torch.no_grad():
        model(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    dataset = DATASETS.get(load_study().prepare.dataset)
    spec = input_spec(dataset)
    x, _ = load_split(PREPARED / "eval.npz")
    batch256 = np.resize(x, (256, *x.shape[1:]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; latency in ms (median), batch 1 / batch 256")
    print(f"{'model':38s} {'runtime':14s} {'size KiB':>9s} {'b1':>8s} {'b256':>8s}")
    for float_dir in sorted(p for p in FLOAT_MODELS.iterdir() if p.is_dir()):
        model = create_model(float_dir.name.split("-", 1)[0], spec)
        model.load_state_dict(torch.load(float_dir / "model.pt", weights_only=True))
        model.eval()
        eager = (torch_latency_ms(model, x[:1], args.repeats), torch_latency_ms(model, batch256, args.repeats))
        print(
            f"{float_dir.name:38s} {'torch eager':14s} {(float_dir / 'model.pt').stat().st_size / 1024:9.0f} {eager[0]:8.3f} {eager[1]:8.2f}"
        )
        lat = latencies(OrtRuntime(float_dir / "model.onnx"), x, repeats=args.repeats)
        row(float_dir.name, "onnxruntime", (float_dir / "model.onnx").stat().st_size, lat)
        for folder in sorted(q for q in QUANT_MODELS.glob(f"{float_dir.name}.*") if q.is_dir()):
            size = sum(p.stat().st_size for p in folder.iterdir() if p.name not in ("artefact.json", "metrics.json"))
            lat = latencies(load_runtime(folder), x, repeats=args.repeats)
            row(folder.name, open_artefact(folder)[0].info["backend"], size, lat)


def row(name: str, runtime: str, size: int, lat: dict[str, float]) -> None:
    print(
        f"{name:38s} {runtime:14s} {size / 1024:9.0f} {lat['latency_ms_batch1']:8.3f} {lat['latency_ms_batch256']:8.2f}"
    )


if __name__ == "__main__":
    main()
