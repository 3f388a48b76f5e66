"""Python's cyclic garbage collector runs on the GUI thread only, while the window is open.

Left automatic, a collection runs in whichever thread happens to allocate, e.g. a run's
worker thread, and it may destroy Qt objects that became garbage there (a closed dialog's
widgets held in a reference cycle). Their destructors take Qt locks and then wait for the
interpreter lock, which the GUI thread may hold while it waits for those same locks: a
deadlock, seen in the test suite (worker thread inside `gc_collect_main` destroying a QObject,
GUI thread deleting a menu).

So automatic collection is switched off and a GUI-thread timer collects instead, generation
by generation, with the interpreter's own thresholds. Objects without cycles are still freed
at once by reference counting; only cycles wait up to one tick.

Once the engine is loaded, what is alive then (torch, the registries: hundreds of thousands
of objects that live as long as the process) is moved out of the collector's sight with
`gc.freeze()`: the interpreter skips most full collections by its own rule (only when the
objects new since the last one are a quarter of the old), which these ticks cannot see, and a
full collection over all of torch holds the interpreter lock for 150 ms, freezing the window.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

TICK_MS = 250
_guard: GuiThreadCollector | None = None


class GuiThreadCollector(QObject):
    """Collects garbage from a timer in the thread that created it (the GUI thread)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.collect_due)
        self.frozen = False
        gc.disable()
        self.timer.start()

    def freeze_loaded(self) -> None:
        """After the engine's imports (once per process): collect, then freeze what is left
        so that later full collections only look at objects made since."""
        if not self.frozen:
            self.frozen = True
            gc.collect()
            gc.freeze()

    def collect_due(self) -> int:
        """Collect the oldest generation whose count is over its threshold, as the
        interpreter would have; returns the generation collected, or -1 for none."""
        counts = gc.get_count()
        generation = -1
        for level in range(3):
            if counts[level] > self.thresholds[level]:
                generation = level
            else:
                break
        if generation >= 0:
            gc.collect(generation)
            self.collections[generation] += 1
        return generation


def collect_on_gui_thread() -> GuiThreadCollector:
    """Install the collector once for the application (call from the GUI thread, with a
    QApplication); later calls return the same one."""
    global _guard
    if _guard is None:
        _guard = GuiThreadCollector(QCoreApplication.instance())
    return _guard
