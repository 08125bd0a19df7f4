"""Running a benchmark script's ``--quick`` smoke mode, for the benchmark tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_quick(name: str, timeout: float) -> tuple[dict, list[str]]:
    """Runs ``benchmarks/<name>.py --quick`` with the repository on the path.

    Returns the JSON summary (the last line of stdout) and the lines before
    it (the table). Fails with the end of stderr when the script fails.
    """
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    paths = [str(REPO_ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-4000:]
    return json.loads(lines[-1]), lines[:-1]


def positive_finite(value: object) -> bool:
    """A real number (not a bool) that is finite and > 0."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
