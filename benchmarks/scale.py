"""Scale: ``DeadNeuronMonitor`` on ResNet50, and probe memory over many samples.

Usage::

    python benchmarks/scale.py                      # both parts
    python benchmarks/scale.py --part resnet50      # or --part probe_memory
    python benchmarks/scale.py --quick              # smoke test (~3 min, 2 cores)

Part 1, ``resnet50``: ``keras.applications.ResNet50(weights=None,
input_shape=(S, S, 3), classes=10, classifier_activation=None)`` (no download;
``S`` = 64, quick 32) trained on a small synthetic batch set (32 batches of 16
uniform images with random labels; quick: 4 batches), Adam, sparse
categorical cross-entropy from logits, with every ReLU site monitored by
``DeadNeuronMonitor(log_dir=<tmp>, verbose=0)`` (streaming, its defaults). The
overhead per epoch is timed with ``benchmarks/overhead.py``'s method, imported
from it (``overhead.run_scenario``): two arms (with / without the monitor)
from the same initial weights, one long ``fit`` each in its own thread, taking
turns epoch by epoch through a baton; epoch 0 is the warm-up; reported are
the medians of the per-pair wall-time and process-CPU-time ratios. Goal: wall
ratio <= 1.05 (PASS/FAIL on it; on a shared machine trust the CPU ratio for
the work the monitor adds, see overhead.py).

Memory O(channels): the monitor keeps all its counters in one flat float64
``tf.Variable`` (``keras_deadrelu/counters.py``). Its element count is read
during ``fit`` by :func:`counter_buffer_elements`, the ONE place that reaches
internal attributes (``monitor._measurement.recorder._buffer``): no public API
exposes it. It is compared with the total number of channels over all sites
times the counters kept per channel of a ReLU site (2: count of outputs > 0,
sum of outputs), plus at most 3 scalars per site (element count, input sum of
squares and size). It is read at two configurations (the timed run, and one
short ``fit`` at another image size and batch size) and must be identical:
independent of image size and batch size.

Part 2, ``probe_memory``: peak memory of probe mode over few vs many samples
(1,000 vs 100,000; quick 1,000 vs 20,000), each run in a FRESH subprocess of
this script (``--probe-child``), so that peaks do not mix. The child is
started through ``/bin/sh``, which forks once more: Linux keeps
``ru_maxrss`` across ``exec``, so a child exec'd straight from this process
would report this process's RSS (GBs after the ResNet50 part) as its peak.
The model is a small convnet on 32x32x3 inputs (3 ReLU sites); the data is a
``tf.data.Dataset.range(n).batch(250).map(<stateless random batch>)``, so the
samples are generated on the fly and never sit in memory. Variants, one
child each per size: ``dead_fractions`` (``kd.dead_fractions(model,
dataset)``), ``monitor`` (a ``DeadNeuronMonitor(probe_data=dataset)`` during
a one-epoch ``fit`` on 64 samples; its probe runs at the epoch's end), and
``dead_fractions_no_autotune`` (the same dataset with tf.data's autotuning
and injected prefetch turned off; not in ``--quick``), which isolates what
tf.data itself buffers: its autotuned buffers grow by whole batches
(``batch_kib``) during a long run. Before the probe the child collects
garbage and resets the kernel's peak-RSS mark (``5`` to
``/proc/self/clear_refs``, Linux), then reports: the RSS just before the
probe, ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after it (the absolute
peak; ``VmHWM`` is read too and must agree), the peak's increase over the
RSS before, and the RSS sampled every 10 ms during the probe (ten points
spread over its duration, to show whatever grows, and the growth over the
second half of the long run). The dead fractions must be floats in [0, 1],
one per site. Goal: absolute peak over many samples <= 1.05 x the peak over
few (PASS/FAIL on it); the ratio of the increases and the growth in KiB are
reported beside it.

The tables are printed first; the LAST line of stdout is one JSON object:
``{"benchmark": "scale", "quick": ..., "machine": {...}, "resnet50": {...},
"probe_memory": {...}}`` (a part not run is null).
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead  # noqa: E402 - sets KERAS_BACKEND and TF's log level first

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

RESNET_GOAL = 1.05
MEMORY_GOAL = 1.05
#: Counters per channel of a ReLU site in the flat buffer (counters.py).
COUNTERS_PER_CHANNEL = 2
#: At most this many scalars per site besides its per-channel counters.
MAX_SCALARS_PER_SITE = 3
PROBE_IMAGE = (32, 32, 3)
PROBE_TRAIN_SAMPLES = 64
PROBE_APIS = ("dead_fractions", "monitor", "dead_fractions_no_autotune")
RSS_SAMPLE_S = 0.01
TIMELINE_POINTS = 10
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# ------------------------------------------------------------ resnet50 part
def build_resnet50(image_size: int) -> keras.Model:
    """ResNet50 without weights (no download), 10 logits."""
    return keras.applications.ResNet50(
        weights=None,
        input_shape=(image_size, image_size, 3),
        classes=10,
        classifier_activation=None,
    )


def counter_buffer_elements(monitor: kd.DeadNeuronMonitor) -> int | None:
    """Elements of the monitor's flat float64 counter buffer (None before the
    first traced step). INTERNAL: reads ``monitor._measurement.recorder.
    _buffer``, which exists only during ``fit``; no public API exposes it."""
    measurement = getattr(monitor, "_measurement", None)
    buffer = getattr(getattr(measurement, "recorder", None), "_buffer", None)
    return None if buffer is None else int(buffer.shape[0])


class BufferSizedMonitor(kd.DeadNeuronMonitor):
    """The monitor, noting its counter buffer's size at each epoch's end (a
    shape read on the host: no device work added to the timed epoch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer_elements: list[int | None] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        self.buffer_elements.append(counter_buffer_elements(self))


def synthetic_images(
    samples: int, image_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((samples, image_size, image_size, 3), dtype=np.float32)
    return x, rng.integers(0, 10, samples).astype("int32")


def site_channels(model: keras.Model) -> tuple[int, int]:
    """(number of sites, total channels over them) from public APIs."""
    sites = kd.find_sites(model)
    channels = sum(int(site.layer.output.shape[site.channel_axis]) for site in sites)
    return len(sites), channels


def buffer_size_at(image_size: int, batch_size: int, seed: int) -> int | None:
    """Counter buffer elements after one short monitored fit (1 step)."""
    keras.utils.set_random_seed(seed)
    model = build_resnet50(image_size)
    overhead.compile_model(model, jit=False)
    x, y = synthetic_images(batch_size, image_size, seed)
    monitor = BufferSizedMonitor(log_dir=None, verbose=0)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[monitor])
    return monitor.buffer_elements[-1]


def run_resnet50(args: argparse.Namespace) -> dict[str, Any]:
    size, batch = args.image_size, args.batch_size
    sites, channels = site_channels(build_resnet50(size))
    x, y = synthetic_images(args.batches * batch, size, args.seed)
    monitors: list[BufferSizedMonitor] = []

    def make_monitor(log_dir: str) -> keras.callbacks.Callback:
        monitors.append(BufferSizedMonitor(log_dir=log_dir, verbose=0))
        return monitors[-1]

    scenario = overhead.Scenario(
        name="resnet50_streaming",
        mode="streaming",
        build=lambda: build_resnet50(size),
        x=x,
        y=y,
        goal=RESNET_GOAL,
        make_callback=make_monitor,
    )
    print("running resnet50 (timed pairs) ...", file=sys.stderr, flush=True)
    result = overhead.run_scenario(scenario, args.pairs, batch, False, args.seed)
    timed = monitors[-1].buffer_elements
    print("running resnet50 (buffer at a second size) ...", file=sys.stderr, flush=True)
    check = buffer_size_at(args.check_image_size, args.check_batch_size, args.seed)
    sizes = [
        {"image_size": size, "batch_size": batch, "elements": timed[-1]},
        {
            "image_size": args.check_image_size,
            "batch_size": args.check_batch_size,
            "elements": check,
        },
    ]
    for entry in sizes:
        entry["bytes"] = None if entry["elements"] is None else 8 * entry["elements"]
    elements = timed[-1]
    per_channel = COUNTERS_PER_CHANNEL * channels
    scalars = None if elements is None else elements - per_channel
    return {
        "model": "ResNet50(weights=None)",
        "image_size": size,
        "batch_size": batch,
        "batches": args.batches,
        "samples": len(x),
        "sites": sites,
        "total_channels": channels,
        "counters_per_channel": COUNTERS_PER_CHANNEL,
        "buffer_elements": elements,
        "buffer_bytes": None if elements is None else 8 * elements,
        "buffer_elements_every_epoch": timed,
        "per_site_scalars": scalars,
        "buffer_is_o_channels": scalars is not None
        and 0 <= scalars <= MAX_SCALARS_PER_SITE * sites,
        "buffer_sizes": sizes,
        "buffer_identical_across_sizes": len({e["elements"] for e in sizes}) == 1
        and elements is not None,
        "median_ratio": result.median_ratio,
        "median_cpu_ratio": result.median_cpu_ratio,
        "goal": RESNET_GOAL,
        "passed": result.passed,
        "timing": dataclasses.asdict(result),
    }


def print_resnet50(report: dict[str, Any]) -> None:
    timing = report["timing"]
    print(
        f"ResNet50(weights=None) {report['image_size']}x{report['image_size']}, "
        f"{report['batches']} batches of {report['batch_size']}: "
        f"{report['sites']} sites, {report['total_channels']} channels; "
        f"monitor overhead per epoch (median of {timing['pairs']} alternating "
        "pairs; ratio = with/without wall time, cpu ratio = process CPU time)"
    )
    overhead.print_table([overhead.Result(**timing)])
    print(
        f"counter buffer: {report['buffer_elements']} float64 = "
        f"{report['buffer_bytes']} bytes = {report['counters_per_channel']} x "
        f"{report['total_channels']} channels + {report['per_site_scalars']} "
        f"scalars ({report['sites']} sites); O(channels): "
        f"{report['buffer_is_o_channels']}"
    )
    for entry in report["buffer_sizes"]:
        print(
            f"  image {entry['image_size']:>3}, batch {entry['batch_size']:>3}: "
            f"{entry['elements']} elements, {entry['bytes']} bytes"
        )
    print(f"  identical across sizes: {report['buffer_identical_across_sizes']}")


# -------------------------------------------------------- probe memory part
def build_probe_model() -> keras.Model:
    """A small ReLU convnet for 32x32x3 inputs: 3 sites, 112 channels."""
    return keras.Sequential(
        [
            keras.Input(PROBE_IMAGE),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_a"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_b"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(64, activation="relu", name="dense"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="probe_convnet",
    )


def generated_dataset(samples: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of uniform images made on the fly from a stateless RNG."""

    def batch_of(indices: tf.Tensor) -> tf.Tensor:
        key = tf.stack([tf.constant(seed, tf.int64), indices[0]])
        shape = tf.concat([tf.shape(indices), PROBE_IMAGE], axis=0)
        return tf.random.stateless_uniform(shape, seed=key)

    return tf.data.Dataset.range(samples).batch(batch_size).map(batch_of)


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kib() -> int:
    try:
        with open("/proc/self/statm", encoding="utf-8") as statm:
            return int(statm.read().split()[1]) * PAGE_KIB
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples this process's RSS every `interval` seconds in a thread."""

    def __init__(self, interval: float = RSS_SAMPLE_S) -> None:
        self.interval = interval
        # Flat typed arrays (16 bytes a sample), so that the sampler itself
        # adds next to nothing to the RSS it measures.
        self.times = array.array("d")
        self.rss = array.array("q")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.times.append(time.perf_counter())
        self.rss.append(current_rss_kib())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def timeline(self, points: int = TIMELINE_POINTS) -> list[int]:
        """RSS at `points` moments spread evenly over the sampled span."""
        start, end = self.times[0], self.times[-1]
        timeline, cursor = [], 0
        for point in range(1, points + 1):
            moment = start + (end - start) * point / points
            while cursor + 1 < len(self.times) and self.times[cursor + 1] <= moment:
                cursor += 1
            timeline.append(self.rss[cursor])
        return timeline


def probe_child(samples: int, api: str, batch_size: int, seed: int) -> dict:
    """One probe measurement in this (fresh) process."""
    keras.utils.set_random_seed(seed)
    model = build_probe_model()
    dataset = generated_dataset(samples, batch_size, seed)
    if api == "dead_fractions_no_autotune":
        # The same data without tf.data's autotuning and injected prefetch,
        # whose buffers grow by whole batches during a long run.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.inject_prefetch = False
        dataset = dataset.with_options(options)
    train = None
    if api == "monitor":
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        train = synthetic_images(PROBE_TRAIN_SAMPLES, PROBE_IMAGE[0], seed)
    gc.collect()
    ru_maxrss_before_reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_reset = reset_peak_rss()
    ru_maxrss_at_reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_before = current_rss_kib()
    started = time.perf_counter()
    with RssSampler() as sampler:
        if api != "monitor":
            fractions = kd.dead_fractions(model, dataset)
        else:
            monitor = kd.DeadNeuronMonitor(log_dir=None, verbose=0, probe_data=dataset)
            model.fit(*train, batch_size=32, epochs=1, verbose=0, callbacks=[monitor])
            fractions = monitor.last_window.dead_fractions()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sane = bool(fractions) and all(
        isinstance(value, float) and 0.0 <= value <= 1.0 for value in fractions.values()
    )
    return {
        "api": api,
        "samples": samples,
        "batch_size": batch_size,
        "batches": -(-samples // batch_size),
        "seconds": seconds,
        "peak_reset": peak_reset,
        "ru_maxrss_before_reset_kib": ru_maxrss_before_reset,
        "ru_maxrss_at_reset_kib": ru_maxrss_at_reset,
        "rss_before_kib": rss_before,
        "peak_kib": peak,
        "peak_increase_kib": peak - rss_before,
        "vmhwm_kib": _status_kib("VmHWM"),
        "rss_after_kib": current_rss_kib(),
        "rss_sampled_max_kib": max(sampler.rss),
        "rss_timeline_kib": sampler.timeline(),
        "dead_fractions": {name: float(value) for name, value in fractions.items()},
        "fractions_sane": sane,
        "peak_agrees_with_vmhwm": _status_kib("VmHWM") is None
        or abs(peak - _status_kib("VmHWM")) <= 0.01 * peak,
    }


def spawn_probe_child(samples: int, api: str, args: argparse.Namespace) -> dict:
    # Through /bin/sh, which forks once more (the command is not its last):
    # Linux keeps ru_maxrss across exec, so a child exec'd straight from
    # this process would inherit this process's RSS (GBs after the ResNet50
    # part) as its ru_maxrss, and no reset clears that.
    command = [
        "/bin/sh",
        "-c",
        '"$@"; exit $?',
        "sh",
        sys.executable,
        str(Path(__file__).resolve()),
        "--probe-child",
        str(samples),
        "--probe-api",
        api,
        "--probe-batch-size",
        str(args.probe_batch_size),
        "--seed",
        str(args.seed),
    ]
    print(f"running probe_memory ({api}, {samples} samples) ...", file=sys.stderr)
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"probe child {api} {samples} failed:\n{completed.stderr[-4000:]}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_probe_memory(args: argparse.Namespace) -> dict[str, Any]:
    small, large = args.probe_samples
    runs, comparisons = [], []
    for api in args.probe_apis:
        few = spawn_probe_child(small, api, args)
        many = spawn_probe_child(large, api, args)
        runs += [few, many]
        ratio = many["peak_kib"] / few["peak_kib"]
        # What still grows once the probe is under way: the RSS over the
        # second half of the long run, per 100 batches.
        timeline = many["rss_timeline_kib"]
        late = timeline[-1] - timeline[len(timeline) // 2 - 1]
        comparisons.append(
            {
                "api": api,
                "few_samples": small,
                "many_samples": large,
                "peak_ratio": ratio,
                "increase_ratio": many["peak_increase_kib"]
                / max(few["peak_increase_kib"], 1),
                "peak_growth_kib": many["peak_kib"] - few["peak_kib"],
                "rss_after_growth_kib": many["rss_after_kib"] - few["rss_after_kib"],
                "late_growth_kib": late,
                "fractions_sane": few["fractions_sane"] and many["fractions_sane"],
                "goal": MEMORY_GOAL,
                "passed": ratio <= MEMORY_GOAL,
            }
        )
    return {
        "model": "convnet 32x32x3 (3 ReLU sites)",
        "few_samples": small,
        "many_samples": large,
        "batch_size": args.probe_batch_size,
        "batch_kib": args.probe_batch_size * int(np.prod(PROBE_IMAGE)) * 4 / 1024,
        "goal": MEMORY_GOAL,
        "passed": all(c["passed"] for c in comparisons),
        "comparisons": comparisons,
        "runs": runs,
    }


def print_probe_memory(report: dict[str, Any]) -> None:
    print(
        f"Probe peak memory, fresh process per run ({report['model']}, batches of "
        f"{report['batch_size']} generated on the fly; KiB; increase = peak - RSS "
        "before the probe)"
    )
    header = (
        f"{'api':<26} {'samples':>7} {'batches':>7} {'seconds':>7} "
        f"{'RSS before':>10} {'peak':>9} {'increase':>9} {'RSS after':>9} "
        f"{'sane':>5}"
    )
    print(header)
    print("-" * len(header))
    for run in report["runs"]:
        print(
            f"{run['api']:<26} {run['samples']:>7} {run['batches']:>7} "
            f"{run['seconds']:>7.1f} {run['rss_before_kib']:>10} "
            f"{run['peak_kib']:>9} {run['peak_increase_kib']:>9} "
            f"{run['rss_after_kib']:>9} {str(run['fractions_sane']):>5}"
        )
    for c in report["comparisons"]:
        verdict = "PASS" if c["passed"] else "FAIL"
        print(
            f"{c['api']}: peak {c['many_samples']} / {c['few_samples']} samples = "
            f"{c['peak_ratio']:.3f} (goal <= {c['goal']:.2f}: {verdict}); "
            f"increase ratio {c['increase_ratio']:.3f}, peak growth "
            f"{c['peak_growth_kib']} KiB; second half of the long run: "
            f"{c['late_growth_kib']:+} KiB"
        )
    for run in report["runs"]:
        print(
            f"  RSS timeline {run['api']} {run['samples']}: "
            f"{' '.join(str(rss) for rss in run['rss_timeline_kib'])}"
        )


# ------------------------------------------------------------------- main
def _int_pair(text: str) -> tuple[int, int]:
    few, many = (int(part) for part in text.split(","))
    return few, many


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=("resnet50", "probe_memory", "all"), default="all"
    )
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--image-size", type=int, help="ResNet50 input (64; quick 32)")
    parser.add_argument("--batch-size", type=int, default=16, help="(16)")
    parser.add_argument("--batches", type=int, help="batches per epoch (32; quick 4)")
    parser.add_argument("--pairs", type=int, help="timed pairs (7; quick 2)")
    parser.add_argument(
        "--check-image-size", type=int, help="second size for the buffer (32/48)"
    )
    parser.add_argument("--check-batch-size", type=int, default=4, help="(4)")
    parser.add_argument(
        "--probe-samples",
        type=_int_pair,
        help="few,many (1000,100000; quick 1000,20000)",
    )
    parser.add_argument("--probe-batch-size", type=int, default=250, help="(250)")
    parser.add_argument(
        "--probe-apis",
        help="comma-separated subset of " + ", ".join(PROBE_APIS) + " (all; quick: "
        "dead_fractions,monitor)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe-api", default="dead_fractions", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "image_size": 32 if quick else 64,
        "batches": 4 if quick else 32,
        "pairs": 2 if quick else 7,
        "probe_samples": (1000, 20_000) if quick else (1000, 100_000),
        "probe_apis": "dead_fractions,monitor" if quick else ",".join(PROBE_APIS),
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.check_image_size is None:
        args.check_image_size = 48 if args.image_size != 48 else 32
    args.probe_apis = [api.strip() for api in args.probe_apis.split(",") if api]
    for api in args.probe_apis + [args.probe_api]:
        if api not in PROBE_APIS:
            parser.error(f"unknown probe api {api!r}")
    for name in ("image_size", "batch_size", "batches", "pairs", "check_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.image_size, args.check_image_size) < 32:
        parser.error("ResNet50 needs images of at least 32x32")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe_child is not None:
        report = probe_child(
            args.probe_child, args.probe_api, args.probe_batch_size, args.seed
        )
        print(json.dumps(report), flush=True)
        return 0
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    resnet = probe = None
    if args.part in ("resnet50", "all"):
        resnet = run_resnet50(args)
    if args.part in ("probe_memory", "all"):
        probe = run_probe_memory(args)
    if resnet is not None:
        print_resnet50(resnet)
    if probe is not None:
        print_probe_memory(probe)
    report = {
        "benchmark": "scale",
        "quick": args.quick,
        "machine": overhead.machine_info(load_at_start),
        "resnet50": resnet,
        "probe_memory": probe,
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
