"""Mechanisms the literature uses to explain robustness after quantization, measured on one float model
and its quantized twins.

- Gradient misalignment (Bernhard et al. 2019): cosine between the float model's input gradient and each
  twin's (straight-through and exact), per sample; and whether the float model's attack transfers less
  where the two disagree.
- Quantization shift (Bernhard et al. 2019): per quantized activation, the share of values that land in
  another quantization bin on the adversarial input than on the clean one, against random noise of the
  same L2 size.
- Attenuation and amplification (Costa & Pinto 2024): how often a prediction flips under random and under
  adversarial noise of growing size, float against quantized.
- Error amplification (Lin et al. 2019): per layer, ||f_l(x') - f_l(x)|| / ||f_l(x)|| under adversarial and
  random perturbations of equal size; per sample, the same ratio at the output (logits), quantized twin
  against float model; and per conv/linear layer its orthogonality gap and spectral norm.
- Transfer retention (Costa & Pinto 2024): of the float model's adversarial examples that fool it, the
  share that also fool the quantized runtime.
- Loss traces (Pintor et al. 2022): the loss of the model scored, step by step, while a PGD attack climbs
  the gradient of the model the attacker differentiates; a loss that stops improving early flags masking.

Every function here is pure: models and arrays in, numbers out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from qrobust.deploy.runtime import batched, predict_logits
from qrobust.evaluation.results import DISTANCE_TIE
from qrobust.quantization.twins import record_activation_levels
from qrobust.training.lipschitz import orthogonality_gap

Predict = Callable[[np.ndarray], np.ndarray]


def input_gradients(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """Per-sample gradient of the cross-entropy on the true label with respect to the input, flattened (N, D)."""

    def grad(index: np.ndarray) -> np.ndarray:
        probe = torch.from_numpy(np.ascontiguousarray(x[index])).requires_grad_(True)
        loss = F.cross_entropy(model(probe), torch.from_numpy(y[index]), reduction="sum")
        (g,) = torch.autograd.grad(loss, probe, allow_unused=True)
        return np.zeros(probe.shape, np.float32) if g is None else g.detach().numpy()

    return batched(grad, np.arange(len(x)), batch_size).reshape(len(x), -1)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity; 0 where either row is all zeros (no direction to agree with)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    return np.divide(dots, norms, out=np.zeros(len(a), dtype=np.float64), where=norms > 0)


def quartiles(values: np.ndarray) -> dict[str, float]:
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75]) if len(values) else (np.nan,) * 3
    return {"q1": float(q1), "median": float(median), "q3": float(q3)}


def same_size_noise(x: np.ndarray, x_adv: np.ndarray, seed: int, rounds: int = 8) -> np.ndarray:
    """Random Gaussian directions of each sample's adversarial L2 size, inside [0, 1]. Clipping to the
    image range shortens the noise (by 13-16% on Fashion-MNIST's dark background), so each round scales
    the remaining direction back up to the intended size and clips again; a sample whose noise cannot
    reach it (every pixel saturated) keeps the largest size it can have."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(len(x), -1).astype(np.float64)
    target = np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)
    noise = rng.standard_normal(flat.shape)
    delta = noise * (target / np.maximum(np.linalg.norm(noise, axis=1), 1e-12))[:, None]
    for _ in range(rounds):
        delta = np.clip(flat + delta, 0.0, 1.0) - flat
        size = np.linalg.norm(delta, axis=1)
        delta *= (target / np.maximum(size, 1e-12))[:, None]
    return np.clip(flat + delta, 0.0, 1.0).reshape(x.shape).astype(np.float32)


def twin_pass(twin: nn.Module, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """One forward pass of ``twin`` on ``x``: its logits, and the integer level of every quantized
    activation value, one (N, ...) array per quantized activation, in graph order."""
    with torch.no_grad(), record_activation_levels() as levels:
        out = twin(torch.from_numpy(np.ascontiguousarray(x)))
    return out.numpy(), [level.numpy() for level in levels]


def activation_levels(twin: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    return twin_pass(twin, x)[1]


def bin_shift(twin: nn.Module, x: np.ndarray, x_other: np.ndarray) -> list[float]:
    """Per quantized activation, the share of its values whose quantization bin differs between ``x``
    and ``x_other``."""
    before, after = activation_levels(twin, x), activation_levels(twin, x_other)
    return [float((a != b).mean()) for a, b in zip(before, after, strict=True)]


def flip_rate(predict: Predict, x: np.ndarray, x_other: np.ndarray) -> float:
    """Share of inputs whose predicted label changes from ``x`` to ``x_other``."""
    return float((predict(x) != predict(x_other)).mean())


def layer_outputs(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Output of every conv and linear layer of a float model on ``x``, flattened per sample."""
    outputs: dict[str, np.ndarray] = {}
    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach()))
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.ascontiguousarray(x)))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: out.reshape(len(x), -1).numpy() for name, out in outputs.items()}


def sample_change(clean: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per sample, ||f(x') - f(x)|| / ||f(x)||; nan where the clean output is all zeros."""
    a, b = clean.reshape(len(clean), -1), other.reshape(len(other), -1)
    norm = np.linalg.norm(a, axis=1).astype(np.float64)  # pairwise sums: float32 keeps ~7 digits here
    change = np.linalg.norm(b - a, axis=1).astype(np.float64)
    return np.divide(change, norm, out=np.full(len(a), np.nan), where=norm > 0)


def relative_change(clean: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> list[float]:
    """Per layer, the median over samples of ||f_l(x') - f_l(x)|| / ||f_l(x)|| (samples whose clean
    output is all zeros are left out)."""
    ratios = []
    for a, b in zip(clean, other, strict=True):
        change = sample_change(a, b)
        kept = change[np.isfinite(change)]
        ratios.append(float(np.median(kept)) if kept.size else np.nan)
    return ratios


def loss_trace(
    view: nn.Module, scored: nn.Module, x: np.ndarray, y: np.ndarray, epsilon: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Linf PGD from the clean point (step 2.5 epsilon / steps, Madry et al. 2018) on the gradient of
    ``view``, recording before the first and after every step the per-sample cross-entropy of ``scored``
    (the deployed model, or its exact twin). Returns the losses (steps + 1, N) and, per sample, whether
    the final point fools ``scored``.

    Written by hand: Foolbox's attacks return only their final points, and this indicator needs every step.
    When ``scored`` is ``view`` one forward pass per step serves both the score and the gradient.
    """
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    step = 2.5 * epsilon / steps
    adv = xt.clone()
    losses = []
    for k in range(steps + 1):
        climb = k < steps
        probe = adv.clone().requires_grad_(climb)
        with torch.set_grad_enabled(climb):
            out = view(probe)
        with torch.no_grad():
            scored_out = (out if scored is view else scored(adv)).detach().double()
        # float64: float32 rounds a confident sample's loss to exactly 0
        losses.append(F.cross_entropy(scored_out, yt, reduction="none").numpy())
        g = (
            torch.autograd.grad(F.cross_entropy(out, yt, reduction="sum"), probe, allow_unused=True)[0]
            if climb
            else None
        )
        if g is None or not g.any():  # the last step, or no sample moves: every later step repeats this one
            losses.extend([losses[-1]] * (steps - k))
            break
        adv = torch.clamp(torch.min(torch.max(adv + step * g.sign(), xt - epsilon), xt + epsilon), 0.0, 1.0)
    fooled = (scored_out.argmax(1) != yt).numpy()
    return np.stack(losses), fooled


PLATEAU_GAIN = 0.01  # a loss that gains less than this share of its value from the quarter mark has stopped


def plateaued(losses: np.ndarray, fooled: np.ndarray) -> np.ndarray:
    """Per sample the attack did not flip: True when its loss gained less than ``PLATEAU_GAIN`` of its
    value between a quarter of the steps and the last one, i.e. it stopped improving early."""
    quarter = max(1, (len(losses) - 1) // 4)
    start, end = losses[quarter][~fooled], losses[-1][~fooled]
    return (end - start) <= PLATEAU_GAIN * np.maximum(np.abs(start), 1e-12)


def layer_conditioning(model: nn.Module) -> dict[str, dict[str, float]]:
    """Per conv/linear layer: the orthogonality gap the DQ loss penalises (same convention) and the
    spectral norm of its weight as an (out, rest) matrix."""
    out = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                w = module.weight.reshape(module.weight.shape[0], -1)
                out[name] = {
                    "orthogonality_gap": orthogonality_gap(module),  # the layer alone
                    "spectral_norm": float(torch.linalg.matrix_norm(w, ord=2)),
                }
    return out


# ---- one float model and its quantized models ----------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """What the analysis needs of a quantized model: its name, runtime and two twins."""

    name: str
    predict: Predict
    exact: nn.Module
    ste: nn.Module


def _count(flags: np.ndarray) -> dict[str, float]:
    """A proportion as the findings read it: the rate, its count and n."""
    flags = np.asarray(flags, dtype=bool)
    return {"rate": float(flags.mean()) if flags.size else np.nan, "k": int(flags.sum()), "n": int(flags.size)}


def analyse(
    model: nn.Module,
    predict: Predict,
    quantized: Sequence[Deployed],
    x: np.ndarray,
    y: np.ndarray,
    x_adv: np.ndarray,
    epsilons: Sequence[float],
    seed: int,
) -> dict[str, Any]:
    """Every measurement on ``x`` (N samples) and ``x_adv`` ((E, N, ...): the float model's white-box
    examples at each epsilon), against random noise of each example's L2 size.

    Flat keys, ``<what>/<perturbation>/eps=<e>``; proportions carry their count and n so that the
    findings can put intervals on them."""
    noise = np.stack([same_size_noise(x, x_adv[e], seed + e) for e in range(len(epsilons))])
    float_grad = input_gradients(model, x, y)
    clean_out = layer_outputs(model, x)
    out: dict[str, Any] = {"samples": len(x), "float": {}}
    out["float"]["zero_gradient"] = _count(~float_grad.any(axis=1))
    out["float"]["conditioning"] = layer_conditioning(model)
    # The attack leaves samples the float model gets wrong untouched, and their noise has size zero:
    # the perturbation measurements count only the samples it moved.
    moved = [np.abs(x_adv[e] - x).reshape(len(x), -1).max(axis=1) > 0 for e in range(len(epsilons))]
    clean_pred = predict(x)
    float_logits = predict_logits(model, x)
    adv_logits = [predict_logits(model, x_adv[e]) for e in range(len(epsilons))]
    float_fooled = [predict(x_adv[e]) != y for e in range(len(epsilons))]
    for e, eps in enumerate(epsilons):
        sel = moved[e]
        for kind, pert in (("adversarial", x_adv[e]), ("noise", noise[e])):
            tag = f"{kind}/eps={eps:g}"
            out["float"][f"flip/{tag}"] = _count(clean_pred[sel] != predict(pert[sel]))
            changed = layer_outputs(model, pert)
            out["float"][f"amplification/{tag}"] = dict(
                zip(
                    clean_out,
                    relative_change([v[sel] for v in clean_out.values()], [v[sel] for v in changed.values()]),
                    strict=True,
                )
            )
    for q in quantized:
        m: dict[str, Any] = {}
        ste_grad, exact_grad = input_gradients(q.ste, x, y), input_gradients(q.exact, x, y)
        ste_cos = cosines(float_grad, ste_grad)
        m["grad_cosine/ste"] = quartiles(ste_cos)
        m["grad_cosine/exact"] = quartiles(cosines(float_grad, exact_grad))
        m["zero_gradient/exact"] = _count(~exact_grad.any(axis=1))
        m["zero_gradient/ste"] = _count(~ste_grad.any(axis=1))
        # What an attacker estimates: the straight-through gradient's norm against the float model's, per
        # sample; off by a factor of two either way counts as vanished or exploded (Costa & Pinto 2024).
        ratio = np.linalg.norm(ste_grad, axis=1) / np.maximum(np.linalg.norm(float_grad, axis=1), 1e-30)
        m["grad_norm_ratio/ste"] = quartiles(ratio)
        m["grad_norm/vanish_or_explode"] = _count((ratio < 0.5) | (ratio > 2.0))
        q_clean = q.predict(x)
        both = (clean_pred == y) & (q_clean == y)
        aligned = ste_cos >= np.median(ste_cos)
        q_logits, levels_clean = twin_pass(q.exact, x)
        m["quantized_activations"] = len(levels_clean)  # 0 for a weight-only model: nothing shifts bins
        for e, eps in enumerate(epsilons):
            tag = f"eps={eps:g}"
            q_adv = q.predict(x_adv[e])
            fooled = q_adv != y
            # Bernhard et al.: transfer counts samples both models get right; split by gradient agreement.
            m[f"transfer_success/aligned/{tag}"] = _count(fooled[both & aligned])
            m[f"transfer_success/misaligned/{tag}"] = _count(fooled[both & ~aligned])
            # Costa & Pinto: of the examples that fool the float model, the share that fool this one too.
            m[f"transfer_retention/{tag}"] = _count(fooled[both & float_fooled[e]])
            # Lin et al.: the same input perturbation, relatively larger at the quantized model's output?
            sel = moved[e]
            r_float = sample_change(float_logits[sel], adv_logits[e][sel])
            q_adv_logits, levels_adv = twin_pass(q.exact, x_adv[e][sel])
            r_quant = sample_change(q_logits[sel], q_adv_logits)
            finite = np.isfinite(r_float) & np.isfinite(r_quant)
            m[f"output_change/adversarial/{tag}"] = {
                "float": quartiles(r_float[finite]),
                "quantized": quartiles(r_quant[finite]),
            }
            # Per sample, which model's logits moved more, counting only changes that differ by more than
            # DISTANCE_TIE (relative): the placebo showed nearly equal changes tipping one way on most samples.
            above = r_quant[finite] > r_float[finite] * (1 + DISTANCE_TIE)
            below = r_quant[finite] * (1 + DISTANCE_TIE) < r_float[finite]
            m[f"output_change/quantized_above_float/{tag}"] = _count(above[above | below])
            per_sample = {}
            for kind, pert, q_pert in (
                ("adversarial", x_adv[e], q_adv[sel]),
                ("noise", noise[e], q.predict(noise[e][sel])),
            ):
                m[f"flip/{kind}/{tag}"] = _count(q_clean[sel] != q_pert)
                if not levels_clean:
                    continue
                before = [level[sel] for level in levels_clean]
                after = levels_adv if kind == "adversarial" else activation_levels(q.exact, pert[sel])
                shifts = [(a != b).reshape(int(sel.sum()), -1).mean(axis=1) for a, b in zip(before, after, strict=True)]
                per_sample[kind] = np.mean(shifts, axis=0)
                m[f"bin_shift/{kind}/{tag}"] = {f"act{i}": float(s.mean()) for i, s in enumerate(shifts)}
                m[f"amplification/{kind}/{tag}"] = {f"act{i}": r for i, r in enumerate(relative_change(before, after))}
            # Paired per sample: does the adversarial example move more activation values across a
            # bin edge than random noise of the same size?
            if per_sample:
                m[f"bin_shift/adversarial_above_noise/{tag}"] = _count(per_sample["adversarial"] > per_sample["noise"])
        out[q.name] = m
    return out


def loss_plateaus(
    model: nn.Module, quantized: Sequence[Deployed], x: np.ndarray, y: np.ndarray, epsilon: float, steps: int
) -> dict[str, dict[str, Any]]:
    """Per threat model, the share of the samples a traced PGD at ``epsilon`` did not flip whose loss
    stopped improving early: the float model attacked on itself; each quantized model scored through its
    exact twin (it agrees with the runtime) and attacked through its straight-through and exact twins."""
    trace = loss_trace(model, model, x, y, epsilon, steps)
    out: dict[str, dict[str, Any]] = {"float": {"loss_plateau": _count(plateaued(*trace))}}
    for q in quantized:
        out[q.name] = {
            f"loss_plateau/{mode}": _count(plateaued(*loss_trace(view, q.exact, x, y, epsilon, steps)))
            for mode, view in (("ste", q.ste), ("exact", q.exact))
        }
    return out


def bootstrap_median_difference(a: np.ndarray, b: np.ndarray, seed: int, resamples: int = 2000) -> dict[str, float]:
    """median(b) - median(a) with a 95% percentile-bootstrap interval (Efron 1979), the two samples
    resampled independently; nan when either is empty."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(a) or not len(b):
        return {"difference": np.nan, "low": np.nan, "high": np.nan, "n_a": len(a), "n_b": len(b)}
    rng = np.random.default_rng(seed)
    draws = np.median(rng.choice(b, (resamples, len(b))), axis=1) - np.median(
        rng.choice(a, (resamples, len(a))), axis=1
    )
    low, high = np.quantile(draws, [0.025, 0.975])
    return {
        "difference": float(np.median(b) - np.median(a)),
        "low": float(low),
        "high": float(high),
        "n_a": len(a),
        "n_b": len(b),
    }


def verified_distances(predict: Predict, x_unbounded: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per sample the L2 size of a minimisation attack's unbounded output if it fools ``predict`` (the
    distance to its decision boundary, as far as the attack found it), inf if it does not; nan for a
    sample left unmoved (size 0: misclassified before any attack), whose distance says nothing."""
    fooled = predict(x_unbounded) != labels
    return np.where(sizes > 0, np.where(fooled, sizes, np.inf), np.nan).astype(np.float64)


def boundary_distances(predict: Predict, x_unbounded: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The finite ``verified_distances``: the sizes of the outputs that fool ``predict``."""
    d = verified_distances(predict, x_unbounded, labels, sizes)
    return d[np.isfinite(d)]
