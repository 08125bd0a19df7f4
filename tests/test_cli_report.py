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
from dashboard.wsgi_app import PLUGIN_ROUTE, tensorboard_client
from event_files import read_run, scalar_series
from tensorboard.util import tensor_util

import keras_deadrelu as kd
from keras_deadrelu.command_line import main
from keras_deadrelu.report import read_logdir, read_runs

EPOCHS = 4
rng = np.random.default_rng(11)
X = rng.normal(size=(128, 6)).astype("float32")
Y = (X[:, :1] - X[:, 1:2]).astype("float32")


def _model(dying_bias):
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
    return model


def _fit(
    log_dir, dying_bias, fix, epochs=EPOCHS, model=None, initial_epoch=0, **monitor
):
    """Fits a two-site model with a new monitor; returns (history, monitor)."""
    model = _model(dying_bias) if model is None else model
    callback = kd.DeadNeuronMonitor(log_dir=str(log_dir), fix=fix, verbose=0, **monitor)
    history = model.fit(
        X,
        Y,
        epochs=epochs,
        initial_epoch=initial_epoch,
        batch_size=32,
        verbose=0,
        callbacks=[callback],
    )
    return history.history, callback


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
    # Threshold 0 is "any dead unit", as in the monitor: a site crosses at its
    # first window with a dead unit, a site that never had one never does.
    firsts = []
    for run_name, (run_history, _) in fits.items():
        for site in ("healthy", "dying"):
            fractions = run_history[f"dead_fraction/{site}"]
            first = next((i for i, value in enumerate(fractions) if value > 0), None)
            assert _row(output, run_name, site)[4] == _epoch(first), (run_name, site)
            firsts.append(first)
    assert None in firsts and any(first is not None for first in firsts)
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


@pytest.mark.parametrize(
    "command, arguments", [("report", ["logs"]), ("check", ["m.keras", "x.npy"])]
)
def test_an_unknown_option_shows_the_subcommands_usage(capsys, command, arguments):
    assert main([command, *arguments, "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: keras-deadrelu {command} ")
    assert "unrecognized arguments: --bogus" in err


def test_corrupt_files_are_skipped_and_truncated_ones_read_to_their_end(
    logs, tmp_path, capsys
):
    """A file that is no event file is skipped; one cut short (a run killed,
    or still writing) gives the windows of its whole records, as TensorBoard
    reads it."""
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
    assert sorted(run.name.replace(os.sep, "/") for run in report.runs) == [
        "broken/dead_neurons",
        "revived/dead_neurons",
    ]
    assert [skipped.path for skipped in report.skipped_files] == [str(garbage)]
    assert [partial.path for partial in report.partial_files] == [str(truncated)]
    revived = next(run for run in report.runs if run.name.startswith("revived"))
    np.testing.assert_allclose(
        revived.site("dying").dead_fractions,
        fits["revived/dead_neurons"][0]["dead_fraction/dying"],
        atol=1e-6,
    )
    # The truncated copy: the first windows of the plain run, read back with
    # TensorBoard's own accumulator from the same bytes.
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        str(truncated), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    expected = [
        float(np.asarray(tensor_util.make_ndarray(event.tensor_proto)))
        for event in accumulator.Tensors("dead_fraction")
    ]
    broken = next(run for run in report.runs if run.name.startswith("broken"))
    assert 0 < len(expected) < len(fits["plain/dead_neurons"][0]["dead_fraction"])
    np.testing.assert_allclose(broken.model_wide.dead_fractions, expected, atol=1e-6)

    assert main(["report", str(logdir)]) == 0
    captured = capsys.readouterr()
    assert "run: revived/dead_neurons" in captured.out
    assert "run: broken/dead_neurons" in captured.out
    assert f"skipped {garbage}" in captured.err
    assert f"{truncated} is corrupt or truncated" in captured.err
    assert "its whole records are used" in captured.err


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


# ------------------------------------------------ several fits into one folder
@pytest.fixture(scope="module")
def refits(tmp_path_factory):
    """Three folders, each written by two fits.

    - ``rerun``: a 3-epoch fit with fix='revive', then a 2-epoch fit with a
      new monitor (threshold 0.3, no fix), as a script run twice does;
    - ``resumed``: a 3-epoch fit, then a new monitor resuming at epoch 3;
    - ``same``: one monitor, two 2-epoch fits (steps go on).
    """
    root = tmp_path_factory.mktemp("refits")
    old = _fit(root / "rerun", dying_bias=-5.0, fix="revive", epochs=3)
    new = _fit(root / "rerun", dying_bias=0.0, fix=None, epochs=2, threshold=0.3)
    model = _model(dying_bias=-5.0)
    first = _fit(root / "resumed", None, "revive", epochs=3, model=model)
    resumed = _fit(root / "resumed", None, None, epochs=4, model=model, initial_epoch=2)
    model = _model(dying_bias=0.0)
    monitor = kd.DeadNeuronMonitor(log_dir=str(root / "same"), verbose=0)
    same = [
        model.fit(X, Y, epochs=2, batch_size=32, verbose=0, callbacks=[monitor])
        for _ in range(2)
    ]
    return root, {
        "rerun": (old, new),
        "resumed": (first, resumed),
        "same": ([fit.history for fit in same], monitor),
    }


def _runs(root):
    return {run.name.split(os.sep)[0]: run for run in read_runs(root)}


def test_a_new_fit_supersedes_the_old_one_from_its_first_step(refits):
    root, fits = refits
    (_, old_monitor), (new_history, new_monitor) = fits["rerun"]
    assert old_monitor.events and not new_monitor.events  # the old fit had a fix
    run = _runs(root)["rerun"]
    assert run.model_wide.steps == (0, 1)
    np.testing.assert_allclose(
        run.model_wide.dead_fractions, new_history["dead_fraction"], atol=1e-6
    )
    for site in run.sites:
        assert site.steps == (0, 1)
        np.testing.assert_allclose(
            site.dead_fractions, new_history[f"dead_fraction/{site.name}"], atol=1e-6
        )
        assert site.fixes == ()
    assert run.fixes == ()
    assert (run.threshold, run.threshold_source) == (0.3, "monitor_config")
    assert run.config["fixes"] == []


def test_a_resumed_fit_keeps_the_old_windows_before_its_first_step(refits):
    root, fits = refits
    (old_history, old_monitor), (new_history, _) = fits["resumed"]
    run = _runs(root)["resumed"]
    assert run.model_wide.steps == (0, 1, 2, 3)
    for site in run.sites:
        tag = f"dead_fraction/{site.name}"
        np.testing.assert_allclose(
            site.dead_fractions, old_history[tag][:2] + new_history[tag], atol=1e-6
        )
    kept = [(e.fix, e.step, e.site) for e in old_monitor.events if e.step < 2]
    assert kept  # born dead: revived at epoch 1
    assert [(fix.fix, fix.step, fix.site) for fix in run.fixes] == kept


def test_two_fits_with_one_monitor_go_on(refits):
    root, fits = refits
    histories, monitor = fits["same"]
    run = _runs(root)["same"]
    assert run.model_wide.steps == (0, 1, 2, 3)
    np.testing.assert_allclose(
        run.model_wide.dead_fractions,
        [value for history in histories for value in history["dead_fraction"]],
        atol=1e-6,
    )
    assert len(run.fixes) == len(monitor.events) == 0


def test_report_and_dashboard_agree_after_a_refit(refits):
    root, _ = refits
    client = tensorboard_client(root)
    for name, run in _runs(root).items():
        tensorboard_run = run.name.replace(os.sep, "/")
        response = client.get(PLUGIN_ROUTE + f"overview?run={tensorboard_run}")
        assert response.status_code == 200, response.get_data(as_text=True)
        view = response.get_json()
        assert tuple(view["steps"]) == run.model_wide.steps, name
        np.testing.assert_allclose(
            view["model_dead_fraction"], run.model_wide.dead_fractions, atol=1e-6
        )
        assert [(e["fix"], e["step"], e["site"]) for e in view["fix_events"]] == [
            (fix.fix, fix.step, fix.site) for fix in run.fixes
        ]


# ------------------------------------------------------------------ --plot
def test_plot_with_an_unsupported_extension_exits_2_before_the_table(
    logs, tmp_path, capsys
):
    root, _ = logs
    figure = tmp_path / "out.xyz"
    assert main(["report", str(root), "--plot", str(figure)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = captured.err.strip().splitlines()
    assert len(error_lines) == 1
    assert "'.xyz'" in error_lines[0] and ".png" in error_lines[0]
    assert not figure.exists()


@pytest.mark.parametrize("trailing", [os.sep, ""])
def test_plot_into_a_folder_asks_for_a_file_name(logs, tmp_path, capsys, trailing):
    root, _ = logs
    folder = str(tmp_path / "figures") + trailing
    if not trailing:
        os.mkdir(folder)
    assert main(["report", str(root), "--plot", folder]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (error_line,) = captured.err.strip().splitlines()
    assert "is a folder" in error_line and "dead.png" in error_line
    assert not os.path.exists(os.path.join(tmp_path, "figures", ".png"))


def test_plot_without_extension_names_the_png_it_wrote(logs, tmp_path, capsys):
    root, _ = logs
    figure = tmp_path / "noext"
    assert main(["report", str(root), "--plot", str(figure)]) == 0
    written = tmp_path / "noext.png"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["noext.png"]
    assert capsys.readouterr().out.endswith(f"wrote {written}\n")


def test_fixes_at_one_step_share_one_label(tmp_path, capsys):
    _, monitor = _fit(tmp_path / "logs", dying_bias=-5.0, fix=["lower_lr", "revive"])
    first_step = monitor.events[0].step
    names = []
    for event in monitor.events:
        if event.step == first_step and event.fix not in names:
            names.append(event.fix)
    assert len(names) == 2  # the test needs two fixes at one step
    figure = tmp_path / "fixes.svg"
    assert main(["report", str(tmp_path / "logs"), "--plot", str(figure)]) == 0
    assert f"wrote {figure}" in capsys.readouterr().out
    # Matplotlib's SVG draws text as paths, each after a comment with the text.
    svg = figure.read_text()
    assert f"<!-- {', '.join(names)} -->" in svg
    for name in names:
        assert f"<!-- {name} -->" not in svg


# ------------------------------------------------------- folders and wording
def test_runs_behind_symlinks_are_found_once(logs, tmp_path, capsys):
    root, fits = logs
    logdir = tmp_path / "logdir"
    logdir.mkdir()
    try:
        (logdir / "linked").symlink_to(root / "plain", target_is_directory=True)
        (logdir / "linked" / "loop").symlink_to(logdir, target_is_directory=True)
    except OSError as error:  # e.g. Windows without the privilege
        pytest.skip(f"cannot make symbolic links here: {error}")
    try:
        runs = read_runs(logdir)
    finally:
        os.unlink(root / "plain" / "loop")
    assert [run.name.replace(os.sep, "/") for run in runs] == ["linked/dead_neurons"]
    history, _ = fits["plain/dead_neurons"]
    np.testing.assert_allclose(
        runs[0].model_wide.dead_fractions, history["dead_fraction"], atol=1e-6
    )


def test_header_names_the_window_length_and_the_exact_threshold(tmp_path, capsys):
    history, _ = _fit(tmp_path / "logs", dying_bias=0.0, fix=None, epochs=2, freq=3)
    records = read_run(str(tmp_path / "logs" / "dead_neurons"))
    windows = len(scalar_series(records, "dead_fraction"))
    assert windows > 1
    assert main(["report", str(tmp_path / "logs"), "--threshold", "0.005"]) == 0
    output = capsys.readouterr().out
    assert (
        f"({windows} windows, one per 3 steps, threshold 0.5% from --threshold)"
        in output
    )
    assert re.search(r"\bfirst >= 0\.5%\s", output.splitlines()[1] + " ")
    assert history


def test_site_tags_without_the_model_wide_tag_are_named(tmp_path, capsys):
    import tensorflow as tf

    # As examples/custom_training_loop.py writes: per-site fractions only.
    model = _model(dying_bias=-5.0)
    writer = tf.summary.create_file_writer(str(tmp_path / "loop"))
    with writer.as_default(step=1):
        for name, fraction in kd.dead_fractions(model, X).items():
            tf.summary.scalar(f"dead_fraction/{name}", fraction)
    writer.close()
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "loop") in err
    assert "no model-wide 'dead_fraction' tag" in err
    assert "no event file with a 'dead_fraction' tag" not in err
