"""Report: tables and figures rendered only from result records and stage metrics.

``build_report`` is pure (records and metrics in, a ``Report`` out); ``render_markdown`` and
``render_html`` turn it into text, the HTML with every figure embedded so it is one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qrobust.results import Result, ThreatModel

Metrics = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: bytes
    note: str = ""


@dataclass
class Report:
    title: str
    summary: list[str] = field(default_factory=list)
    sections: list[Table | Figure] = field(default_factory=list)


def pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def with_ci(r: Result) -> str:
    return f"{pct(r.robust_accuracy)} [{pct(r.robust_accuracy_low)}, {pct(r.robust_accuracy_high)}]"


def _index(rows: Sequence[Result]) -> dict[tuple[str, str, float, str, str, str], Result]:
    return {(r.attack, r.threat_model, r.epsilon, r.source, r.target, r.defense): r for r in rows}


def clean_table(rows: Sequence[Result], float_metrics: Sequence[Metrics], quant_metrics: Sequence[Metrics]) -> Table:
    clean = {r.target: r for r in rows if r.threat_model == ThreatModel.CLEAN.value and r.defense == "none"}
    by_float = {m["model"]: m for m in float_metrics}
    lines = []
    for m in [*float_metrics, *quant_metrics]:
        name = m["model"]
        parent = by_float[m.get("float_model", name)]
        drop = 100 * (parent["test_accuracy"] - m["test_accuracy"])
        lines.append(
            (
                name,
                m.get("quantizer", "float"),
                f"{pct(m['test_accuracy'])} (n={m['test_samples']})",
                "" if name == parent["model"] else f"{drop:+.2f}",
                f"{with_ci(clean[name])} (n={clean[name].n})",
                pct(m.get("top1_agreement_with_float", 1.0)),
                f"{m.get('artefact_bytes', m.get('onnx_bytes', 0)) / 1024:.0f} KiB",
                f"{m['latency_ms_batch1']:.3f} / {m['latency_ms_batch256']:.2f}",
                f"{parent['parameters']:,}",
                f"{parent['macs'] / 1e6:.2f} M",
            )
        )
    return Table(
        "Clean accuracy on the deployed runtime",
        (
            "model",
            "precision",
            "test accuracy",
            "drop vs float (points)",
            "eval-subset accuracy [95% CI]",
            "top-1 agreement with float",
            "ONNX size",
            "latency ms (batch 1 / 256)",
            "parameters",
            "MACs",
        ),
        tuple(lines),
        "Test accuracy is on the whole prepared test split; the evaluation subset is the seeded subset every attack uses.",
    )


def quantization_table(float_metrics: Sequence[Metrics], quant_metrics: Sequence[Metrics]) -> Table:
    by_float = {m["model"]: m for m in float_metrics}
    lines = []
    for m in quant_metrics:
        parent = by_float[m["float_model"]]
        activations = "float" if m["activation_bits"] >= 32 else f"{m['activation_bits']}"
        lines.append(
            (
                m["model"],
                m["backend"],
                f"{m['weight_bits']} / {activations}",
                pct(m["weights_quantized_share"]),
                f"{m['bits_per_weight']:.1f}",
                f"{m['artefact_bytes'] / 1024:.0f} KiB ({m['artefact_bytes'] / parent['onnx_bytes']:.2f}x)",
                f"{m['latency_ms_batch1']:.3f} / {m['latency_ms_batch256']:.2f} "
                f"(float {parent['latency_ms_batch1']:.3f} / {parent['latency_ms_batch256']:.2f})",
                f"{pct(m['twin_exact_top1_agreement'])} / {pct(m['twin_ste_top1_agreement'])}",
                f"{max(m['twin_exact_max_abs_logit_diff'], m['twin_ste_max_abs_logit_diff']):.3g}",
                f"{pct(m['twin_exact_zero_gradient_share'])} / {pct(m['twin_ste_zero_gradient_share'])}",
            )
        )
    return Table(
        "Quantized models: what was quantized, what it costs, and how faithful the twin is",
        (
            "model",
            "deployed runtime",
            "bits (weights / activations)",
            "weights quantized",
            "bits per weight",
            "size (vs float ONNX)",
            "latency ms b1 / b256",
            "twin agreement (exact / ste)",
            "twin max |logit diff|",
            "zero input-gradient entries (exact / ste)",
        ),
        tuple(lines),
        "Twins are rebuilt from each artefact's scales, zero points and integer weights and checked against the deployed "
        "runtime on the evaluation subset. Exact mode gives rounding zero gradient, as the integer graph does; a share of "
        "zero input-gradient entries near 100% there is gradient masking, not robustness. Latency is measured on this "
        "machine's CPU: ONNX Runtime for ONNX artefacts, torch eager for INC modules.",
    )


def transfer_table(rows: Sequence[Result], attack: str, epsilon: float, defense: str = "none") -> Table:
    cells = [r for r in rows if r.attack == attack and r.epsilon == epsilon and r.defense == defense]
    sources = sorted({r.source for r in cells})
    targets = sorted({r.target for r in cells})
    index = {(r.source, r.target): r for r in cells}
    lines = tuple(
        (s, *(f"{pct(index[(s, t)].robust_accuracy)} / {pct(index[(s, t)].success_rate)}" for t in targets))
        for s in sources
    )
    return Table(
        f"Transfer: {attack} at epsilon {epsilon:g}, robust accuracy / attack success rate (rows: source, columns: target)",
        ("source \\ target", *targets),
        lines,
        "Diagonal cells are white-box; off-diagonal cells are transfer. Success counts only samples that source and target both classified correctly.",
    )


def defense_table(rows: Sequence[Result], attack: str, epsilons: Sequence[float]) -> Table:
    index = _index(rows)
    targets = sorted({r.target for r in rows})
    defenses = sorted({r.defense for r in rows}, key=lambda d: (d != "none", d))
    lines = []
    for t in targets:
        parent = t.split(".", 1)[0]
        threat = ThreatModel.WHITE_FLOAT.value if t == parent else ThreatModel.TRANSFER.value
        for d in defenses:
            clean = index[("none", ThreatModel.CLEAN.value, 0.0, t, t, d)]
            robust = [index[(attack, threat, eps, parent, t, d)] for eps in epsilons]
            lines.append((t, d, pct(clean.robust_accuracy), *(with_ci(r) for r in robust)))
    return Table(
        f"Defenses: accuracy against {attack} made on the float parent (non-adaptive: the attack does not know the defense)",
        ("target", "defense", "clean", *(f"eps {e:g}" for e in epsilons)),
        tuple(lines),
    )


def robustness_figure(rows: Sequence[Result], attacks: Sequence[str]) -> Figure:
    """Robust accuracy vs epsilon per architecture: float (white-box) vs each quantized model (transfer from float)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in rows if r.defense == "none" and r.attack in attacks and r.source == r.target.split(".", 1)[0]]
    archs = sorted({r.target_arch for r in curves})
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.4), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    # One colour per precision (float in black), one line style per attack, the same in every panel.
    precisions = sorted({r.target_precision for r in curves}, key=lambda p: (p != "float", p))
    colours = dict(zip(precisions, ["black", *plt.get_cmap("tab10").colors], strict=False))
    for ax, arch in zip(axes[0], archs, strict=True):
        for a, attack in enumerate(attacks):
            for target in sorted({r.target for r in curves if r.target_arch == arch}):
                pts = sorted(
                    (r.epsilon, r.robust_accuracy, r.robust_accuracy_low, r.robust_accuracy_high)
                    for r in curves
                    if r.target == target and r.attack == attack
                )
                eps, acc, low, high = zip(*pts, strict=True)
                precision = target.split(".", 1)[1] if "." in target else "float"
                colour = colours[precision]
                ax.plot(
                    eps, acc, styles[a % len(styles)], color=colour, marker="o", ms=3, label=f"{precision} / {attack}"
                )
                ax.fill_between(eps, low, high, color=colour, alpha=0.08)
        ax.set(title=arch, xlabel="epsilon (Linf)", xscale="log", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("robust accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return Figure(
        "robust_vs_epsilon",
        "Robust accuracy vs epsilon: float (white-box) vs quantized (adversarial examples transferred from float)",
        _png(fig),
        "Shaded bands are 95% Wilson intervals.",
    )


def transfer_figure(rows: Sequence[Result], attack: str, epsilon: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [r for r in rows if r.attack == attack and r.epsilon == epsilon and r.defense == "none"]
    sources, targets = sorted({r.source for r in cells}), sorted({r.target for r in cells})
    value = {(r.source, r.target): r.robust_accuracy for r in cells}
    grid = [[value[(s, t)] for t in targets] for s in sources]
    fig, ax = plt.subplots(figsize=(0.75 * len(targets) + 3.0, 0.55 * len(sources) + 2.2))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(sources)), sources, fontsize=8)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", color="white" if v < 0.5 else "black", fontsize=8)
    ax.set(xlabel="target (deployed runtime)", ylabel="source (attacked model)")
    fig.colorbar(image, ax=ax, label="robust accuracy")
    fig.tight_layout()
    return Figure("transfer", f"Transfer heat map: {attack} at epsilon {epsilon:g}", _png(fig))


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def render_markdown(report: Report) -> str:
    out = [f"# {report.title}", "", *report.summary, ""]
    for part in report.sections:
        if isinstance(part, Table):
            out += [f"## {part.title}", "", "| " + " | ".join(part.headers) + " |", "|" + "---|" * len(part.headers)]
            out += ["| " + " | ".join(row) + " |" for row in part.rows]
        else:
            out += [f"## {part.title}", "", f"![{part.title}](figures/{part.name}.png)"]
        out += ["", part.note, ""] if part.note else [""]
    return "\n".join(out)


def render_html(report: Report) -> str:
    esc = html.escape
    body = [f"<h1>{esc(report.title)}</h1>", *(f"<p>{esc(line)}</p>" for line in report.summary if line)]
    for part in report.sections:
        body.append(f"<h2>{esc(part.title)}</h2>")
        if isinstance(part, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in part.headers)
            rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in part.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(part.png).decode("ascii")
            body.append(f'<img alt="{esc(part.title)}" src="data:image/png;base64,{data}">')
        if part.note:
            body.append(f'<p class="note">{esc(part.note)}</p>')
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}.note{color:#666;font-size:.85em}"
        ".holds{color:#176b2c}.fails{color:#a01818}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(report.title)}</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def signoff_table(
    float_metrics: Sequence[Metrics],
    quant_metrics: Sequence[Metrics],
    *,
    min_float_accuracy: float,
    max_drop_points: float,
) -> Table:
    """Deployment sign-off: float accuracy floor and the largest accuracy drop quantization may cost."""
    by_float = {m["model"]: m for m in float_metrics}
    lines = [
        (
            m["model"],
            f"test accuracy >= {pct(min_float_accuracy)}",
            pct(m["test_accuracy"]),
            "holds" if m["test_accuracy"] >= min_float_accuracy else "does not hold",
        )
        for m in float_metrics
    ]
    for m in quant_metrics:
        drop = 100 * (by_float[m["float_model"]]["test_accuracy"] - m["test_accuracy"])
        lines.append(
            (
                m["model"],
                f"drop vs float <= {max_drop_points:g} points",
                f"{drop:+.2f} points",
                "holds" if drop <= max_drop_points else "does not hold",
            )
        )
    return Table("Sign-off checks", ("model", "check", "measured", "verdict"), tuple(lines))


def build_report(
    rows: Sequence[Result],
    float_metrics: Sequence[Metrics],
    quant_metrics: Sequence[Metrics],
    *,
    attacks: Sequence[str],
    transfer_attack: str,
    transfer_epsilon: float,
    min_float_accuracy: float,
    max_drop_points: float,
    summary: Sequence[str] = (),
) -> Report:
    epsilons = sorted({r.epsilon for r in rows if r.attack == transfer_attack})
    small_large = [epsilons[0], epsilons[-1]] if len(epsilons) > 1 else epsilons
    return Report(
        "qrobust report",
        list(summary),
        [
            clean_table(rows, float_metrics, quant_metrics),
            quantization_table(float_metrics, quant_metrics),
            signoff_table(
                float_metrics, quant_metrics, min_float_accuracy=min_float_accuracy, max_drop_points=max_drop_points
            ),
            robustness_figure(rows, attacks),
            transfer_table(rows, transfer_attack, transfer_epsilon),
            transfer_figure(rows, transfer_attack, transfer_epsilon),
            defense_table(rows, transfer_attack, small_large),
        ],
    )


def plot_rows(rows: Sequence[Result], transfer_attack: str, transfer_epsilon: float) -> dict[str, list[dict[str, Any]]]:
    """Long-format tables for the plots dvc.yaml declares (templates in .dvc/plots/)."""
    curves = [
        {"attack": r.attack, "model": r.target, "epsilon": r.epsilon, "robust_accuracy": round(r.robust_accuracy, 4)}
        for r in rows
        if r.defense == "none" and r.threat_model != ThreatModel.CLEAN.value and r.source == r.target.split(".", 1)[0]
    ]
    transfer = [
        {"source": r.source, "target": r.target, "robust_accuracy": round(r.robust_accuracy, 4)}
        for r in rows
        if r.defense == "none" and r.attack == transfer_attack and r.epsilon == transfer_epsilon
    ]
    return {"robust_vs_epsilon": curves, "transfer": transfer}
