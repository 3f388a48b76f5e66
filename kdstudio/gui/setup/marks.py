"""Inline marks: a problem line (`key.path: message`) marks the widgets of its key, with the
message added to their tooltip; the stylesheet colours `[invalid="true"]`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget
from shiboken6 import isValid


class Marks(QObject):
    """Which widgets show which key path, and which are marked now."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[str, list[QWidget]] = {}
        self._base_tips: dict[QWidget, str] = {}
        self._marked: list[QWidget] = []

    def link(self, key: str, widget: QWidget) -> None:
        self.fields.setdefault(key, []).append(widget)
        self._base_tips[widget] = widget.toolTip()

    def set_base_tip(self, widget: QWidget, tip: str) -> None:
        self._base_tips[widget] = tip

    def widgets_for(self, problem: str, editors: dict[str, tuple[Any, QWidget]]
                    ) -> list[QWidget]:
        """The widgets a problem line is about; `editors` maps a params key to its editor
        and the widget that picks the registry entry."""
        key, _, message = problem.partition(":")
        key, message = key.strip(), message.strip()
        for prefix, (editor, owner) in editors.items():
            if key == prefix:  # the model or dataset refused a value: find the name
                named = [w for n, w in editor.widgets.items() if message.startswith(f"{n} ")]
                return named or [owner]
            if key.startswith(prefix + "."):
                widget = editor.widgets.get(key[len(prefix) + 1:].split(".")[0])
                return [widget] if widget is not None else [owner]
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            widgets = self.fields.get(".".join(parts[:depth]))
            if widgets:
                return widgets
        return []

    def mark(self, problems: list[str], editors: dict[str, tuple[Any, QWidget]]) -> None:
        for widget in [w for w in self._marked if isValid(w)]:  # params rows come and go
            widget.setProperty("invalid", False)
            widget.setToolTip(self._base_tips.get(widget, ""))
            _repolish(widget)
        self._marked = []
        notes: dict[QWidget, list[str]] = {}
        for problem in problems:
            for widget in self.widgets_for(problem, editors):
                notes.setdefault(widget, []).append(problem)
        for widget, lines in notes.items():
            base = self._base_tips.setdefault(widget, widget.toolTip())
            widget.setProperty("invalid", True)
            widget.setToolTip(base + "\n\n⚠ " + "\n⚠ ".join(lines))
            _repolish(widget)
            self._marked.append(widget)

    def marked(self) -> list[QWidget]:
        return list(self._marked)


def _repolish(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)
