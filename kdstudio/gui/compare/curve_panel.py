"""The compare curve plot with a read-out of every curve's value at the mouse x and an
Export menu (PNG, SVG, CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.compare.curves import CurveOverlay
from kdstudio.gui.widgets.chart_export import export_png, export_svg
from kdstudio.gui.widgets.charts import EXPORT_FORMATS, show_hover
from kdstudio.gui.widgets.file_dialogs import export_with_dialog


class CurvePanel(QWidget):
    """`overlay`'s plot, a hover line of values at the mouse x and an Export button."""

    def __init__(self, overlay: CurveOverlay, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = overlay
        self.plot = overlay.plot
        self.hover = QLabel()
        self.hover.setObjectName("compareHover")
        self.hover.setTextFormat(Qt.TextFormat.RichText)
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.crosshair = pg.InfiniteLine(angle=90, pen=pg.mkPen((150, 150, 150), width=1))
        self.crosshair.setVisible(False)
        self.plot.getPlotItem().addItem(self.crosshair, ignoreBounds=True)
        self.export_button = QToolButton()
        self.export_button.setObjectName("compareExport")
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save this plot as a PNG image, an SVG drawing or a CSV "
                                      "table of its curves")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for fmt in EXPORT_FORMATS:
            menu.addAction(fmt.upper(), lambda f=fmt: self._export_dialog(f))
        self.export_button.setMenu(menu)
        top = QHBoxLayout()
        top.setContentsMargins(2, 0, 2, 0)
        top.addWidget(self.hover, 1)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)

    def _mouse_moved(self, position: QPointF) -> None:
        box = self.plot.getPlotItem().vb
        if not box.sceneBoundingRect().contains(position):
            self.crosshair.setVisible(False)
            return
        self.show_values_at(box.mapSceneToView(position).x())

    def values_at(self, x: float) -> dict[str, tuple[float, float]]:
        """Each curve's point nearest to `x`: legend name -> (x, y)."""
        found = {}
        for name, item in self.overlay.curves.items():
            xs, ys = item.xData, item.yData
            if xs is None or len(xs) == 0:
                continue
            index = int(np.argmin(np.abs(np.asarray(xs, dtype=float) - x)))
            found[name] = (float(xs[index]), float(ys[index]))
        return found

    def show_values_at(self, x: float) -> None:
        show_hover(self.hover, self.crosshair, x, self.values_at(x),
                   lambda name: self.overlay.curves[name].opts["pen"].color().name())

    def _export_dialog(self, fmt: str) -> None:
        export_with_dialog(self, "Export compare plot", f"compare.{fmt}", EXPORT_FORMATS[fmt],
                           self.export)

    def export(self, path: str | Path) -> Path:
        """Write the plot to `path`; the suffix picks PNG, SVG or CSV (one row per point)."""
        target = Path(path)
        fmt = target.suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format '.{fmt}' (use .png, .svg or .csv)")
        self.crosshair.setVisible(False)
        if fmt == "csv":
            with target.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["curve", "x", "y"])
                for name, item in self.overlay.curves.items():
                    for x, y in zip(item.xData, item.yData, strict=True):
                        writer.writerow([name, f"{x:g}", f"{y:.6g}"])
        elif fmt == "png":
            export_png([self.plot], self.export_title(), target, self.plot.width())
        else:
            export_svg([self.plot], self.export_title(), target)
        return target

    def export_title(self) -> str:
        """"Compare: <y axis label>", the title above an exported plot."""
        label = self.plot.getPlotItem().getAxis("left").labelText
        return f"Compare: {label}" if label else "Compare"
