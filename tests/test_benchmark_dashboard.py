import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_dashboard_benchmark_prints_json_summary():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    paths = [REPO_ROOT, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    script = os.path.join(REPO_ROOT, "benchmarks", "dashboard.py")
    result = subprocess.run(
        [sys.executable, script, "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == "dashboard" and summary["quick"] is True
    assert {(row["provider"], row["route"]) for row in summary["rows"]} == {
        (provider, route)
        for provider in ("python", "rust")
        for route in ("overview", "overview/200", "site")
    }
    for row in summary["rows"]:
        assert row["median_s"] > 0 and row["load_s"] >= 0
