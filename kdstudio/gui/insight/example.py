"""The one-example panel of the dark-knowledge view: a test example's teacher soft targets
as bars, under a temperature slider (filled: at the slider's T, dashed: at T = 1)."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSlider, QSpinBox

from kdstudio.gui.insight.panels import Panel
from kdstudio.gui.widgets.colours import PHASE_COLORS

T_MIN, T_MAX, T_STEP = 0.5, 20.0, 0.1  # the temperature slider: 0.1 steps from 0.5 to 20
PROBABILITY_TICKS = [(v / 5, f"{v / 5:.1f}") for v in range(6)]


def slider_value(temperature: float) -> int:
    """The slider position of a temperature (clamped to the slider's range)."""
    clamped = min(max(temperature, T_MIN), T_MAX)
    return round(clamped / T_STEP)


def slider_temperature(value: int) -> float:
    return round(value * T_STEP, 6)


def entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats of one distribution."""
    p = probs[probs > 0]
    return float(-(p * np.log(p)).sum())


class ExamplePanel(Panel):
    """One test example's teacher soft targets; the picker and the slider redraw them."""

    def __init__(self) -> None:
        super().__init__(
            "Teacher soft targets of one test example", "softTargetBars",
            "softmax(z / T) of the teacher's logits z for the chosen test example. Filled "
            "bars: at the slider's temperature T; outlines: at T = 1 (plain softmax).\nA "
            "higher T flattens the distribution and shows the small probabilities of the "
            "wrong classes that KD passes on; the true class is drawn darker.")
        self.knowledge: Any = None  # kdstudio.core.analysis.DarkKnowledge
        self.item.setLabel("left", "probability")
        self.item.setLabel("bottom", "class")
        self.item.getAxis("left").setTicks([PROBABILITY_TICKS])
        self.item.showGrid(y=True, alpha=0.25)
        self.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.soft_bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.plain_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=None,
                                          pen=pg.mkPen("#8a8a8a", width=1,  # seen on light and dark
                                                       style=Qt.PenStyle.DashLine))
        self.item.addItem(self.soft_bars)
        self.item.addItem(self.plain_bars)
        self.example_probs = np.zeros(0)
        self.example_plain = np.zeros(0)

        self.example_spin = QSpinBox()
        self.example_spin.setObjectName("exampleSpin")
        self.example_spin.setRange(0, 0)
        self.example_spin.setToolTip("Index of the test example whose teacher soft targets "
                                     "are shown")
        self.example_spin.valueChanged.connect(self.draw)
        self.example_info = QLabel()
        self.example_info.setObjectName("exampleInfo")
        self.example_info.setTextFormat(Qt.TextFormat.RichText)
        self.example_info.setWordWrap(True)  # a narrow window wraps it
        self.temperature_slider = QSlider(Qt.Orientation.Horizontal)
        self.temperature_slider.setObjectName("temperatureSlider")
        self.temperature_slider.setRange(slider_value(T_MIN), slider_value(T_MAX))
        self.temperature_slider.setValue(slider_value(4.0))
        self.temperature_slider.setToolTip(
            f"Temperature T of softmax(z / T) for the example's bars ({T_MIN:g} to "
            f"{T_MAX:g}). KD trains the student on the teacher's soft targets at the run's T.")
        self.temperature_slider.valueChanged.connect(self.draw)
        self.temperature_label = QLabel()
        self.temperature_label.setObjectName("temperatureLabel")
        self.temperature_label.setMinimumWidth(60)
        self.run_temperature_button = QPushButton("Run's T")
        self.run_temperature_button.setObjectName("runTemperatureButton")
        self.run_temperature_button.setToolTip("Set the slider to the temperature the run "
                                               "distilled at")
        self.run_temperature_button.clicked.connect(self._reset_temperature)
        controls = QGridLayout()
        controls.setContentsMargins(2, 0, 2, 0)
        controls.addWidget(QLabel("Test example"), 0, 0)
        controls.addWidget(self.example_spin, 0, 1)
        controls.addWidget(self.example_info, 0, 2, 1, 3)
        controls.addWidget(QLabel("Temperature"), 1, 0)
        controls.addWidget(self.temperature_slider, 1, 1, 1, 2)
        controls.addWidget(self.temperature_label, 1, 3)
        controls.addWidget(self.run_temperature_button, 1, 4)
        controls.setColumnStretch(2, 1)
        self.layout().addLayout(controls)
        self._update_temperature_label()

    @property
    def temperature(self) -> float:
        """The slider's temperature."""
        return slider_temperature(self.temperature_slider.value())

    def show_knowledge(self, knowledge: Any) -> None:
        """A newly loaded run: keep the example index if it exists, set the run's T."""
        self.knowledge = knowledge
        count = len(knowledge.y_test)
        self.example_spin.blockSignals(True)
        self.example_spin.setRange(0, max(count - 1, 0))
        self.example_spin.setValue(min(self.example_spin.value(), max(count - 1, 0)))
        self.example_spin.blockSignals(False)
        self.temperature_slider.blockSignals(True)
        self.temperature_slider.setValue(slider_value(knowledge.temperature))
        self.temperature_slider.blockSignals(False)
        self.draw()

    def draw(self) -> None:
        self._update_temperature_label()
        knowledge = self.knowledge
        if knowledge is None:
            return
        if "teacher" not in knowledge.logits:
            self.example_probs = self.example_plain = np.zeros(0)
            self.soft_bars.setOpts(x=[], height=[], brushes=None)
            self.plain_bars.setOpts(x=[], height=[])
            self.blank("no teacher saved for this run")
            self.example_info.setText("")
            return
        index = self.example_spin.value()
        probs = knowledge.example_soft_targets("teacher", index, self.temperature).numpy()
        plain = knowledge.example_soft_targets("teacher", index, 1.0).numpy()
        self.example_probs, self.example_plain = probs.astype(float), plain.astype(float)
        true_class = int(knowledge.y_test[index])
        n = len(probs)
        colour = PHASE_COLORS["teacher"]
        brushes = [pg.mkBrush(colour) if c == true_class else pg.mkBrush(colour + "70")
                   for c in range(n)]
        self.soft_bars.setOpts(x=np.arange(n), height=self.example_probs, width=0.7,
                               brushes=brushes, pen=pg.mkPen(None))
        self.plain_bars.setOpts(x=np.arange(n), height=self.example_plain, width=0.7)
        names = knowledge.class_names
        predicted = int(plain.argmax())
        verdict = "right" if predicted == true_class else "wrong"
        self.example_info.setText(
            f"true class <b>{html.escape(names[true_class])}</b> · teacher predicts "
            f"<b>{html.escape(names[predicted])}</b> ({verdict}) · entropy at T: "
            f"{entropy(self.example_probs):.2f} nats (max {math.log(n):.2f})")
        self.item.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(names)]])
        self.item.getViewBox().setRange(xRange=(-0.6, n - 0.4), yRange=(0, 1.02), padding=0)
        self.say("")

    def _update_temperature_label(self) -> None:
        self.temperature_label.setText(f"T = {self.temperature:.1f}")
        self.set_title("Teacher soft targets of one test example",
                       f"· filled: T = {self.temperature:.1f} · dashed: T = 1")

    def _reset_temperature(self) -> None:
        if self.knowledge is not None:
            self.temperature_slider.setValue(slider_value(self.knowledge.temperature))

    def describe(self, x: float, _y: float) -> str:
        if self.knowledge is None or not self.example_probs.size:
            return ""
        i = round(x)
        if not 0 <= i < len(self.example_probs):
            return ""
        return (f"<b>{html.escape(self.knowledge.class_names[i])}</b>: "
                f"{self.example_probs[i]:.3f} at T = {self.temperature:.1f}, "
                f"{self.example_plain[i]:.3f} at T = 1")
