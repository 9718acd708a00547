"""Which libraries make training's bytes depend on the CPU's instruction set, and what capping them costs.

Torch on x86 computes with three libraries that each pick their code path by the CPU's instruction set:
ATen's own vectorised kernels (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``) and
MKL's products (``MKL_CBWR``). Each is read once, at the first call, so every setting trains in its own
interpreter: one epoch of ``training.fit`` on the first 10,000 Fashion-MNIST training images, seed 0.
Each setting prints its seconds per epoch and a hash of the trained weights. A setting whose hash equals
the default's leaves the bytes alone; two runs of one setting must agree.

    python benchmarks/portable_mode.py [--archs lenet dscnn]

No study outputs are needed (the dataset is read from params.yaml's data.root).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2,STRICT"}
SSE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "SSE4_2,STRICT"}
# (label, environment, oneDNN on)
SETTINGS = (
    ("default", {}, True),
    ("ATen at AVX2", {"ATEN_CPU_CAPABILITY": "avx2"}, True),
    ("oneDNN at AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
    ("MKL at AVX2", {"MKL_CBWR": "AVX2,STRICT"}, True),
    ("all three at AVX2", AVX2, True),
    ("all three at AVX2, again", AVX2, True),
    ("ATen and MKL at AVX2, oneDNN off", AVX2, False),
    ("all three at SSE4", SSE, True),
)

_PROBE = """
import hashlib, json, sys, time
import numpy as np, torch
from qrobust.pipeline.blas import thread_invariant_products
thread_invariant_products()
from qrobust.data.readers import read_idx_release
from qrobust.models import InputSpec, create_model
from qrobust.pipeline.device import seed_everything
from qrobust.settings.study import load_study
from qrobust.training.loop import TrainConfig, fit
from qrobust.training.recipes import Standard

arch, onednn = sys.argv[1], sys.argv[2] == "1"
torch.backends.mkldnn.enabled = onednn
root = load_study(sys.argv[3]).prepare.root
train, _ = read_idx_release(root.parent, root.name)
x, y = train.x[:10000].astype(np.float32) / 255, train.y[:10000]
seed_everything(0)
model = create_model(arch, InputSpec(1, 28, 10, (0.286,), (0.353,)))
start = time.perf_counter()
fit(model, Standard(), x, y, TrainConfig(epochs=1, batch_size=128, lr=0.003, weight_decay=0.0, seed=0, device="cpu"))
seconds = time.perf_counter() - start
weights = b"".join(v.detach().contiguous().numpy().tobytes() for v in model.state_dict().values())
capability = torch.backends.cpu.get_cpu_capability()
print(json.dumps({"seconds": seconds, "hash": hashlib.sha256(weights).hexdigest()[:16], "capability": capability}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["lenet", "dscnn"])
    args = parser.parse_args()
    variables = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
    base = {k: v for k, v in os.environ.items() if k not in variables}
    base["PYTHONPATH"] = str(ROOT / "src")
    print("| arch | setting | ATen path | seconds / epoch | x default | weights hash | bytes |")
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs:
        reference: dict | None = None
        for label, env, onednn in SETTINGS:
            command = [sys.executable, "-c", _PROBE, arch, "1" if onednn else "0", str(ROOT / "params.yaml")]
            done = subprocess.run(command, env={**base, **env}, capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.splitlines()[-1])
            reference = reference or run
            same = "as default" if run["hash"] == reference["hash"] else "differ"
            print(
                f"| {arch} | {label} | {run['capability']} | {run['seconds']:.2f} | "
                f"{run['seconds'] / reference['seconds']:.2f}x | {run['hash']} | {same} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
