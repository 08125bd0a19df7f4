"""``keras-deadrelu report``: a summary table of the monitor's TensorBoard logs.

Every folder under LOGDIR whose event files hold a ``dead_fraction`` tag (what
:class:`~keras_deadrelu.DeadNeuronMonitor` writes into ``<log_dir>/<run_name>``)
is one *run*; links to folders are followed, as TensorBoard does. A new
``fit`` written into a folder that already held data supersedes the old data
from its first step on, as in the dashboard. Per run and site the report gives
the final and peak dead fraction, the window at which the site first reached
the threshold, and the fixes applied there. Event files are read with
TensorBoard's own record reader; a corrupt or truncated file is named on
stderr and left out.

The reading (:func:`read_logdir`, :func:`read_runs`) returns plain data;
:func:`format_report` and :func:`plot_runs` only present it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from keras_deadrelu._cli_arguments import format_threshold, fraction_argument
from keras_deadrelu.tensorboard_plugin.metadata import TEXT_SEPARATOR
from keras_deadrelu.tensorboard_plugin.reader import current, find_restarts
from keras_deadrelu.threshold_alerts import reaches_threshold

DEFAULT_THRESHOLD = 0.5
EVENT_FILE_MARKER = "events.out.tfevents."
MODEL_WIDE_TAG = "dead_fraction"
FLOAT32_TOLERANCE = 1e-6
SITE_TAG_PREFIX = "dead_fraction/"
FIX_TAG_PREFIX = "fix/"
TEXT_TAGS = ("monitor_config", "fix_events", "diagnosis")
DEFAULT_PLOT_FORMAT = "png"
# A TFRecord is: length (8 bytes), its CRC (4), the data, the data's CRC (4).
_RECORD_OVERHEAD_BYTES = 16


@dataclasses.dataclass(frozen=True)
class FixApplied:
    """One fix action found in a run.

    Attributes:
        fix: the fix's name, e.g. ``"revive"`` (the ``fix/<name>`` tag).
        step: the TensorBoard step of the window that triggered it.
        site: the site it acted for, or None when only the marker was found.
        message: the ``fix_events`` line, or ``""`` when there was none.
    """

    fix: str
    step: int
    site: str | None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class SiteSummary:
    """The dead-fraction series of one site (or the model-wide one) in a run.

    Attributes:
        name: the site name; ``"(model-wide)"`` for the model-wide series.
        steps: the TensorBoard steps of the windows, in order.
        dead_fractions: the dead fraction at each step, in [0, 1].
        final: the last dead fraction.
        peak: the largest dead fraction.
        peak_step: the first step at which `peak` was reached.
        first_crossing_step: the first step whose dead fraction was at or
            above the run's threshold, or None.
        fixes: the fixes applied to this site, in step order.
    """

    name: str
    steps: tuple[int, ...]
    dead_fractions: tuple[float, ...]
    final: float
    peak: float
    peak_step: int
    first_crossing_step: int | None
    fixes: tuple[FixApplied, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One monitor run folder.

    Attributes:
        name: the folder, relative to LOGDIR (``"."`` for LOGDIR itself).
        path: the folder's path.
        threshold: the threshold used for `first_crossing_step`.
        threshold_source: ``"--threshold"``, ``"monitor_config"`` or
            ``"default"``.
        config: the monitor's settings (``monitor_config``), or ``{}``.
        window: ``"epoch"`` when the monitor measured per epoch (step =
            epoch - 1), ``"step"`` when per `freq` steps, ``"unknown"``.
        sites: one summary per site, in the order of the config's ``sites``
            (then by name).
        model_wide: the model-wide ``dead_fraction`` series.
        fixes: every fix found in the run, in step order.
        diagnoses: ``(step, text)`` of every ``diagnosis`` line.
    """

    name: str
    path: str
    threshold: float
    threshold_source: str
    config: dict[str, Any]
    window: str
    sites: tuple[SiteSummary, ...]
    model_wide: SiteSummary
    fixes: tuple[FixApplied, ...]
    diagnoses: tuple[tuple[int, str], ...]

    def site(self, name: str) -> SiteSummary:
        """Returns the summary of site `name` (raises KeyError if absent)."""
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """An event file that could not be read to its end, and why."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class LogdirReport:
    """Everything found under one LOGDIR: the runs and the files left out."""

    logdir: str
    runs: tuple[RunSummary, ...]
    skipped_files: tuple[SkippedFile, ...]
    #: Folders with ``dead_fraction/<site>`` tags but no model-wide
    #: ``dead_fraction`` tag (e.g. a custom loop's), which are not runs.
    site_only_folders: tuple[str, ...] = ()
    #: Event files read up to a damaged or unfinished end (a run cut short,
    #: or one still writing): their whole records are used, as TensorBoard
    #: uses them.
    partial_files: tuple[SkippedFile, ...] = ()


# ------------------------------------------------------------------- reading
class _Datum(NamedTuple):
    """One value of a tag, with what the dashboard's restart rule needs."""

    step: int
    wall_time: float
    value: Any


class _RunRecords:
    """The values of one run folder: scalars and texts by tag."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[_Datum]] = collections.defaultdict(list)
        self.texts: dict[str, list[_Datum]] = collections.defaultdict(list)


def _event_files(logdir: str) -> dict[str, list[str]]:
    """``{folder: [event file, ...]}`` for every folder under `logdir`.

    Symbolic links to folders are followed; a folder already seen (a link
    loop, or a second link to it) is read once.
    """
    found: dict[str, list[str]] = {}
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(logdir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders.sort()
        paths = sorted(
            os.path.join(folder, name) for name in files if EVENT_FILE_MARKER in name
        )
        if paths:
            found[folder] = paths
    return found


def _read_event_file(path: str) -> tuple[list[Any], str | None, bool]:
    """Returns the events of one file's whole records, why it was not read
    whole (or None), and whether that left events to use (a damaged or
    unfinished end after whole records: a run cut short, or still writing).

    TensorBoard's record reader stops quietly at a corrupt or truncated
    record (it expects a writer to finish it later), so the bytes read are
    compared with the file's size, taken after reading (a live run's file
    grows meanwhile), to tell a file with such an end from a whole one.
    """
    from tensorboard import data_compat, dataclass_compat
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    try:
        loader = event_file_loader.RawEventFileLoader(path)
        records = list(loader.Load())
        size = os.path.getsize(path)
    except Exception as error:  # noqa: BLE001 - any reader failure skips the file
        return [], f"cannot be read ({type(error).__name__}: {error})", False
    read_bytes = sum(len(record) + _RECORD_OVERHEAD_BYTES for record in records)
    problem = None
    if read_bytes < size:
        problem = (
            f"is corrupt or truncated: {len(records)} whole record(s) in the "
            f"first {read_bytes} of {size} bytes"
        )
    events = []
    initial_metadata: dict[str, Any] = {}
    try:
        for record in records:
            event = data_compat.migrate_event(event_pb2.Event.FromString(record))
            events.extend(dataclass_compat.migrate_event(event, initial_metadata))
    except Exception as error:  # noqa: BLE001 - a bad proto skips the file
        return [], f"holds a record that is not an event ({error})", False
    # A file of which not even the first record (the version event) is whole
    # is not an event file at all.
    return events, problem, bool(problem and records)


def _collect(events: Iterable[Any], records: _RunRecords) -> None:
    from tensorboard.util import tensor_util

    for event in events:
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            tag = value.tag
            if value.HasField("tensor"):
                array = tensor_util.make_ndarray(value.tensor)
            elif value.HasField("simple_value"):
                array = np.asarray(value.simple_value)
            else:
                continue
            if array.dtype.kind in "SUO":
                if tag not in TEXT_TAGS:
                    continue  # images, layouts: bytes, not text
                item = array.reshape(-1)[0] if array.size else b""
                text = (
                    item.decode("utf-8", "replace")
                    if isinstance(item, bytes)
                    else str(item)
                )
                records.texts[tag].append(
                    _Datum(int(event.step), event.wall_time, text)
                )
            elif array.size == 1 and array.dtype.kind in "biuf":
                number = float(array.item())
                records.scalars[tag].append(
                    _Datum(int(event.step), event.wall_time, number)
                )


def _kept(datum: _Datum, restarts: list[tuple[float, int]]) -> bool:
    """Whether no restart superseded `datum` (the dashboard's rule)."""
    return bool(current([datum], restarts))


def _current_records(records: _RunRecords) -> _RunRecords:
    """`records` less what a newer fit into the same folder superseded.

    Restarts are found in the model-wide series, one value per window, as
    the dashboard finds them in its per-window data. Series keep one value
    per step; fix markers and texts keep every line not superseded, except
    ``monitor_config``: only the newest (written just before its fit's
    first window).
    """
    restarts = find_restarts(records.scalars[MODEL_WIDE_TAG])
    kept = _RunRecords()
    for tag, series in records.scalars.items():
        if tag.startswith(FIX_TAG_PREFIX):
            kept.scalars[tag] = [datum for datum in series if _kept(datum, restarts)]
        else:
            kept.scalars[tag] = current(series, restarts)
    for tag, texts in records.texts.items():
        if tag == "monitor_config":
            kept.texts[tag] = sorted(texts, key=lambda datum: datum.wall_time)[-1:]
        else:
            kept.texts[tag] = [datum for datum in texts if _kept(datum, restarts)]
    return kept


def _series_summary(
    name: str,
    data: list[_Datum],
    threshold: float,
    fixes: tuple[FixApplied, ...] = (),
) -> SiteSummary:
    series = sorted(((d.step, d.value) for d in data), key=lambda item: item[0])
    steps = tuple(step for step, _ in series)
    fractions = tuple(value for _, value in series)
    peak = max(fractions)
    # TensorBoard stores float32: 7/10 reads back as 0.69999999. The monitor
    # compared the exact fraction, so compare with float32's tolerance.
    crossing = next(
        (
            step
            for step, value in series
            if reaches_threshold(value, threshold, FLOAT32_TOLERANCE)
        ),
        None,
    )
    return SiteSummary(
        name=name,
        steps=steps,
        dead_fractions=fractions,
        final=fractions[-1],
        peak=peak,
        peak_step=steps[fractions.index(peak)],
        first_crossing_step=crossing,
        fixes=fixes,
    )


def _fix_actions(records: _RunRecords, site_names: list[str]) -> list[FixApplied]:
    """Pairs the ``fix_events`` lines with the ``fix/<name>`` markers by step."""
    markers: collections.Counter = collections.Counter()
    for tag, series in records.scalars.items():
        if tag.startswith(FIX_TAG_PREFIX):
            for datum in series:
                # How many times the fix acted in the window (1 per action in
                # files written one summary per action).
                markers[(datum.step, tag[len(FIX_TAG_PREFIX) :])] += int(
                    round(float(datum.value))
                )
    fix_names = sorted({name for _, name in markers}, key=len, reverse=True)
    # Longest names first, so "outer/dense_1" is not read as "outer/dense".
    by_length = sorted(site_names, key=len, reverse=True)
    actions = []
    messages = [
        (step, message)
        for step, _, text in records.texts.get("fix_events", [])
        for message in text.split(TEXT_SEPARATOR)
    ]
    for step, message in messages:
        site = next((s for s in by_length if message.startswith(f"{s}: ")), None)
        if site is None and ": " in message:
            site = message.split(": ", 1)[0]
        fix = next((f for f in fix_names if f"applied {f}" in message), None)
        if fix is None:
            match = re.search(r"applied (\S+?)[ .(]", message)
            fix = match.group(1) if match else "?"
        if markers[(step, fix)] > 0:
            markers[(step, fix)] -= 1
        actions.append(FixApplied(fix=fix, step=step, site=site, message=message))
    for (step, fix), count in markers.items():
        actions.extend(FixApplied(fix=fix, step=step, site=None) for _ in range(count))
    return sorted(actions, key=lambda action: (action.step, action.site or ""))


def _parse_config(records: _RunRecords) -> dict[str, Any]:
    for _, _, text in records.texts.get("monitor_config", []):
        try:
            config = json.loads(text)
        except ValueError:
            continue
        if isinstance(config, dict):
            return config
    return {}


def _summarise_run(
    name: str, path: str, records: _RunRecords, threshold: float | None
) -> RunSummary:
    config = _parse_config(records)
    if threshold is not None:
        run_threshold, source = float(threshold), "--threshold"
    elif isinstance(config.get("threshold"), (int, float)):
        run_threshold, source = float(config["threshold"]), "monitor_config"
    else:
        run_threshold, source = DEFAULT_THRESHOLD, "default"
    freq = config.get("freq")
    window = "epoch" if freq == "epoch" else "step" if freq is not None else "unknown"

    site_series = {
        tag[len(SITE_TAG_PREFIX) :]: series
        for tag, series in records.scalars.items()
        if tag.startswith(SITE_TAG_PREFIX) and series
    }
    configured = [s for s in config.get("sites", []) if s in site_series]
    order = configured + sorted(set(site_series) - set(configured))
    fixes = _fix_actions(records, order)
    sites = tuple(
        _series_summary(
            site,
            site_series[site],
            run_threshold,
            tuple(fix for fix in fixes if fix.site == site),
        )
        for site in order
    )
    model_wide = _series_summary(
        "(model-wide)", records.scalars[MODEL_WIDE_TAG], run_threshold
    )
    return RunSummary(
        name=name,
        path=path,
        threshold=run_threshold,
        threshold_source=source,
        config=config,
        window=window,
        sites=sites,
        model_wide=model_wide,
        fixes=tuple(fixes),
        diagnoses=tuple(
            sorted(
                (step, message)
                for step, _, text in records.texts.get("diagnosis", [])
                for message in text.split(TEXT_SEPARATOR)
            )
        ),
    )


def read_logdir(
    logdir: str | os.PathLike, threshold: float | None = None
) -> LogdirReport:
    """Reads every monitor run under `logdir`.

    Args:
        logdir: the folder to search, recursively.
        threshold: the dead fraction a site must reach to count as crossed;
            None takes each run's own ``monitor_config`` threshold (0.5 when
            the run has none).

    Returns:
        A :class:`LogdirReport`: the runs, by folder name, the event files
        that were left out because they are corrupt or truncated, and the
        folders with per-site but no model-wide dead fractions.
    """
    logdir = os.fspath(logdir)
    runs = []
    skipped = []
    partial = []
    site_only = []
    for folder, paths in _event_files(logdir).items():
        records = _RunRecords()
        for path in paths:
            events, problem, usable = _read_event_file(path)
            if problem is not None:
                (partial if usable else skipped).append(SkippedFile(path, problem))
                if not usable:
                    continue
            _collect(events, records)
        if not records.scalars.get(MODEL_WIDE_TAG):
            if any(tag.startswith(SITE_TAG_PREFIX) for tag in records.scalars):
                site_only.append(folder)
            continue
        name = os.path.relpath(folder, logdir)
        records = _current_records(records)
        runs.append(_summarise_run(name, folder, records, threshold))
    return LogdirReport(
        logdir, tuple(runs), tuple(skipped), tuple(site_only), tuple(partial)
    )


def read_runs(
    logdir: str | os.PathLike, threshold: float | None = None
) -> list[RunSummary]:
    """The runs of :func:`read_logdir`, without the list of skipped files."""
    return list(read_logdir(logdir, threshold).runs)


# ---------------------------------------------------------------- presenting
def format_step(step: int | None, window: str) -> str:
    """``"epoch 3"`` for epoch windows (step 2), else ``"step 2"``; ``"-"`` for None.

    >>> format_step(2, "epoch"), format_step(40, "step"), format_step(None, "step")
    ('epoch 3', 'step 40', '-')
    """
    if step is None:
        return "-"
    if window == "epoch":
        return f"epoch {step + 1}"
    return f"step {step}"


def _percent(fraction: float) -> str:
    return f"{fraction:.1%}"


def _window_text(run: RunSummary) -> str:
    """``"one per epoch"``, ``"one per step"`` or ``"one per 3 steps"``."""
    freq = run.config.get("freq")
    if run.window == "step" and isinstance(freq, int) and freq > 1:
        return f"one per {freq} steps"
    return f"one per {run.window}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned text columns, right-aligned percentages."""
    widths = [
        max(len(row[column]) for row in [header, *rows])
        for column in range(len(header))
    ]
    numeric = [
        all(row[column].endswith("%") for row in rows) for column in range(len(header))
    ]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *(line(row) for row in rows)]


def format_run(run: RunSummary) -> str:
    """The table of one run, as text."""
    threshold_note = {
        "--threshold": "from --threshold",
        "monitor_config": "from monitor_config",
        "default": "default",
    }[run.threshold_source]
    windows = run.model_wide.steps
    threshold = format_threshold(run.threshold)
    lines = [
        f"run: {run.name}  ({len(windows)} windows, {_window_text(run)}, "
        f"threshold {threshold} {threshold_note})"
    ]
    header = [
        "site",
        "final dead",
        "peak dead",
        "peak at",
        f"first >= {threshold}",
        "fixes applied",
    ]
    rows = []
    for site in (*run.sites, run.model_wide):
        fixes = ", ".join(
            f"{fix.fix} @ {format_step(fix.step, run.window)}" for fix in site.fixes
        )
        rows.append(
            [
                site.name,
                _percent(site.final),
                _percent(site.peak),
                format_step(site.peak_step, run.window),
                format_step(site.first_crossing_step, run.window),
                fixes or "-",
            ]
        )
    lines.extend(_table(header, rows))
    unattributed = [fix for fix in run.fixes if fix.site is None]
    for fix in unattributed:
        lines.append(f"fix {fix.fix} @ {format_step(fix.step, run.window)}")
    return "\n".join(lines)


def format_report(runs: Iterable[RunSummary]) -> str:
    """The tables of every run, separated by blank lines."""
    return "\n\n".join(format_run(run) for run in runs)


def plot_path(path: str | os.PathLike) -> tuple[str, str]:
    """The file :func:`plot_runs` writes for `path`, and its format.

    A name without an extension gets ``.png``. Raises ValueError naming an
    extension Matplotlib cannot write or a folder (no file name),
    ImportError without Matplotlib.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = os.fspath(path)
    name = os.path.basename(path)
    if os.path.isdir(path) or name in ("", ".", ".."):
        raise ValueError(
            f"{path!r} is a folder; give the figure a file name, such as "
            f"{os.path.join(path, 'dead.png')!r}"
        )
    extension = os.path.splitext(path)[1]
    if not extension:
        return f"{path}.{DEFAULT_PLOT_FORMAT}", DEFAULT_PLOT_FORMAT
    plot_format = extension[1:].lower()
    supported = FigureCanvasAgg.get_supported_filetypes()
    if plot_format not in supported:
        raise ValueError(
            f"unsupported figure format {extension!r} in {path!r}; use one of "
            + ", ".join(f".{name}" for name in sorted(supported))
        )
    return path, plot_format


def fix_labels(run: RunSummary) -> dict[int, str]:
    """``{step: label}`` of the fix lines: the names of the fixes at each
    step, joined, in the order they acted."""
    names: dict[int, list[str]] = collections.defaultdict(list)
    for fix in run.fixes:
        if fix.fix not in names[fix.step]:
            names[fix.step].append(fix.fix)
    return {step: ", ".join(fixes) for step, fixes in names.items()}


def plot_runs(runs: list[RunSummary], path: str | os.PathLike) -> str:
    """Writes a figure (format from the extension, else PNG); returns its path.

    One axes per run, dead % over steps per site: sites are solid lines, the
    model-wide fraction is dashed, the threshold is dotted, and each step
    with fixes is a vertical line labelled with their names.
    Uses Matplotlib's Agg canvas directly (no pyplot, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path, plot_format = plot_path(path)

    columns = min(len(runs), 2)
    rows = -(-len(runs) // columns)
    figure = Figure(figsize=(6.5 * columns, 4.0 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(runs):
            axes.set_visible(False)
            continue
        run = runs[index]
        for site in run.sites:
            axes.plot(
                site.steps,
                [100 * value for value in site.dead_fractions],
                marker="o",
                markersize=3,
                label=site.name,
            )
        axes.plot(
            run.model_wide.steps,
            [100 * value for value in run.model_wide.dead_fractions],
            linestyle="--",
            color="black",
            label="model-wide",
        )
        axes.axhline(100 * run.threshold, linestyle=":", color="grey", linewidth=1)
        for step, label in fix_labels(run).items():
            axes.axvline(step, color="tab:red", alpha=0.6, linewidth=1)
            axes.annotate(
                label,
                xy=(step, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                color="tab:red",
                fontsize=8,
            )
        axes.set_title(run.name)
        axes.set_xlabel(
            "epoch - 1 (TensorBoard step)" if run.window == "epoch" else "step"
        )
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("dead units (%)")
        axes.set_ylim(-2, 102)
        axes.legend(fontsize=8, loc="center right")
    figure.savefig(path, format=plot_format, dpi=100)
    return path


# ----------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``report`` arguments to `parser`."""
    parser.add_argument("logdir", metavar="LOGDIR", help="TensorBoard log directory")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also write a figure of dead fraction over steps (needs matplotlib; "
        "format from the extension: .png, .svg, .pdf, ...; none: .png is added)",
    )
    parser.add_argument(
        "--threshold",
        type=fraction_argument,
        default=None,
        help="dead fraction in [0, 1] for the 'first >=' column (default: each "
        "run's monitor_config threshold, else 0.5)",
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``keras-deadrelu report``; returns the exit code."""
    logdir = args.logdir
    if not os.path.isdir(logdir):
        what = "is not a directory" if os.path.exists(logdir) else "does not exist"
        print(
            f"keras-deadrelu report: error: LOGDIR {logdir!r} {what}.", file=sys.stderr
        )
        return 2
    if args.plot:
        try:
            plot_file, _ = plot_path(args.plot)
        except ImportError:
            print(
                "keras-deadrelu report: error: --plot needs matplotlib "
                "(pip install 'keras-deadrelu[plot]').",
                file=sys.stderr,
            )
            return 2
        except ValueError as error:
            print(f"keras-deadrelu report: error: --plot: {error}.", file=sys.stderr)
            return 2
    report = read_logdir(logdir, args.threshold)
    for skipped in report.skipped_files:
        print(
            f"keras-deadrelu report: warning: skipped {skipped.path}: "
            f"{skipped.reason}.",
            file=sys.stderr,
        )
    for partial in report.partial_files:
        print(
            f"keras-deadrelu report: warning: {partial.path} {partial.reason}; "
            "its whole records are used (a run cut short, or still writing).",
            file=sys.stderr,
        )
    if not report.runs:
        if report.site_only_folders:
            folders = ", ".join(repr(folder) for folder in report.site_only_folders)
            reason = (
                f"{folders} has 'dead_fraction/<site>' tags but no model-wide "
                "'dead_fraction' tag, which the report needs"
            )
        else:
            reason = "no event file with a 'dead_fraction' tag"
        print(
            f"keras-deadrelu report: no DeadNeuronMonitor data under {logdir!r} "
            f"({reason}).",
            file=sys.stderr,
        )
        return 1
    print(format_report(report.runs))
    if args.plot:
        try:
            plot_file = plot_runs(list(report.runs), plot_file)
        except (OSError, RuntimeError) as error:
            print(
                f"keras-deadrelu report: error: cannot write {plot_file!r}: {error}",
                file=sys.stderr,
            )
            return 2
        print(f"\nwrote {plot_file}")
    return 0
