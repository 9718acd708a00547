"""The check behind ``core.blas``: which of a dense layer's products (M rows, K inputs, N outputs) give
different bits at one thread than at two, in each MKL reproducibility mode, on this CPU: the forward
``addmm`` (a sum over K), the input gradient ``g @ W`` (over N) and the weight gradient ``g.t() @ x``
(over M).

MKL reads ``MKL_CBWR`` once, at its first product, so every mode runs in its own interpreter; each prints
how many shapes of the grid differ for each product, the span of M, N and K among them, and its run time. No study outputs are
needed. ``python benchmarks/blas_shapes.py [MODE ...]`` (default: none set, AUTO,STRICT, AVX2,STRICT,
COMPATIBLE,STRICT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROWS = (1, 2, 4, 8, 12, 16, 22, 32, 48, 64, 100, 128, 250)
OUTPUTS = (4, 10, 16, 24, 32, 64, 128)
INPUTS = (8, 16, 64, 128, 256, 400, 576, 800)
MODES = ("", "AUTO,STRICT", "AVX2,STRICT", "COMPATIBLE,STRICT")
REPEATS = 4  # draws per shape: a product may differ for some values and not others

_PROBE = """
import json, sys, time
import torch

rows, outputs, inputs, repeats = json.loads(sys.argv[1])
products = {
    "forward": lambda x, w, b, g: torch.addmm(b, x, w.t()),
    "input gradient": lambda x, w, b, g: g @ w,
    "weight gradient": lambda x, w, b, g: g.t() @ x,
}
torch.manual_seed(0)
start, differ = time.perf_counter(), {name: [] for name in products}
for m in rows:
    for n in outputs:
        for k in inputs:
            draws = [(torch.randn(m, k), torch.randn(n, k), torch.randn(n), torch.randn(m, n)) for _ in range(repeats)]
            for name, product in products.items():
                for draw in draws:
                    bits = []
                    for threads in (1, 2):
                        torch.set_num_threads(threads)
                        bits.append(product(*draw).numpy().tobytes())
                    if bits[0] != bits[1]:
                        differ[name].append((m, n, k))
                        break
print(json.dumps({"differ": differ, "seconds": time.perf_counter() - start}))
"""


def probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if mode:
        env["MKL_CBWR"] = mode
    grid = json.dumps([ROWS, OUTPUTS, INPUTS, REPEATS])
    done = subprocess.run([sys.executable, "-c", _PROBE, grid], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(modes: list[str]) -> None:
    shapes = len(ROWS) * len(OUTPUTS) * len(INPUTS)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{cpu}; {shapes} shapes (M {ROWS}, N {OUTPUTS}, K {INPUTS}), {REPEATS} draws each", flush=True)
    for mode in modes:
        started = time.perf_counter()
        result = probe(mode)
        counts = []
        for name, differ in result["differ"].items():
            spans = (
                " ".join(f"{axis} {min(s)}-{max(s)}" for axis, s in zip("MNK", zip(*differ, strict=True), strict=False))
                if differ
                else ""
            )
            counts.append(f"{name} {len(differ)}" + (f" ({spans})" if differ else ""))
        print(
            f"MKL_CBWR={mode or '(unset)'}: of {shapes} shapes, differ: {', '.join(counts)}; "
            f"{result['seconds']:.1f} s (with start {time.perf_counter() - started:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODES))
