"""Smoke test of ``benchmarks/step_overhead.py --quick``: it runs and reports
JSON. Only the report's shape is checked: ratios are not asserted on."""

from __future__ import annotations

import pytest
from benchmark_runs import positive_finite, run_quick


@pytest.mark.timeout(120)
def test_quick_run_ends_with_a_json_report() -> None:
    report, table_lines = run_quick("step_overhead", timeout=110)
    assert report["benchmark"] == "step_overhead"
    assert [row["scenario"] for row in report["rows"]] == ["mlp", "conv"]
    for row in report["rows"]:
        for name in (
            "plain_ms",
            "monitor_ms",
            "monitor_over_plain",
            "stock_ops_ms",
            "stock_ops_over_plain",
            "plain2_over_plain1",
        ):
            assert positive_finite(row[name]), (row["scenario"], name)
        assert row["jit_compile"] is False
    assert isinstance(report["compiled_counter_op"]["in_use"], bool)
    assert report["compiled_counter_op"]["detail"]
    assert len(table_lines) == 3 + len(report["rows"])
