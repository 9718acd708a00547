"""Low-bit substitutes for transfer (Yang et al., IEEE TIFS 2024, "Quantization Aware Attack"): the sets made
through the bit-width sweep's low-bit models, scored on every deployed model of the study's seed, beside the sets
made on the float models. Each target's robust accuracy on each source's set; the lowest per row is the source that
transfers best to it (evaluate scores every set on every model of its seed, so nothing is attacked again here)."""

from __future__ import annotations

from collections.abc import Sequence

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.results import Result
from qrobust.pipeline.model_id import ModelId
from qrobust.report.format import Table, pct
from qrobust.settings.study import Study


def substitute_table(
    rows: Sequence[Result], attack: str, epsilon: float, floats: Sequence[ModelId], substitutes: Sequence[ModelId],
    targets: Sequence[ModelId],
) -> Table | None:  # fmt: skip
    """Per target (rows) and source (columns: each float model's white_float set, then each low-bit substitute's
    white_qnn_ste set), the target's robust accuracy under ``attack`` at ``epsilon``; None without substitutes."""
    sources = [(m, ThreatModel.WHITE_FLOAT) for m in floats] + [(m, ThreatModel.WHITE_QNN_STE) for m in substitutes]
    if not substitutes:
        return None
    found = {
        (r.source, r.target): r
        for r in rows
        if r.attack == attack
        and r.epsilon == epsilon
        and r.defense == "none"
        and r.source_threat_model in {ThreatModel.WHITE_FLOAT.value, ThreatModel.WHITE_QNN_STE.value}
    }
    body, sizes = [], set()
    for target in targets:
        cells = [found.get((str(source), str(target))) for source, _ in sources]
        if not any(cells):
            continue
        sizes |= {c.n for c in cells if c is not None}
        lowest = min((c.robust_accuracy for c in cells if c is not None), default=None)
        body.append(
            (str(target), *("" if c is None else pct(c.robust_accuracy) + (" *" if c.robust_accuracy == lowest else "")
                            for c in cells))
        )  # fmt: skip
    if not body:
        return None
    n = ", ".join(str(s) for s in sorted(sizes))
    return Table(
        f"Low-bit substitutes for transfer: {attack} at epsilon {epsilon:g}, robust accuracy of each target",
        ("target (deployed runtime)", *(f"{s} ({t.value})" for s, t in sources)),
        tuple(body),
        "Columns are the sets' sources: each float model attacked white-box, then the bit-width sweep's low-bit models "
        "attacked through their straight-through twins (the substitutes of Yang et al. 2024, who find examples made on "
        "a very low bit width transfer to quantized targets of other widths better than float-made ones). Each cell is "
        "the target's robust accuracy on that source's set (its own set where the source is the target); * marks the "
        f"lowest of the row, the source that transfers best to that target. n per cell: {n}.",
    )


def study_substitutes(
    study: Study, rows: Sequence[Result]
) -> tuple[Sequence[Result], list[ModelId], list[ModelId], list[ModelId]] | None:
    """What ``substitute_table`` reads in ``study`` (None without a sweep): its rows, the float models of the
    study's seed, the sweep's models (the substitutes) and every other deployed model of the study's seed."""
    substitutes = [m for m in study.sweep_models() if m.quantizer is not None and study.sweep_only(m)]
    if not substitutes:
        return None
    models = study.primary_models()
    return (
        rows,
        [m for m in models if m.quantizer is None and not study.sweep_only(m)],
        substitutes,
        [m for m in models if not study.sweep_only(m)],
    )
