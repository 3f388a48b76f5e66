"""The card above the form: teacher and student parameter counts and the compression."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from kdstudio.core.models import ModelSize


def _describe(size: ModelSize | None) -> str:
    if size is None:
        return "—"
    shown = f"{size.size_mb:.2f} MB" if size.size_mb >= 0.1 else f"{size.size_mb * 1000:.1f} kB"
    return f"{size.parameters:,} params · {shown}"


def _named_label(name: str) -> QLabel:
    label = QLabel()
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
            grid.addWidget(label, 1, column)
            grid.setColumnStretch(column, 1)

    def show_sizes(self, teacher: ModelSize | None, student: ModelSize | None,
                   uses_teacher: bool) -> None:
        self.teacher_label.setText(_describe(teacher) if uses_teacher else "none")
        self.student_label.setText(_describe(student))
        if uses_teacher and teacher is not None and student is not None:
            ratio = teacher.parameters / max(student.parameters, 1)
            self.compression_label.setText(f"{ratio:.1f}× fewer params")
        else:
            self.compression_label.setText("—")
