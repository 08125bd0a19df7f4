import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_layers_benchmark_prints_json_summary():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    paths = [REPO_ROOT, env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "layers.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == "layers"
    assert summary["quick"] is True
    layers = {row["layer"] for row in summary["rows"]}
    assert layers == {"PReLU", "ELU", "LeakyReLU", "SELU"}
    settings = {row["setting"] for row in summary["rows"]}
    assert len(settings) == 3
    expected_keys = {"kd_ms", "keras_ms", "relu_ms", "kd_over_keras", "kd_over_relu"}
    for row in summary["rows"]:
        assert set(row) >= expected_keys
