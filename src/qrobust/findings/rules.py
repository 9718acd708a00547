"""One rule per literature claim: from this run's rows to the evidence its verdict counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.evaluation.worstcase import ATTACK as WORST_CASE
from qrobust.findings.evidence import (
    Evidence,
    Outcome,
    Rate,
    Rows,
    Scope,
    _pairs,
    above,
    claimed_above,
    claimed_majority,
    claimed_positive,
    proportion,
)
from qrobust.pipeline.model_id import FLOAT, ModelId


def _white(rows: Rows, attack: str, eps: float, model: ModelId) -> Result | None:
    """The strongest white-box row the suite has on ``model``: white_float on a float model, the
    straight-through twin on a quantized one."""
    threat = ThreatModel.WHITE_FLOAT if model.quantizer is None else ThreatModel.WHITE_QNN_STE
    return rows.own(attack, threat, eps, model)


def _masking(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant in _pairs(scope):
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_QNN_EXACT):
            exact = rows.own(scope.attack, ThreatModel.WHITE_QNN_EXACT, eps, quant)
            ste = rows.own(scope.attack, ThreatModel.WHITE_QNN_STE, eps, quant)
            white = rows.own(scope.attack, ThreatModel.WHITE_FLOAT, eps, float_model)
            if exact is None or ste is None or white is None:
                continue
            evidence.append(
                claimed_above(
                    f"{quant} eps {eps:g}: exact-rounding gradients above straight-through (masking)",
                    Rate.of("exact", exact),
                    Rate.of("ste", ste),
                )
            )
            evidence.append(_no_defense(rows, scope.attack, eps, float_model, quant, (white, ste)))
    return tuple(evidence)


def _no_defense(
    rows: Rows, attack: str, eps: float, float_model: ModelId, quant: ModelId, matched: tuple[Result, Result]
) -> Evidence:
    """Whether ``quant`` is more robust than its float model: only a quantized model separated above it
    contradicts the claim; overlap is neutral.

    Where evaluate wrote a per-sample worst case for both, a defense must show in the worst case and under
    the same attack (``matched``: the float model's white-box set against the quantized model's
    straight-through one). Either alone can mislead: ``attack`` through a twin can be masked, which the
    worst case exposes; and the float model's worst case can hold attacks run on float models only (in the
    default study BIM, MI-FGSM and Linf DeepFool), so the two worst cases can differ by attack strength alone.
    """
    label = f"{quant} eps {eps:g}: float model at least as robust as its quantized model"
    same = (Rate.of(f"float {attack}", matched[0]), Rate.of(f"quantized ste {attack}", matched[1]))
    worst = [rows.own(WORST_CASE, ThreatModel.WORST_CASE, eps, m) for m in (float_model, quant)]
    if worst[0] is None or worst[1] is None:
        return claimed_above(f"{label} ({attack})", *same)
    worst_pair = (Rate.of("float worst case", worst[0]), Rate.of("quantized worst case", worst[1]))
    if above(*worst_pair) or above(*same):
        outcome = Outcome.SUPPORTS
    elif above(worst_pair[1], worst_pair[0]) and above(same[1], same[0]):
        outcome = Outcome.CONTRADICTS
    else:
        outcome = Outcome.UNDECIDED
    return Evidence(f"{label} (worst case and {attack})", outcome, (*worst_pair, *same))


def _transfer(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Success rates, not robust accuracies: transfer counts only samples both models classify correctly
    (Bernhard et al. 2019), so a quantized model's lower clean accuracy does not pass for transfer."""
    evidence = []
    for float_model, quant in _pairs(scope):
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_FLOAT):
            moved = rows.transfer(scope.attack, eps, float_model, quant)
            white = rows.own(scope.attack, ThreatModel.WHITE_FLOAT, eps, float_model)
            if moved is None or white is None or not moved.n_attackable or not white.n_attackable:
                continue
            evidence.append(
                claimed_above(
                    f"{float_model} white-box sets at eps {eps:g}: success on {float_model} above success on {quant}",
                    Rate.success("on float", white),
                    Rate.success("transferred", moved),
                )
            )
    return tuple(evidence)


def _measured(scope: Scope) -> list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(float model, quantized model, float record, quantized record) for every analysed pair."""
    out = []
    for float_model, quant in _pairs(scope):
        record = scope.analysis.get(str(float_model))
        if record is not None and str(quant) in record:
            out.append((str(float_model), str(quant), record["float"], record[str(quant)]))
    return out


def _epsilon_keys(record: Mapping[str, Any], prefix: str) -> list[str]:
    """The ``eps=<e>`` tags a record has under ``prefix``, smallest epsilon first."""
    tags = {k[len(prefix) :] for k in record if k.startswith(prefix)}
    return sorted(tags, key=lambda t: float(t.split("=")[1]))


def _transfer_mechanism(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Value shift: per sample, the float model's adversarial example moves more activation values across
    a bin edge than same-size noise (share of samples above one half). Misalignment: the examples transfer
    more where the float and straight-through gradients agree (above the median cosine) than where they do not."""
    evidence = []
    for _, quant, _, m in _measured(scope):
        for tag in _epsilon_keys(m, "bin_shift/adversarial_above_noise/"):
            shift = proportion("adversarial shifts more bins than noise", m[f"bin_shift/adversarial_above_noise/{tag}"])
            evidence.append(claimed_majority(f"{quant} {tag}: quantization shift", shift))
        for tag in _epsilon_keys(m, "transfer_success/aligned/"):
            aligned = proportion("aligned half", m[f"transfer_success/aligned/{tag}"])
            misaligned = proportion("misaligned half", m[f"transfer_success/misaligned/{tag}"])
            if aligned.n and misaligned.n:
                evidence.append(
                    claimed_above(f"{quant} {tag}: transfer follows gradient agreement", aligned, misaligned)
                )
    return tuple(evidence)


def _vanishing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, f, m in _measured(scope):
        if "zero_gradient/exact" not in m or "zero_gradient" not in f:
            continue
        evidence.append(
            claimed_above(
                f"{quant}: samples whose input gradient is all zero, exact-rounding twin vs {float_model}",
                proportion("quantized (exact)", m["zero_gradient/exact"]),
                proportion("float", f["zero_gradient"]),
            )
        )
    return tuple(evidence)


def _boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{quant} vs {float_model}: distance to the decision boundary",
            "median L2 distance, quantized minus float",
            m.get("boundary_distance_l2", {}),
        )
        for float_model, quant, _, m in _measured(scope)
    )
    return tuple(e for e in checks if e is not None)


def _amplification(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for float_model, quant, _, m in _measured(scope):
        for tag in _epsilon_keys(m, "output_change/quantized_above_float/"):
            share = proportion("quantized above float", m[f"output_change/quantized_above_float/{tag}"])
            evidence.append(
                claimed_majority(
                    f"{quant} vs {float_model} {tag}: relative change of the logits under the float model's "
                    "adversarial perturbation",
                    share,
                )
            )
    return tuple(evidence)


def _recipe_records(scope: Scope, what: str) -> list[tuple[str, str, Any]]:
    """(recipe, metric key, value) for every defense-study metric of a train-based recipe whose key
    holds ``/<what>``."""
    return [
        (name, key, v) for name, metrics in scope.recipes.items() for key, v in metrics.items() if f"/{what}" in key
    ]


def _train_defenses_boundary(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    checks = (
        claimed_positive(
            f"{key.split('/')[0]} vs the standard model of the same precision: distance to the decision boundary",
            f"median L2 distance, {name} minus standard",
            d,
        )
        for name, key, d in _recipe_records(scope, "boundary_distance_l2")
    )
    return tuple(e for e in checks if e is not None)


def _transfer_persists(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    records = [
        (quant, key, m[key])
        for _, quant, _, m in _measured(scope)
        for key in (f"transfer_retention/{tag}" for tag in _epsilon_keys(m, "transfer_retention/"))
    ]
    records += [
        (key.split("/")[0], key.split("/", 1)[1], v) for _, key, v in _recipe_records(scope, "transfer_retention")
    ]
    return tuple(
        claimed_majority(
            f"{target} {key.split('/')[-1]}: its float model's adversarial examples that still fool it",
            proportion("still fool the quantized model", count),
        )
        for target, key, count in records
        if count["n"]
    )


def _noise(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per pair, random noise: the quantized model flips fewer predictions than the float one at the
    smallest size and more at the largest supports; the reverse at either end contradicts."""
    evidence = []
    for float_model, quant, f, m in _measured(scope):
        tags = [t for t in _epsilon_keys(m, "flip/noise/") if f"flip/noise/{t}" in f]
        if len(tags) < 2:
            continue
        small, large = tags[0], tags[-1]
        qs, fs = (
            proportion(f"quantized {small}", m[f"flip/noise/{small}"]),
            proportion(f"float {small}", f[f"flip/noise/{small}"]),
        )
        ql, fl = (
            proportion(f"quantized {large}", m[f"flip/noise/{large}"]),
            proportion(f"float {large}", f[f"flip/noise/{large}"]),
        )
        if above(qs, fs) or above(fl, ql):
            outcome = Outcome.CONTRADICTS
        elif above(fs, qs) and above(ql, fl):
            outcome = Outcome.SUPPORTS
        else:
            outcome = Outcome.UNDECIDED
        evidence.append(
            Evidence(f"{quant} vs {float_model}: prediction flips under random noise", outcome, (qs, fs, ql, fl))
        )
    return tuple(evidence)


def _ensemble(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    evidence = []
    for name in scope.ensembles:
        for target in rows.targets(name):
            members = [ModelId.parse(target).parent.at(p) for p in (FLOAT, *scope.quantizers)]
            for eps in scope.defense_epsilons:
                worst = rows.defended(name, target, eps)
                own = [r for m in members if (r := _white(rows, scope.attack, eps, m)) is not None]
                if worst is None or not own:
                    continue
                best = max(own, key=lambda r: r.robust_accuracy)
                evidence.append(
                    claimed_above(
                        f"{target} eps {eps:g}: ensemble (worst case) above its most robust member {best.target}",
                        Rate.of("ensemble", worst),
                        Rate.of("member", best),
                    )
                )
    return tuple(evidence)


def _crossing(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per float / quantized pair: supports when the quantized curve lies above the float one at some
    epsilon and below it at another (both separated); contradicts when every epsilon separates the
    same way; undecided otherwise."""
    evidence = []
    for float_model, quant in _pairs(scope):
        rates = []
        for eps in rows.epsilons(scope.attack, ThreatModel.WHITE_QNN_STE):
            q, f = _white(rows, scope.attack, eps, quant), _white(rows, scope.attack, eps, float_model)
            if q is not None and f is not None:
                rates += [Rate.of(f"quantized eps {eps:g}", q), Rate.of(f"float eps {eps:g}", f)]
        if len(rates) < 4:
            continue
        pairs = list(zip(rates[::2], rates[1::2], strict=True))
        ups = [q.label.split()[-1] for q, f in pairs if above(q, f)]
        downs = [q.label.split()[-1] for q, f in pairs if above(f, q)]
        if ups and downs:
            outcome = Outcome.SUPPORTS
        elif len(ups) == len(pairs) or len(downs) == len(pairs):
            outcome = Outcome.CONTRADICTS
        else:
            outcome = Outcome.UNDECIDED
        where = f"quantized above at eps {ups or 'none'}, float above at eps {downs or 'none'}".replace("'", "")
        evidence.append(Evidence(f"{quant} vs {float_model} over epsilon ({where})", outcome, tuple(rates)))
    return tuple(evidence)


def _preprocessors(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    """Per preprocessing defense and deployed model, worst case: supports when the defended system
    is above the undefended model at the smallest epsilon and not at the largest; contradicts when it is
    still above at the largest, or below at the smallest."""
    if len(scope.defense_epsilons) < 2:
        return ()
    small, large = min(scope.defense_epsilons), max(scope.defense_epsilons)
    evidence = []
    for name in scope.preprocessors:
        for target in rows.targets(name):
            model = ModelId.parse(target)
            pairs = []
            for eps in (small, large):
                defended = rows.defended(name, target, eps)
                bare = _white(rows, scope.attack, eps, model)
                if defended is not None and bare is not None:
                    pairs.append((Rate.of(f"defended eps {eps:g}", defended), Rate.of(f"undefended eps {eps:g}", bare)))
            if len(pairs) < 2:
                continue
            (d_small, b_small), (d_large, b_large) = pairs
            if above(d_large, b_large) or above(b_small, d_small):
                outcome = Outcome.CONTRADICTS
            elif above(d_small, b_small):
                outcome = Outcome.SUPPORTS
            else:
                outcome = Outcome.UNDECIDED
            evidence.append(Evidence(f"{name} on {target}", outcome, (d_small, b_small, d_large, b_large)))
    return tuple(evidence)


def _defensive_quantization(rows: Rows, scope: Scope) -> tuple[Evidence, ...]:
    if scope.dq_recipe is None:
        return ()
    evidence = []
    for target in rows.targets(scope.dq_recipe):
        model = ModelId.parse(target)
        if model.quantizer is None:
            continue
        standard = ModelId(model.arch, "standard", model.quantizer)
        for eps in scope.defense_epsilons:
            dq = rows.defended(scope.dq_recipe, target, eps)
            base = _white(rows, scope.attack, eps, standard)
            if dq is not None and base is not None:
                evidence.append(
                    claimed_above(
                        f"{target} eps {eps:g}: DQ-trained quantized model above the standard one (worst case)",
                        Rate.of("dq", dq),
                        Rate.of("standard", base),
                    )
                )
        dq_clean, base_clean = rows.clean(model, scope.dq_recipe), rows.clean(standard)
        if dq_clean is not None and base_clean is not None:
            evidence.append(
                claimed_above(
                    f"{target}: clean accuracy of the DQ-trained quantized model above the standard one",
                    Rate.of("dq clean", dq_clean),
                    Rate.of("standard clean", base_clean),
                )
            )
    return tuple(evidence)
