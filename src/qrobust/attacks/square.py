"""The Square attack (Andriushchenko, Croce, Flammarion, Hein 2020), Linf, as a Foolbox attack.

Written here because Foolbox 3 lacks it. The maintained implementations (ART's SquareAttack,
torchattacks' Square) each drive their own model wrapper and loop: ART needs every model wrapped
as an ART classifier, torchattacks needs a differentiable torch module, and neither can be handed
a Foolbox model and criterion. As a Foolbox ``FixedEpsilonAttack`` it runs through the same entry
point, epsilon grid, seeding and query count as every other attack, on torch modules and on ONNX
Runtime sessions alike. It uses only scores, never gradients, which makes it the standard check
for gradient masking: if it beats a white-box attack, the white-box gradients were lying.
"""

from __future__ import annotations

from typing import Any

import eagerpy as ep
import numpy as np
from foolbox.attacks.base import FixedEpsilonAttack, get_criterion, raise_if_kwargs, verify_input_bounds
from foolbox.criteria import Misclassification, TargetedMisclassification
from foolbox.distances import linf
from foolbox.models import Model

# The paper halves the square's area at these iterations of a 10,000-query budget (rescaled to ours).
_HALVING = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


class LinfSquareAttack(FixedEpsilonAttack):
    """Random search over square windows set to +-epsilon, kept when the margin loss drops.

    Args:
        queries: model evaluations per input, the initial one included.
        p_init: share of the image the first squares cover.
    """

    distance = linf

    def __init__(self, *, queries: int = 1000, p_init: float = 0.8) -> None:
        if queries < 1:
            raise ValueError(f"queries: expected a positive integer, got {queries}")
        if not 0.0 < p_init <= 1.0:
            raise ValueError(f"p_init: expected a share in (0, 1], got {p_init}")
        self.queries = queries
        self.p_init = p_init

    def _window_share(self, iteration: int) -> float:
        scaled = int(iteration / self.queries * 10_000)
        return self.p_init / 2 ** sum(scaled > t for t in _HALVING)

    def run(self, model: Model, inputs: Any, criterion: Any, *, epsilon: float, **kwargs: Any) -> Any:
        raise_if_kwargs(kwargs)
        x, restore_type = ep.astensor_(inputs)
        verify_input_bounds(x, model)
        criterion = get_criterion(criterion)
        if isinstance(criterion, TargetedMisclassification):
            classes, sign = criterion.target_classes.numpy(), -1.0
        elif isinstance(criterion, Misclassification):
            classes, sign = criterion.labels.numpy(), 1.0
        else:
            raise ValueError(f"expected Misclassification or TargetedMisclassification, got {type(criterion).__name__}")
        low, high = model.bounds
        x0 = x.numpy().astype(np.float32)
        n, c, h, w = x0.shape
        # A generator seeded from NumPy's global one, which the caller seeds, as Foolbox's attacks do.
        rng = np.random.default_rng(np.random.randint(2**31))

        def margin(xs: np.ndarray, rows: np.ndarray) -> np.ndarray:
            """True class logit minus the best other one (targeted: the reverse); < 0 means fooled."""
            logits = model(ep.from_numpy(x, xs)).numpy().copy()
            true = logits[np.arange(len(rows)), classes[rows]]
            logits[np.arange(len(rows)), classes[rows]] = -np.inf
            return sign * (true - logits.max(1))

        # Vertical stripes of +-epsilon: the paper's initialisation.
        stripes = epsilon * rng.choice([-1.0, 1.0], size=(n, c, 1, w)).astype(np.float32)
        best = np.clip(x0 + stripes, low, high)
        loss = margin(best, np.arange(n))
        rows_h, cols_w = np.arange(h), np.arange(w)
        for iteration in range(self.queries - 1):
            active = np.flatnonzero(loss >= 0)
            if active.size == 0:
                break
            side = int(np.clip(round(np.sqrt(self._window_share(iteration) * h * w)), 1, min(h, w) - 1))
            top = rng.integers(0, h - side + 1, size=active.size)
            left = rng.integers(0, w - side + 1, size=active.size)
            inside = ((rows_h >= top[:, None]) & (rows_h < top[:, None] + side))[:, None, :, None] & (
                (cols_w >= left[:, None]) & (cols_w < left[:, None] + side)
            )[:, None, None, :]
            signs = epsilon * rng.choice([-1.0, 1.0], size=(active.size, c, 1, 1)).astype(np.float32)
            candidate = np.where(inside, np.clip(x0[active] + signs, low, high), best[active])
            new_loss = margin(candidate, active)
            better = new_loss < loss[active]
            best[active[better]] = candidate[better]
            loss[active[better]] = new_loss[better]
        return restore_type(ep.from_numpy(x, best))
