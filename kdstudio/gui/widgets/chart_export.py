"""Export of a chart to PNG and SVG: its title above the plot and legend, drawn by Qt's
painter with vector markers (not pyqtgraph's pixmap atlas) and stroke-only curves (fill="none")."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QRegion
from PySide6.QtWidgets import QGraphicsItem, QWidget

SVG_NS = "http://www.w3.org/2000/svg"
TITLE_POINT_SIZE = 10.0
STROKE_ONLY = ("path", "polyline", "polygon", "line", "rect", "circle", "ellipse")
MATRIX = re.compile(r"matrix\(([^)]*)\)")
PATH_STEP = re.compile(r"([MLZ])\s*(?:([-+\d.eE]+)[ ,]([-+\d.eE]+))?")


def title_font() -> QFont:
    font = QFont()
    font.setPointSizeF(TITLE_POINT_SIZE)
    font.setBold(True)
    return font


def title_height() -> int:
    """Height (in chart pixels) of the band the title is written in."""
    return int(QFontMetricsF(title_font()).height() * 1.6)


@contextmanager
def export_mode(plot: pg.PlotWidget, scale: float) -> Iterator[None]:
    """While drawing: each item in export mode (markers drawn one by one as vector
    paths, sized for `scale`), axes painted directly rather than from their cache, and
    legends scaled with the rest (they ignore the view's transform on screen)."""
    items = [item for item in plot.scene().items() if hasattr(item, "setExportMode")]
    legends = [item for item in plot.scene().items() if isinstance(item, pg.LegendItem)]
    for legend in legends:
        legend.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, False)
    cached = [item for item in plot.scene().items()
              if item.cacheMode() != QGraphicsItem.CacheMode.NoCache]
    modes = [item.cacheMode() for item in cached]
    options = {"antialias": True, "background": QColor("white"), "resolutionScale": scale}
    for item in cached:
        item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
    for item in items:
        item.setExportMode(True, options)
    try:
        yield
    finally:
        for item in items:
            item.setExportMode(False)
        for item, mode in zip(cached, modes, strict=True):
            item.setCacheMode(mode)
        for legend in legends:
            legend.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)


def paint_chart(painter: QPainter, parts: Sequence[QWidget], title: str,
                scale: float) -> None:
    """The title in a band on top, then `parts` (plot, legend) stacked as on screen, all
    `scale` times their size on screen."""
    width = max(part.width() for part in parts)
    band = title_height()
    painter.save()
    painter.scale(scale, scale)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    painter.fillRect(QRectF(0, 0, width, band + sum(part.height() for part in parts)),
                     QColor("white"))
    painter.setFont(title_font())
    painter.setPen(QColor(30, 30, 30))
    painter.drawText(QRectF(8, 0, width - 16, band), Qt.AlignmentFlag.AlignVCenter
                     | Qt.AlignmentFlag.AlignLeft, title)
    painter.restore()
    top = float(band)
    for part in parts:
        target = QRectF(0, top * scale, part.width() * scale, part.height() * scale)
        if isinstance(part, pg.PlotWidget):
            with export_mode(part, scale):
                part.render(painter, target, part.rect())
        else:
            painter.save()
            painter.translate(0, top * scale)
            painter.scale(scale, scale)
            part.render(painter, QPoint(0, 0), QRegion(part.rect()),
                        QWidget.RenderFlag.DrawChildren)
            painter.restore()
        top += part.height()


def chart_size(parts: Sequence[QWidget]) -> QSize:
    """Size of the drawing at scale 1: the widest part, the title band and every part."""
    return QSize(max(part.width() for part in parts),
                 title_height() + sum(part.height() for part in parts))


def export_png(parts: Sequence[QWidget], title: str, target: Path, width: int) -> None:
    """A PNG `width` pixels wide (height in proportion, title band included)."""
    natural = chart_size(parts)
    scale = width / max(natural.width(), 1)
    image = QImage(QSize(width, round(natural.height() * scale)), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        paint_chart(painter, parts, title, scale)
    finally:
        painter.end()
    if not image.save(str(target), "PNG"):
        raise OSError(f"could not write {target}")


def export_svg(parts: Sequence[QWidget], title: str, target: Path) -> None:
    """An SVG at the chart's size on screen, every stroke-only shape marked fill="none"
    so that renderers which do not inherit the group's fill draw no filled areas."""
    from PySide6.QtSvg import QSvgGenerator

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    size = chart_size(parts)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(size)
    generator.setViewBox(QRectF(0, 0, size.width(), size.height()))
    generator.setTitle(title)
    generator.setResolution(parts[0].logicalDpiX())  # axes replay a QPicture at this dpi
    painter = QPainter(generator)
    try:
        paint_chart(painter, parts, title, 1.0)
    finally:
        painter.end()
    target.write_bytes(clean_svg(bytes(data.data()), size))


def clean_svg(svg: bytes, size: QSize) -> bytes:
    """`svg` sized in pixels (not millimetres), with fill="none" written on each shape
    inside a group that fills nothing."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg)
    root.set("width", str(size.width()))
    root.set("height", str(size.height()))
    for group in root.iter(f"{{{SVG_NS}}}g"):
        bake_data_transform(group)
        if group.get("fill") != "none":
            continue
        for child in group:
            if child.tag.rsplit("}", 1)[-1] in STROKE_ONLY and "fill" not in child.attrib:
                child.set("fill", "none")
    out = io.BytesIO()
    ET.ElementTree(root).write(out, encoding="UTF-8", xml_declaration=True)
    return out.getvalue()


def bake_data_transform(group: ET.Element) -> None:
    """Curves are written in data coordinates under a group transform that scales them to
    pixels, with a "non-scaling-stroke" that librsvg ignores (its 2 px line scaled by the
    y-axis' hundreds becomes a filled area). Write such a group's polylines and straight
    paths in pixels instead, under no transform; a group holding anything else is left."""
    found = MATRIX.fullmatch(group.get("transform", "").strip())
    children = list(group)
    if found is None or not children or any(
            child.tag.rsplit("}", 1)[-1] not in ("polyline", "path") for child in children):
        return
    a, b, c, d, e, f = (float(v) for v in found.group(1).split(","))
    if (a, b, c, d) == (1.0, 0.0, 0.0, 1.0):
        return

    def to_pixels(x: str, y: str) -> str:
        px, py = float(x), float(y)
        return f"{a * px + c * py + e:.2f},{b * px + d * py + f:.2f}"

    baked: list[tuple[ET.Element, str, str]] = []
    for child in children:
        if child.tag.endswith("polyline"):
            points = [pair.split(",") for pair in child.get("points", "").split()]
            if any(len(pair) != 2 for pair in points):
                return
            baked.append((child, "points", " ".join(to_pixels(x, y) for x, y in points)))
        else:
            path = child.get("d", "")
            steps = PATH_STEP.findall(path)
            if re.sub(r"[MLZ\s,\d.eE+-]", "", path):  # curves or arcs: not straight lines
                return
            baked.append((child, "d", " ".join(
                f"{op}{to_pixels(x, y) if x else ''}" for op, x, y in steps)))
    for child, key, value in baked:
        child.set(key, value)
        child.attrib.pop("vector-effect", None)
    group.set("transform", "matrix(1,0,0,1,0,0)")
