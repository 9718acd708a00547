"""The report's figures and DVC plots: robust accuracy against epsilon, transfer heat maps."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Figure
from qrobust.report.model_tables import _own, _precision_order


def curve_rows(rows: Sequence[Result], threat: ThreatModel, attack: str) -> list[Result]:
    """The rows one threat model's robust-accuracy figure draws: each model under its own attack (for
    transfer, each quantized model on sets made white-box on its float parent), with the float
    models' own white-box (or black-box) curve as the reference in every figure."""
    reference = ThreatModel.BLACK_RUNTIME if threat is ThreatModel.BLACK_RUNTIME else ThreatModel.WHITE_FLOAT

    def drawn(r: Result) -> bool:
        if r.attack != attack or r.defense != "none" or math.isinf(r.epsilon):
            return False
        if r.target_precision == "float":
            return _own(r) and r.threat_model == reference.value
        if threat is ThreatModel.TRANSFER:
            return (
                r.source == str(ModelId.parse(r.target).parent)
                and r.source_threat_model == ThreatModel.WHITE_FLOAT.value
            )
        return _own(r) and r.threat_model == threat.value

    return [r for r in rows if drawn(r)]


@dataclass(frozen=True)
class Curves:
    """One set of robust-accuracy curves in a figure: its rows, its line style (None: float solid,
    quantized dashed) and what its legend labels add after the precision."""

    rows: Sequence[Result]
    style: str | None = None
    label: str = ""


def curves_png(series: Sequence[Curves], precisions: Iterable[str], *, bands: bool) -> bytes:
    """One panel per architecture, one line per model of each series in its precision's colour (float in
    black; ``precisions`` fixes the order, so every figure of a page colours alike), with 95% Wilson bands
    when ``bands``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = sorted({r.target_arch for s in series for r in s.rows})
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(4.2 * max(len(archs), 1), 3.4), sharey=True, squeeze=False)
    ordered = sorted(set(precisions), key=lambda p: (p != "float", p))
    colours = dict(zip(ordered, ["black", *plt.get_cmap("tab10").colors], strict=False))
    norm = next((r.norm for s in series for r in s.rows), "")
    for ax, arch in zip(axes[0], archs, strict=False):
        for s in series:
            for target in sorted({r.target for r in s.rows if r.target_arch == arch}, key=_precision_order):
                pts = sorted(
                    (r.epsilon, r.robust_accuracy, r.robust_accuracy_low, r.robust_accuracy_high)
                    for r in s.rows
                    if r.target == target
                )
                eps, acc, low, high = zip(*pts, strict=True)
                precision = ModelId.parse(target).precision
                colour = colours[precision]
                style = s.style or ("-" if precision == "float" else "--")
                ax.plot(eps, acc, style, color=colour, marker="o", ms=3, label=precision + s.label)
                if bands:
                    ax.fill_between(eps, low, high, color=colour, alpha=0.08)
        ax.set(title=arch, xlabel=f"epsilon ({norm})", xscale="log", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("robust accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def robustness_figure(rows: Sequence[Result], threat: ThreatModel, attack: str) -> Figure:
    """Robust accuracy vs epsilon per architecture: float vs each quantized model (Gorsline et al. 2021)."""
    png = curves_png([Curves(curve_rows(rows, threat, attack))], {r.target_precision for r in rows}, bands=True)
    reference = "black-box" if threat is ThreatModel.BLACK_RUNTIME else "white-box"
    return Figure(
        f"robust_vs_epsilon_{threat.value}",
        f"Robust accuracy vs epsilon, {threat.value}: {attack} (float: its own {reference} curve)",
        png,
        "Read: a quantized curve above the float one, bands apart, is robustness the quantized model gained at "
        f"that epsilon (curves that cross: Gorsline et al. 2021). {THREAT_NOTES[threat]} Shaded bands are 95% "
        "Wilson intervals.",
    )


THREAT_NOTES = {
    ThreatModel.WHITE_FLOAT: "Quantized models are not drawn: white_float attacks only float models.",
    ThreatModel.WHITE_QNN_EXACT: "Each quantized model attacked through its twin with the deployed rounding, whose "
    "gradient is zero almost everywhere: high accuracy here is gradient masking, not robustness.",
    ThreatModel.WHITE_QNN_STE: "Each quantized model attacked through its twin with straight-through rounding (BPDA), "
    "the adaptive white-box attack.",
    ThreatModel.BLACK_RUNTIME: "Each deployed runtime attacked with its scores or labels only.",
    ThreatModel.TRANSFER: "Each quantized model scored on the sets made white-box on its float parent.",
}


def transfer_figure(rows: Sequence[Result], attack: str, epsilon: float, source_threat: str) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = heat_map_rows(rows, attack, epsilon, source_threat)
    sources = sorted({r.source for r in cells}, key=_precision_order)
    targets = sorted({r.target for r in cells}, key=_precision_order)
    value = {(r.source, r.target): r.robust_accuracy for r in cells}
    grid = [[value[(s, t)] for t in targets] for s in sources]
    fig, ax = plt.subplots(figsize=(0.6 * len(targets) + 3.0, 0.4 * len(sources) + 2.2))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(sources)), sources, fontsize=7)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", color="white" if v < 0.5 else "black", fontsize=7)
    ax.set(xlabel="target (deployed runtime)", ylabel=f"source (attacked, {source_threat})")
    fig.colorbar(image, ax=ax, label="robust accuracy")
    fig.tight_layout()
    return Figure(
        heat_map_name(attack, epsilon, source_threat),
        f"Transfer heat map: {attack} at epsilon {epsilon:g}, sets made {source_threat}",
        _png(fig),
        "Read: each cell is the target's robust accuracy (%) on the source's adversarial examples; the diagonal is "
        "each model attacked itself, and a row much darker off the diagonal than on it transfers well.",
    )


def heat_map_name(attack: str, epsilon: float, source_threat: str) -> str:
    return f"transfer_{attack}_eps{epsilon:g}_{source_threat}"


def heat_map_rows(rows: Sequence[Result], attack: str, epsilon: float, source_threat: str) -> list[Result]:
    return [
        r
        for r in rows
        if r.attack == attack
        and r.epsilon == epsilon
        and r.defense == "none"
        and r.source_threat_model == source_threat
    ]


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def plot_rows(
    rows: Sequence[Result], curves: Mapping[ThreatModel, str], heat_maps: Sequence[tuple[str, float]]
) -> dict[str, list[dict[str, Any]]]:
    """Long-format tables for the plots dvc.yaml declares (templates in .dvc/plots/), keyed by the
    file name under reports/plots/: robust_vs_epsilon/<threat>.csv and transfer/<heat map>.csv."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for threat, attack in curves.items():
        tables[f"robust_vs_epsilon/{threat.value}"] = [
            {
                "arch": r.target_arch,
                "model": r.target,
                "attack": r.attack,
                "epsilon": r.epsilon,
                "robust_accuracy": round(r.robust_accuracy, 4),
            }
            for r in curve_rows(rows, threat, attack)
        ]
    for attack, epsilon in heat_maps:
        for source_threat in sorted({r.source_threat_model for r in rows if r.attack == attack}):
            tables[f"transfer/{heat_map_name(attack, epsilon, source_threat)}"] = [
                {"source": r.source, "target": r.target, "robust_accuracy": round(r.robust_accuracy, 4)}
                for r in heat_map_rows(rows, attack, epsilon, source_threat)
            ]
    return tables


def plot_csv(records: list[dict[str, object]]) -> str:
    """One DVC plot's data (``plot_rows``) as CSV text, a header of the records' keys first."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()
