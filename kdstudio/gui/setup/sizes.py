"""The card above the form: teacher and student parameter counts and the compression, and
`update_model_sizes`, which sizes the models the form describes (and lists their layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from kdstudio.core.config import config_from_dict
from kdstudio.core.config.fields import uses_teacher
from kdstudio.core.data import DATASETS, dataset_params, get_dataset
from kdstudio.core.models import MODELS, ModelSize, model_size
from kdstudio.gui.setup.data_preview import reads_files
from kdstudio.gui.setup.inputs import LayerInput
from kdstudio.gui.widgets.elided_label import ElidedLabel

if TYPE_CHECKING:
    from kdstudio.gui.setup.panel import SetupPanel


def _describe(size: ModelSize | None) -> str:
    if size is None:
        return "—"
    shown = f"{size.size_mb:.2f} MB" if size.size_mb >= 0.1 else f"{size.size_mb * 1000:.1f} kB"
    return f"{size.parameters:,} params\n{shown}"


def _named_label(name: str) -> ElidedLabel:
    label = ElidedLabel()
    label.setObjectName(name)
    return label


class SizesCard(QFrame):
    """Teacher, student and compression, refreshed with `show_sizes`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sizesCard")
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 8, 4)
        grid.setVerticalSpacing(0)
        self.teacher_label, self.student_label, self.compression_label = (
            _named_label(name) for name in ("teacherSizeLabel", "studentSizeLabel",
                                            "compressionLabel"))
        for column, (title, label, tip) in enumerate((
                ("Teacher", self.teacher_label, "Teacher parameters and size (float32)"),
                ("Student", self.student_label, "Student parameters and size (float32)"),
                ("Compression", self.compression_label,
                 "Teacher parameters / student parameters"))):
            caption = QLabel(f"<b>{title}</b>")
            for widget in (caption, label):
                widget.setToolTip(tip)
            grid.addWidget(caption, 0, column)
            grid.addWidget(label, 1, column, Qt.AlignmentFlag.AlignTop)
        grid.setColumnStretch(3, 1)  # columns as wide as their texts, the room left after them

    def show_sizes(self, teacher: ModelSize | None, student: ModelSize | None,
                   uses_teacher: bool) -> None:
        self.teacher_label.setText(_describe(teacher) if uses_teacher else "none")
        self.student_label.setText(_describe(student))
        if uses_teacher and teacher is not None and student is not None:
            ratio = teacher.parameters / max(student.parameters, 1)
            self.compression_label.setText(f"{ratio:.1f}× fewer params")
        else:
            self.compression_label.setText("—")


def _dataset_info(panel: SetupPanel) -> Any:
    """The form's dataset description (shape, classes), or None while unknown."""
    name = panel.inputs["data.dataset"].get()[0]
    params, problems = panel.data_params.values()
    if name not in DATASETS or problems:
        return None
    config = config_from_dict(panel._read()[0])[0]
    if reads_files(config):  # described by the data check, off the GUI thread
        check = panel.data_checker.request(config)
        return None if check is None else check.info
    try:
        return get_dataset(name).describe(panel.inputs["data.path"].get()[0],
                                          dataset_params(name, params))
    except (ValueError, TypeError, KeyError):
        return None


def _model_size(panel: SetupPanel, role: str, info: Any) -> ModelSize | None:
    """The size of the model the form describes for this dataset (cached in core)."""
    arch = panel.inputs[f"{role}.arch"].get()[0]
    params, problems = panel.editors[f"{role}.params"].values()
    if info is None or problems or arch not in MODELS:
        return None
    try:
        return model_size(arch, params, tuple(info.input_shape), info.num_classes)
    except Exception:  # noqa: BLE001 - any model code may reject odd parameters
        return None


def update_model_sizes(panel: SetupPanel) -> None:
    """Refresh the sizes card and the hint-layer lists from the form's models."""
    info = _dataset_info(panel)
    values = panel._read(blank_hidden=False)[0]
    teacher = _model_size(panel, "teacher", info) if uses_teacher(values) else None
    student = _model_size(panel, "student", info)
    for key, size in (("distill.student_layer", student), ("distill.teacher_layer", teacher)):
        item = panel.inputs[key]
        if size is not None and isinstance(item, LayerInput):
            item.set_layers(list(size.layers))
    panel.sizes.show_sizes(teacher, student, uses_teacher(values))
