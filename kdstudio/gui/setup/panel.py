"""The setup form: a view of the run config, built from the field table.

Every field (`kdstudio.core.config.fields.FIELDS`, plus the registry parameters through
`param_fields`) gets its widget, its tooltip and its place from the table; one loop loads a
config into the widgets, one loop reads them back, and validation problems are marked on
the widgets by key path. `set_config` returns every value the form could not hold exactly.
The config is checked with `kdstudio.core.config.validate` (the same check as the CLI's) as
you type; `validated` tells the window whether Start may be pressed.

This module imports the core registries, hence torch: build it after the window is shown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config import RunConfig, config_from_dict, validate
from kdstudio.core.config.fields import (
    FIELDS,
    GROUPS,
    Field,
    config_differences,
    param_fields,
    uses_teacher,
)
from kdstudio.core.config.rules import value_at
from kdstudio.core.distill.methods import METHODS, WEIGHT_KEYS
from kdstudio.gui.setup.composites import ParamEditor, ScheduleInput
from kdstudio.gui.setup.data_preview import (
    PENDING,
    DataCheck,
    DataChecker,
    DataPreview,
    reads_files,
)
from kdstudio.gui.setup.field_state import DATA_PATHS, path_dataset, refresh_field_state
from kdstudio.gui.setup.inputs import Input, form_scroll, make_input, read_inputs
from kdstudio.gui.setup.marks import Marks, invalid_spin_style
from kdstudio.gui.setup.more_options import MoreOptions
from kdstudio.gui.setup.sizes import SizesCard, update_model_sizes
from kdstudio.gui.setup.teacher_source import (
    SOURCE_FILE,
    SOURCE_RUN,
    SOURCE_TRAIN,
    TeacherSource,
)
from kdstudio.gui.setup.viewing import ViewingBanner
from kdstudio.gui.setup.wording import DETACHING_KEYS, follow_preset_name, readable
from kdstudio.gui.widgets.file_dialogs import existing_folder, open_file_name

VALIDATE_DELAY_MS = 150
__all__ = ["SOURCE_FILE", "SOURCE_RUN", "SOURCE_TRAIN", "SetupPanel"]


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


class SetupPanel(QWidget):
    """The configuration form. `config_dict()` reads it, `set_config()` fills it."""

    changed = Signal()
    validated = Signal(object)  # list[str]: every problem; empty when the run can start
    viewing_ended = Signal()  # the user pressed Edit on a run opened from the History
    rerun_requested = Signal()  # Re-run on a run opened from the History

    def __init__(self, store_provider: Callable[[], Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setupPanel")
        self.setStyleSheet(invalid_spin_style())  # colours: widgets/style.py
        self.problems: list[str] = []
        self.load_problems: list[str] = []  # values the last loaded config had, not held
        self._loaded: dict[str, Any] = {}
        self._loading = False
        self._applying = False  # a method's suggested values are being set
        self.edited: set[str] = set()  # keys the user changed since the config was loaded
        self._checked: tuple[str, RunConfig, list[str]] | None = None  # last validation
        self.inputs: dict[str, Input] = {}
        self.editors: dict[str, ParamEditor] = {}
        self.marks = Marks(self, self.readable)
        self._store_provider = store_provider
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate_now)
        self.data_checker = DataChecker(self)  # the data check and preview, off-thread
        self.viewing_run: dict[str, Any] | None = None  # the saved run the form shows

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.banner = ViewingBanner()
        self.banner.edit_clicked.connect(self.stop_viewing)
        self.banner.rerun_clicked.connect(self.rerun_requested)
        outer.addWidget(self.banner)
        self.sizes = SizesCard()
        outer.addWidget(self.sizes)
        scroll, column = form_scroll("setupScroll", QWidget())
        self._forms: dict[str, QFormLayout] = {}
        self.more = MoreOptions()
        for group, title in GROUPS.items():
            box = self.more if group == "more" else QGroupBox(title)
            self._forms[group] = self.more.form if group == "more" else self._form(box)
            column.addWidget(box)
            if group == "teacher":
                self.teacher_group = box
        column.addStretch(1)
        outer.addWidget(scroll, 1)
        self.scroll = scroll
        for field in FIELDS:
            self._add(field)
        self.data_checker.waiting.connect(self.data_preview.show_busy)
        self.data_checker.checked.connect(self._on_data_checked)
        self.teacher_source.model_found.connect(self._set_teacher_model)
        self.teacher_source.changed.connect(self._on_input_changed)
        self._fill(RunConfig().to_dict())
        for editor in self.editors.values():
            editor.given = None  # a fresh form writes every parameter
        self.changed.connect(self.schedule_validation)

    # ------------------------------------------------------------ building

    @staticmethod
    def _form(group: QGroupBox) -> QFormLayout:
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return form

    def _add(self, field: Field) -> None:
        """One row of the table into its box's form."""
        form = self._forms[field.group]
        if field.heading:
            form.addRow(QLabel(f"<i>{field.heading}</i>"))
        if field.kind == "params":
            anchor = form.itemAt(form.rowCount() - 1, QFormLayout.ItemRole.FieldRole)
            editor = ParamEditor(field, form, anchor.widget())
            editor.changed.connect(self._on_input_changed)
            self.editors[field.key] = editor
            if field.key == "data.params":  # below the path and the dataset's parameters
                self.data_preview = DataPreview()
                form.addRow(self.data_preview)
            return
        item = (ScheduleInput(field) if field.kind == "schedule"
                else make_input(field, self._browse))
        if field.key == "teacher.checkpoint":
            self._add_teacher_source(form, item)
        item.changed.connect(lambda key=field.key: self._on_input_changed(key))
        self.inputs[field.key] = item
        widgets = item.marked() if isinstance(item, ScheduleInput) else [item.widget]
        for widget in widgets:
            self.marks.link(field.key, widget)
        if field.kind == "bool":
            form.addRow(item.row)
        else:
            caption = QLabel(field.label)
            caption.setToolTip(field.tip)
            caption.setBuddy(item.widget)
            form.addRow(caption, item.row)
        if field.key == "teacher.checkpoint":
            form.addRow("Saved run", self.teacher_source.run_row)
            self.marks.link("teacher.checkpoint", self.teacher_source.run_combo)
        elif field.key == "distill.method":
            self.marks.link("distill.params", item.widget)
            self.method_doc = QLabel()
            self.method_doc.setObjectName("methodFormula")
            self.method_doc.setWordWrap(True)
            form.addRow(self.method_doc)
        elif field.key.startswith("distill.") and field.key.endswith("_weight"):
            self.marks.link("distill", item.widget)  # "all loss weights are zero"

    def _add_teacher_source(self, form: QFormLayout, checkpoint: Any) -> None:
        """The note for methods without a teacher and the source row, above the checkpoint."""
        self.teacher_note = QLabel("This method trains the student on the labels alone: no "
                                   "teacher is used.")
        self.teacher_note.setWordWrap(True)
        self.teacher_note.setObjectName("teacherNote")
        form.addRow(self.teacher_note)
        self.teacher_source = TeacherSource(checkpoint, self._store_provider, self)
        caption = QLabel("Source")
        caption.setToolTip(self.teacher_source.combo.toolTip())
        form.addRow(caption, self.teacher_source.combo)

    def _browse(self, field: Field, edit: QLineEdit) -> None:
        dataset = self._path_dataset(field.key)
        if field.kind == "file":
            path = open_file_name(self, "Teacher weights", edit.text(),
                                  "Teacher files (*.safetensors *.pt *.pth *.onnx *.pt2 *.ts);;"
                                  "All files (*)")
        elif dataset is not None and dataset.path_kind == "file":
            path = open_file_name(self, f"{self.inputs[DATA_PATHS[field.key]].get()[0]} file",
                                  edit.text(), dataset.path_filter)
        else:
            path = existing_folder(self, field.label, edit.text())
        if path:
            edit.setText(path)
            if field.key == "teacher.checkpoint":
                self.teacher_source.adopt_sidecar()

    def _path_dataset(self, key: str) -> Any:
        """The dataset class whose path the field `key` holds (None for other fields)."""
        return path_dataset(self.inputs, key)

    def _on_data_checked(self, check: DataCheck) -> None:
        self.data_preview.show_check(check)
        self.validate_now()

    # ------------------------------------------------------------ compatibility names

    @property
    def data_params(self) -> ParamEditor:
        return self.editors["data.params"]

    @property
    def teacher_params(self) -> ParamEditor:
        return self.editors["teacher.params"]

    @property
    def student_params(self) -> ParamEditor:
        return self.editors["student.params"]

    @property
    def source_combo(self) -> Any:
        return self.teacher_source.combo

    @property
    def method_combo(self) -> Any:
        return self.inputs["distill.method"].widget

    @property
    def weight_spins(self) -> dict[str, QWidget]:
        return {part: self.inputs[f"distill.{key}"].widget for part, key in WEIGHT_KEYS.items()}

    def refresh_saved_runs(self) -> None:
        self.teacher_source.refresh_saved_runs()

    def history_changed(self) -> None:
        """A run was added or removed: the saved-run list is listed again when used."""
        self.teacher_source.history_changed()

    def select_saved_run(self, run_id: int) -> None:
        """Reuse the teacher of this saved run (switches the source)."""
        self.teacher_source.select_saved_run(run_id)

    # ------------------------------------------------------------ reactions

    def _on_input_changed(self, key: str = "") -> None:
        if self._loading:
            return
        if key and not self._applying:
            self.edited.add(key)
        owners = {editor.field.owner: name for name, editor in self.editors.items()}
        if key in owners:
            self._rebuild_params(owners[key])
        if key == "distill.method":
            self._apply_suggested()
        if key in DETACHING_KEYS:
            follow_preset_name(self.inputs, self._loaded)
        self._refresh_state()
        self.changed.emit()

    def _rebuild_params(self, params_key: str) -> None:
        editor = self.editors[params_key]
        owner = self.inputs[editor.field.owner].get()[0]
        editor.set_schema(param_fields(params_key, owner))

    def _apply_suggested(self) -> None:
        """Values a method recommends (e.g. its loss weights), applied when it is picked,
        except to the fields the user edited: those keep the user's value."""
        method = self._method()
        self._applying = True
        try:
            for key, value in (getattr(method, "suggested", {}) if method else {}).items():
                item = self.inputs.get(f"distill.{key}")
                if (item is not None and isinstance(value, (int, float))
                        and f"distill.{key}" not in self.edited):
                    item.set(float(value))
        finally:
            self._applying = False

    def _method(self) -> Any:
        name = self.inputs["distill.method"].get()[0]
        return METHODS.get(name) if name in METHODS else None

    def _refresh_state(self) -> None:
        refresh_field_state(self)

    def _set_teacher_model(self, arch: str, params: dict[str, Any]) -> None:
        loading, self._loading = self._loading, True
        self.inputs["teacher.arch"].set(arch)
        self._rebuild_params("teacher.params")
        self.teacher_params.set_values(params)
        self._loading = loading
        self._on_input_changed()

    # ------------------------------------------------------------ reading and filling

    def _read(self, blank_hidden: bool = True) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        flat, problems = read_inputs(self.inputs)
        for key, value in flat.items():
            _set_path(values, key, value)
        _set_path(values, "teacher.checkpoint", self.teacher_source.value())
        values.setdefault("distill", {}).setdefault("schedules", {})
        for key, editor in self.editors.items():
            params, found = editor.values()
            problems += found
            _set_path(values, key, params)
        if blank_hidden:
            for field in [*(i.field for i in self.inputs.values()),
                          *(e.field for e in self.editors.values())]:
                if field.blank_when_hidden and not field.is_shown(values):
                    blank = {} if field.kind == "params" else ""
                    _set_path(values, field.key, blank)
                    problems = [p for p in problems if not p.startswith(field.key + ".")]
        return values, problems

    def config_dict(self) -> tuple[dict[str, Any], list[str]]:
        """The form as a config dict, and problems met while reading fields."""
        values, problems = self._read()
        return values, problems + self.teacher_source.problems(uses_teacher(values))

    def run_config(self) -> tuple[RunConfig, list[str]]:
        """The RunConfig of the form and every problem with it (empty: ready to run)."""
        data, problems = self.config_dict()
        config, checks = config_from_dict(data)
        found: tuple[list[str], Any] | None = None  # None: validate checks the data itself
        if reads_files(config):  # the check reads files: it comes from the checker's thread
            known = self.data_checker.request(config)
            found = ([PENDING], None) if known is None else (known.problems, known.info)
        key = json.dumps([data, found == ([PENDING], None), self.data_checker.generation],
                         sort_keys=True, default=str)
        if self._checked is not None and self._checked[0] == key:
            # unchanged since the last check (Start right after the live validation)
            return self._checked[1].copy(), problems + self._checked[2]
        # a custom model's file is not imported here; Start asks before the run imports it
        checks += validate(config, store=self.teacher_source, data=found, asks_consent=True)
        self._checked = (key, config.copy(), checks)
        return config, problems + checks

    def set_config(self, data: dict[str, Any] | RunConfig) -> list[str]:
        """Fill the form from a config (a dict as in TOML). Returns the problems of its types
        and every value the form could not hold exactly, by key path; those are marked."""
        self.stop_viewing()
        if isinstance(data, RunConfig):
            config, problems = data.copy(), []
        else:
            config, problems = config_from_dict(data)
        wanted = config.to_dict()
        self._fill(wanted)
        if self._more_differs(wanted):
            self.more.button.setChecked(True)  # show what the config sets there
        self._update_models()
        held = self._read()[0]
        self.load_problems = config_differences(wanted, held)
        self._loaded = held
        self.edited = set()
        self.validate_now()
        return problems + self.load_problems

    def show_run(self, run: dict[str, Any]) -> list[str]:
        """Show a saved run (a `Store.get_run` row): its config, read-only until Edit, and
        its sizes. Returns what `set_config` returns."""
        problems = self.set_config(run.get("config") or {})
        self.viewing_run = dict(run)
        self.banner.show_run(run)
        self.scroll.widget().setEnabled(False)
        return problems

    def stop_viewing(self) -> None:
        """The form is the user's again (Edit, Re-run, or another config loaded)."""
        if self.viewing_run is None:
            return
        self.viewing_run = None
        self.banner.hide()
        self.scroll.widget().setEnabled(True)
        self.viewing_ended.emit()

    def _fill(self, wanted: dict[str, Any]) -> None:
        """Every field from a config dict, in the table's order (owners before params)."""
        self._loading = True
        try:
            for field in FIELDS:
                if field.kind == "params":
                    self._rebuild_params(field.key)
                    self.editors[field.key].set_values(value_at(wanted, field.key))
                else:
                    self.inputs[field.key].set(value_at(wanted, field.key))
            self.teacher_source.set_source(SOURCE_FILE if wanted["teacher"]["checkpoint"]
                                           else SOURCE_TRAIN)
        finally:
            self._loading = False
        self._refresh_state()

    @staticmethod
    def _more_differs(wanted: dict[str, Any]) -> bool:
        """Whether a config sets one of the folded fields away from its default."""
        default = RunConfig().to_dict()
        return any(value_at(wanted, f.key) != value_at(default, f.key)
                   for f in FIELDS if f.group == "more" and f.kind != "schedule") or bool(
            wanted["distill"]["schedules"])

    # ------------------------------------------------------------ validation

    def schedule_validation(self) -> None:
        self._timer.start()

    def validate_now(self) -> list[str]:
        """Refresh sizes and layer lists, check the whole config, mark the fields."""
        self._timer.stop()
        self._update_models()
        _config, problems = self.run_config()
        self.problems = problems
        held, _ = self._read()
        kept = [p for p in self.load_problems  # until the field is edited
                if _lookup(held, _key(p)) == _lookup(self._loaded, _key(p))]
        self.load_problems = kept
        self.marks.mark([p for p in problems if not self.waiting(p)] + kept,
                        self._editor_owners())
        self.validated.emit(problems)
        return problems

    def _editor_owners(self) -> dict[str, tuple[ParamEditor, QWidget]]:
        return {key: (editor, self.inputs[editor.field.owner].widget)
                for key, editor in self.editors.items()}

    def _update_models(self) -> None:
        update_model_sizes(self)

    def readable(self, problem: str) -> str:
        """A problem named by the form's label ("Teacher hint layer: ...")."""
        shown = {}  # the data paths' labels say "File" or "Folder" for their dataset
        for key in DATA_PATHS:
            item = self.inputs[key]
            label = self._forms[item.field.group].labelForField(item.row)
            if isinstance(label, QLabel):
                shown[key] = label.text()
        return readable(problem, shown)

    @staticmethod
    def waiting(problem: str) -> bool:
        """Whether a problem only says that the data files are still being checked."""
        return problem == PENDING

    def marked_widgets(self) -> list[QWidget]:
        """Widgets currently marked invalid (for the window and tests)."""
        return self.marks.marked()

    def sizeHint(self):  # noqa: N802 - Qt override
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), 400))
        return hint


def _key(problem: str) -> str:
    return problem.split(":", 1)[0].strip()


def _lookup(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
