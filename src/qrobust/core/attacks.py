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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qrobust.core.config import typed_options
from qrobust.core.errors import ConfigError
from qrobust.core.registry import Registry
from qrobust.core.results import ThreatModel
from qrobust.core.victims import Victim


class Norm(Enum):
    L0 = "l0"
    L1 = "l1"
    L2 = "l2"
    LINF = "linf"


class Kind(Enum):
    """What an attack needs from the model, which fixes the threat models it can run under."""

    GRADIENT = "gradient"  # input gradients: a float model or a quantized model's twin
    DECISION = "decision"  # the predicted label only
    SCORE = "score"  # the logits, no gradients
    NOISE = "noise"  # nothing: a random perturbation, the baseline every attack must beat

    @property
    def threat_models(self) -> tuple[ThreatModel, ...]:
        if self is Kind.GRADIENT:
            return (ThreatModel.WHITE_FLOAT, ThreatModel.WHITE_QNN_EXACT, ThreatModel.WHITE_QNN_STE)
        return (ThreatModel.BLACK_RUNTIME,)


def _foolbox(name: str) -> Callable[..., Any]:
    def factory(**options: Any) -> Any:
        import foolbox

        return getattr(foolbox.attacks, name)(**options)

    return factory


def _square(**options: Any) -> Any:
    from qrobust.core.square import LinfSquareAttack

    return LinfSquareAttack(**options)


def _apgd(norm: str, **fixed: Any) -> Callable[..., Any]:
    def factory(**options: Any) -> Any:
        from qrobust.core import apgd

        return {"linf": apgd.LinfAPGD, "l2": apgd.L2APGD}[norm](**fixed, **options)

    return factory


def _deepfool(norm: str) -> Callable[..., Any]:
    def factory(**options: Any) -> Any:
        from qrobust.core import deepfool

        return {"linf": deepfool.LinfDeepFool, "l2": deepfool.L2DeepFool}[norm](**options)

    return factory


def _autoattack(**options: Any) -> Any:
    from qrobust.core.apgd import LinfAutoAttack

    return LinfAutoAttack(**options)


@dataclass(frozen=True)
class AttackEntry:
    norm: Norm
    kind: Kind
    factory: Callable[..., Any]
    reference: str
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # (low, high, low_open) of a float hyper-parameter where (0, inf) is not its range.
    ranges: Mapping[str, tuple[float, float, bool]] = field(default_factory=lambda: MappingProxyType({}))
    targeted: bool = False  # needs target classes (GenAttack); the runner-up class of the clean input is used
    needs_start: bool = False  # a decision attack that walks along the boundary from an adversarial start

    def build(self, options: Mapping[str, Any], key: str) -> Any:
        """The attack with ``options`` over its defaults; a wrong type or range fails here, naming the key."""
        checked = typed_options(options, self.defaults, key, self.ranges)
        try:
            return self.factory(**checked)
        except (TypeError, ValueError, AssertionError) as error:
            raise ConfigError(f"{key}: {options} rejected by the attack: {error}") from error

    def minimises(self) -> bool:
        """A minimisation attack also returns an unbounded output: the distance to the decision boundary."""
        from foolbox.attacks.base import MinimizationAttack

        return isinstance(self.build({}, "attack"), MinimizationAttack)


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


def _register(name: str, norm: Norm, kind: Kind, factory: Callable[..., Any], reference: str, **kw: Any) -> None:
    defaults = MappingProxyType(kw.pop("defaults", {}))
    ranges = MappingProxyType({k: v for k, v in _RANGES.items() if k in defaults})
    ATTACKS.register(name)(AttackEntry(norm, kind, factory, reference, defaults, ranges, **kw))


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
    _register(f"{_prefix}apgd_ce", _norm, G, _apgd(_norm.value, loss="ce"), "Croce & Hein 2020", defaults=_APGD)
    _register(f"{_prefix}apgd_dlr", _norm, G, _apgd(_norm.value, loss="dlr"), "Croce & Hein 2020", defaults=_APGD)
    _register(f"{_prefix}apgd_t", _norm, G, _apgd(_norm.value, loss="dlr"), "Croce & Hein 2020", defaults=_APGD_T)
_register(
    "autoattack",
    L,
    G,
    _autoattack,
    "Croce & Hein 2020 (APGD-CE, APGD-T, Square)",
    defaults={"steps": 100, "targets": 9, "queries": 5000, "eot_samples": 1, "apgd_ce": True, "square": True},
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
    defaults={"binary_search_steps": 5, "steps": 100, "stepsize": 0.01, "confidence": 0.0, "initial_const": 0.1},
)
_register(
    "ead",
    Norm.L1,
    G,
    _foolbox("EADAttack"),
    "Chen et al. 2018",
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
    _deepfool("l2"),
    "Moosavi-Dezfooli et al. 2016",
    defaults={"steps": 50, "candidates": 10, "overshoot": 0.02},
)
_register(
    "deepfool_linf",
    L,
    G,
    _deepfool("linf"),
    "Moosavi-Dezfooli et al. 2016",
    defaults={"steps": 50, "candidates": 10, "overshoot": 0.02},
)
_register(
    "fmn_l2",
    Norm.L2,
    G,
    _foolbox("L2FMNAttack"),
    "Pintor et al. 2021",
    defaults={"steps": 100, "max_stepsize": 1.0, "gamma": 0.05, "binary_search_steps": 10},
)
# Decision- and score-based attacks (black-box on the deployed runtime).
_register(
    "boundary",
    Norm.L2,
    Kind.DECISION,
    _foolbox("BoundaryAttack"),
    "Brendel et al. 2018",
    defaults={"steps": 1000, "spherical_step": 0.01, "source_step": 0.01, "step_adaptation": 1.5},
    needs_start=True,
)
_register(
    "hop_skip_jump",
    Norm.L2,
    Kind.DECISION,
    _foolbox("HopSkipJumpAttack"),
    "Chen et al. 2020",
    defaults={"steps": 20, "initial_gradient_eval_steps": 100, "max_gradient_eval_steps": 1000, "gamma": 1.0},
    needs_start=True,
)
_register(
    "salt_and_pepper",
    Norm.L2,
    Kind.DECISION,
    _foolbox("SaltAndPepperNoiseAttack"),
    "Foolbox (Rauber et al. 2017)",
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
_register("square", L, Kind.SCORE, _square, "Andriushchenko et al. 2020", defaults={"queries": 1000, "p_init": 0.05})
# Random noise: the baseline (it never queries the model, so one draw serves every target).
_register("gaussian_noise", Norm.L2, Kind.NOISE, _foolbox("L2AdditiveGaussianNoiseAttack"), "random baseline")
_register("uniform_noise", L, Kind.NOISE, _foolbox("LinfAdditiveUniformNoiseAttack"), "random baseline")
del L, G


def perturbation_norms(x_adv: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample L0 (changed pixels), L1, L2 and Linf sizes of ``x_adv - x``; leading axes kept."""
    delta = (x_adv - x).reshape(*x_adv.shape[: x_adv.ndim - x.ndim + 1], -1).astype(np.float64)
    return {
        "l0": (np.abs(delta) > 0).sum(-1).astype(np.float32),
        "l1": np.abs(delta).sum(-1).astype(np.float32),
        "l2": np.sqrt((delta**2).sum(-1)).astype(np.float32),
        "linf": np.abs(delta).max(-1).astype(np.float32),
    }


def attack_subset(n: int, samples: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset; a smaller subset is always inside a larger one."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(samples, n)])


def _per_sample_linf(base: type) -> type:
    class PerSample(base):  # type: ignore[misc, valid-type]
        def get_random_start(self, x0: Any, epsilon: Any) -> Any:
            import eagerpy as ep

            return x0 + ep.uniform(x0, x0.shape, -1.0, 1.0) * epsilon

        def project(self, x: Any, x0: Any, epsilon: Any) -> Any:
            import eagerpy as ep

            return x0 + ep.minimum(ep.maximum(x - x0, -epsilon), epsilon)

    return PerSample


def _per_sample_l2(base: type) -> type:
    class PerSample(base):  # type: ignore[misc, valid-type]
        def project(self, x: Any, x0: Any, epsilon: Any) -> Any:
            from foolbox.attacks.gradient_descent_base import clip_lp_norms

            return x0 + clip_lp_norms(x - x0, norm=epsilon.reshape((-1,)), p=2)

    return PerSample


def per_sample_epsilon(attack: Any) -> Any | None:
    """The same Foolbox gradient-descent attack (FGSM, BIM, PGD, MI-FGSM; Linf or L2) taking one epsilon
    per input, or None for any other attack.

    Foolbox runs a fixed-epsilon attack once per epsilon of the grid, each pass a small batch plus a
    success check the runner does not use. Its loop already works per sample except for the random
    start and the projection, which take a scalar; overriding those two lets the whole grid run as one
    batch (every input repeated once per epsilon), the same steps and step sizes on each copy.
    """
    from foolbox.attacks.gradient_descent_base import L2BaseGradientDescent, LinfBaseGradientDescent

    for base, wrap in ((LinfBaseGradientDescent, _per_sample_linf), (L2BaseGradientDescent, _per_sample_l2)):
        if isinstance(attack, base):
            grid = object.__new__(wrap(type(attack)))
            grid.__dict__.update(attack.__dict__)
            return grid
    return None


@dataclass(frozen=True)
class Crafted:
    x_adv: np.ndarray  # (len(epsilons), N, C, H, W), float32 in [0, 1]
    epsilons: tuple[float, ...]  # the grid, then inf for a minimisation attack's unclipped output
    attacked: np.ndarray  # (N,) bool: the victim classified the sample correctly, so it was attacked
    queries_per_sample: float  # inputs the victim scored per attacked sample, checks included


def craft(
    victim: Victim,
    name: str,
    options: Mapping[str, Any],
    epsilons: Sequence[float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    key: str = "attack",
) -> Crafted:
    """Run attack ``name`` on ``victim`` over an epsilon grid; samples it gets wrong are left clean."""
    from foolbox.attacks.base import MinimizationAttack
    from foolbox.criteria import Misclassification, TargetedMisclassification

    entry = ATTACKS.get(name, key=key)
    attack = entry.build(options, f"{key}.{name}")
    # A minimisation attack also keeps its unclipped output (epsilon None -> inf): the boundary distance.
    grid: list[float | None] = [*epsilons, None] if isinstance(attack, MinimizationAttack) else list(epsilons)
    whole_grid = per_sample_epsilon(attack) if len(grid) > 1 and not entry.targeted else None
    # Foolbox and its attacks draw from the global generators.
    np.random.seed(seed)
    torch.manual_seed(seed)
    logits = victim.logits(x)
    attacked = logits.argmax(1) == y
    runner_up = np.argsort(logits, axis=1)[:, -2]
    victim.queries = 0
    out = np.repeat(x[None], len(grid), axis=0)
    todo = np.flatnonzero(attacked)
    # A whole-grid pass repeats each input once per epsilon: ``batch_size`` bounds the inputs of one pass
    # either way (at a quarter of the rows a pass of ResNet-8 or DS-CNN runs 1.3x faster per input on CPU).
    step = max(1, batch_size // len(grid)) if whole_grid is not None else batch_size
    for start in tqdm(range(0, len(todo), step), desc=name, disable=None, leave=False):
        batch = todo[start : start + step]
        if whole_grid is not None:
            out[:, batch] = _run_grid(whole_grid, victim, grid, x[batch], y[batch])
            continue
        xb = victim.tensor(x[batch])
        if entry.targeted:
            criterion = TargetedMisclassification(victim.labels(runner_up[batch]))
        else:
            criterion = Misclassification(victim.labels(y[batch]))
        extra = {}
        if entry.needs_start:
            extra["starting_points"] = victim.tensor(starting_points(victim, x[batch], y[batch], seed))
        _, clipped, _ = attack(victim.model, xb, criterion, epsilons=grid, **extra)
        for k, adv in enumerate(clipped):
            out[k, batch] = victim.numpy(adv)
    levels = tuple(math.inf if e is None else float(e) for e in grid)
    check_bounds(out, x, levels, entry.norm, name)
    return Crafted(out, levels, attacked, victim.queries / max(len(todo), 1))


def _run_grid(attack: Any, victim: Victim, grid: Sequence[float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One run of a per-sample-epsilon attack over every epsilon of ``grid``: (len(grid), N, ...)."""
    import eagerpy as ep
    from foolbox.criteria import Misclassification

    k = len(grid)
    epsilon = np.repeat(np.asarray(grid, dtype=np.float32), len(x)).reshape(-1, *[1] * (x.ndim - 1))
    adv = attack.run(
        victim.model,
        victim.tensor(np.tile(x, (k, *[1] * (x.ndim - 1)))),
        Misclassification(victim.labels(np.tile(y, k))),
        epsilon=ep.astensor(victim.tensor(epsilon)),
    )
    return victim.numpy(adv).reshape(k, *x.shape)


def starting_points(victim: Victim, x: np.ndarray, y: np.ndarray, seed: int, steps: int = 25) -> np.ndarray:
    """For each input, the blend ``(1 - a) x + a z`` closest to it that the victim misclassifies,
    where ``z`` is another input of the batch the victim assigns a different class.

    Foolbox's Boundary and HopSkipJump start from blended uniform noise and raise when that fails
    for any input (it does on quantized models whose noise predictions collapse to one class); a
    differently classified image is adversarial by construction, so every input gets a start.
    """
    predicted = victim.predict(x)
    rng = np.random.default_rng(seed)
    partner = np.empty(len(x), dtype=np.int64)
    for i in range(len(x)):
        others = np.flatnonzero(predicted != y[i])
        if others.size == 0:
            raise ValueError("cannot start a decision attack: the model predicts one class for every input")
        partner[i] = rng.choice(others)
    z = x[partner]
    start = z.copy()
    found = np.zeros(len(x), dtype=bool)
    for a in np.linspace(0.0, 1.0, steps + 1)[1:]:
        blend = ((1 - a) * x + a * z).astype(np.float32)
        new = (victim.predict(blend) != y) & ~found
        start[new] = blend[new]
        found |= new
    return start


def check_bounds(x_adv: np.ndarray, x: np.ndarray, epsilons: Sequence[float], norm: Norm, name: str) -> None:
    if x_adv.min() < 0.0 or x_adv.max() > 1.0:
        raise AssertionError(f"{name}: adversarial examples leave [0, 1]")
    sizes = perturbation_norms(x_adv, x)[norm.value]
    for eps, row in zip(epsilons, sizes, strict=True):
        if row.max() > eps * (1 + 1e-4) + 1e-6:
            raise AssertionError(f"{name}: {norm.value} perturbation {row.max():.5f} exceeds epsilon {eps}")
