"""The window at 1024x700: it really gets that small, and on every tab no label, button, check
box or group title is cut: its text fits, or it is elided with the whole text as tooltip."""

from __future__ import annotations

import time

from PySide6.QtGui import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QGroupBox,
    QLabel,
    QProgressBar,
    QWidget,
)

from kdstudio.gui import MainWindow
from kdstudio.gui.widgets.elided_label import ElidedLabel
from kdstudio.gui.widgets.fitted_bar import TEXT_MARGIN_PX
from tests.gui.conftest import set_tiny_run

SMALL = (1024, 700)


def _cut_text(widget: QWidget) -> str | None:
    """The text `widget` shows cut short (with no tooltip naming it), or None."""
    if isinstance(widget, ElidedLabel):
        if widget.is_elided and widget.full_text not in widget.toolTip():
            return widget.full_text
        return None
    if isinstance(widget, QLabel):
        text = widget.text()
        if not text or not widget.pixmap().isNull():
            return None
        room = widget.contentsRect()
        if widget.wordWrap():
            fits = widget.heightForWidth(room.width()) <= room.height() + 1
        elif Qt.mightBeRichText(text) or "\n" in text:
            fits = widget.sizeHint().width() <= widget.width()
        else:
            fits = widget.fontMetrics().horizontalAdvance(text) <= room.width()
        return None if fits or text in widget.toolTip() else text
    if isinstance(widget, QAbstractButton):
        text = widget.text().replace("&", "")
        if not text:
            return None
        needed = widget.sizeHint().width()
        return None if needed <= widget.width() or text in widget.toolTip() else text
    if isinstance(widget, QProgressBar) and widget.isTextVisible() and widget.text():
        text = widget.text()
        fits = widget.fontMetrics().horizontalAdvance(text) + TEXT_MARGIN_PX <= widget.width()
        return None if fits else text
    if isinstance(widget, QGroupBox) and widget.title():
        title = widget.title().replace("&", "")
        fits = widget.fontMetrics().horizontalAdvance(title) + 16 <= widget.width()
        return None if fits else title
    return None


def cut_widgets(root: QWidget) -> list[str]:
    """`type 'text' (width px)` of every visible widget under `root` whose text is cut."""
    found = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.width() <= 0:
            continue
        text = _cut_text(widget)
        if text is not None:
            found.append(f"{type(widget).__name__} {text!r} ({widget.width()} px)")
    return found


def _dark_knowledge_shown(window: MainWindow) -> bool:
    view = window.dark_knowledge
    return view.stack.currentWidget() is view.content


def check_every_tab(window: MainWindow, qtbot, run_shown: bool = False) -> None:
    """Each tab at the small size; `run_shown`: wait for the Dark knowledge of the run."""
    assert window.width() <= SMALL[0] and window.height() <= SMALL[1]
    assert window.minimumSizeHint().width() <= SMALL[0]
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        if run_shown and window.tabs.currentWidget() is window.dark_knowledge:
            qtbot.waitUntil(lambda: _dark_knowledge_shown(window), timeout=30_000)
        QApplication.processEvents()
        assert window.width() <= SMALL[0] and window.height() <= SMALL[1], \
            window.tabs.tabText(index)
        assert cut_widgets(window) == [], window.tabs.tabText(index)


def test_every_tab_fits_1024x700_uncut(window: MainWindow, qtbot) -> None:
    window.resize(*SMALL)
    qtbot.waitUntil(lambda: window.setup is not None, timeout=10_000)
    QApplication.processEvents()
    check_every_tab(window, qtbot)


def test_a_finished_run_fits_1024x700_uncut(window: MainWindow, qtbot) -> None:
    """With a run's summary, status and history row shown (a real run of a few steps)."""
    window.resize(*SMALL)
    set_tiny_run(window)
    with qtbot.waitSignal(window.run_finished, timeout=60_000) as finished:
        window.start_button.click()
    assert finished.args[0]["status"] == "completed"
    QApplication.processEvents()
    assert window.status_label.full_text.startswith("Run #")
    window.live.run_progress.show_run(time.monotonic())  # the run's bar at its longest text
    assert window.live.progress_bar.full_text.count(" · ") == 2
    check_every_tab(window, qtbot, run_shown=True)


def test_elided_label_shrinks_and_tells_its_text(qtbot) -> None:
    label = ElidedLabel("Learning rate and schedules")
    qtbot.addWidget(label)
    label.setToolTip("What the chart shows")
    label.show()
    natural = label.fontMetrics().horizontalAdvance(label.full_text)
    assert label.minimumSizeHint().width() < natural
    label.resize(natural // 2, label.height())
    assert label.is_elided
    assert label.toolTip() == "Learning rate and schedules\nWhat the chart shows"
    assert label.text() == "Learning rate and schedules"
    label.resize(natural + 20, label.height())
    assert not label.is_elided
    assert label.toolTip() == "What the chart shows"
