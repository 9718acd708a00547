"""Accuracy against bit width after post-training quantization: where the sweep needs training in the loop.

    python benchmarks/bit_sweep.py [--root .] [--archs lenet resnet8 dscnn] [--bits 2 3 4 5 6]

Quantizes each arch's standard float model of a finished study (``--root``: its models/ and data/) at each
width of the sweep (``ort_w<b>a<b>``: weights and activations narrowed from ONNX Runtime's 8-bit QDQ,
quantization.restrict) and at int8 (``ort_int8``), with the study's calibration subset, and prints per
model: validation accuracy (5,000 images) against the float model's, the measured weight grid (log2 of
the levels the widest tensor spans) and storage per weight, the straight-through twin's top-1 agreement
with its runtime on the evaluation subset, and seconds. Nothing is written to the study.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from qrobust.data.datasets import DATASETS
    from qrobust.data.splits import calibration_subset, load_split
    from qrobust.deploy.backends import load_runtime, load_twin, weight_census
    from qrobust.deploy.runtime import OrtRuntime
    from qrobust.models import create_model, input_spec
    from qrobust.quantization.quantizers import FloatModel, create_quantizer
    from qrobust.quantization.twins import GradMode, verify_twin
    from qrobust.settings.study import load_study

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--archs", nargs="+", default=["lenet", "resnet8", "dscnn"])
    parser.add_argument("--bits", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    args = parser.parse_args()
    study = load_study(str(args.root / "params.yaml"))
    settings = study.quantize
    prepared = args.root / "data" / "prepared"
    x_calib, _ = load_split(prepared / "calib.npz")
    x_val, y_val = load_split(prepared / "val.npz")
    x_eval, _ = load_split(prepared / "eval.npz")
    calib = calibration_subset(x_calib, settings.calib_samples, settings.seed)
    spec = input_spec(DATASETS.get(study.prepare.dataset))
    print("| model | val accuracy (float) | weight grid (bits) | stored bits / weight | ste twin agreement | seconds |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs:
        folder = args.root / "models" / "float" / f"{arch}-standard"
        module = create_model(arch, spec)
        module.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        float_model = FloatModel(module.eval(), folder / "model.onnx", arch, spec)
        float_accuracy = float((OrtRuntime(folder / "model.onnx").predict(x_val) == y_val).mean())
        for name in [f"ort_w{b}a{b}" for b in args.bits] + ["ort_int8"]:
            options = settings.options.get(name, {})
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch)
                start = time.perf_counter()
                create_quantizer(name, options).quantize(float_model, calib, out)
                runtime = load_runtime(out)
                accuracy = float((runtime.predict(x_val) == y_val).mean())
                twin = verify_twin(load_twin(out, GradMode.STE), runtime, x_eval, min_agreement=0.0, label=name)
                census = weight_census(out)
                seconds = time.perf_counter() - start
            print(
                f"| {arch}-standard.{name} | {100 * accuracy:.1f} ({100 * float_accuracy:.1f}) | "
                f"{census.weight_bits:.2f} | {census.bits_per_weight:.2f} | {twin['top1_agreement']:.4f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
