"""A real ``tensorboard`` process for the browser tests.

``TensorBoardServer(log_dir)`` runs ``tensorboard --logdir LOG_DIR --host
127.0.0.1 --port 0`` (the executable next to this Python, else ``python -m
tensorboard.main``), reads the URL it prints to learn the port, waits until
it answers, and stops it (terminate, then kill) however the block ends::

    with TensorBoardServer(log_dir) as server:
        server.wait_for_json("data/plugin/dead_neurons/runs", lambda a: a["runs"])
        print(server.url)

If the server has not answered within ``timeout`` seconds, ``start`` stops it
and raises ``RuntimeError`` with everything it printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

_URL = re.compile(r"(http://127\.0\.0\.1:(\d+)/)")


def tensorboard_command() -> list[str]:
    """The command that starts this environment's TensorBoard."""
    executable = Path(sys.executable).with_name("tensorboard")
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-m", "tensorboard.main"]


class TensorBoardServer:
    """Runs TensorBoard on a free port of 127.0.0.1 for as long as needed."""

    def __init__(self, log_dir: str | os.PathLike, *extra_flags: str, timeout=60.0):
        self.log_dir = str(log_dir)
        self.extra_flags = list(extra_flags)
        self.timeout = timeout
        self.url: str | None = None
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> TensorBoardServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def start(self) -> str:
        """Starts the server; returns its URL once it answers HTTP."""
        command = tensorboard_command() + [
            "--logdir",
            self.log_dir,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *self.extra_flags,
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            # Its own process group, so stop() also reaches the data server
            # TensorBoard may spawn.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _read_output(self) -> None:
        for line in self._process.stdout:
            self._lines.append(line)

    def _fail(self, reason: str) -> RuntimeError:
        return RuntimeError(
            f"TensorBoard {reason}.\ncommand: {' '.join(self._process.args)}\n"
            f"--- its output ---\n{self.output}"
        )

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._reader.join(timeout=2)
                raise self._fail(f"exited with code {self._process.returncode}")
            if self.url is None:
                match = _URL.search(self.output)
                if match:
                    self.url, self.port = match.group(1), int(match.group(2))
            if self.url is not None:
                try:
                    with urllib.request.urlopen(self.url, timeout=2) as answer:
                        if answer.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.2)
        raise self._fail(f"did not answer within {self.timeout:.0f} s")

    def stop(self) -> None:
        """Terminates the server (and its process group), then kills it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # Whatever it started in its group (the Rust data server) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=2)
        if process.stdout is not None:
            process.stdout.close()

    # ---------------------------------------------------------------- HTTP
    def get_json(self, path: str) -> Any:
        """GET ``url + path`` and decode its JSON answer."""
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.load(answer)

    def wait_for_json(
        self, path: str, ready: Callable[[Any], bool], timeout: float | None = None
    ) -> Any:
        """Polls ``path`` until ``ready(answer)``; TensorBoard loads logs lazily."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = self.get_json(path)
                if ready(answer):
                    return answer
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.25)
        raise self._fail(f"never gave a ready answer at {path}: last {answer!r}")
