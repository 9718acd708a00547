"""The adversarial-set file, ``data/adversarial/<attack>/<threat_model>/<source>.npz``: the one module that
writes it (attack@ stages) and reads it (evaluate, defend, analyse).

A set holds the adversarial examples for every epsilon of its attack's grid (and a minimisation attack's
unclipped output at epsilon inf), the seeded subset they came from, which samples were attacked (the
source classified them correctly), per-sample L0/L1/L2/Linf sizes and the queries per attacked sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qrobust.attacks.threats import NORMS, ThreatModel
from qrobust.pipeline.io import load_npz, save_npz
from qrobust.pipeline.model_id import ModelId


@dataclass(frozen=True)
class AdversarialSet:
    attack: str
    norm: str
    threat_model: ThreatModel  # how the set was made on its source
    source: ModelId  # the deployed model the set was made on (or on whose twin)
    index: np.ndarray  # (N,) positions in the evaluation subset
    labels: np.ndarray  # (N,) their labels
    epsilons: tuple[float, ...]
    x_adv: np.ndarray  # (len(epsilons), N, C, H, W)
    sizes: Mapping[str, np.ndarray]  # norm -> (len(epsilons), N) perturbation sizes
    queries_per_sample: float

    @classmethod
    def load(cls, path: Path) -> AdversarialSet:
        keys = ("attack", "norm", "threat_model", "source", "index", "y", "epsilons", "x_adv", "queries_per_sample")
        data = load_npz(path, required=(*keys, *(f"norm_{norm}" for norm in NORMS)))
        return cls(
            attack=str(data["attack"]),
            norm=str(data["norm"]),
            threat_model=ThreatModel(str(data["threat_model"])),
            source=ModelId.parse(str(data["source"])),
            index=data["index"],
            labels=data["y"],
            epsilons=tuple(data["epsilons"].tolist()),
            x_adv=data["x_adv"],
            sizes={norm: data[f"norm_{norm}"] for norm in NORMS},
            queries_per_sample=float(data["queries_per_sample"]),
        )

    def at(self, epsilons: Sequence[float]) -> AdversarialSet:
        """The same set restricted to ``epsilons`` (each must be in its grid)."""
        k = [self.epsilons.index(e) for e in epsilons]
        return replace(
            self,
            epsilons=tuple(epsilons),
            x_adv=self.x_adv[k],
            sizes={norm: v[k] for norm, v in self.sizes.items()},
        )


def save_set(
    path: Path,
    *,
    attack: str,
    norm: str,
    source: ModelId,
    threat: ThreatModel,
    index: np.ndarray,
    y: np.ndarray,
    epsilons: Sequence[float],
    x_adv: np.ndarray,
    attacked: np.ndarray,
    queries_per_sample: float,
    sizes: Mapping[str, np.ndarray],
) -> None:
    """Write one set (atomically, the same inputs giving the same bytes)."""
    save_npz(
        path,
        {
            "attack": np.asarray(attack),
            "norm": np.asarray(norm),
            "source": np.asarray(str(source)),
            "index": index,
            "y": y,
            "epsilons": np.asarray(epsilons, dtype=np.float64),
            "x_adv": x_adv,
            "attacked": attacked,
            "queries_per_sample": np.asarray(queries_per_sample),
            "threat_model": np.asarray(threat.value),
            **{f"norm_{k}": sizes[k] for k in NORMS},
        },
    )


def copy_set(source: Path, dest: Path, threat: ThreatModel) -> float:
    """The set at ``source`` under another threat model (the same examples); its queries per sample."""
    record = load_npz(source)
    record["threat_model"] = np.asarray(threat.value)
    save_npz(dest, record)
    return float(record["queries_per_sample"])
