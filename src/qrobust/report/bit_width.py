"""The bit-width sweep on the page (quantize.sweep, quantize.qat_recipes): per width its accuracy, bits per weight
and worst case per threat model (a table), and robust accuracy against bit width, one panel per threat model, one
line per recipe and epsilon (a figure): post-training quantization of the standard model, and quantization-aware
training's models at the widths they were trained for.

A width's worst case under one threat model is the per-sample worst case over that threat model's sets alone
(``WorstCase.by_threat``, in reports/worst_case.json); the "all" column and panel are the model's worst case
over every set (its worst-case row in results.csv). The float model sits at the right edge; in the white-box
panels its point is its own white-box worst case (white_float), the attack a quantized model's twin stands in for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result, wilson_interval
from qrobust.pipeline.model_id import ModelId
from qrobust.quantization.catalogue import QUANTIZERS
from qrobust.report.format import Figure, Metrics, Table, pct

# The panels, in order: every set, then each threat model a quantized model meets.
PANELS = (
    ThreatModel.WORST_CASE,
    ThreatModel.WHITE_QNN_STE,
    ThreatModel.WHITE_QNN_EXACT,
    ThreatModel.BLACK_RUNTIME,
    ThreatModel.TRANSFER,
)
FLOAT_GAP = 2  # the float model's x position: this many bits right of the widest quantized model


@dataclass(frozen=True)
class Width:
    """One model of the sweep: its id, the width its weights and activations are held to (None: float) and
    its quantize (or train) metrics."""

    model: str
    bits: int | None
    metrics: Metrics
    recipe: str = "standard"


@dataclass(frozen=True)
class Point:
    robust: float
    low: float
    high: float
    n: int


def point(width: Width, panel: ThreatModel, rows: Sequence[Result], by_threat: Mapping, norm: str, eps: float):
    """``width``'s robust accuracy under ``panel`` at (norm, eps), with its Wilson interval; None where no set
    of that threat model reached it."""
    if panel is ThreatModel.WORST_CASE:
        found = [
            r
            for r in rows
            if r.threat_model == ThreatModel.WORST_CASE.value
            and r.target == width.model
            and r.norm == norm
            and r.epsilon == eps
        ]
        if not found:
            return None
        r = found[0]
        return Point(r.robust_accuracy, r.robust_accuracy_low, r.robust_accuracy_high, r.n)
    threat = panel
    if width.bits is None and panel in (ThreatModel.WHITE_QNN_STE, ThreatModel.WHITE_QNN_EXACT):
        threat = ThreatModel.WHITE_FLOAT  # the float model's own gradients
    counts = by_threat.get(f"{width.model}/{norm}/eps={eps:g}", {}).get(threat.value)
    if not counts or not counts["n"]:
        return None
    low, high = wilson_interval(counts["robust"], counts["n"])
    return Point(counts["robust"] / counts["n"], low, high, counts["n"])


def _cell(p: Point | None) -> str:
    return "" if p is None else f"{pct(p.robust)} [{100 * p.low:.1f}, {100 * p.high:.1f}] n={p.n}"


def bit_width_table(
    widths: Sequence[Width], rows: Sequence[Result], by_threat: Mapping, norm: str, epsilon: float
) -> Table:
    """Per width: nominal widths, measured bits per weight, validation accuracy, and the worst case at the
    headline budget over every set and per threat model."""
    body = []
    for w in widths:
        m = w.metrics
        bits = (
            "32 / 32 (32)"
            if w.bits is None
            else (f"{m['nominal_weight_bits']} / {m['activation_bits']} ({m['bits_per_weight']:.2f})")
        )
        cells = [_cell(point(w, panel, rows, by_threat, norm, epsilon)) for panel in PANELS]
        body.append((w.model, bits, pct(m["val_accuracy"]), *cells))
    return Table(
        f"Bit width: accuracy and worst-case robust accuracy at {norm} epsilon {epsilon:g}",
        (
            "model",
            "bits: weights / activations (stored per weight)",
            "val accuracy",
            "all sets",
            *(p.value for p in PANELS[1:]),
        ),
        tuple(body),
        "One architecture's standard model quantized by ONNX Runtime at each width (quantize.sweep, beside its "
        "8-bit model), and its quantization-aware model (quantize.qat_recipes: trained with the deployed grid in "
        "the loop) at the widths it was trained for, each deployed, attacked by the headline norm's attacks "
        "(attack.sweep_norms) and scored like the study's other models. Widths below 8 are held to "
        "their grid in 8-bit storage (weights symmetric per channel, activations clipped to 2^b levels), so the stored "
        "bits per weight count the 8-bit storage plus the scales. 'all sets': the per-sample worst case over every attack and "
        "threat model (the headline's rule); each threat model's column is the worst case over its sets alone "
        "(transfer: sets made on the other models of the study's seed; the float model's white-box cells are its "
        "white_float worst case). Validation accuracy is on the validation split. Each cell: robust accuracy [95% Wilson interval, in percent] and n.",
    )


def bit_width_figure(
    widths: Sequence[Width], rows: Sequence[Result], by_threat: Mapping, norm: str, epsilons: Sequence[float]
) -> Figure:
    """Robust accuracy against bit width, one panel per threat model and one line per epsilon, float at the
    right edge, 95% Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qrobust.report.figures import _png

    widest = max((w.bits for w in widths if w.bits is not None), default=8)
    recipes = list(dict.fromkeys(w.recipe for w in widths))
    base = {w.model: widest + FLOAT_GAP if w.bits is None else w.bits for w in widths}
    # Each recipe's line a little right of the one before, so that their error bars do not hide each other.
    x_of = {w.model: base[w.model] + 0.12 * recipes.index(w.recipe) for w in widths}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.3 * len(PANELS), 3.6), sharey=True, squeeze=False)
    colours = plt.get_cmap("viridis")
    styles = ("-", "--", ":", "-.")
    for ax, panel in zip(axes[0], PANELS, strict=True):
        for (k, eps), (r, recipe) in itertools.product(enumerate(epsilons), enumerate(recipes)):
            found = [(x_of[w.model], point(w, panel, rows, by_threat, norm, eps)) for w in widths if w.recipe == recipe]
            found = [(x, p) for x, p in found if p is not None]
            if not found:
                continue
            xs = [x for x, _ in found]
            ys = [p.robust for _, p in found]
            # Clipped at 0: a worst-case row's rate and interval are rounded apart by a hair at the edges.
            errors = [[max(p.robust - p.low, 0.0) for _, p in found], [max(p.high - p.robust, 0.0) for _, p in found]]
            colour = colours(k / max(len(epsilons) - 1, 1))
            marker = "os^D"[r % 4]
            ax.errorbar(xs, ys, yerr=errors, marker=marker, ms=3, capsize=2, color=colour,
                        linestyle=styles[r % len(styles)], label=f"{recipe}, eps {eps:g}")  # fmt: skip
        ticks = sorted(set(base.values()))
        ax.set_xticks(ticks, [str(t) if t <= widest else "float" for t in ticks])
        ax.set(title="all sets (worst case)" if panel is ThreatModel.WORST_CASE else panel.value, ylim=(0, 1))
        ax.set_xlabel("bits (weights and activations)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"robust accuracy ({norm})")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    arch = ", ".join(sorted({w.model.partition("-")[0] for w in widths}))
    return Figure(
        "robust_vs_bit_width",
        f"Robust accuracy vs bit width ({arch}), per threat model",
        _png(fig),
        "Read: each panel is one threat model's per-sample worst case at each epsilon of the white-box figures' "
        "attack (all sets: every attack and threat model together); solid lines: post-training quantization of the "
        "standard model; dashed: the quantization-aware model at the widths it was trained for (its float point, "
        "its own float weights). A width's point below the float one is robustness lost to quantization at that "
        "width; above it, in the white_qnn_exact panel especially, look for gradient masking (the masking flags) "
        "before reading it as robustness. Below a few bits clean accuracy falls, and robust accuracy, which counts "
        "only samples classified right clean, falls with it. Error bars are 95% Wilson intervals.",
    )


def sweep_section(
    models: Sequence[ModelId], metrics: Mapping[ModelId, Metrics], rows: Sequence[Result], by_threat: Mapping
) -> tuple[list[Width], list[Result], Mapping] | None:
    """What the page's sweep section reads (None without a sweep): the sweep's models (``Study.sweep_models``)
    in order of width, float last, with their metrics; their rows; the per-threat worst cases."""
    if not models:
        return None
    widths = [
        Width(str(m), m.quantizer and QUANTIZERS.get(m.quantizer).weight_bits, metrics[m], m.recipe) for m in models
    ]
    names = {w.model for w in widths}
    recipes = list(dict.fromkeys(w.recipe for w in widths))
    ordered = sorted(widths, key=lambda w: (recipes.index(w.recipe), math.inf if w.bits is None else w.bits))
    return ordered, [r for r in rows if r.target in names], by_threat


def trend_table(claim: Mapping[str, Any] | None) -> Table | None:
    """A claim judged per width of the sweep (RobustMQ's, ``xiao2023_low_bits``), one row per width, and where
    its trend starts: per recipe, the widest width from which it holds at every narrower width judged."""
    if not claim or not claim.get("conditions"):
        return None
    judged = []
    for c in claim["conditions"]:
        model = ModelId.parse(c["condition"].split()[0])
        judged.append((model.recipe, QUANTIZERS.get(model.quantizer).weight_bits, c))
    judged.sort(key=lambda j: (j[0], j[1]))
    starts = []
    for recipe in dict.fromkeys(r for r, _, _ in judged):
        held = [(bits, c["verdict"] == "holds") for r, bits, c in judged if r == recipe]
        start = None
        for bits, holds in held:  # narrowest first: the trend runs while every narrower width holds
            if not holds:
                break
            start = bits
        widths = [str(bits) for bits, holds in held if holds]
        where = f"{', '.join(widths)} bits" if widths else "no width"
        run = "nowhere (not at the narrowest width)" if start is None else f"from {start} bits down"
        starts.append(f"{recipe}: it holds at {where}; as a trend, {run}")
    body = tuple(
        (
            c["condition"],
            f"{100 * c['effect']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]",
            str(c["n"]),
            f"{c['power']:.2f}",
            c["verdict"],
        )
        for _, _, c in judged
    )
    return Table(
        f"Per width: {claim['source']}",
        ("condition", "effect, points [95% interval]", "n", "power", "verdict"),
        body,
        f"{claim['claim']} Judged per width: {claim['quantity']}. Per recipe, "
        + "; ".join(starts)
        + " (a trend: the widest width from which it holds at every narrower width). Holm's control over the "
        "widths, as in the findings.",
    )
