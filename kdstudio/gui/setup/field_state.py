"""Which fields the form shows and which apply: rows are shown or hidden, and a field that
does not apply to the current values is disabled with a tooltip that says why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from kdstudio.core.config.fields import OFFICIAL_TEST_TIP, Field, entry_doc, uses_teacher
from kdstudio.core.config.tips import wrap_tip
from kdstudio.core.data import DATASETS
from kdstudio.gui.setup.teacher_source import SOURCE_FILE, SOURCE_RUN, SOURCE_TRAIN

if TYPE_CHECKING:
    from kdstudio.gui.setup.panel import SetupPanel

DATA_PATHS = {"data.path": "data.dataset", "data.transfer_path": "data.transfer_dataset"}
LOADED_TEACHER_TIP = "Not used: the teacher is loaded, not trained here."
SAVED_RUN_TIP = "Set by the saved run whose teacher is reused."


def unused_tip(reason: str, tip: str) -> str:
    """The tooltip of a disabled field: why first, then what the field does."""
    return wrap_tip(reason) + "\n\n" + tip if reason else tip


def official_test_in_files(panel: SetupPanel, values: dict[str, Any]) -> bool:
    """Whether the data check found an official test split in the dataset's files."""
    check = panel.data_checker.result
    if check is None or check.preview is None:
        return False
    dataset, path = json.loads(check.key)[:2]
    data = values.get("data", {})
    return (dataset, path) == (data.get("dataset"), data.get("path")) and bool(
        check.preview.test_is_official)


def path_dataset(inputs: dict[str, Any], key: str) -> Any:
    """The dataset class whose path the field `key` holds (None for other fields)."""
    owner = DATA_PATHS.get(key)
    name = inputs[owner].get()[0] if owner else None
    return DATASETS.get(name) if name in DATASETS else None


def show_path_kind(panel: SetupPanel) -> None:
    """A data path field says "File" (with the file types) or "Folder" for its dataset."""
    for key in DATA_PATHS:
        dataset, item = path_dataset(panel.inputs, key), panel.inputs[key]
        label = _caption(panel._forms[item.field.group], item.row)
        is_file = dataset is not None and dataset.path_kind == "file"
        if label is not None:
            label.setText(item.field.label.replace("folder", "file").replace(
                "Folder", "File") if is_file else item.field.label)
        types = dataset.path_filter.split(";;")[0] if is_file else ""
        item.widget.setPlaceholderText(f"the data file: {types}" if is_file
                                       else item.field.placeholder)


def _caption(form: QFormLayout, row: QWidget) -> QLabel | None:
    label = form.labelForField(row)
    return label if isinstance(label, QLabel) else None


def _show_applies(panel: SetupPanel, form: QFormLayout, item: Any, reason: str) -> None:
    """Enable the field, or disable it with `reason` at the top of its tooltips."""
    field: Field = item.field
    item.widget.setEnabled(not reason)
    tip = unused_tip(reason, field.tip)
    item.widget.setToolTip(tip)
    panel.marks.set_base_tip(item.widget, tip)
    caption = _caption(form, item.row)
    if caption is not None:
        caption.setToolTip(tip)


def refresh_field_state(panel: SetupPanel) -> None:
    """Show, hide, enable and disable the fields as the table says for the form's values."""
    values = panel._read(blank_hidden=False)[0]
    source = panel.teacher_source.source()
    for key, item in panel.inputs.items():
        field = item.field
        form = panel._forms[field.group]
        form.setRowVisible(item.row, field.is_shown(values))
        reason = field.disabled_reason(values)
        if key == "data.test_fraction" and not reason and official_test_in_files(panel, values):
            reason = OFFICIAL_TEST_TIP
        elif key in ("teacher.epochs", "teacher.lr") and source != SOURCE_TRAIN:
            reason = LOADED_TEACHER_TIP
        elif key == "teacher.arch" and source == SOURCE_RUN:
            reason = SAVED_RUN_TIP
        _show_applies(panel, form, item, reason)
    for editor in panel.editors.values():
        editor.set_visible(editor.field.is_shown(values))
    path_shown = panel.inputs["data.path"].field.is_shown(values)
    panel._forms["data"].setRowVisible(panel.data_preview, path_shown)
    if not path_shown:
        panel.data_checker.cancel()
    show_path_kind(panel)
    teacher = uses_teacher(values)
    form = panel._forms["teacher"]
    form.setRowVisible(panel.inputs["teacher.checkpoint"].row, source == SOURCE_FILE)
    form.setRowVisible(panel.teacher_source.run_row, source == SOURCE_RUN)
    panel.teacher_params.set_read_only(source == SOURCE_RUN)
    panel.teacher_group.setEnabled(teacher)
    panel.teacher_note.setVisible(not teacher)
    method = panel._method()
    panel.method_doc.setText(entry_doc(method) if method else "unknown method")
