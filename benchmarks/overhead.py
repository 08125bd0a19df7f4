"""How much ``DeadNeuronMonitor`` slows down ``model.fit``, per epoch.

Usage::

    python benchmarks/overhead.py            # jit_compile at Keras's default
    python benchmarks/overhead.py --jit      # force jit_compile=True (XLA)
    python benchmarks/overhead.py --quick    # tiny smoke test (< 30 s)

Scenarios (synthetic data, ``batch_size=128`` unless ``--batch-size``; Adam,
sparse categorical cross-entropy from logits, ``metrics=["accuracy"]``):

1. ``mlp_streaming``: ``Dense(512, relu) x 4 + Dense(10)`` on 60,000 samples
   of 64 features, monitor in streaming mode (its default);
2. ``conv_streaming``: ``Conv2D(16, 3, relu), Conv2D(32, 3, relu),
   MaxPooling2D, Flatten, Dense(10)`` on 12,000 synthetic 28x28x1 images,
   streaming mode;
3. ``mlp_probe``: the MLP, monitor in probe mode with
   ``probe_data=x[:2048]``;
4. ``mlp_tensorboard``: for comparison, ``keras.callbacks.TensorBoard(log_dir,
   histogram_freq=1)`` on the MLP instead of the monitor.

The monitor runs at its defaults apart from ``log_dir`` (a temporary folder)
and ``verbose=0``, so it writes its scalars, histograms and image every epoch.

Method. Each scenario builds the model once per *arm* (``with`` the callback
under test, ``without`` it); both arms start from the same initial weights
(the second model gets the first one's weights) and are compiled alike. Each
arm runs ONE ``model.fit(epochs=pairs + 1, verbose=0)``, in its own thread,
and the two fits take turns epoch by epoch through a baton: with's epoch 0,
without's epoch 0, with's epoch 1, without's epoch 1, and so on. Only one
arm computes at any time, so the arms never compete for the CPU, and the
pairs are interleaved in time, so slow drifts of a noisy machine hit both
arms of a pair alike. One long fit per arm (rather than a ``fit(epochs=1)``
call per epoch) keeps ``on_train_begin``/``on_train_end`` and the one-off
trace of the train function (which the streaming monitor forces once per
``fit``) out of the timed epochs: epoch 0 is the warm-up and is reported
separately ("first epoch", timed from the ``fit`` call, so it includes the
setup and tracing), epochs 1..pairs are the timed pairs.

An epoch's time is the wall time (``time.perf_counter``) from a timing
callback's ``on_epoch_begin`` to its ``on_epoch_end``. The timer is the LAST
callback, so its ``on_epoch_end`` runs after the monitor's (which reads the
counters, computes the statistics and writes TensorBoard summaries, or in
probe mode runs the probe): all of the monitor's per-epoch work is inside the
timed epoch. Keras reads the epoch's metrics before ``on_epoch_end``, so no
asynchronously dispatched step is left outside the interval either.

Reported per scenario: the median epoch time of each arm, the median of the
per-pair ratios ``with / without`` (and their min and max), and a goal:
streaming <= 1.02, probe <= 1.03 (TensorBoard is a reference, no goal).
PASS/FAIL is judged on the wall-time ratio. Each epoch's process CPU time
(``time.process_time``, all threads) is recorded too, and its median per-pair
ratio is printed beside the wall-time one: on a shared machine other
processes' load stretches wall time in bursts of seconds, which CPU time
mostly ignores. CPU time has a bias of its own (TensorFlow's thread pools
spin while idle, so small extra ops can add CPU time but no wall time), so
neither ratio settles a goal of a few percent on a busy machine: rerun on a
quiet one, with more pairs, for the wall-time goal (the JSON holds the load
average at the start and the end, and every epoch). ``end ms`` is the
median time of the callback's own ``on_epoch_end`` (from a marker callback
just before it to the timer), the per-window work inside those epochs.

The table is printed first; the LAST line of stdout is one JSON object:
``{"benchmark": "overhead", "machine": {...}, "config": {...},
"results": [{"scenario": ..., "median_ratio": ..., ...}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_deadrelu as kd  # noqa: E402

STREAMING_GOAL = 1.02
PROBE_GOAL = 1.03
PROBE_SAMPLES = 2048
WAIT_TIMEOUT_S = 3600.0


# ------------------------------------------------------------------ models
def build_mlp(features: int) -> keras.Model:
    """Dense(512, relu) x 4 + Dense(10)."""
    return keras.Sequential(
        [keras.Input((features,))]
        + [keras.layers.Dense(512, activation="relu") for _ in range(4)]
        + [keras.layers.Dense(10)],
        name="mlp",
    )


def build_conv() -> keras.Model:
    """A small ReLU convnet for 28x28x1 images."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ],
        name="conv",
    )


def mlp_data(samples: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs; labels from a fixed random linear map (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features)).astype("float32")
    w = rng.standard_normal((features, 10)).astype("float32")
    return x, np.argmax(x @ w, axis=1).astype("int32")


def image_data(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform 28x28x1 images; labels from a fixed random linear map."""
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 28, 28, 1), dtype=np.float32)
    w = rng.standard_normal((28 * 28, 10)).astype("float32")
    return x, np.argmax(x.reshape(samples, -1) @ w, axis=1).astype("int32")


# ----------------------------------------------------------- turn taking
class Baton:
    """Lets two threads take turns; `abort` wakes everyone up on failure."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._turn = 0
        self._aborted = False

    def wait_for(self, arm: int) -> None:
        with self._condition:
            ok = self._condition.wait_for(
                lambda: self._turn == arm or self._aborted, timeout=WAIT_TIMEOUT_S
            )
            if not ok or self._aborted:
                raise RuntimeError("the other arm failed or timed out")

    def hand_over(self, arm: int) -> None:
        with self._condition:
            if self._turn == arm:
                self._turn = 1 - arm
                self._condition.notify_all()

    def abort(self) -> None:
        with self._condition:
            self._aborted = True
            self._condition.notify_all()


class GateCallback(keras.callbacks.Callback):
    """FIRST callback: waits for this arm's turn before each epoch after 0."""

    def __init__(self, baton: Baton, arm: int) -> None:
        super().__init__()
        self.baton = baton
        self.arm = arm

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch > 0:  # epoch 0's turn is taken before `fit` is called
            self.baton.wait_for(self.arm)


class TimerCallback(keras.callbacks.Callback):
    """LAST callback: times each epoch, then hands the turn to the other arm."""

    def __init__(
        self,
        baton: Baton,
        arm: int,
        fit_started: list[float],
        mark: MarkCallback | None = None,
    ) -> None:
        super().__init__()
        self.baton = baton
        self.arm = arm
        self.fit_started = fit_started
        self.mark = mark
        self.epoch_seconds: list[float] = []
        self.epoch_end_seconds: list[float] = []
        self.epoch_cpu_seconds: list[float] = []
        self._begin = 0.0
        self._cpu_begin = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._begin = time.perf_counter()
        self._cpu_begin = time.process_time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        end = time.perf_counter()
        cpu_end = time.process_time()
        start = self.fit_started[0] if epoch == 0 else self._begin
        cpu_start = self.fit_started[1] if epoch == 0 else self._cpu_begin
        self.epoch_seconds.append(end - start)
        self.epoch_cpu_seconds.append(cpu_end - cpu_start)
        if self.mark is not None:
            self.epoch_end_seconds.append(end - self.mark.epoch_end_started)
        if epoch + 1 < self.params.get("epochs", 0):
            self.baton.hand_over(self.arm)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.baton.hand_over(self.arm)


class MarkCallback(keras.callbacks.Callback):
    """Just BEFORE the callback under test: notes when its epoch end starts,
    so that the timer (last) gives that callback's epoch-end work alone."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_end_started = 0.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_end_started = time.perf_counter()


# --------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    name: str
    mode: str  # "streaming", "probe" or "tensorboard"
    build: Callable[[], keras.Model]
    x: np.ndarray
    y: np.ndarray
    goal: float | None
    make_callback: Callable[[str], keras.callbacks.Callback]


@dataclass
class Result:
    scenario: str
    mode: str
    jit_compile: bool
    samples: int
    batch_size: int
    steps_per_epoch: int
    pairs: int
    median_epoch_s_without: float
    median_epoch_s_with: float
    median_ratio: float
    ratio_min: float
    ratio_max: float
    first_epoch_s_without: float
    first_epoch_s_with: float
    median_cpu_s_without: float
    median_cpu_s_with: float
    median_cpu_ratio: float
    median_epoch_end_ms: float
    goal: float | None
    passed: bool | None
    epoch_s_without: list[float] = field(default_factory=list)
    epoch_s_with: list[float] = field(default_factory=list)
    epoch_cpu_s_without: list[float] = field(default_factory=list)
    epoch_cpu_s_with: list[float] = field(default_factory=list)


def compile_model(model: keras.Model, jit: bool) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=True if jit else "auto",
    )


def run_scenario(
    scenario: Scenario, pairs: int, batch_size: int, jit: bool, seed: int
) -> Result:
    """Runs the two arms alternately (see the module docstring)."""
    keras.utils.set_random_seed(seed)
    first = scenario.build()
    second = keras.models.clone_model(first)
    second.set_weights(first.get_weights())
    models = {"with": first, "without": second}
    for model in models.values():
        compile_model(model, jit)

    baton = Baton()
    timers: dict[str, TimerCallback] = {}
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory(prefix="deadrelu-overhead-") as log_root:

        def run_arm(arm_index: int, arm: str) -> None:
            started: list[float] = [0.0, 0.0]
            mark = MarkCallback() if arm == "with" else None
            timer = TimerCallback(baton, arm_index, started, mark)
            timers[arm] = timer
            callbacks: list[keras.callbacks.Callback] = [GateCallback(baton, arm_index)]
            if mark is not None:
                callbacks.append(mark)
                callbacks.append(scenario.make_callback(os.path.join(log_root, arm)))
            callbacks.append(timer)  # last: times the other callbacks' epoch work
            try:
                baton.wait_for(arm_index)
                started[:] = [time.perf_counter(), time.process_time()]
                models[arm].fit(
                    scenario.x,
                    scenario.y,
                    batch_size=batch_size,
                    epochs=pairs + 1,
                    verbose=0,
                    callbacks=callbacks,
                )
            except BaseException as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
                baton.abort()

        threads = [
            threading.Thread(target=run_arm, args=(index, arm), name=f"arm-{arm}")
            for index, arm in enumerate(models)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]

    with_s = timers["with"].epoch_seconds
    without_s = timers["without"].epoch_seconds
    timed_with, timed_without = with_s[1:], without_s[1:]
    ratios = [w / wo for w, wo in zip(timed_with, timed_without, strict=True)]
    median_ratio = statistics.median(ratios)
    cpu_with = timers["with"].epoch_cpu_seconds[1:]
    cpu_without = timers["without"].epoch_cpu_seconds[1:]
    cpu_ratios = [w / wo for w, wo in zip(cpu_with, cpu_without, strict=True)]
    return Result(
        scenario=scenario.name,
        mode=scenario.mode,
        jit_compile=bool(first.jit_compile),
        samples=len(scenario.x),
        batch_size=batch_size,
        steps_per_epoch=math.ceil(len(scenario.x) / batch_size),
        pairs=len(ratios),
        median_epoch_s_without=statistics.median(timed_without),
        median_epoch_s_with=statistics.median(timed_with),
        median_ratio=median_ratio,
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        first_epoch_s_without=without_s[0],
        first_epoch_s_with=with_s[0],
        median_cpu_s_without=statistics.median(cpu_without),
        median_cpu_s_with=statistics.median(cpu_with),
        median_cpu_ratio=statistics.median(cpu_ratios),
        median_epoch_end_ms=1e3
        * statistics.median(timers["with"].epoch_end_seconds[1:]),
        goal=scenario.goal,
        passed=None if scenario.goal is None else median_ratio <= scenario.goal,
        epoch_s_without=timed_without,
        epoch_s_with=timed_with,
        epoch_cpu_s_without=cpu_without,
        epoch_cpu_s_with=cpu_with,
    )


def make_scenarios(samples: int, conv_samples: int, seed: int) -> list[Scenario]:
    features = 64
    x, y = mlp_data(samples, features, seed)
    xi, yi = image_data(conv_samples, seed)
    probe = x[: min(PROBE_SAMPLES, len(x))]

    def monitor(probe_data: Any = None) -> Callable[[str], keras.callbacks.Callback]:
        return lambda log_dir: kd.DeadNeuronMonitor(
            log_dir=log_dir, probe_data=probe_data, verbose=0
        )

    def tensorboard(log_dir: str) -> keras.callbacks.Callback:
        return keras.callbacks.TensorBoard(log_dir, histogram_freq=1)

    def mlp() -> keras.Model:
        return build_mlp(features)

    return [
        Scenario("mlp_streaming", "streaming", mlp, x, y, STREAMING_GOAL, monitor()),
        Scenario(
            "conv_streaming", "streaming", build_conv, xi, yi, STREAMING_GOAL, monitor()
        ),
        Scenario("mlp_probe", "probe", mlp, x, y, PROBE_GOAL, monitor(probe)),
        Scenario("mlp_tensorboard", "tensorboard", mlp, x, y, None, tensorboard),
    ]


# ----------------------------------------------------------------- output
def _load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info(load_at_start: list[float] | None) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [device.device_type for device in tf.config.list_physical_devices()],
        "load_average_start": load_at_start,
        "load_average_end": _load_average(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def print_table(results: list[Result]) -> None:
    header = (
        f"{'scenario':<16} {'jit':<5} {'steps':>5} {'pairs':>5} "
        f"{'without s':>9} {'with s':>9} {'ratio':>7} {'min-max':>13} "
        f"{'cpu ratio':>9} {'end ms':>7} {'1st ep wo/w s':>14} {'goal':>6} "
        f"{'result':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        goal = "-" if r.goal is None else f"<={r.goal:.2f}"
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "FAIL")
        spread = f"{r.ratio_min:.3f}-{r.ratio_max:.3f}"
        first = f"{r.first_epoch_s_without:.2f}/{r.first_epoch_s_with:.2f}"
        print(
            f"{r.scenario:<16} {str(r.jit_compile):<5} {r.steps_per_epoch:>5} "
            f"{r.pairs:>5} {r.median_epoch_s_without:>9.3f} "
            f"{r.median_epoch_s_with:>9.3f} {r.median_ratio:>7.3f} {spread:>13} "
            f"{r.median_cpu_ratio:>9.3f} {r.median_epoch_end_ms:>7.1f} {first:>14} "
            f"{goal:>6} {verdict:>6}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7, help="timed pairs (7)")
    parser.add_argument(
        "--samples", type=int, default=60_000, help="MLP samples (60000)"
    )
    parser.add_argument(
        "--conv-samples", type=int, default=12_000, help="convnet images (12000)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="(128)")
    parser.add_argument(
        "--jit", action="store_true", help="force jit_compile=True (default: auto)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes for a smoke test"
    )
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated subset of scenario names (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs = min(args.pairs, 2)
        args.samples = min(args.samples, 2048)
        args.conv_samples = min(args.conv_samples, 512)
    for name in ("pairs", "samples", "conv_samples", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = _load_average()
    scenarios = make_scenarios(args.samples, args.conv_samples, args.seed)
    if args.scenarios:
        wanted = {name.strip() for name in args.scenarios.split(",") if name.strip()}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            print(f"unknown scenario(s): {sorted(unknown)}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.name in wanted]
    results = []
    for scenario in scenarios:
        print(f"running {scenario.name} ...", file=sys.stderr, flush=True)
        results.append(
            run_scenario(scenario, args.pairs, args.batch_size, args.jit, args.seed)
        )
    print(
        f"DeadNeuronMonitor overhead per epoch (median of {args.pairs} alternating "
        f"pairs, batch {args.batch_size}, jit_compile "
        f"{'forced True' if args.jit else 'auto'}, {os.cpu_count()} CPUs; "
        "ratio = with/without wall time, cpu ratio = same for process CPU time)"
    )
    print_table(results)
    report = {
        "benchmark": "overhead",
        "machine": machine_info(load_at_start),
        "config": {
            "pairs": args.pairs,
            "samples": args.samples,
            "conv_samples": args.conv_samples,
            "batch_size": args.batch_size,
            "jit": "forced" if args.jit else "auto",
            "quick": args.quick,
            "probe_samples": min(PROBE_SAMPLES, args.samples),
        },
        "results": [asdict(result) for result in results],
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
