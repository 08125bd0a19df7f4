"""The Dead Neurons TensorBoard plugin: routes, validation and static files.

Routes (under ``/data/plugin/dead_neurons/``), every answer JSON except the
static files:

====================================  =========================================
route                                 answer
====================================  =========================================
``runs``                              the runs holding monitor data, each
                                      with its sites in model order
``overview?run=R[&max_windows=N]``    sites x windows dead fractions, the
                                      model-wide line and the fix events
``site?run=R&site=S[&max_windows=N]`` one site's figures and its units x
                                      windows firing-rate map
``index.js``, ``static/<file>``       the frontend, from the plugin's folder
====================================  =========================================

An unknown run, site, parameter or a bad ``max_windows`` is answered 400 with
``{"error": ...}`` naming it. Data is read only through TensorBoard's data
provider.
"""

from __future__ import annotations

import os
import re

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from keras_deadrelu.tensorboard_plugin import metadata, reader

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


def _static_files() -> dict[str, str]:
    """``{file name: path}`` for the plain files directly in the static folder."""
    files = {}
    for name in sorted(os.listdir(STATIC_DIR)):
        path = os.path.join(STATIC_DIR, name)
        if os.path.isfile(path) and not os.path.islink(path):
            files[name] = path
    return files


#: What "every window" means when reading from TensorBoard's data provider.
ALL_SAMPLES = 2**31 - 1


class BadRequest(ValueError):
    """A request parameter the plugin cannot answer (sent back as 400)."""


class DeadNeuronsPlugin(base_plugin.TBPlugin):
    """The "Dead Neurons" tab: where and when units die, and what fixes did."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._data_provider = context.data_provider
        hints = getattr(context, "sampling_hints", None) or {}
        samples = hints.get(metadata.PLUGIN_NAME, metadata.DEFAULT_SAMPLES)
        # --samples_per_plugin=dead_neurons=0 keeps every window: read them all.
        self._downsample = samples if samples else ALL_SAMPLES
        self._static = _static_files()

    # ---------------------------------------------------------- TBPlugin API
    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/overview": self._serve_overview,
            "/site": self._serve_site,
        }

    def is_active(self) -> bool:
        return False  # active through data_plugin_names() when data exists

    def data_plugin_names(self):
        return (metadata.PLUGIN_NAME,)

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(
            es_module_path="/index.js", tab_name="Dead Neurons"
        )

    # ---------------------------------------------------------------- static
    def _static_response(self, request, name: str):
        path = self._static.get(name)
        if path is None:
            return http_util.Respond(
                request, {"error": f"no static file {name!r}"}, "application/json", 404
            )
        with open(path, "rb") as handle:
            content = handle.read()
        content_type = _CONTENT_TYPES.get(
            os.path.splitext(name)[1], "application/octet-stream"
        )
        return http_util.Respond(request, content, content_type)

    @wrappers.Request.application
    def _serve_index(self, request):
        return self._static_response(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        prefix = f"/data/plugin/{metadata.PLUGIN_NAME}/static/"
        path = request.path
        name = path[path.find(prefix) + len(prefix) :] if prefix in path else ""
        # Only a bare file name listed in the plugin's own static folder:
        # "..", "/", "\\" and encoded variants never match a listed name.
        return self._static_response(request, name)

    # ------------------------------------------------------------------ data
    def _runs(self, request) -> dict:
        """``{run: {tag: TensorTimeSeries}}`` for the runs with monitor data."""
        listing = self._data_provider.list_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=metadata.PLUGIN_NAME,
        )
        return {
            run: tags
            for run, tags in listing.items()
            if metadata.SITES_TAG in tags and _readable(tags[metadata.SITES_TAG])
        }

    def _read(
        self, request, runs: list[str], tags: list[str], downsample: int | None = None
    ) -> dict:
        """``{run: {tag: [TensorDatum]}}`` from TensorBoard's data provider."""
        return self._data_provider.read_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=metadata.PLUGIN_NAME,
            downsample=downsample or self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=runs, tags=tags),
        )

    @staticmethod
    def _arguments(request, allowed: tuple[str, ...]) -> dict[str, str]:
        unknown = sorted(set(request.args) - set(allowed))
        if unknown:
            takes = ", ".join(allowed) if allowed else "no parameters"
            raise BadRequest(
                f"unknown parameter {unknown[0]!r}; this route takes {takes}"
            )
        for name in request.args:
            if len(request.args.getlist(name)) > 1:
                raise BadRequest(f"parameter {name!r} given more than once")
        return dict(request.args.items())

    def _run_argument(self, request, arguments: dict[str, str]) -> tuple[str, dict]:
        run = arguments.get("run")
        if run is None:
            raise BadRequest("missing parameter 'run'")
        runs = self._runs(request)
        if run not in runs:
            raise BadRequest(f"unknown run {run!r}: no Dead Neurons data in it")
        return run, runs[run]

    @staticmethod
    def _max_windows(arguments: dict[str, str]) -> int:
        value = arguments.get("max_windows")
        if value is None:
            return reader.DEFAULT_MAX_WINDOWS
        # Leading zeros allowed; at most 6 digits after them (no huge ints).
        digits = re.fullmatch(r"0*([0-9]{1,6})", value)
        number = int(digits.group(1)) if digits else 0
        if not 1 <= number <= reader.MAX_WINDOWS_LIMIT:
            raise BadRequest(
                f"max_windows must be an integer in [1, {reader.MAX_WINDOWS_LIMIT}], "
                f"got {value!r}"
            )
        return number

    def _json(self, request, answer):
        # Building and encoding a large answer makes many small objects: see
        # reader.garbage_collection_paused.
        with reader.garbage_collection_paused():
            try:
                body = answer()
            except BadRequest as error:
                return http_util.Respond(
                    request, {"error": str(error)}, "application/json", code=400
                )
            return http_util.Respond(request, body, "application/json")

    @wrappers.Request.application
    def _serve_runs(self, request):
        def answer():
            self._arguments(request, ())
            runs = self._runs(request)
            # The latest window of each run gives its sites in model order and
            # its last step. (TensorBoard's own last step of the tag counts
            # windows that a newer fit into the same run superseded; the data
            # read here leaves them out, as both of its loaders purge them.)
            latest = self._read(request, list(runs), [metadata.SITES_TAG], 1)
            listed = []
            for run, tags in sorted(runs.items()):
                series = latest.get(run, {}).get(metadata.SITES_TAG, [])
                try:
                    sites = _decoded(
                        run,
                        lambda run=run, series=series: reader.overview(run, series, [])[
                            "sites"
                        ],
                    )
                except BadRequest:
                    continue  # one damaged run does not hide the others
                last_step = max(
                    (datum.step for datum in series),
                    default=tags[metadata.SITES_TAG].max_step,
                )
                listed.append(
                    {
                        "run": run,
                        "max_step": int(last_step),
                        "sites": sites,
                        "has_fix_events": metadata.FIX_EVENTS_TAG in tags,
                    }
                )
            return {"runs": listed}

        return self._json(request, answer)

    @wrappers.Request.application
    def _serve_overview(self, request):
        def answer():
            arguments = self._arguments(request, ("run", "max_windows"))
            run, _ = self._run_argument(request, arguments)
            max_windows = self._max_windows(arguments)
            data = self._read(
                request, [run], [metadata.SITES_TAG, metadata.FIX_EVENTS_TAG]
            ).get(run, {})
            return _decoded(
                run,
                lambda: reader.overview(
                    run,
                    data.get(metadata.SITES_TAG, []),
                    data.get(metadata.FIX_EVENTS_TAG, []),
                    max_windows,
                ),
            )

        return self._json(request, answer)

    @wrappers.Request.application
    def _serve_site(self, request):
        def answer():
            arguments = self._arguments(request, ("run", "site", "max_windows"))
            run, tags = self._run_argument(request, arguments)
            site = arguments.get("site")
            if site is None:
                raise BadRequest("missing parameter 'site'")
            units_tag = metadata.units_tag(site)
            if units_tag not in tags:
                raise BadRequest(f"unknown site {site!r} in run {run!r}")
            max_windows = self._max_windows(arguments)
            data = self._read(
                request,
                [run],
                [metadata.SITES_TAG, metadata.FIX_EVENTS_TAG, units_tag],
            ).get(run, {})
            detail = _decoded(
                run,
                lambda: reader.site_detail(
                    run,
                    site,
                    data.get(metadata.SITES_TAG, []),
                    data.get(units_tag, []),
                    data.get(metadata.FIX_EVENTS_TAG, []),
                    max_windows,
                ),
            )
            if not detail["steps"]:
                # Its tag is there, but only in windows a newer fit into the
                # run superseded: not a site of the run as it is now.
                raise BadRequest(f"unknown site {site!r} in run {run!r}")
            return detail

        return self._json(request, answer)


def _readable(series) -> bool:
    """Whether a tag's plugin data is of a layout this version reads (the
    ``version`` and ``kind`` of :func:`metadata.parse_plugin_content`)."""
    try:
        metadata.parse_plugin_content(series.plugin_content)
    except ValueError:
        return False
    return True


def _decoded(run: str, decode):
    """`decode()`'s answer; data that is not what the monitor writes (a
    damaged or foreign file) is a ``BadRequest`` that names the run."""
    try:
        return decode()
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as error:
        raise BadRequest(
            f"run {run!r} holds Dead Neurons data this version cannot read "
            f"({type(error).__name__}: {error})"
        ) from error
