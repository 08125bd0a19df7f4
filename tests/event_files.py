"""Reading TensorBoard event files back from disk, for tests."""

from __future__ import annotations

import collections
import glob
import os

import numpy as np
import tensorflow as tf


def read_run(run_dir: str) -> dict[str, list[tuple[int, np.ndarray, str]]]:
    """Returns ``{tag: [(step, value, plugin name), ...]}`` from every event file."""
    records: dict[str, list] = collections.defaultdict(list)
    paths = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    for path in paths:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                elif value.HasField("simple_value"):
                    array = np.asarray(value.simple_value)
                else:
                    array = np.asarray([])
                records[value.tag].append((event.step, array, plugin))
    return dict(records)


def scalar_series(records, tag: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of one scalar tag."""
    return [(step, float(value)) for step, value, _ in records[tag]]
