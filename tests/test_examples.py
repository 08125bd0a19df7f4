"""The examples run end to end with a tiny setting."""

import os
import subprocess
import sys

from event_files import read_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_compare_layers_prints_a_table_and_writes_one_run_per_arm(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "compare_layers.py"),
            "--quick",
            "--logdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("arm "))
    arms = [line.split("  ")[0] for line in lines[header + 1 : header + 8]]
    assert arms == [
        "relu",
        "relu, lr 0.05",
        "relu, bias -3",
        "kd.PReLU",
        "kd.ELU",
        "kd.SELUDense",
        "kd.LeakyReLU",
    ]
    bias_row = lines[header + 3]
    assert " 100%" in bias_row  # born dead: biases far below zero
    assert f"tensorboard --logdir {tmp_path}" in result.stdout
    runs = sorted(os.listdir(tmp_path))
    assert len(runs) == 7
    for run in runs:
        records = read_run(os.path.join(tmp_path, run, "dead_neurons"))
        assert [step for step, _, _ in records["dead_fraction"]] == [0, 1]
