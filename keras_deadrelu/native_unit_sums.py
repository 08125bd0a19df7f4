"""The compiled ops that take a streaming step's per-unit sums in one pass.

On a CPU without XLA, TensorFlow dispatches every op of a training step on
its own, and a monitor built from stock ops (a comparison, matrix products,
concats, a gather) added 4-9% to a small MLP's step on a 2-core machine. The
op in ``native/unit_sums.cc`` reads every site's outputs once and writes the
monitor's numbers in its buffer's layout, so a monitored step gains two ops.
For a plain ReLU site the values are not even read once more: the op in
``native/relu_grad_unit_sums.cc`` takes the ReLU's gradient in the step's
backward pass (as TensorFlow's ``ReluGrad`` does) and the site's sums from
the values that pass reads anyway (:mod:`keras_deadrelu.backward_counting`).

It is compiled once, against the installed TensorFlow's headers, with the
C++ compiler named by ``$CXX`` (it may carry arguments, as ``ccache g++``),
else ``c++`` or ``g++`` from the ``PATH``, into a cache folder
(``$KERAS_DEADRELU_CACHE_DIR``, else ``$XDG_CACHE_HOME/keras_deadrelu``,
else ``~/.cache/keras_deadrelu``; about 10 s, once per TensorFlow install
and compiler), and loaded from there afterwards. The monitor builds it in
``on_train_begin`` when the model is not XLA-compiled and no GPU is visible
(``make demo`` and ``make test`` when they install), else the first step
that needs it. Without a compiler, or where the build or the load fails,
the counters use stock TensorFlow ops, which give the same statistics, and
one log line says why. ``KERAS_DEADRELU_NATIVE=0`` turns it off.

``python -m keras_deadrelu.native`` builds it now and says whether it loads.

>>> available, reason = availability()  # builds it on the first call
>>> reason.startswith("loaded from") == available
True
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import tensorflow as tf

#: The ops' C++ sources, shipped in the package, built into one library.
SOURCES = (
    Path(__file__).with_name("native") / "unit_sums.cc",
    Path(__file__).with_name("native") / "relu_grad_unit_sums.cc",
)
#: Set to ``0`` (or ``false``, ``off``, ``no``) to use stock TensorFlow ops.
ENABLE_VARIABLE = "KERAS_DEADRELU_NATIVE"
#: Where compiled ops are kept, when set.
CACHE_VARIABLE = "KERAS_DEADRELU_CACHE_DIR"
#: Seconds a compilation may take before it counts as failed.
BUILD_TIMEOUT_S = 600

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
# The loaded module, or the reason there is none; filled on first use.
_loaded: dict[str, object] = {}


def enabled() -> bool:
    """Whether ``$KERAS_DEADRELU_NATIVE`` allows the compiled op (it does
    unless set to ``0``, ``false``, ``off`` or ``no``)."""
    value = os.environ.get(ENABLE_VARIABLE, "1").strip().lower()
    return value not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    """The folder compiled ops are kept in."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras_deadrelu"


def compiler() -> list[str] | None:
    """The command that compiles the op (``$CXX``, split as a shell would,
    else ``c++`` or ``g++``), or None where there is none."""
    configured = shlex.split(os.environ.get("CXX", ""))
    if configured:
        found = shutil.which(configured[0])
        return [found or configured[0], *configured[1:]]
    found = shutil.which("c++") or shutil.which("g++")
    return [found] if found else None


def _cpu_description() -> str | None:
    """This machine's CPU model and instruction sets, from ``/proc/cpuinfo``
    (Linux), or None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            lines = [
                line
                for line in info
                if line.startswith(("model name", "flags", "Features"))
            ]
    except OSError:
        return None
    return "".join(sorted(set(lines)))


def _machine_flags() -> list[str]:
    """Code for this machine's vector unit: on x86-64 Linux, every
    instruction set it has but AVX-512, whose wide vectors ran the op's
    loops slower than AVX2's on a 2-core Xeon (docs/benchmarks.md).
    Elsewhere, and where the CPU cannot be told for the cache's name, the
    compiler's default."""
    if platform.machine().lower() in ("x86_64", "amd64") and _cpu_description():
        return ["-march=native", "-mno-avx512f"]
    return []


def _machine_identity() -> bytes:
    """What a build for this machine's CPU depends on (its model and
    instruction sets), so that a cache folder shared by different machines
    never hands one a library built for another."""
    description = _cpu_description()
    if description is None:
        return f"{platform.machine()} {platform.processor()}".encode()
    return description.encode()


def _build_command(
    cxx: list[str], output: Path, machine_flags: list[str] | None = None
) -> list[str]:
    if machine_flags is None:
        machine_flags = _machine_flags()
    return [
        *cxx,
        "-shared",
        "-fPIC",
        "-O3",
        # Without it TensorFlow's and Eigen's debug checks stay compiled in.
        "-DNDEBUG",
        *machine_flags,
        "-w",
        *(str(source) for source in SOURCES),
        "-o",
        str(output),
        *tf.sysconfig.get_compile_flags(),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(cxx: list[str]) -> Path:
    """Where the op built by the compiler command `cxx` for this TensorFlow
    is cached: the name hashes the source, the TensorFlow version, the CPU
    (the build targets its instruction sets) and the
    build command (with TensorFlow's include and library folders)."""
    key = hashlib.sha256()
    for source in SOURCES:
        key.update(source.read_bytes())
    key.update(tf.__version__.encode())
    key.update(" ".join(_build_command(cxx, Path("out"))).encode())
    key.update(_machine_identity())
    return cache_dir() / f"unit_sums-{tf.__version__}-{key.hexdigest()[:16]}.so"


def _build(cxx: list[str], target: Path) -> None:
    """Compiles the op into `target`, atomically (a concurrent build by
    another process leaves one whole file), readable by all as a library
    is (within the umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        result = subprocess.run(
            _build_command(cxx, Path(scratch)),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        flags = _machine_flags()
        output = f"{result.stderr}{result.stdout}"
        if result.returncode != 0 and any(flag[1:] in output for flag in flags):
            # A compiler that refuses the machine flags builds it without.
            result = subprocess.run(
                _build_command(cxx, Path(scratch), machine_flags=[]),
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-2000:]
            raise RuntimeError(
                f"{shlex.join(cxx)} exited with {result.returncode}: {tail}"
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o755 & ~umask)
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)


def _load() -> tuple[object | None, str]:
    cxx = compiler()
    if cxx is None:
        return None, "no C++ compiler on the PATH (install one, or set $CXX)"
    missing = [str(source) for source in SOURCES if not source.is_file()]
    if missing:
        return None, f"its source {', '.join(missing)} is missing"
    try:
        target = library_path(cxx)
        if target.is_file():
            try:
                return tf.load_op_library(str(target)), f"loaded from {target}"
            except Exception:  # noqa: BLE001 - a damaged cache: build anew
                _LOG.info("keras_deadrelu: rebuilding %s, which fails to load", target)
        _LOG.info("keras_deadrelu: compiling its counter op into %s", target)
        _build(cxx, target)
        module = tf.load_op_library(str(target))
    except Exception as error:  # noqa: BLE001 - any failure means: stock ops
        return None, f"{type(error).__name__}: {error}"
    return module, f"loaded from {target}"


def availability() -> tuple[bool, str]:
    """Whether the compiled op is in use, and why (or why not), in words.
    Builds and loads it on the first call (see the module's docstring)."""
    if not enabled():
        return False, f"turned off by ${ENABLE_VARIABLE}"
    with _LOCK:
        if "module" not in _loaded:
            module, reason = _load()
            _loaded["module"], _loaded["reason"] = module, reason
            if module is None:
                _LOG.warning(
                    "keras_deadrelu: its compiled counter op is not available "
                    "(%s); the streaming monitor uses stock TensorFlow ops, "
                    "which give the same statistics but cost more per step on "
                    "a CPU without XLA.",
                    reason,
                )
    return _loaded["module"] is not None, str(_loaded["reason"])


def unit_sums_op():
    """The op's Python wrapper, ``KerasDeadreluUnitSums``, or None where it is
    turned off or cannot be built or loaded."""
    if not availability()[0]:
        return None
    return _loaded["module"].keras_deadrelu_unit_sums


def relu_grad_unit_sums_op():
    """The wrapper of ``KerasDeadreluReluGradUnitSums`` (a ReLU's gradient
    and its per-unit sums in one pass), or None where the compiled ops are
    turned off or cannot be built or loaded."""
    if not availability()[0]:
        return None
    return _loaded["module"].keras_deadrelu_relu_grad_unit_sums


def prepare() -> None:
    """Builds and loads the op now where a step on this machine would use
    it (it is turned on and no GPU is visible), so that the build is not
    part of the first traced step."""
    if enabled() and not tf.config.list_logical_devices("GPU"):
        availability()


def main() -> int:
    """Builds the op now and prints whether it loads; exit status 0 either
    way, since the stock ops are a working fallback."""
    available, reason = availability()
    state = "in use" if available else "not available, stock TensorFlow ops used"
    print(f"keras_deadrelu compiled counter op: {state} ({reason})")
    return 0
