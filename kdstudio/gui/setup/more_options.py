"""The setup form's "More options" box: a Show/Hide button over a form of the less common
fields (schedules, label budget and transfer set, speed). Its rows come from the field table
like every other box's; it unfolds when a loaded config sets one of them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QToolButton, QVBoxLayout, QWidget


class MoreOptions(QGroupBox):
    """Less common settings, folded by default; `form` takes their rows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("More options", parent)
        outer = QVBoxLayout(self)
        self.button = QToolButton()
        self.button.setObjectName("moreOptionsButton")
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setToolTip("Show or hide the less common settings")
        self.button.toggled.connect(self._toggle)
        self.box = QWidget()
        outer.addWidget(self.button)
        outer.addWidget(self.box)
        self.form = QFormLayout(self.box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._toggle(False)

    def _toggle(self, shown: bool) -> None:
        self.box.setVisible(shown)
        self.button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.button.setText("Hide" if shown else "Show")
