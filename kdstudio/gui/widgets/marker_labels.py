"""The labels of a chart's vertical markers (where each phase starts) placed so that they
never overlap: a label that would run into another moves a row down; one with no row left
is hidden, its name still in the marker's tooltip."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QPointF

GAP_PX = 6  # the least room between two labels of one row
TOP_PX = 3  # from the top of the plot to the first row
ROW_GAP_PX = 2  # between two rows
MAX_ROWS = 3


def label_rows(spans: Sequence[tuple[float, float]], gap: float = GAP_PX) -> list[int]:
    """A row (0 = top) for each label, given as its (left, right) in pixels, so that no two
    labels of a row are closer than `gap`: each takes the first row where it fits."""
    ends: list[float] = []  # the right end of the last label put in each row
    rows = [0] * len(spans)
    for index in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        left, right = spans[index]
        for row, end in enumerate(ends):
            if left >= end + gap:
                ends[row] = right
                rows[index] = row
                break
        else:
            ends.append(right)
            rows[index] = len(ends) - 1
    return rows


def arrange_marker_labels(view: pg.ViewBox, lines: Sequence[pg.InfiniteLine]) -> None:
    """Place the labels of the visible `lines` in `view`: right of their line (left of it
    near the plot's right edge), stacked in rows where they would overlap, hidden where
    rows run out (the first row always shows; at most MAX_ROWS, in the top half of the
    plot)."""
    labelled = [line for line in lines
                if line.isVisible() and getattr(line, "label", None) is not None]
    area = view.sceneBoundingRect()
    if not labelled or area.width() <= 0 or area.height() <= 0:
        return
    spans, flips = [], []
    for line in labelled:
        x = view.mapViewToScene(QPointF(line.value(), 0.0)).x()
        width = line.label.textItem.boundingRect().width()
        flip = x + width > area.right() and x - width >= area.left()
        left = x - width if flip else x
        spans.append((left, left + width))
        flips.append(flip)
    row_px = max(line.label.textItem.boundingRect().height() for line in labelled) + ROW_GAP_PX
    rows = label_rows(spans)
    for line, row, flip in zip(labelled, rows, flips, strict=True):
        label = line.label
        fits = row == 0 or (row < MAX_ROWS
                            and TOP_PX + (row + 1) * row_px <= area.height() / 2)
        anchor = (1, 0) if flip else (0, 0)
        label.anchors = [anchor, anchor]  # InfLineLabel picks one of these when it moves
        label.orthoPos = 1.0 - (TOP_PX + row * row_px) / area.height()
        if label.isVisible() != fits:
            label.setVisible(fits)
        if fits:
            label.updatePosition()
