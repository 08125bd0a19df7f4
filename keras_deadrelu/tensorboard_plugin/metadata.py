"""The plugin's name, tags and summary metadata: one source for both sides.

The monitor (writer side) and the TensorBoard plugin (reader side) agree on
everything through this module:

==================================  =====================================
tag                                 value at each window's step
==================================  =====================================
``dead_neurons/sites``              string scalar: JSON, one row per site
``dead_neurons/units/<site>``       float32 vector: per-unit firing rates
                                    (NaN for a NaN unit)
``dead_neurons/fix_events``         string scalar: JSON list of fix actions
==================================  =====================================

A row of ``dead_neurons/sites`` lists :data:`SITE_COLUMNS` in that order.

>>> content = plugin_content(SITES_KIND)
>>> parse_plugin_content(summary_metadata(SITES_KIND).plugin_data.content)
{'kind': 'sites', 'version': 1}
>>> content == summary_metadata(SITES_KIND).plugin_data.content
True
"""

from __future__ import annotations

import json

from tensorboard.compat.proto import summary_pb2

#: The plugin's name: the TensorBoard tab, the route prefix and the name
#: under which the monitor's dashboard summaries are written.
PLUGIN_NAME = "dead_neurons"

#: Version of the data layout below; the plugin reads this version only.
SCHEMA_VERSION = 1

SITES_TAG = f"{PLUGIN_NAME}/sites"
UNITS_TAG_PREFIX = f"{PLUGIN_NAME}/units/"
FIX_EVENTS_TAG = f"{PLUGIN_NAME}/fix_events"

SITES_KIND = "sites"
UNITS_KIND = "units"
FIX_EVENTS_KIND = "fix_events"
KINDS = (SITES_KIND, UNITS_KIND, FIX_EVENTS_KIND)

#: The columns of one row of the ``dead_neurons/sites`` JSON, in order.
SITE_COLUMNS = (
    "site",  # site name
    "kind",  # activation family: relu, leaky_relu, elu, selu, ...
    "units",  # number of units
    "dead",  # dead units
    "dormant",  # dormant units (ReDo)
    "nan",  # NaN/inf units
    "firing_rate",  # mean per-unit firing rate over finite units (or None)
    "selu_mean",  # SELU sites: activation mean (else None)
    "selu_std",  # SELU sites: activation standard deviation (else None)
)

#: Windows TensorBoard keeps per tag for this plugin unless the user passes
#: ``--samples_per_plugin=dead_neurons=N`` (TensorBoard keeps 10 by default
#: for plugins it does not know).
DEFAULT_SAMPLES = 5000


def units_tag(site: str) -> str:
    """The tag that holds one site's per-unit firing rates."""
    return UNITS_TAG_PREFIX + site


def plugin_content(kind: str, **extra: str) -> bytes:
    """The plugin data stored with a tag: ``{"version", "kind", ...}`` JSON."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    content = {"version": SCHEMA_VERSION, "kind": kind, **extra}
    return json.dumps(content, sort_keys=True).encode("utf-8")


def summary_metadata(
    kind: str, description: str = "", **extra: str
) -> summary_pb2.SummaryMetadata:
    """Summary metadata for a tensor summary that the dashboard reads."""
    metadata = summary_pb2.SummaryMetadata(
        summary_description=description,
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    metadata.plugin_data.plugin_name = PLUGIN_NAME
    metadata.plugin_data.content = plugin_content(kind, **extra)
    return metadata


def parse_plugin_content(content: bytes) -> dict:
    """Reads a tag's plugin data; raises ``ValueError`` on a layout it cannot read."""
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"plugin content is not JSON: {content[:60]!r}") from error
    if not isinstance(parsed, dict) or parsed.get("kind") not in KINDS:
        raise ValueError(f"plugin content has no known kind: {parsed!r}")
    if parsed.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"plugin content version {parsed.get('version')!r} is not "
            f"{SCHEMA_VERSION}; upgrade keras-deadrelu to read it"
        )
    return parsed


#: Between the paragraphs of one text summary (several diagnoses, or fix
#: actions, of one window): a blank line, a paragraph break in Markdown.
TEXT_SEPARATOR = "\n\n"
