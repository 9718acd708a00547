"""Where every artefact lives; dvc.yaml declares the same paths."""

from pathlib import Path

PREPARED = Path("data/prepared")
FLOAT_MODELS = Path("models/float")
QUANT_MODELS = Path("models/quant")
# Models of the train-based defenses (defend.recipes) live apart, so that the attack suite's stages,
# which depend on models/float and models/quant, do not re-run when a defense recipe changes.
DEFENDED_MODELS = Path("models/defended")
ADVERSARIAL = Path("data/adversarial")
REPORTS = Path("reports")
# Wall-clock figures vary run to run, so they live outside the cached model folders (whose bytes
# must depend only on their inputs) in small uncached files the report reads.
TIMING = REPORTS / "timing"


def float_dir(model_id: str, *, defended: bool = False) -> Path:
    return (DEFENDED_MODELS / "float" if defended else FLOAT_MODELS) / model_id


def quant_dir(model_id: str, quantizer: str, *, defended: bool = False) -> Path:
    return (DEFENDED_MODELS / "quant" if defended else QUANT_MODELS) / f"{model_id}.{quantizer}"


def adversarial_dir(source: str) -> Path:
    return ADVERSARIAL / source


def timing_path(stage: str, name: str) -> Path:
    return TIMING / stage / f"{name}.json"
