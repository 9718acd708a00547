"""Where every artefact lives; dvc.yaml declares the same paths."""

from pathlib import Path

from qrobust.pipeline.model_id import ModelId

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


def model_dir(model: ModelId, *, defended: bool = False) -> Path:
    """models/float/<arch>-<recipe> or models/quant/<arch>-<recipe>/<quantizer> (under models/defended
    for the defense study's recipe models). A float model's quantized models share one folder, the output of
    the one stage that makes them all."""
    if model.quantizer is None:
        return (DEFENDED_MODELS / "float" if defended else FLOAT_MODELS) / str(model)
    return quantized_dir(model.parent, defended=defended) / model.quantizer


def quantized_dir(parent: ModelId, *, defended: bool = False) -> Path:
    """models/quant/<arch>-<recipe>: every quantized model of the float model ``parent``."""
    return (DEFENDED_MODELS / "quant" if defended else QUANT_MODELS) / str(parent)


def adversarial_dir(attack: str) -> Path:
    return ADVERSARIAL / attack


def set_file(threat: str, source: object) -> Path:
    """An adversarial set's place inside its attack's folder: <threat_model>/<source>.npz."""
    return Path(threat) / f"{source}.npz"


def adversarial_set(attack: str, threat: str, source: object) -> Path:
    """data/adversarial/<attack>/<threat_model>/<source>.npz: the set attack@<attack> made on ``source``."""
    return adversarial_dir(attack) / set_file(threat, source)


def timing_path(stage: str, name: str) -> Path:
    return TIMING / stage / f"{name}.json"
