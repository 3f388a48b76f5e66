"""Garbage collection happens on the GUI thread only: no worker thread destroys Qt objects."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import Qt, QThread, QTimer

from kdstudio.gui.gc_guard import collect_on_gui_thread


def test_qt_objects_in_a_cycle_are_destroyed_on_the_gui_thread(qtbot) -> None:
    guard = collect_on_gui_thread()
    assert collect_on_gui_thread() is guard and not gc.isenabled()
    destroyed_in: list[QThread] = []
    # a Qt object that is not a widget is deleted where it is collected (without the
    # guard: in the worker thread below); here in a cycle only the collector can free
    timer = QTimer()
    timer.destroyed.connect(lambda *_: destroyed_in.append(QThread.currentThread()),
                            Qt.ConnectionType.DirectConnection)
    holder: dict = {"timer": timer}
    holder["self"] = holder
    del timer, holder

    def allocate_a_lot() -> None:  # what a training step does: far past gen 0's threshold
        for _ in range(50_000):
            cycle: list = []
            cycle.append(cycle)

    worker = threading.Thread(target=allocate_a_lot)
    worker.start()
    worker.join()
    assert destroyed_in == []  # the worker allocated, but collected nothing
    assert guard.collect_due() >= 0  # the counts are over the threshold
    gc.collect()  # whatever generation the cycle reached, on this (the GUI) thread
    qtbot.waitUntil(lambda: bool(destroyed_in), timeout=2_000)
    assert destroyed_in == [QThread.currentThread()]


def test_the_loaded_engine_is_frozen_out_of_full_collections(qtbot, tmp_path) -> None:
    """A full collection over torch's objects holds the interpreter lock for ~150 ms (a frozen
    window); once the engine is loaded they are frozen, and a cycle made later still goes."""
    from kdstudio.gui import MainWindow
    from tests.gui.conftest import settings_in

    window = MainWindow(db_path=tmp_path / "history.db", settings=settings_in(tmp_path))
    qtbot.addWidget(window)
    assert window.setup is not None and collect_on_gui_thread().frozen
    assert gc.get_freeze_count() > 100_000  # torch and the registries: ~175k objects
    collected: list[str] = []

    class Node:
        def __del__(self) -> None:
            collected.append("node")

    node = Node()
    node.self = node
    del node
    gc.collect()
    assert collected == ["node"]
