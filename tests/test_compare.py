"""The comparison page on constructed revisions whose differences are known, rendered in Chromium."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qrobust.attacks.threats import ThreatModel
from qrobust.evaluation.scoring import outcome_key, set_index_key
from qrobust.report.format import Figure
from qrobust.report.page import write_pages
from qrobust.tools.compare import Revision, compare, row_differences, two_proportion_p
from tests.browser import assert_reads_in_the_window
from tests.test_findings import FLOAT_MODEL, QUANT, N, row


def test_two_proportion_test_matches_a_known_value() -> None:
    # R: prop.test(c(90, 70), c(100, 100), correct = FALSE): X-squared = 12.5, p-value = 0.000407
    assert two_proportion_p(90, 100, 70, 100) == pytest.approx(0.000407, abs=1e-6)
    assert two_proportion_p(50, 100, 50, 100) == 1.0
    assert two_proportion_p(0, 0, 5, 10) == 1.0  # nothing measured on one side
    assert two_proportion_p(10, 10, 10, 10) == 1.0 and two_proportion_p(10, 10, 0, 10) < 1e-4


def revision(name: str, ste: float, white: float, verdict: str, outcomes: dict | None = None) -> Revision:
    rows = [
        row(0.9, ThreatModel.CLEAN, 0.0, QUANT),
        row(0.9, ThreatModel.CLEAN, 0.0, FLOAT_MODEL),
        *(row(ste * f, ThreatModel.WHITE_QNN_STE, e, QUANT) for e, f in ((0.05, 1.0), (0.1, 0.5))),
        *(row(white * f, ThreatModel.WHITE_FLOAT, e, FLOAT_MODEL) for e, f in ((0.05, 1.0), (0.1, 0.5))),
    ]
    curves = {ThreatModel.WHITE_FLOAT: "pgd", ThreatModel.WHITE_QNN_STE: "pgd"}
    return Revision(name, rows, {"masking": verdict, "transfer": "inconclusive"}, curves, outcomes or {})


def test_differences_beyond_their_noise_are_marked_and_the_rest_are_not() -> None:
    a, b = revision("main", ste=0.60, white=0.50, verdict="holds"), revision("exp", 0.40, 0.51, "inconclusive")
    matched = {d.label: d for d in row_differences(a, b)}
    ste = matched[f"{QUANT}: pgd white_qnn_ste eps 0.05"]
    assert ste.points == pytest.approx(-20.0) and ste.exceeds  # 240/400 vs 160/400
    assert not matched[f"{FLOAT_MODEL}: pgd white_float eps 0.05"].exceeds  # 200/400 vs 204/400
    report = compare(a, b)
    headline, verdicts, rows = report.sections[:3]
    assert headline.title.endswith("linf epsilon 0.05")  # the lower middle of the white-box grid (0.05, 0.1)
    by_label = {line[0]: line for line in headline.rows}
    assert by_label[f"{QUANT}: robust"][1:4] == ("60.0% (n=400)", "40.0% (n=400)", "-20.0")
    assert by_label[f"{QUANT}: robust"][-1] == "yes" and by_label[f"{FLOAT_MODEL}: robust"][-1] == "no"
    assert by_label[f"{QUANT}: clean"][-1] == "no"
    assert verdicts.rows == (("masking", "holds", "inconclusive"),)
    # Both budgets of the quantized model moved beyond noise; the float model's did not.
    assert [line[0] for line in rows.rows] == [
        f"{QUANT}: pgd white_qnn_ste eps 0.05",
        f"{QUANT}: pgd white_qnn_ste eps 0.1",
    ]
    assert "2 result rows differ" in report.summary[0] and "1 verdicts changed" in report.summary[0]


def test_a_row_in_one_revision_only_is_shown_absent_not_compared() -> None:
    a, b = revision("a", 0.5, 0.5, "holds"), revision("b", 0.5, 0.5, "holds")
    (extra,) = row_differences(Revision("a", a.rows[:-1], {}, a.curves, {}), b)[-1:]
    assert extra.a is None and math.isnan(extra.p) and not extra.exceeds and extra.cells()[1] == "absent"


def test_the_comparison_page_reads_in_the_window(tmp_path) -> None:
    report = compare(revision("main", 0.6, 0.5, "holds"), revision("exp", 0.4, 0.5, "holds"))
    page = write_pages(report, tmp_path / "compare", "compare.md")
    figures = [p for p in report.sections if isinstance(p, Figure)]
    assert len(figures) == 2 and all((tmp_path / "compare" / "figures" / f"{f.name}.png").is_file() for f in figures)
    assert_reads_in_the_window(page, tmp_path, images=2)


def outcomes_of(robust: np.ndarray) -> dict:
    """Per-sample outcomes of the quantized model's row at eps 0.05, as evaluate records them."""
    key = outcome_key("pgd", "white_qnn_ste", 0.05, QUANT, QUANT)
    return {key: robust, set_index_key("pgd", "white_qnn_ste", QUANT): np.arange(N, dtype=np.int32)}


def test_rows_on_the_same_samples_are_compared_paired_and_many_rows_control_false_discoveries() -> None:
    # 12 samples change, all one way: McNemar's exact p = 2 / 2**12; unpaired, 3 points of 400 are noise.
    before = np.arange(N) < 240
    after = before.copy()
    after[228:240] = False
    a = revision("a", 0.6, 0.5, "holds", outcomes_of(before))
    b = revision("b", 0.57, 0.5, "holds", outcomes_of(after))
    (paired,) = [d for d in row_differences(a, b) if d.label == f"{QUANT}: pgd white_qnn_ste eps 0.05"]
    assert paired.paired and paired.p == pytest.approx(2 / 2**12)
    assert paired.exceeds
    assert two_proportion_p(240, 400, 228, 400) > 0.05  # what the unpaired test would have said
    # Without the outcomes the same row is compared unpaired, and does not exceed its noise.
    (unpaired,) = [
        d
        for d in row_differences(revision("a", 0.6, 0.5, "holds"), revision("b", 0.57, 0.5, "holds"))
        if d.label == f"{QUANT}: pgd white_qnn_ste eps 0.05"
    ]
    assert not unpaired.paired and not unpaired.exceeds


def test_benjamini_hochberg_keeps_lone_small_p_values_among_many_rows_from_counting() -> None:
    from qrobust.tools.compare import Difference, with_q

    rows = [Difference(f"r{i}", None, None, p=0.5) for i in range(99)] + [Difference("lone", None, None, p=0.01)]
    q = {d.label: d for d in with_q(rows)}
    assert q["lone"].q == pytest.approx(0.5)  # min over ranks j >= 1 of p_(j) * 100 / j: the last, 0.5
    assert not q["lone"].exceeds  # p = 0.01 alone among 100 rows is what chance gives
