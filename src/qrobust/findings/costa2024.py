"""Costa & Pinto 2024, on the adversarial robustness of quantized (TinyML) models: its claims, each primary
hypothesis beside its text."""

from __future__ import annotations

from qrobust.findings.bernhard2019 import RETENTION, retention_conditions
from qrobust.findings.evidence import ClaimEntry, Condition, Hypothesis, Scope
from qrobust.findings.sources import condition, count, measured, paired_record, sign_detail, sign_test, tag
from qrobust.findings.tests import binomial, combined, missing, two_sample
from qrobust.pipeline.model_id import ModelId
from qrobust.settings.findings import Threshold

DISTANCE = "l2/deepfool_l2"  # the white-box minimisation attack run on both sides (its convergence is checked)

BOUNDARY_HYPOTHESIS = Hypothesis(
    "per sample, the verified L2 distance to the decision boundary of the quantized runtime against the float "
    "model's, both from DeepFool (on the float model, through the straight-through twin): P(farther by more "
    "than 10%) minus P(nearer by more than 10%), over the samples both outputs fool",
    direction=1,
    test="paired sign test: Tango's score test on the farther / nearer counts",
    asserts_effect=True,
)


def _boundary(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for _, quant in scope.quantized():
        record = scope.pairs.get(str(quant), {}).get("boundary", {}).get(DISTANCE)
        if not record:
            continue
        detail = (
            f"{sign_detail(record)} (twin's output not verified on the runtime: {record.get('unverified', 0)}); "
            f"median float {record['median_float']}, quantized {record['median_quantized']}"
        )
        out.append(condition(scope, quant, sign_test(record, t), detail))
    return out


BOUNDARY_DISTANCE = ClaimEntry(
    "costa2024_boundary_distance",
    "Quantization increases the distance to the decision boundary.",
    "Costa & Pinto 2024",
    BOUNDARY_HYPOTHESIS,
    _boundary,
)

GRADIENTS_HYPOTHESIS = Hypothesis(
    "share of samples whose straight-through input-gradient norm (what an attacker estimates) is below half or "
    "above twice the float model's",
    direction=1,
    test="exact binomial",
    asserts_effect=True,
)


def _gradients(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for _, quant, _, m in measured(scope):
        k, n = count(m, "grad_norm/vanish_or_explode")
        ratio = m.get("grad_norm_ratio/ste", {})
        test = binomial(k, n, t.boundary, 1, t.delta) if n else missing(t.delta)
        detail = (
            f"{k} of {n} off by 2x; norm ratio quartiles {ratio.get('q1')}, {ratio.get('median')}, {ratio.get('q3')}",
        )
        out.append(condition(scope, quant, test, *detail))
    return out


GRADIENTS = ClaimEntry(
    "costa2024_gradients",
    "Quantization makes estimated gradients vanish or explode.",
    "Costa & Pinto 2024",
    GRADIENTS_HYPOTHESIS,
    _gradients,
)

NOISE_HYPOTHESIS = Hypothesis(
    "prediction flips under random noise: float minus quantized at the smallest noise size (attenuation) and "
    "quantized minus float at the largest (amplification), both at least the threshold",
    direction=1,
    test="intersection-union of two proportion tests (Agresti-Caffo)",
    asserts_effect=True,
)


def _noise(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for _, quant, f, m in measured(scope):
        tags = sorted(
            (k.split("/")[-1] for k in m if k.startswith("flip/noise/") and k in f),
            key=lambda s: float(s.split("=")[1]),
        )
        if len(tags) < 2:
            continue
        small, large = tags[0], tags[-1]
        (fs, ns), (qs, nqs) = count(f, f"flip/noise/{small}"), count(m, f"flip/noise/{small}")
        (fl, nl), (ql, nql) = count(f, f"flip/noise/{large}"), count(m, f"flip/noise/{large}")
        test = combined([two_sample(fs, ns, qs, nqs, 1, t.delta), two_sample(ql, nql, fl, nl, 1, t.delta)], t.delta)
        detail = (
            f"{small}: float {fs}/{ns}, quantized {qs}/{nqs} flip",
            f"{large}: float {fl}/{nl}, quantized {ql}/{nql} flip",
        )
        out.append(condition(scope, quant, test, *detail))
    return out


NOISE = ClaimEntry(
    "costa2024_noise",
    "Quantization attenuates small noise and amplifies large noise.",
    "Costa & Pinto 2024",
    NOISE_HYPOTHESIS,
    _noise,
)

PREPROCESSING_HYPOTHESIS = Hypothesis(
    "robust accuracy of the defended system (worst case over the transferred set, the adaptive attack and the "
    "composite) minus the undefended model's under the same attacks, on the same samples: above the threshold at "
    "the smallest defense epsilon and below it at the largest",
    direction=1,
    test="intersection-union of two paired tests (exact counts; a randomised defense's clustered interval)",
    asserts_effect=False,
)


def _preprocessing(scope: Scope, t: Threshold) -> list[Condition]:
    if len(scope.defense_epsilons) < 2:
        return []
    small, large = min(scope.defense_epsilons), max(scope.defense_epsilons)
    out = []
    for name in scope.preprocessors:
        metrics = scope.defenses.get(name, {})
        targets = sorted({k.split("/")[0] for k in metrics if "/vs_undefended/" in k})
        for target in targets:
            rows = [scope.defended.get((name, target, e)) for e in (small, large)]
            # A randomised defense's row counts every draw; its test is over the samples.
            n = rows[0].n // max(getattr(rows[0], "draws", 1), 1) if rows[0] is not None else 0
            works = paired_record(metrics.get(f"{target}/vs_undefended/{tag(small)}"), n, 1, t.delta)
            # Fails at large: the gain stays below delta (the effect of "failing" is delta minus the gain).
            fails = paired_record(metrics.get(f"{target}/vs_undefended/{tag(large)}"), n, -1, t.delta, t.delta)
            detail = tuple(
                f"eps {e:g}: defended minus undefended {metrics.get(f'{target}/vs_undefended/{tag(e)}', {}).get('difference')}"
                for e in (small, large)
            )
            model = ModelId.parse(target)
            out.append(
                Condition(
                    f"{name} on {target}", f"{name}, {scope.group(model)}", combined([works, fails], t.delta), detail
                )
            )
    return out


PREPROCESSING = ClaimEntry(
    "costa2024_preprocessing",
    "Input-preprocessing defenses work at small epsilon and fail at large epsilon.",
    "Costa & Pinto 2024",
    PREPROCESSING_HYPOTHESIS,
    _preprocessing,
)

TRAIN_BOUNDARY_HYPOTHESIS = Hypothesis(
    "per sample, the verified L2 boundary distance of the recipe model's runtime against the standard model's "
    "at the same precision (DeepFool through each attacker's view): P(farther by more than 10%) minus P(nearer "
    "by more than 10%), over the samples both outputs fool",
    direction=1,
    test="paired sign test: Tango's score test on the farther / nearer counts",
    asserts_effect=False,
)


def _train_defenses_boundary(scope: Scope, t: Threshold) -> list[Condition]:
    out = []
    for name in scope.recipes:
        metrics = scope.defenses.get(name, {})
        for key in sorted(k for k in metrics if k.endswith("/boundary_signs_l2")):
            target, record = ModelId.parse(key.split("/")[0]), metrics[key]
            label, group = f"{target} vs standard", f"{name}, {scope.group(target)}"
            out.append(Condition(label, group, sign_test(record, t), (sign_detail(record),)))
    return out


TRAIN_DEFENSES_BOUNDARY = ClaimEntry(
    "costa2024_train_defenses_boundary",
    "Train-based defenses raise the distance to the decision boundary and keep it after quantization.",
    "Costa & Pinto 2024",
    TRAIN_BOUNDARY_HYPOTHESIS,
    _train_defenses_boundary,
)

PERSISTS_HYPOTHESIS = Hypothesis(
    RETENTION + "; for the defense study's recipe models, their own adaptive examples at each defense epsilon",
    direction=1,
    test="exact binomial",
    asserts_effect=False,
)


def _persists(scope: Scope, t: Threshold) -> list[Condition]:
    out = retention_conditions(scope, t, PERSISTS_HYPOTHESIS.direction)
    for name in scope.recipes:
        metrics = scope.defenses.get(name, {})
        for key in sorted(k for k in metrics if "/transfer_retention/" in k):
            target = ModelId.parse(key.split("/")[0])
            k, n = count(metrics, key)
            test = binomial(k, n, t.boundary, 1, t.delta) if n else missing(t.delta)
            out.append(
                condition(scope, target, test, f"{k} of {n} float successes also fool it", extra=(key.split("/")[-1],))
            )
    return out


TRANSFER_PERSISTS = ClaimEntry(
    "costa2024_transfer_persists",
    "Float-to-quantized transfer persists, defended models included.",
    "Costa & Pinto 2024",
    PERSISTS_HYPOTHESIS,
    _persists,
)
