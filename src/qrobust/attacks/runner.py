"""Running one attack of the catalogue on a victim over an epsilon grid (RobustBench's protocol: only what the model gets right is attacked)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.factory import create_attack
from qrobust.attacks.threats import Norm
from qrobust.attacks.victims import Victim


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
    attack = create_attack(name, options, key, reference=victim.reference)
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
        extra = {}
        if entry.needs_start:
            begin, startable = starting_points(victim, x[batch], y[batch], seed)
            # A sample with no adversarial start stays clean: not fooled by this attack (see starting_points).
            batch, begin = batch[startable], begin[startable]
            if not batch.size:
                continue
            extra["starting_points"] = victim.tensor(begin)
        xb = victim.tensor(x[batch])
        if entry.targeted:
            criterion = TargetedMisclassification(victim.labels(runner_up[batch]))
        else:
            criterion = Misclassification(victim.labels(y[batch]))
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


def starting_points(
    victim: Victim, x: np.ndarray, y: np.ndarray, seed: int, steps: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """For each input, the blend ``(1 - a) x + a z`` closest to it that the victim misclassifies,
    where ``z`` is another input of the batch the victim assigns a different class; and which inputs have
    one.

    Foolbox's Boundary and HopSkipJump start from blended uniform noise and raise when that fails
    for any input (it does on quantized models whose noise predictions collapse to one class); a
    differently classified image is adversarial by construction, so every input gets a start, unless the
    victim gives every input of the batch its class (a 2-bit model that answers one class for everything):
    such an input has no start, and the caller leaves it unattacked.
    """
    predicted = victim.predict(x)
    rng = np.random.default_rng(seed)
    partner = np.zeros(len(x), dtype=np.int64)
    startable = np.zeros(len(x), dtype=bool)
    for i in range(len(x)):
        others = np.flatnonzero(predicted != y[i])
        if others.size:
            partner[i], startable[i] = rng.choice(others), True
    z = x[partner]
    start = z.copy()
    found = np.zeros(len(x), dtype=bool)
    for a in np.linspace(0.0, 1.0, steps + 1)[1:]:
        blend = ((1 - a) * x + a * z).astype(np.float32)
        new = (victim.predict(blend) != y) & ~found
        start[new] = blend[new]
        found |= new
    return start, startable


def check_bounds(x_adv: np.ndarray, x: np.ndarray, epsilons: Sequence[float], norm: Norm, name: str) -> None:
    if x_adv.min() < 0.0 or x_adv.max() > 1.0:
        raise AssertionError(f"{name}: adversarial examples leave [0, 1]")
    sizes = perturbation_norms(x_adv, x)[norm.value]
    for eps, row in zip(epsilons, sizes, strict=True):
        if row.max() > eps * (1 + 1e-4) + 1e-6:
            raise AssertionError(f"{name}: {norm.value} perturbation {row.max():.5f} exceeds epsilon {eps}")
