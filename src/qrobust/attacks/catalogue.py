"""Adversarial attacks behind one registry; Foolbox 3 (Rauber et al. 2017, 2020) is the engine.

An entry names the attack's factory, its norm, what it needs from the model (its ``Kind``) and its
hyper-parameters with defaults; params may override only those keys. ``craft`` does the shared work
once: the seeded subset, attacking only what the model gets right (RobustBench's protocol), batching,
the epsilon grid, query counting, and the check that every example lies in [0, 1] and within epsilon.

Minimisation attacks (C&W, EAD, DeepFool, FMN, Boundary, HopSkipJump, salt-and-pepper) run once;
their output is clipped to each epsilon of the grid, and the unclipped output is kept at epsilon
``inf``: its size is the distance to the decision boundary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from qrobust.attacks.threats import Kind, Norm
from qrobust.pipeline.params import typed_options
from qrobust.pipeline.registry import Registry

FOOLBOX = "foolbox.attacks"


@dataclass(frozen=True)
class AttackEntry:
    """An attack's facts as data: nothing here imports torch or Foolbox, so params are checked
    against the catalogue in milliseconds and a stage imports only the attacks it runs
    (``attacks.factory`` builds them from ``module`` and ``factory``)."""

    norm: Norm
    kind: Kind
    module: str  # where the attack's class lives: Foolbox's attacks, or one of this package's modules
    factory: str  # the class in ``module``
    reference: str
    minimises: bool  # a minimisation attack also returns an unbounded output: the distance to the boundary
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # (low, high, low_open) of a float hyper-parameter where (0, inf) is not its range.
    ranges: Mapping[str, tuple[float, float, bool]] = field(default_factory=lambda: MappingProxyType({}))
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # set by the entry, not params
    targeted: bool = False  # needs target classes (GenAttack); the runner-up class of the clean input is used
    needs_start: bool = False  # a decision attack that walks along the boundary from an adversarial start
    # option -> the boolean option without which it does nothing (AutoAttack's Square settings need square)
    needs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def check(self, options: Mapping[str, Any], key: str) -> dict[str, Any]:
        """``options`` over the defaults; an unknown name, a wrong type or range fails here, naming the key."""
        return typed_options(options, self.defaults, key, self.ranges)

    def written_here(self) -> bool:
        return self.module != FOOLBOX


ATTACKS: Registry[AttackEntry] = Registry("attack")


# Shares and step sizes relative to epsilon: in (0, 1].
_SHARE = (0.0, 1.0, True)
# Attack hyper-parameters with a range other than (0, inf).
_RANGES = {
    "rel_stepsize": _SHARE,
    "p_init": _SHARE,
    "mutation_probability": _SHARE,
    "spherical_step": _SHARE,
    "source_step": _SHARE,
    "confidence": (0.0, math.inf, False),
    "overshoot": (0.0, math.inf, False),
    "regularization": (0.0, math.inf, False),
    "momentum": (0.0, math.inf, False),
    "step_adaptation": (1.0, math.inf, True),
}


def _register(
    name: str, norm: Norm, kind: Kind, source: tuple[str, str], reference: str, *, minimises: bool = False, **kw: Any
) -> None:
    defaults = MappingProxyType(kw.pop("defaults", {}))
    ranges = MappingProxyType({k: v for k, v in _RANGES.items() if k in defaults})
    fixed = MappingProxyType(kw.pop("fixed", {}))
    module, factory = source
    ATTACKS.register(name)(
        AttackEntry(norm, kind, module, factory, reference, minimises, defaults, ranges, fixed, **kw)
    )


def _foolbox(name: str) -> tuple[str, str]:
    return FOOLBOX, name


L, G = Norm.LINF, Kind.GRADIENT
# Gradient attacks (white-box on float models and on twins).
_register("fgsm", L, G, _foolbox("FGSM"), "Goodfellow et al. 2015")
_register(
    "bim",
    L,
    G,
    _foolbox("LinfBasicIterativeAttack"),
    "Kurakin et al. 2017",
    defaults={"steps": 10, "rel_stepsize": 0.2},
)
_register(
    "linf_pgd",
    L,
    G,
    _foolbox("LinfPGD"),
    "Madry et al. 2018",
    defaults={"steps": 20, "rel_stepsize": 0.1, "random_start": True},
)
_register(
    "l2_pgd",
    Norm.L2,
    G,
    _foolbox("L2PGD"),
    "Madry et al. 2018",
    defaults={"steps": 20, "rel_stepsize": 0.1, "random_start": True},
)
# Auto-PGD (Croce & Hein 2020): step-size schedule and momentum of its own; CE or DLR loss; APGD-T
# runs the targeted DLR loss towards each of the ``targets`` classes ranked highest after the true one.
_APGD = {"steps": 100, "restarts": 1, "eot_samples": 1}
_APGD_T = {"steps": 100, "targets": 9, "eot_samples": 1}
for _norm, _prefix in ((L, ""), (Norm.L2, "l2_")):
    _source = ("qrobust.attacks.apgd", {L: "LinfAPGD", Norm.L2: "L2APGD"}[_norm])
    _register(f"{_prefix}apgd_ce", _norm, G, _source, "Croce & Hein 2020", defaults=_APGD, fixed={"loss": "ce"})
    _register(f"{_prefix}apgd_dlr", _norm, G, _source, "Croce & Hein 2020", defaults=_APGD, fixed={"loss": "dlr"})
    _register(f"{_prefix}apgd_t", _norm, G, _source, "Croce & Hein 2020", defaults=_APGD_T, fixed={"loss": "dlr"})
_register(
    "autoattack",
    L,
    G,
    ("qrobust.attacks.autoattack", "LinfAutoAttack"),
    "Croce & Hein 2020 (APGD-CE, APGD-T, FAB-T, Square)",
    defaults={
        "steps": 100,
        "targets": 9,
        "queries": 5000,
        "p_init": 0.8,
        "eot_samples": 1,
        "apgd_ce": True,
        "fab": True,
        "square": True,
    },
    needs=MappingProxyType({"queries": "square", "p_init": "square"}),
)
_register(
    "mi_fgsm",
    L,
    G,
    _foolbox("LinfMomentumIterativeFastGradientMethod"),
    "Dong et al. 2018",
    defaults={"steps": 10, "rel_stepsize": 0.2, "momentum": 1.0},
)
_register(
    "cw_l2",
    Norm.L2,
    G,
    _foolbox("L2CarliniWagnerAttack"),
    "Carlini & Wagner 2017",
    minimises=True,
    defaults={"binary_search_steps": 5, "steps": 100, "stepsize": 0.01, "confidence": 0.0, "initial_const": 0.1},
)
_register(
    "ead",
    Norm.L1,
    G,
    _foolbox("EADAttack"),
    "Chen et al. 2018",
    minimises=True,
    defaults={
        "binary_search_steps": 5,
        "steps": 100,
        "initial_stepsize": 0.01,
        "initial_const": 0.1,
        "regularization": 0.01,
    },
)
_register(
    "deepfool_l2",
    Norm.L2,
    G,
    ("qrobust.attacks.deepfool", "L2DeepFool"),
    "Moosavi-Dezfooli et al. 2016",
    minimises=True,
    defaults={"steps": 50, "candidates": 10, "overshoot": 0.02},
)
_register(
    "deepfool_linf",
    L,
    G,
    ("qrobust.attacks.deepfool", "LinfDeepFool"),
    "Moosavi-Dezfooli et al. 2016",
    minimises=True,
    defaults={"steps": 50, "candidates": 10, "overshoot": 0.02},
)
_register(
    "fmn_l2",
    Norm.L2,
    G,
    _foolbox("L2FMNAttack"),
    "Pintor et al. 2021",
    minimises=True,
    defaults={"steps": 100, "max_stepsize": 1.0, "gamma": 0.05, "binary_search_steps": 10},
)
# Decision- and score-based attacks (black-box on the deployed runtime).
_register(
    "boundary",
    Norm.L2,
    Kind.DECISION,
    _foolbox("BoundaryAttack"),
    "Brendel et al. 2018",
    minimises=True,
    defaults={"steps": 1000, "spherical_step": 0.01, "source_step": 0.01, "step_adaptation": 1.5},
    needs_start=True,
)
_register(
    "hop_skip_jump",
    Norm.L2,
    Kind.DECISION,
    _foolbox("HopSkipJumpAttack"),
    "Chen et al. 2020",
    minimises=True,
    defaults={"steps": 20, "initial_gradient_eval_steps": 100, "max_gradient_eval_steps": 1000, "gamma": 1.0},
    needs_start=True,
)
_register(
    "salt_and_pepper",
    Norm.L2,
    Kind.DECISION,
    _foolbox("SaltAndPepperNoiseAttack"),
    "Foolbox (Rauber et al. 2017)",
    minimises=True,
    defaults={"steps": 100, "across_channels": True},
)
_register(
    "gen_attack",
    L,
    Kind.SCORE,
    _foolbox("GenAttack"),
    "Alzantot et al. 2019",
    defaults={"steps": 100, "population": 10, "mutation_probability": 0.1, "mutation_range": 0.15},
    targeted=True,
)
_register(
    "square",
    L,
    Kind.SCORE,
    ("qrobust.attacks.square", "LinfSquareAttack"),
    "Andriushchenko et al. 2020",
    defaults={"queries": 1000, "p_init": 0.8},
)
# Random noise: the baseline (it never queries the model, so one draw serves every target).
# Differential evasion (Hao et al. 2022): through a quantized model's twin and its float parent together.
_register(
    "diva",
    L,
    Kind.DIFFERENTIAL,
    ("qrobust.attacks.diva", "DIVA"),
    "Hao et al. 2022",
    defaults={"c": 1.0, "steps": 20, "rel_stepsize": 0.1, "random_start": True, "log_scores": True},
)
_register("gaussian_noise", Norm.L2, Kind.NOISE, _foolbox("L2AdditiveGaussianNoiseAttack"), "random baseline")
_register("uniform_noise", L, Kind.NOISE, _foolbox("LinfAdditiveUniformNoiseAttack"), "random baseline")
del L, G


def steps_bounded(name: str, options: Mapping[str, Any]) -> bool:
    """A gradient minimisation attack whose run ``steps`` bounds: doubling them checks its convergence."""
    entry = ATTACKS.get(name)
    return entry.kind is Kind.GRADIENT and entry.minimises and "steps" in options


def departures(name: str, options: Mapping[str, Any]) -> str:
    """How ``options`` depart from ``name``'s catalogue defaults, for a report to name beside the figures
    (for AutoAttack, the defaults are its standard version): "steps 20 (default 100), no fab"; "" when none."""
    entry = ATTACKS.get(name)
    parts = []
    for key, default in entry.defaults.items():
        value = options.get(key, default)
        if value == default or (key in entry.needs and not options.get(entry.needs[key], True)):
            continue
        if isinstance(default, bool):
            parts.append(f"{'with' if value else 'no'} {key}")
        else:
            parts.append(f"{key} {value:g} (default {default:g})")
    return ", ".join(parts)
