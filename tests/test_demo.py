"""The demo end to end, in its quick setting, on the bundled digits."""

import os
import re
import sys

import pytest
from event_files import read_run

from keras_deadrelu import demo
from keras_deadrelu.command_line import main


def test_quick_demo_prints_the_table_and_writes_one_run_per_arm(tmp_path, capsys):
    assert demo.main(["--quick", "--logdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("arm "))
    rows = {line[:30].strip(): line for line in lines[header + 1 : header + 11]}
    assert list(rows) == [arm.name for arm in demo.ARMS]
    # The bias cause without a fix: every hidden unit dead, chance accuracy.
    bias_row = rows["relu, bias -3"].split()
    assert bias_row[3] == "100%" and float(bias_row[-2]) < 0.2
    # The same network with revive: units back, and it learns.
    revive_row = rows["bias -3 + revive"]
    assert re.search(r"revive x\d+ \(from epoch 1\)", revive_row)
    assert f"tensorboard --logdir {tmp_path}" in out
    # Progress: a line per arm with a dot per epoch.
    assert "[1/10] relu ... dead" in out
    runs = sorted(os.listdir(tmp_path))
    assert len(runs) == len(demo.ARMS)
    for run in runs:
        records = read_run(os.path.join(tmp_path, run, "dead_neurons"))
        assert [step for step, _, _ in records["dead_fraction"]] == [0, 1, 2]


@pytest.mark.parametrize("epochs", ["0", "-1", "two"])
def test_demo_rejects_a_bad_epoch_count(tmp_path, capsys, epochs):
    assert main(["demo", "--epochs", epochs, "--logdir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "keras-deadrelu demo: error: argument --epochs" in captured.err
    assert captured.out == "" and not os.listdir(tmp_path)


def test_demo_names_a_logdir_that_cannot_hold_logs_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert main(["demo", "--quick", "--logdir", str(a_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"keras-deadrelu demo: error: --logdir {str(a_file)!r}" in captured.err


def test_demo_without_scikit_learn_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    assert main(["demo", "--quick", "--logdir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "pip install 'keras-deadrelu[demo]'" in captured.err


def test_demo_help_is_plain_text(capsys):
    assert main(["demo", "--help"]) == 0
    assert "``" not in capsys.readouterr().out
