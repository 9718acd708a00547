"""Where every artefact lives; dvc.yaml declares the same paths."""

from pathlib import Path

PREPARED = Path("data/prepared")
FLOAT_MODELS = Path("models/float")
QUANT_MODELS = Path("models/quant")
ADVERSARIAL = Path("data/adversarial")
REPORTS = Path("reports")
# Wall-clock figures vary run to run, so they live outside the cached model folders (whose bytes
# must depend only on their inputs) in small uncached files the report reads.
TIMING = REPORTS / "timing"


def float_dir(model_id: str) -> Path:
    return FLOAT_MODELS / model_id


def quant_dir(model_id: str, quantizer: str) -> Path:
    return QUANT_MODELS / f"{model_id}.{quantizer}"


def adversarial_dir(source: str) -> Path:
    return ADVERSARIAL / source


def timing_path(stage: str, name: str) -> Path:
    return TIMING / stage / f"{name}.json"
