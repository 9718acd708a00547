"""Adversarial attacks behind one registry; Foolbox 3 (Rauber et al. 2017, 2020) is the engine.

An entry names the Foolbox attack, its norm and its hyper-parameters with defaults; params may
override only those keys. ``run_attack`` does the shared work once: batching, seeding, the epsilon
loop, and the check that every example lies in [0, 1] and within epsilon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from qrobust.errors import ConfigError
from qrobust.registry import Registry


class Norm(Enum):
    L0 = "l0"
    L1 = "l1"
    L2 = "l2"
    LINF = "linf"


@dataclass(frozen=True)
class AttackEntry:
    norm: Norm
    foolbox_class: str
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def build(self, options: Mapping[str, Any], key: str) -> Any:
        import foolbox

        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ConfigError(f"{key}: unknown options {unknown}; allowed options: {sorted(self.defaults)}")
        return getattr(foolbox.attacks, self.foolbox_class)(**{**self.defaults, **options})


ATTACKS: Registry[AttackEntry] = Registry("attack")

ATTACKS.register("fgsm")(AttackEntry(Norm.LINF, "FGSM"))  # Goodfellow et al. 2015
ATTACKS.register("bim")(  # Kurakin et al. 2017
    AttackEntry(Norm.LINF, "LinfBasicIterativeAttack", MappingProxyType({"steps": 10, "rel_stepsize": 0.2}))
)
ATTACKS.register("linf_pgd")(  # Madry et al. 2018
    AttackEntry(Norm.LINF, "LinfPGD", MappingProxyType({"steps": 20, "rel_stepsize": 0.1, "random_start": True}))
)
ATTACKS.register("l2_pgd")(
    AttackEntry(Norm.L2, "L2PGD", MappingProxyType({"steps": 20, "rel_stepsize": 0.1, "random_start": True}))
)


def perturbation_norms(x_adv: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample L0 (changed pixels), L1, L2 and Linf sizes of ``x_adv - x``; leading axes kept."""
    delta = (x_adv - x).reshape(*x_adv.shape[: x_adv.ndim - x.ndim + 1], -1).astype(np.float64)
    return {
        "l0": (np.abs(delta) > 0).sum(-1).astype(np.float32),
        "l1": np.abs(delta).sum(-1).astype(np.float32),
        "l2": np.sqrt((delta**2).sum(-1)).astype(np.float32),
        "linf": np.abs(delta).max(-1).astype(np.float32),
    }


def run_attack(
    model: nn.Module,
    name: str,
    options: Mapping[str, Any],
    epsilons: tuple[float, ...],
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    key: str = "attack",
) -> np.ndarray:
    """Adversarial examples of shape (len(epsilons), *x.shape), float32 in [0, 1]."""
    import foolbox

    entry = ATTACKS.get(name, key=key)
    attack = entry.build(options, f"{key}.{name}")
    model = model.to(device).eval()
    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=device)
    torch.manual_seed(seed)
    out = np.empty((len(epsilons), *x.shape), dtype=np.float32)
    for start in tqdm(range(0, len(x), batch_size), desc=name, disable=None, leave=False):
        xb = torch.from_numpy(x[start : start + batch_size]).to(device)
        yb = torch.from_numpy(y[start : start + batch_size]).to(device)
        _, clipped, _ = attack(fmodel, xb, yb, epsilons=list(epsilons))
        for i, adv in enumerate(clipped):
            out[i, start : start + len(xb)] = adv.detach().cpu().numpy()
    _check_bounds(out, x, epsilons, entry.norm, name)
    return out


def _check_bounds(x_adv: np.ndarray, x: np.ndarray, epsilons: tuple[float, ...], norm: Norm, name: str) -> None:
    if x_adv.min() < 0.0 or x_adv.max() > 1.0:
        raise AssertionError(f"{name}: adversarial examples leave [0, 1]")
    sizes = perturbation_norms(x_adv, x)[norm.value]
    for eps, row in zip(epsilons, sizes, strict=True):
        if row.max() > eps * (1 + 1e-4) + 1e-6:
            raise AssertionError(f"{name}: {norm.value} perturbation {row.max():.5f} exceeds epsilon {eps}")
