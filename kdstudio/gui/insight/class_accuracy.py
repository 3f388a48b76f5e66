"""The per-class accuracy panel of the dark-knowledge view: teacher, student alone and
distilled student as grouped bars, with the KD gain in points above each class."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pyqtgraph as pg

from kdstudio.gui.insight.panels import Panel
from kdstudio.gui.widgets.colours import GAIN_COLORS, PHASE_COLORS, PHASE_LABELS
from kdstudio.gui.widgets.plots import corner_legend

PERCENT_TICKS = [(v / 5, f"{v * 20} %") for v in range(6)]
KINDS = ("teacher", "baseline", "student")
NEUTRAL_GAIN = "#707070"  # a gain that rounds to 0 points: neither helped nor hurt


class AccuracyPanel(Panel):
    """Grouped bars of per-class test accuracy; `show_knowledge` draws a run's."""

    def __init__(self) -> None:
        super().__init__(
            "Per-class test accuracy", "classAccuracyPlot",
            "Test accuracy within each true class for the teacher, the student trained alone "
            "(baseline) and the distilled student.\nThe number above each group is the KD gain"
            " in points: student + KD − student alone\n(green: KD helped, red: hurt, "
            "grey 0: no change).")
        self.knowledge: Any = None  # kdstudio.core.analysis.DarkKnowledge
        self.item.setLabel("left", "test accuracy")
        self.item.getAxis("left").setTicks([PERCENT_TICKS])
        self.item.showGrid(y=True, alpha=0.25)
        self.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.legend = corner_legend(self.item, "8pt", text_color=None, offset=(-6, 4),
                                    opacity=220, colCount=3)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.gain_labels: list[pg.TextItem] = []

    def show_knowledge(self, knowledge: Any) -> None:
        self.knowledge = knowledge
        item = self.item
        for bars in self.bars.values():
            item.removeItem(bars)
        for label in self.gain_labels:
            item.removeItem(label)
        self.bars, self.gain_labels = {}, []
        self.legend.clear()
        kinds = [kind for kind in KINDS if kind in knowledge.accuracy]
        n = knowledge.num_classes
        width = 0.8 / max(len(kinds), 1)
        for k, kind in enumerate(kinds):
            heights = np.nan_to_num(knowledge.accuracy[kind].numpy().astype(float))
            x = np.arange(n) + (k - (len(kinds) - 1) / 2) * width
            bars = pg.BarGraphItem(x=x, height=heights, width=width * 0.92,
                                   brush=pg.mkBrush(PHASE_COLORS[kind]), pen=pg.mkPen(None),
                                   name=PHASE_LABELS[kind])
            item.addItem(bars)
            self.bars[kind] = bars
        gain = knowledge.class_gain()
        if gain is not None:
            tops = np.max(np.stack([np.nan_to_num(knowledge.accuracy[k].numpy())
                                    for k in kinds]), axis=0)
            for i, value in enumerate(gain.tolist()):
                if math.isnan(value):
                    continue
                points = round(value * 100)
                colour = GAIN_COLORS[points > 0] if points else NEUTRAL_GAIN
                label = pg.TextItem(f"{points:+d}" if points else "0", color=colour,
                                    anchor=(0.5, 1.0))
                label.setPos(i, float(tops[i]) + 0.01)
                item.addItem(label)
                self.gain_labels.append(label)
        item.getAxis("bottom").setTicks([[(i, name) for i, name in
                                          enumerate(knowledge.class_names)]])
        item.getViewBox().setRange(xRange=(-0.6, n - 0.4), yRange=(0, 1.3), padding=0)
        self.say("")

    def describe(self, x: float, _y: float) -> str:
        if self.knowledge is None:
            return ""
        i = round(x)
        if not 0 <= i < self.knowledge.num_classes:
            return ""
        parts = [f"<b>{html.escape(self.knowledge.class_names[i])}</b>"]
        for kind, accuracy in self.knowledge.accuracy.items():
            value = float(accuracy[i])
            parts.append(f"{PHASE_LABELS[kind]} {value:.1%}" if not math.isnan(value)
                         else f"{PHASE_LABELS[kind]} —")
        gain = self.knowledge.class_gain()
        if gain is not None and not math.isnan(float(gain[i])):
            parts.append(f"gain {float(gain[i]) * 100:+.1f} points")
        return " · ".join(parts)
