"""TensorBoardSink's window, read back the way TensorBoard itself reads it.

The sink writes a window's summaries as one Summary proto (one op): these
tests load the run through TensorBoard's own data provider, so the scalars,
histograms and image must show under TensorBoard's scalar, histogram and
image plugins with the values written, as ``tf.summary.scalar`` & co. would.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

from keras_deadrelu.firing_rate_map import firing_rate_map
from keras_deadrelu.tensorboard_sink import TensorBoardSink
from keras_deadrelu.unit_statistics import (
    UnitCounters,
    WindowStatistics,
    site_statistics,
)

RUN = "dead_neurons"


def _window(seed: int) -> WindowStatistics:
    rng = np.random.default_rng(seed)
    relu = UnitCounters(rng.integers(0, 50, 16), rng.random(16), 50)
    selu = UnitCounters(
        rng.integers(0, 50, 4),
        rng.random(4),
        50,
        value_sum=rng.normal(size=4),
        square_sum=rng.random(4) * 60,
    )
    return WindowStatistics(
        (
            site_statistics("hidden", "relu", relu, 0.1),
            site_statistics("selu", "selu", selu, 0.1),
        )
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("logs"))
    windows = {10: _window(1), 20: _window(2)}
    sink = TensorBoardSink(log_dir)
    for step, window in windows.items():
        sink.write_window(step, window, learning_rate=0.125)
    sink.close()
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(log_dir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, log_dir), windows


def _read(provider, method, plugin):
    return getattr(provider, method)(
        context.RequestContext(), experiment_id="", plugin_name=plugin, downsample=100
    )[RUN]


def test_scalars_show_in_the_scalar_plugin(written):
    provider, windows = written
    scalars = _read(provider, "read_scalars", "scalars")
    hidden = [window.sites[0] for window in windows.values()]
    selu = [window.sites[1] for window in windows.values()]
    expected = {
        "learning_rate": [0.125, 0.125],
        "dead_fraction": [window.dead_fraction for window in windows.values()],
        "nan_units": [window.nan_count for window in windows.values()],
        "dead_fraction/hidden": [site.dead_fraction for site in hidden],
        "dormant_fraction/selu": [site.dormant_fraction for site in selu],
        "selu_mean/selu": [site.activation_mean for site in selu],
        "selu_std/selu": [site.activation_std for site in selu],
    }
    for tag, values in expected.items():
        assert [datum.step for datum in scalars[tag]] == [10, 20]
        np.testing.assert_allclose(
            [datum.value for datum in scalars[tag]], values, rtol=1e-6
        )
    assert "selu_mean/hidden" not in scalars


def test_histograms_show_in_the_histogram_plugin(written):
    provider, windows = written
    tensors = _read(provider, "read_tensors", "histograms")
    for name, index in (("hidden", 0), ("selu", 1)):
        series = tensors[f"firing_rate/{name}"]
        assert [datum.step for datum in series] == [10, 20]
        for datum, window in zip(series, windows.values(), strict=True):
            buckets = datum.numpy
            counts, edges = np.histogram(window.sites[index].firing_rate, 20, (0, 1))
            np.testing.assert_allclose(buckets[:, 0], edges[:-1])
            np.testing.assert_allclose(buckets[:, 1], edges[1:])
            np.testing.assert_array_equal(buckets[:, 2], counts)


def test_the_image_shows_in_the_image_plugin_and_decodes(written):
    provider, windows = written
    sequences = _read(provider, "read_blob_sequences", "images")
    series = sequences["firing_rate_map"]
    assert [datum.step for datum in series] == [10, 20]
    for datum, window in zip(series, windows.values(), strict=True):
        width, height, png = (
            provider.read_blob(context.RequestContext(), blob_key=ref.blob_key)
            for ref in datum.values
        )
        expected = firing_rate_map([site.firing_rate for site in window.sites])
        assert (int(height), int(width)) == expected.shape[:2]
        np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), expected)
