"""The background-task helper on real QThreads: results, errors and reports reach the GUI
thread, a cancel drops them, a task lives on without its owner, and shutdown waits."""

from __future__ import annotations

import threading
import time

import pytest

from kdstudio.gui.tasks import Task, TaskState, running_tasks, shutdown_tasks

WAIT_MS = 10_000


def square_in_steps(count: int, state: TaskState) -> dict[str, object]:
    """A task function: reports each step, says which thread it ran on."""
    for step in range(count):
        state.report(step)
    return {"squares": [i * i for i in range(count)], "thread": threading.get_ident()}


def fail(message: str, state: TaskState) -> None:
    raise ValueError(message)


def wait_for_release(gate: threading.Event, state: TaskState) -> str:
    gate.wait(5)
    state.report("after the gate")
    return "released"


def record(task: Task) -> dict[str, list]:
    seen: dict[str, list] = {"progress": [], "result": [], "error": [], "finished": [],
                             "slot_thread": []}
    task.progress.connect(lambda value: seen["progress"].append(value))
    task.result.connect(lambda value: (seen["result"].append(value),
                                       seen["slot_thread"].append(threading.get_ident())))
    task.error.connect(lambda error: seen["error"].append(error))
    task.finished.connect(lambda: seen["finished"].append(True))
    return seen


def test_the_result_and_every_report_reach_the_gui_thread(qtbot) -> None:
    task = Task(square_in_steps, 5, name="kdstudio-test-square")
    seen = record(task)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        task.start()
    assert seen["progress"] == [0, 1, 2, 3, 4]
    [result] = seen["result"]
    assert result["squares"] == [0, 1, 4, 9, 16]
    assert result["thread"] != threading.get_ident()  # ran in another thread
    assert seen["slot_thread"] == [threading.get_ident()]  # delivered in this one
    assert seen["error"] == [] and seen["finished"] == [True]
    assert not task.running
    qtbot.waitUntil(lambda: task not in running_tasks(), timeout=WAIT_MS)


def test_an_exception_becomes_the_error_signal(qtbot) -> None:
    task = Task(fail, "no such run", name="kdstudio-test-fail")
    seen = record(task)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        task.start()
    [error] = seen["error"]
    assert isinstance(error, ValueError) and str(error) == "no such run"
    assert error.__traceback__ is None  # no frames of the worker thread kept alive
    assert seen["result"] == []


def test_a_cancelled_task_delivers_nothing_and_its_thread_still_ends(qtbot) -> None:
    gate = threading.Event()
    task = Task(wait_for_release, gate, name="kdstudio-test-cancel")
    seen = record(task)
    task.start()
    assert task.running
    task.cancel()
    assert task.cancelled
    gate.set()
    assert task.wait(WAIT_MS)
    qtbot.waitUntil(lambda: task not in running_tasks(), timeout=WAIT_MS)
    qtbot.wait(50)
    assert seen == {"progress": [], "result": [], "error": [], "finished": [],
                    "slot_thread": []}


def test_a_task_whose_owner_dropped_it_is_kept_until_its_thread_ends(qtbot) -> None:
    gate = threading.Event()
    results: list[str] = []
    task = Task(wait_for_release, gate, name="kdstudio-test-orphan")
    task.result.connect(results.append)
    task.start()
    del task  # only the registry holds it now
    [kept] = [t for t in running_tasks() if t.name == "kdstudio-test-orphan"]
    gate.set()
    qtbot.waitUntil(lambda: results == ["released"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: kept not in running_tasks(), timeout=WAIT_MS)


def test_shutdown_cancels_and_waits_for_every_running_task(qtbot) -> None:
    gate = threading.Event()
    tasks = [Task(wait_for_release, gate, name=f"kdstudio-test-shutdown-{i}")
             for i in range(3)]
    for task in tasks:
        task.start()
    threading.Timer(0.3, gate.set).start()
    started = time.monotonic()
    assert shutdown_tasks(WAIT_MS)
    assert time.monotonic() - started >= 0.25  # it waited for the functions to return
    assert all(task.cancelled for task in tasks)
    assert all(task.wait(0) for task in tasks)
    qtbot.waitUntil(lambda: not running_tasks(), timeout=WAIT_MS)


def test_a_task_starts_once(qtbot) -> None:
    task = Task(square_in_steps, 1, name="kdstudio-test-once")
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        task.start()
    with pytest.raises(RuntimeError, match="already started"):
        task.start()
