"""The Workbench tab: Start, Pause, Stop and Sweep…, the run's status below them, the problems
that keep a run from starting, the setup form (its skeleton, gui/setup/skeleton.py, until
the engine is in) and the live view beside it. The window connects the buttons and fills
the form's place."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.run.live_view import LiveView
from kdstudio.gui.setup.skeleton import SetupSkeleton
from kdstudio.gui.widgets.elided_label import ElidedLabel

LOADING_TEXT = "Loading the engine (PyTorch)…"
LOADING_START_TIP = "Start is enabled once PyTorch and the training engine have loaded"


class Workbench(QWidget):
    """Run buttons, status and problems above the form's stack, the live view to the right."""

    def __init__(self, live: LiveView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workbenchTab")
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.start_button.setShortcut(QKeySequence("Ctrl+R"))
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Pause the run after the current batch; press again to "
                                     "resume")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the run after the current batch (within a second); "
                                    "everything so far stays in the history")
        self.sweep_button = QPushButton("Sweep…")
        self.sweep_button.setObjectName("sweepButton")
        self.sweep_button.setToolTip("Run this config over several values of its keys and "
                                     "seeds (Run ▸ Sweep…)")
        self.status_label = ElidedLabel(LOADING_TEXT)
        self.status_label.setObjectName("runStatusLabel")
        self.problems_label = QLabel()
        self.problems_label.setObjectName("problemsLabel")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()

        bar = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button,
                       self.sweep_button):
            bar.addWidget(button)
        bar.addStretch(1)

        self.setup_stack = QStackedWidget()
        self.setup_stack.setObjectName("setupStack")
        self.skeleton = SetupSkeleton()  # the form's layout, disabled, while torch loads
        self.loading_label = self.skeleton.note
        self.setup_stack.addWidget(self.skeleton)
        self.setup_stack.setMinimumWidth(360)

        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(bar)
        column.addWidget(self.status_label)  # its own row: the whole pane's width for it
        column.addWidget(self.problems_label)
        column.addWidget(self.setup_stack, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("workbenchSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(live)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([400, 1000])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.splitter)
