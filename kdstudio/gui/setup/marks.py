"""Inline marks: a problem line (`key.path: message`) marks the widgets of its key, with the
message in the form's words added to their tooltip; the stylesheet colours
`[invalid="true"]`, and `INVALID_SPIN_STYLE` keeps a marked spin box's arrows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget
from shiboken6 import isValid

from kdstudio.core.config.tips import wrap_tip
from kdstudio.core.paths import cache_dir
from kdstudio.gui.setup.wording import readable

ARROW_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="5" viewBox="0 0 8 5">'
             '<path d="{path}" fill="#78909c"/></svg>')
ARROWS = {"up": "M0 5 L4 0 L8 5 Z", "down": "M0 0 L4 5 L8 0 Z"}
# a border on a spin box makes Qt draw its buttons from the style sheet: give them arrows
INVALID_SPIN_STYLE = """
QSpinBox[invalid="true"] {{ padding-right: 16px; }}
QSpinBox[invalid="true"]::up-button {{ subcontrol-origin: border;
    subcontrol-position: top right; width: 16px;
    border-left: 1px solid #e0b4b4; border-bottom: 1px solid #e0b4b4; }}
QSpinBox[invalid="true"]::down-button {{ subcontrol-origin: border;
    subcontrol-position: bottom right; width: 16px; border-left: 1px solid #e0b4b4; }}
QSpinBox[invalid="true"]::up-arrow {{ image: url({up}); width: 8px; height: 5px; }}
QSpinBox[invalid="true"]::down-arrow {{ image: url({down}); width: 8px; height: 5px; }}
"""


def invalid_spin_style() -> str:
    """The spin-box part of the invalid style, its arrow images written once to the cache
    (a style sheet takes images from files only)."""
    paths = {}
    for name, path in ARROWS.items():
        target = cache_dir() / "style" / f"arrow-{name}.svg"
        text = ARROW_SVG.format(path=path)
        try:
            if not target.is_file() or target.read_text() != text:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        except OSError:
            return ""  # no cache folder: the window's style, without arrows while marked
        paths[name] = Path(target).as_posix()
    return INVALID_SPIN_STYLE.format(**paths)


class Marks(QObject):
    """Which widgets show which key path, and which are marked now."""

    def __init__(self, parent: QObject | None = None,
                 namer: Callable[[str], str] = readable) -> None:
        super().__init__(parent)
        self.namer = namer  # a problem line in the form's words
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
            widget.setToolTip(base + "\n\n" + "\n".join(
                wrap_tip("⚠ " + self.namer(line)) for line in lines))
            _repolish(widget)
            self._marked.append(widget)

    def marked(self) -> list[QWidget]:
        return list(self._marked)


def _repolish(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)
