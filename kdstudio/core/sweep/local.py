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

from kdstudio.core.sweep.trials import TrialFacts
from kdstudio.core.sweep.worker import MARK

Message = tuple[int, dict[str, Any]]  # (trial index, message)
CHECK = -1  # the "trial index" of a process checking the trials


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
    """Trial processes on this machine, each running one trial at a time and kept for the
    next (torch is imported once per process); `poll` gives their messages (started,
    teacher, waiting, resumed, finished, died). A process that dies takes only its current
    trial."""

    defers = True  # a trial may wait for its teacher in its process (see runner.py)

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.busy: dict[int, subprocess.Popen[str]] = {}  # trial index -> its process
        self.idle: list[subprocess.Popen[str]] = []  # started, waiting for a trial
        self.current: dict[int, int] = {}  # pid -> the trial index it runs now
        self.stderr: dict[int, list[str]] = {}  # pid -> its last lines
        self.messages: queue.Queue[Message] = queue.Queue()
        self.given: set[int] = set()  # pids that were given a trial

    def warm(self, count: int) -> None:
        """Have `count` idle processes (importing the engine) before trials need them."""
        while len(self.idle) < count:
            self.idle.append(self._spawn())

    def check(self, labelled: list[tuple[str, dict[str, Any]]]) -> TrialFacts | None:
        """The trials' facts, from an idle process (which imports torch anyway, so this
        one need not); None if that process died first."""
        self.warm(1)
        process = self.idle[0]
        self.current[process.pid] = CHECK
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps({"check": labelled}) + "\n")
            process.stdin.flush()
        except OSError:  # it died while starting: its reader says so
            pass
        while True:
            with contextlib.suppress(queue.Empty):
                index, message = self.messages.get(timeout=0.5)
                if index != CHECK or message["type"] == "exited":
                    continue
                if message["type"] == "checked":
                    return TrialFacts(message["problems"], message["teacher_methods"],
                                      message["auto_device"])
                self.idle.remove(process)  # it died
                return None

    def has_idle(self) -> bool:
        return bool(self.idle)

    def _spawn(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=worker_env(self.threads),
            start_new_session=True)  # Ctrl-C reaches the sweep, which stops its trials
        self.stderr[process.pid] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()
        return process

    def start(self, index: int, payload: dict[str, Any]) -> int:
        """Give the trial to an idle process (or a new one); returns its pid."""
        process = self.idle.pop(0) if self.idle else self._spawn()
        self.current[process.pid] = index
        self.busy[index] = process
        self.given.add(process.pid)
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(payload) + "\n")
            process.stdin.flush()
        except OSError:  # it died while idle: its reader reports the trial as died
            pass
        return process.pid

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and process.stderr is not None
        errors = threading.Thread(target=self._tail, args=(process.pid, process.stderr),
                                  daemon=True)
        errors.start()
        for line in process.stdout:
            index = self.current.get(process.pid)
            if not line.startswith(MARK) or index is None:
                continue
            message = json.loads(line[len(MARK):])
            if message.get("type") in ("finished", "checked"):
                del self.current[process.pid]
                self.messages.put((index, message))
                if index != CHECK:
                    self.messages.put((index, {"type": "idle"}))
            else:
                self.messages.put((index, message))
        code = process.wait()
        errors.join(timeout=5)
        index = self.current.pop(process.pid, None)
        if index is not None:  # it died during a trial
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
            if message["type"] in ("idle", "exited"):
                process = self.busy.pop(index, None)
                if process is not None and message["type"] == "idle":
                    self.idle.append(process)
        return [(i, m) for i, m in found if m["type"] not in ("idle", "exited")]

    def stop_all(self) -> None:
        """Ask every running trial to stop (SIGTERM: the run ends `stopped`)."""
        for process in list(self.busy.values()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def close(self) -> None:
        """End the processes: stdin closed, they exit once their trial (if any) ends, which
        this waits for; one that was never given a trial (the sweep ended before it) is
        killed at once. An idle process has written its last trial (its history was closed
        before it said `finished`): its exit is left to a thread, not waited for."""
        for process in self.idle:
            if process.pid not in self.given:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for process in [*self.busy.values(), *self.idle]:
            with contextlib.suppress(OSError):
                if process.stdin is not None:
                    process.stdin.close()
        threading.Thread(target=_reap, args=(list(self.idle),), daemon=True).start()
        _reap(list(self.busy.values()))


def _reap(processes: list[subprocess.Popen[str]]) -> None:
    """Wait for processes whose stdin is closed; kill one still there after 30 s."""
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
