"""Chart export: an SVG drawn in vectors (small marker shapes, stroke-only curves) that
renders like the PNG, and a PNG with the chart's title and a legend scaled with it."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from kdstudio.gui.widgets.chart_export import title_height
from kdstudio.gui.widgets.charts import ChartPanel

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def accuracy_chart(qtbot) -> ChartPanel:
    panel = ChartPanel("Accuracy per epoch", "epoch", "accuracy", "accuracyPlot",
                       legend="bottom", y_range="fraction")
    qtbot.addWidget(panel)
    panel.resize(500, 300)
    panel.show()
    panel.add_series("student val", "#d62728", symbol="o")
    panel.add_series("student train", "#1f77b4", dashed=True)
    for epoch in range(1, 11):
        panel.append("student val", epoch, 0.5 + 0.04 * epoch)
        panel.append("student train", epoch, 0.48 + 0.04 * epoch)
    panel.redraw()
    return panel


def scale_of(transform: str) -> float:
    numbers = [float(v) for v in re.findall(r"-?[\d.]+(?:e-?\d+)?", transform)]
    return max(abs(numbers[0]), abs(numbers[3])) if len(numbers) == 6 else 1.0


def test_svg_markers_are_small_vector_shapes_and_curves_are_not_filled(accuracy_chart,
                                                                       tmp_path):
    root = ET.parse(accuracy_chart.export(tmp_path / "accuracy.svg")).getroot()
    assert not list(root.iter(f"{SVG}image"))  # no pixmap atlas, squeezed or not
    width, height = int(root.get("width")), int(root.get("height"))
    parts = accuracy_chart.export_parts()  # the plot, then its legend below it
    assert [part.height() for part in parts][1] > 0
    assert (width, height) == (500, title_height() + sum(part.height() for part in parts))
    markers = [group for group in root.iter(f"{SVG}g")
               if group.get("fill") == "#d62728" and group.find(f"{SVG}path") is not None]
    assert len(markers) >= 10  # ten points, plus the legend's sample
    for group in markers:  # a unit circle scaled to the symbol's size in pixels
        assert 3 <= scale_of(group.get("transform", "")) <= 20
    stroked = 0
    shapes = {f"{SVG}{tag}" for tag in ("path", "polyline", "rect", "circle", "ellipse")}
    for group in root.iter(f"{SVG}g"):
        if group.get("fill") == "none":
            for shape in group:
                if shape.tag in shapes:  # explicit, for renderers that do not inherit it
                    assert shape.get("fill") == "none", ET.tostring(shape)[:80]
                    stroked += group.get("stroke") in ("#d62728", "#1f77b4")
    assert stroked >= 2  # both curves, at least
    assert "Accuracy per epoch" in "".join(root.itertext())


def test_svg_renders_like_the_png(accuracy_chart, tmp_path):
    from PySide6.QtSvg import QSvgRenderer

    png = QImage(str(accuracy_chart.export(tmp_path / "a.png", width=500)))
    renderer = QSvgRenderer(str(accuracy_chart.export(tmp_path / "a.svg")))
    assert renderer.isValid()
    drawn = QImage(png.size(), QImage.Format.Format_ARGB32)
    drawn.fill(QColor("white"))
    painter = QPainter(drawn)
    renderer.render(painter)
    painter.end()

    def grey(image: QImage) -> np.ndarray:
        image = image.convertToFormat(QImage.Format.Format_Grayscale8)
        rows = np.frombuffer(image.constBits(), np.uint8).reshape(
            image.height(), image.bytesPerLine())[:, :image.width()].astype(float)
        return rows.reshape(rows.shape[0] // 10, 10, rows.shape[1] // 10, 10).mean((1, 3))

    height = png.height() // 10 * 10
    png_cells = grey(png.copy(0, 0, 500, height))
    svg_cells = grey(drawn.copy(0, 0, 500, height))
    assert np.abs(png_cells - svg_cells).mean() < 3.0  # on a 0-255 scale, 10x10 cells
    assert (svg_cells < 240).sum() > 40  # and it is not a blank page


def test_png_has_a_title_band_and_a_legend_scaled_with_the_chart(accuracy_chart, tmp_path):
    plot, legend = accuracy_chart.export_parts()
    image = QImage(str(accuracy_chart.export(tmp_path / "a.png", width=1000)))
    scale = 1000 / plot.width()
    assert image.width() == 1000
    assert image.height() == round((title_height() + plot.height() + legend.height()) * scale)
    band = image.copy(0, 0, 400, int(title_height() * scale))
    dark = sum(1 for x in range(band.width()) for y in range(band.height())
               if QColor(band.pixel(x, y)).lightness() < 100)
    assert dark > 200  # the title's letters
    box = QRectF(0, plot.height(), legend.width(), legend.height())  # under the plot

    def legend_ink_rows(picture: QImage, factor: float) -> int:
        """Rows with ink in the legend's box: how tall its text and samples are drawn."""
        region = picture.copy(int(box.left() * factor),
                              int((box.top() + title_height()) * factor),
                              int(box.width() * factor), int(box.height() * factor))
        rows = [y for y in range(region.height())
                if any(QColor(region.pixel(x, y)).lightness() < 200
                       for x in range(region.width()))]
        return rows[-1] - rows[0] if rows else 0

    small = QImage(str(accuracy_chart.export(tmp_path / "small.png", width=plot.width())))
    ratio = legend_ink_rows(image, scale) / legend_ink_rows(small, 1.0)
    assert ratio > 0.8 * scale  # the legend grows with the image (it stayed 1x before)


def test_svg_curves_are_in_pixels_so_renderers_without_non_scaling_stroke_draw_lines(
        accuracy_chart, tmp_path):
    """librsvg ignores vector-effect="non-scaling-stroke": a 2 px line under the data-to-pixel
    transform (y scaled by hundreds) would be drawn as a filled band."""
    path = accuracy_chart.export(tmp_path / "accuracy.svg")
    root = ET.parse(path).getroot()
    curves = 0
    for group in root.iter(f"{SVG}g"):
        if group.get("stroke") not in ("#d62728", "#1f77b4"):
            continue
        for shape in group:
            if shape.tag in (f"{SVG}polyline", f"{SVG}path") and group.get("fill") == "none":
                curves += 1
                assert scale_of(group.get("transform", "")) <= 2, group.get("transform")
    assert curves >= 2
    if shutil.which("rsvg-convert"):  # and librsvg itself draws no filled band
        out = tmp_path / "rsvg.png"
        subprocess.run(["rsvg-convert", str(path), "-o", str(out)], check=True, timeout=30)
        image = QImage(str(out)).convertToFormat(QImage.Format.Format_RGB32)
        red = sum(QColor(image.pixel(x, y)).red() > 180 and QColor(image.pixel(x, y)).green()
                  < 90 for x in range(0, image.width(), 2) for y in range(0, image.height(), 2))
        assert 0 < red < image.width() * image.height() / 4 * 0.05  # a line, not an area
