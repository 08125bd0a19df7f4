"""Smoke test of ``benchmarks/overhead.py --quick``: it runs and reports JSON.

Only the report's shape is checked (a result per scenario, positive finite
times): the ratios themselves are too noisy on a shared machine to assert on.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "overhead.py"
SCENARIOS = {"mlp_streaming", "conv_streaming", "mlp_probe", "mlp_tensorboard"}
TIME_FIELDS = (
    "median_epoch_s_without",
    "median_epoch_s_with",
    "first_epoch_s_without",
    "first_epoch_s_with",
    "median_cpu_s_without",
    "median_cpu_s_with",
)


def _positive_finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@pytest.mark.timeout(120)
def test_quick_run_ends_with_a_json_report() -> None:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-4000:]
    report = json.loads(lines[-1])

    assert report["benchmark"] == "overhead"
    assert report["machine"]["cpu_count"] >= 1
    results = report["results"]
    assert {result["scenario"] for result in results} == SCENARIOS
    assert len(results) == len(SCENARIOS)
    for result in results:
        for name in TIME_FIELDS:
            assert _positive_finite(result[name]), (result["scenario"], name)
        assert _positive_finite(result["median_ratio"]), result["scenario"]
        assert _positive_finite(result["median_cpu_ratio"]), result["scenario"]
        assert result["pairs"] >= 1
        assert len(result["epoch_s_with"]) == len(result["epoch_s_without"])
        assert all(_positive_finite(t) for t in result["epoch_s_with"])
        assert all(_positive_finite(t) for t in result["epoch_s_without"])
        if result["goal"] is None:
            assert result["passed"] is None
        else:
            assert isinstance(result["passed"], bool)
    # The table comes before the JSON line and names every scenario.
    table = "\n".join(lines[:-1])
    for scenario in SCENARIOS:
        assert scenario in table
