"""``keras-deadrelu report`` on real monitor logs written by ``model.fit``.

Expected values come from the ``History`` the fit returned and from
``monitor.events``, not from the report's own reader.
"""

import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_deadrelu as kd
from keras_deadrelu.command_line import main
from keras_deadrelu.report import read_logdir, read_runs

EPOCHS = 4
rng = np.random.default_rng(11)
X = rng.normal(size=(128, 6)).astype("float32")
Y = (X[:, :1] - X[:, 1:2]).astype("float32")


def _fit(log_dir, dying_bias, fix):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,))
    dying = keras.layers.Dense(
        8,
        activation="relu",
        name="dying",
        bias_initializer=keras.initializers.Constant(dying_bias),
    )(inputs)
    healthy = keras.layers.Dense(8, activation="relu", name="healthy")(inputs)
    joined = keras.layers.Concatenate()([dying, healthy])
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(joined))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    monitor = kd.DeadNeuronMonitor(log_dir=str(log_dir), fix=fix, verbose=0)
    history = model.fit(
        X, Y, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[monitor]
    )
    return history.history, monitor


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two runs: a dying site with fix='revive', and a healthy one without fix."""
    root = tmp_path_factory.mktemp("logs")
    revived = _fit(root / "revived", dying_bias=-5.0, fix="revive")
    plain = _fit(root / "plain", dying_bias=0.0, fix=None)
    return root, {"revived/dead_neurons": revived, "plain/dead_neurons": plain}


def _row(output, run_name, site):
    """The cells of `site`'s row in `run_name`'s table."""
    block = output.split(f"run: {run_name} ", 1)[1].split("\n\nrun: ", 1)[0]
    for line in block.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == site:
            return cells
    raise AssertionError(f"no row for {site!r} in:\n{block}")


def _epoch(index):
    return "-" if index is None else f"epoch {index + 1}"


def test_values_match_history_and_events(logs):
    root, fits = logs
    runs = {run.name.replace(os.sep, "/"): run for run in read_runs(root)}
    assert set(runs) == set(fits)
    for name, (history, monitor) in fits.items():
        run = runs[name]
        assert run.threshold == monitor.threshold
        assert run.threshold_source == "monitor_config"
        assert run.window == "epoch"
        site_names = [key.split("/", 1)[1] for key in history if "/" in key]
        assert [site.name for site in run.sites] == site_names
        for site in run.sites:
            expected = history[f"dead_fraction/{site.name}"]
            np.testing.assert_allclose(site.dead_fractions, expected, atol=1e-6)
            assert site.steps == tuple(range(EPOCHS))
            assert site.final == pytest.approx(expected[-1], abs=1e-6)
            assert site.peak == pytest.approx(max(expected), abs=1e-6)
            crossing = next(
                (i for i, v in enumerate(expected) if v >= monitor.threshold), None
            )
            assert site.first_crossing_step == crossing
        np.testing.assert_allclose(
            run.model_wide.dead_fractions, history["dead_fraction"], atol=1e-6
        )
        found = [(fix.fix, fix.step, fix.site) for fix in run.fixes]
        assert found == [
            (event.fix, event.step, event.site) for event in monitor.events
        ]
        assert [fix.message for fix in run.fixes] == [e.message for e in monitor.events]


def test_revive_run_has_the_fix_and_the_crossing(logs):
    _, fits = logs
    history, monitor = fits["revived/dead_neurons"]
    assert history["dead_fraction/dying"][0] == 1.0  # born dead: bias -5
    assert [(event.fix, event.site) for event in monitor.events][:1] == [
        ("revive", "dying")
    ]
    assert history["dead_fraction/healthy"][0] < 0.5
    assert fits["plain/dead_neurons"][1].events == []


def test_printed_table(logs, capsys):
    root, fits = logs
    assert main(["report", str(root)]) == 0
    output = capsys.readouterr().out
    for name, (history, monitor) in fits.items():
        sites = [key.split("/", 1)[1] for key in history if "/" in key]
        for site in [*sites, "(model-wide)"]:
            key = "dead_fraction" if site == "(model-wide)" else f"dead_fraction/{site}"
            values = history[key]
            crossing = next((i for i, v in enumerate(values) if v >= 0.5), None)
            fixes = ", ".join(
                f"{event.fix} @ epoch {event.step + 1}"
                for event in monitor.events
                if event.site == site
            )
            peak_at = _epoch(int(np.argmax(values)))
            assert _row(output, name, site) == [
                site,
                f"{values[-1]:.1%}",
                f"{max(values):.1%}",
                peak_at,
                _epoch(crossing),
                fixes or "-",
            ]
    assert "threshold 50.0% from monitor_config" in output


def test_threshold_override(logs, capsys):
    root, fits = logs
    history, _ = fits["plain/dead_neurons"]
    assert main(["report", str(root), "--threshold", "0"]) == 0
    output = capsys.readouterr().out
    assert _row(output, "plain/dead_neurons", "healthy")[4] == "epoch 1"
    assert "threshold 0.0% from --threshold" in output
    assert main(["report", str(root), "--threshold", "2"]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert history  # the fixture ran


def test_plot_writes_png(logs, tmp_path, capsys):
    root, _ = logs
    figure = tmp_path / "out.png"
    assert main(["report", str(root), "--plot", str(figure)]) == 0
    data = figure.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert f"wrote {figure}" in capsys.readouterr().out


def test_empty_logdir_exits_1(tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("nothing here")
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no DeadNeuronMonitor data" in err and str(tmp_path) in err


def test_missing_logdir_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_corrupt_and_truncated_files_are_skipped(logs, tmp_path, capsys):
    root, fits = logs
    logdir = tmp_path / "logs"
    shutil.copytree(root / "revived", logdir / "revived")
    garbage = logdir / "revived" / "dead_neurons" / "events.out.tfevents.123.bad"
    garbage.write_bytes(b"\x00garbage, not a TFRecord\xff" * 7)
    good_file = next((root / "plain" / "dead_neurons").glob("events.out.tfevents.*"))
    truncated = logdir / "broken" / "dead_neurons" / good_file.name
    truncated.parent.mkdir(parents=True)
    content = good_file.read_bytes()
    truncated.write_bytes(content[: len(content) // 2])

    report = read_logdir(logdir)
    assert [run.name.replace(os.sep, "/") for run in report.runs] == [
        "revived/dead_neurons"
    ]
    assert sorted(skipped.path for skipped in report.skipped_files) == sorted(
        [str(garbage), str(truncated)]
    )
    np.testing.assert_allclose(
        report.runs[0].site("dying").dead_fractions,
        fits["revived/dead_neurons"][0]["dead_fraction/dying"],
        atol=1e-6,
    )

    assert main(["report", str(logdir)]) == 0
    captured = capsys.readouterr()
    assert "run: revived/dead_neurons" in captured.out
    assert "broken" not in captured.out
    assert f"skipped {garbage}" in captured.err
    assert f"skipped {truncated}" in captured.err
    assert "corrupt or truncated" in captured.err


def test_python_dash_m_runs_the_report(logs):
    root, _ = logs
    result = subprocess.run(
        [sys.executable, "-m", "keras_deadrelu", "report", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "run: revived/dead_neurons" in result.stdout
    assert "run: plain/dead_neurons" in result.stdout


def test_console_script_runs_the_report(logs):
    root, _ = logs
    script = os.path.join(os.path.dirname(sys.executable), "keras-deadrelu")
    if not os.path.exists(script):
        pytest.skip("the keras-deadrelu console script is not installed here")
    result = subprocess.run(
        [script, "report", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "run: revived/dead_neurons" in result.stdout
