"""The local backend: each trial a `python -m kdstudio.core.sweep.worker` process."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from kdstudio.core.sweep.worker import MARK

Message = tuple[int, dict[str, Any]]  # (trial index, message)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "kdstudio.core.sweep.worker"]


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a trial process: this source tree importable, `threads` threads
    for an automatic thread count."""
    root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def death_reason(returncode: int, stderr_tail: str) -> str:
    if returncode < 0:
        return f"trial process died (signal {-returncode})"
    tail = f": {stderr_tail}" if stderr_tail else ""
    return f"trial process ended with exit code {returncode} before reporting{tail}"


class LocalBackend:
    """Trial processes on this machine; `poll` gives their messages (started, teacher,
    finished, died)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.processes: dict[int, subprocess.Popen[str]] = {}  # trial index -> its process
        self.spares: list[subprocess.Popen[str]] = []  # started, no trial given yet
        self.index_of: dict[int, int] = {}  # pid -> trial index
        self.stderr: dict[int, list[str]] = {}  # pid -> its last lines
        self.messages: queue.Queue[Message] = queue.Queue()

    def warm(self, count: int) -> None:
        """Have `count` processes started (importing the engine) before trials need them."""
        while len(self.spares) < count:
            self.spares.append(self._spawn())

    def _spawn(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=worker_env(self.threads),
            start_new_session=True)  # Ctrl-C reaches the sweep, which stops its trials
        self.stderr[process.pid] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()
        return process

    def start(self, index: int, payload: dict[str, Any]) -> int:
        """Give the trial to a spare process (or a new one); returns its pid."""
        process = self.spares.pop(0) if self.spares else self._spawn()
        self.index_of[process.pid] = index
        self.processes[index] = process
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload))
        process.stdin.close()
        return process.pid

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and process.stderr is not None
        errors = threading.Thread(target=self._tail, args=(process.pid, process.stderr),
                                  daemon=True)
        errors.start()
        reported = False
        for line in process.stdout:
            if line.startswith(MARK) and process.pid in self.index_of:
                message = json.loads(line[len(MARK):])
                reported |= message.get("type") == "finished"
                self.messages.put((self.index_of[process.pid], message))
        code = process.wait()
        errors.join(timeout=5)
        index = self.index_of.get(process.pid)
        if index is None:  # a spare never used
            return
        if not reported:
            lines = self.stderr[process.pid]
            tail = lines[-1].strip() if lines else ""
            self.messages.put((index, {"type": "died", "error": death_reason(code, tail)}))
        self.messages.put((index, {"type": "exited"}))

    def _tail(self, pid: int, stream: IO[str]) -> None:
        for line in stream:
            lines = self.stderr[pid]
            lines.append(line)
            del lines[:-20]

    def poll(self, timeout: float) -> list[Message]:
        found: list[Message] = []
        try:
            found.append(self.messages.get(timeout=timeout))
            while True:
                found.append(self.messages.get_nowait())
        except queue.Empty:
            pass
        for index, message in found:
            if message["type"] == "exited":
                self.processes.pop(index, None)
        return [(i, m) for i, m in found if m["type"] != "exited"]

    def running(self) -> int:
        return len(self.processes)

    def stop_all(self) -> None:
        """Ask every trial to stop (SIGTERM: the run ends `stopped`)."""
        for process in list(self.processes.values()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def close(self) -> None:
        """Wait for the trials' processes; spares are told there is nothing to do."""
        for process in self.spares:
            if process.stdin is not None:
                process.stdin.close()
        for process in [*self.processes.values(), *self.spares]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
