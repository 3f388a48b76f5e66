"""A delegate that shows a cell's whole text as its tooltip when the column cuts it short
(and the cell has no tooltip of its own), so no value is ever hidden."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, Qt
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem, QToolTip

TEXT_MARGIN = 8  # the style's padding on both sides of a cell's text


def is_cut(option: QStyleOptionViewItem, index: QModelIndex, text: str) -> bool:
    """Is `text` wider than the room its cell leaves for it?"""
    room = option.rect.width() - TEXT_MARGIN
    if index.data(Qt.ItemDataRole.DecorationRole) is not None:
        room -= option.decorationSize.width() + 4
    return option.fontMetrics.horizontalAdvance(text) > room


class ElidedTipDelegate(QStyledItemDelegate):
    """Tooltips for cut cells."""

    def helpEvent(self, event: Any, view: Any, option: QStyleOptionViewItem,  # noqa: N802
                  index: QModelIndex) -> bool:
        if event.type() == QEvent.Type.ToolTip and index.isValid():
            own = index.data(Qt.ItemDataRole.ToolTipRole)
            text = index.data(Qt.ItemDataRole.DisplayRole)
            if not own and isinstance(text, str) and text:
                opt = QStyleOptionViewItem(option)
                self.initStyleOption(opt, index)
                if is_cut(opt, index, text):
                    QToolTip.showText(event.globalPos(), text, view)
                    return True
                QToolTip.hideText()
                return True
        return super().helpEvent(event, view, option, index)
