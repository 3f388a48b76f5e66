"""The Ray backend: each trial a Ray task asking for `num_cpus` = the trial's threads, on
the cluster at `address` or on a local Ray instance (`ray.init(num_cpus=...)`).

The task runs the trial's worker process on its node, which writes the trial's run row
into the history file named in the trial (for a local instance, or a cluster whose nodes
share that file's folder); the task returns the worker's last message. Results reach the
sweep as tasks finish (`ray.wait`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from kdstudio.core.sweep.local import Message, death_reason, worker_command, worker_env
from kdstudio.core.sweep.worker import MARK


def run_trial_process(payload: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """Run the trial's worker process here; its messages (the last says how it ended)."""
    process = subprocess.run(worker_command(), input=json.dumps(payload), text=True,
                             capture_output=True, env=worker_env(threads), check=False)
    messages = [json.loads(line[len(MARK):]) for line in process.stdout.splitlines()
                if line.startswith(MARK)]
    if not messages or messages[-1].get("type") != "finished":
        tail = process.stderr.strip().splitlines()[-1:] if process.stderr.strip() else []
        messages.append({"type": "died",
                         "error": death_reason(process.returncode, tail[0] if tail else "")})
    return messages


class RayBackend:
    """Trials as Ray tasks; `poll` gives their messages once each task has finished."""

    streams = False  # no message before a trial ends: TrialStarted comes at submission

    def __init__(self, threads: int, address: str | None, workers: int,
                 running_pids: Any = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("backend: ray needs the ray package (pip install kdstudio[ray])"
                             ) from None
        self.ray = ray
        self.threads = threads
        self.running_pids = running_pids
        self.started_here = not ray.is_initialized()
        if self.started_here:
            root = worker_env(threads)["PYTHONPATH"]
            options: dict[str, Any] = {"runtime_env": {"env_vars": {"PYTHONPATH": root}},
                                       "log_to_driver": False}
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers * threads, include_dashboard=False, **options)
        self.remote = ray.remote(num_cpus=threads, max_retries=0)(run_trial_process)
        self.tasks: dict[Any, int] = {}  # object ref -> trial index

    def warm(self, count: int) -> None:
        return None

    def start(self, index: int, payload: dict[str, Any]) -> int | None:
        self.tasks[self.remote.remote(payload, self.threads)] = index
        return None

    def poll(self, timeout: float) -> list[Message]:
        if not self.tasks:
            return []
        done, _ = self.ray.wait(list(self.tasks), num_returns=len(self.tasks), timeout=timeout)
        found: list[Message] = []
        for ref in done:
            index = self.tasks.pop(ref)
            try:
                messages = self.ray.get(ref)
            except Exception as error:  # noqa: BLE001 - the task or its worker died
                messages = [{"type": "died", "error": f"Ray task failed: {error}"}]
            found += [(index, message) for message in messages]
        return found

    def stop_all(self) -> None:
        """Ask the trials to stop: SIGTERM to their processes on this machine (their runs
        end `stopped`); tasks elsewhere are cancelled."""
        pids = self.running_pids() if self.running_pids else []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        if not pids:
            for ref in self.tasks:
                self.ray.cancel(ref)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
