"""Each example script runs end to end with ``--quick``, and prints real figures."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

from event_files import read_run, scalar_series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name: str, *args: str) -> str:
    """Runs ``examples/<name>.py --quick <args>``; returns its stdout."""
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", f"{name}.py"),
            "--quick",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def test_quickstart_revives_the_dying_layer(tmp_path):
    stdout = run_example("quickstart", "--logdir", str(tmp_path))
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("epoch "))
    assert lines[header].split() == ["epoch", "hidden", "dying", "model"]
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        rows.append([float(cell.rstrip("%")) for cell in line.split()])
    assert [row[0] for row in rows] == [1, 2, 3]
    dying = [row[2] for row in rows]
    assert dying[0] == 100  # born dead: bias -5
    assert max(dying[1:]) < 50  # revived after epoch 1
    assert re.search(r"dying: 100% dead \(32/32\) at epoch 1: applied revive", stdout)
    assert f"tensorboard --logdir {tmp_path}" in stdout
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    assert [step for step, _ in scalar_series(records, "fix/revive")] == [0]


def test_cnn_prints_dead_channels_per_relu_site(tmp_path):
    stdout = run_example("cnn", "--logdir", str(tmp_path))
    counts = {
        match["site"]: match
        for match in re.finditer(
            r"(?P<site>relu_\d): (?P<dead>\d+)/(?P<units>\d+) channels dead "
            r"\[(?P<mask>[x.]+)\] dead channels: \[(?P<indices>[\d, ]*)\]",
            stdout,
        )
    }
    assert sorted(counts) == ["relu_1", "relu_2"]
    assert counts["relu_1"]["units"] == "16"
    assert counts["relu_2"]["units"] == "32"
    for match in counts.values():
        mask = match["mask"]
        assert len(mask) == int(match["units"])
        assert mask.count("x") == int(match["dead"])
        indices = [int(i) for i in match["indices"].split(",") if i.strip()]
        assert indices == [i for i, c in enumerate(mask) if c == "x"]
    # The four channels with a BatchNormalization offset of -10 stay dead.
    assert counts["relu_2"]["indices"] == "0, 1, 2, 3"
    rates = re.search(r"relu_2 firing rate per channel: (.*)", stdout)[1].split()
    assert len(rates) == 32
    assert all(float(rate) == 0.0 for rate in rates[:4])
    assert all(float(rate) > 0.0 for rate in rates[4:])

    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    series = scalar_series(records, "dead_fraction/relu_2")
    assert [step for step, _ in series] == [0, 1]
    assert abs(series[-1][1] - 4 / 32) < 1e-6
    assert "firing_rate/relu_1" in records


def test_self_normalizing_keeps_lecun_moments_near_zero_and_one(tmp_path):
    stdout = run_example("self_normalizing", "--logdir", str(tmp_path))
    rows = re.findall(
        r"^(selu_\d+)\s+([-+]\d+\.\d+)\s+(\d+\.\d+)\s+([-+]\d+\.\d+)\s+(\d+\.\d+)$",
        stdout,
        flags=re.MULTILINE,
    )
    assert [row[0] for row in rows] == [f"selu_{i}" for i in range(1, 9)]
    for _, mean, std, _, _ in rows:
        assert abs(float(mean)) <= 0.2
        assert abs(float(std) - 1.0) <= 0.25
    he_stds = [float(row[4]) for row in rows]
    assert he_stds[-1] > 1.5  # he_normal drifts,
    assert he_stds[-1] > he_stds[0] + 1.0  # more with depth
    records = read_run(os.path.join(tmp_path, "lecun_normal", "dead_neurons"))
    logged = scalar_series(records, "selu_std/selu_8")
    assert abs(logged[-1][1] - float(rows[-1][2])) < 1e-3


def test_custom_training_loop_detects_the_born_dead_layer(tmp_path):
    stdout = run_example("custom_training_loop", "--logdir", str(tmp_path))
    before = re.search(r"^before training: (.*)$", stdout, flags=re.MULTILINE)[1]
    assert "born_dead 100%" in before.split(", ")
    assert "born_dead is born dead" in stdout
    after = re.search(r"^after bias reset to 0\.01: .*born_dead (\d+)%", stdout, re.M)
    assert int(after[1]) < 50
    epochs = re.findall(
        r"^epoch (\d+): loss [\d.]+, val accuracy ([\d.]+), dead: hidden (\d+)%, "
        r"born_dead (\d+)%$",
        stdout,
        flags=re.MULTILINE,
    )
    assert [int(epoch) for epoch, *_ in epochs] == [1, 2]
    assert all(int(born_dead) < 50 for *_, born_dead in epochs)
    assert float(epochs[-1][1]) > 0.3  # it learns once the bias is reset
    records = read_run(str(tmp_path))
    logged = scalar_series(records, "dead_fraction/born_dead")
    assert [step for step, _ in logged] == [1, 2]
    assert round(logged[-1][1] * 100) == int(epochs[-1][3])


def test_with_callbacks_writes_csv_and_tensorboard_runs(tmp_path):
    stdout = run_example("with_callbacks", "--logdir", str(tmp_path))
    csv_path = os.path.join(tmp_path, "training.csv")
    assert f"CSV log: {csv_path}" in stdout
    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert "dead_fraction" in rows[0]
    assert "dead_fraction/hidden_1" in rows[0]
    column = [float(row["dead_fraction"]) for row in rows]
    assert all(0.0 <= value <= 1.0 for value in column)
    printed = [
        float(value)
        for value in re.findall(r"^\s+\d+\s+(\d\.\d{4})\s+", stdout, flags=re.M)
    ]
    assert printed == [round(value, 4) for value in column]
    assert os.path.isdir(os.path.join(tmp_path, "train"))
    assert os.path.isdir(os.path.join(tmp_path, "dead_neurons"))
    records = read_run(os.path.join(tmp_path, "dead_neurons"))
    logged = [value for _, value in scalar_series(records, "dead_fraction")]
    assert len(logged) == len(column)
    assert all(abs(a - b) < 1e-6 for a, b in zip(logged, column, strict=True))


def test_an_example_refuses_a_bad_epoch_count():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "cnn.py"), "--epochs", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--epochs must be >= 1, got 0" in result.stderr
