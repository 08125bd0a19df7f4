"""Smoke test of ``benchmarks/overhead.py --quick``: it runs and reports JSON.

Only the report's shape is checked (a result per scenario, positive finite
times): the ratios themselves are too noisy on a shared machine to assert on.
"""

from __future__ import annotations

import pytest
from benchmark_runs import positive_finite, run_quick

SCENARIOS = {"mlp_streaming", "conv_streaming", "mlp_probe", "mlp_tensorboard"}
TIME_FIELDS = (
    "median_epoch_s_without",
    "median_epoch_s_with",
    "first_epoch_s_without",
    "first_epoch_s_with",
    "median_cpu_s_without",
    "median_cpu_s_with",
    "median_epoch_end_ms",
)


@pytest.mark.timeout(120)
def test_quick_run_ends_with_a_json_report() -> None:
    report, table_lines = run_quick("overhead", timeout=110)

    assert report["benchmark"] == "overhead"
    assert report["machine"]["cpu_count"] >= 1
    results = report["results"]
    assert {result["scenario"] for result in results} == SCENARIOS
    assert len(results) == len(SCENARIOS)
    for result in results:
        for name in TIME_FIELDS:
            assert positive_finite(result[name]), (result["scenario"], name)
        assert positive_finite(result["median_ratio"]), result["scenario"]
        assert positive_finite(result["median_cpu_ratio"]), result["scenario"]
        assert result["pairs"] >= 1
        assert len(result["epoch_s_with"]) == len(result["epoch_s_without"])
        assert all(positive_finite(t) for t in result["epoch_s_with"])
        assert all(positive_finite(t) for t in result["epoch_s_without"])
        if result["goal"] is None:
            assert result["passed"] is None
        else:
            assert isinstance(result["passed"], bool)
    # The table comes before the JSON line and names every scenario.
    table = "\n".join(table_lines)
    for scenario in SCENARIOS:
        assert scenario in table
