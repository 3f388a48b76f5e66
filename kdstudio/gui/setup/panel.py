"""The setup form: data, teacher, student, method and loss weights, optimiser, device.

Every list and every parameter widget comes from the registries (datasets, models, methods),
so adding one needs no GUI code. The form edits the same config that `kdstudio run` reads;
it is checked with `kdstudio.core.config.validate` as you type, problems are marked on their
fields, and `validated` tells the window whether Start may be pressed.

This module imports the core registries, hence torch: build it after the window is shown.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config import (
    OPTIMIZERS,
    SCHEDULES,
    RunConfig,
    config_from_dict,
    validate,
)
from kdstudio.core.data import DATASETS, dataset_params, get_dataset, list_datasets
from kdstudio.core.devices import available_devices
from kdstudio.core.distill.methods import METHODS, WEIGHT_KEYS, list_methods
from kdstudio.core.models import (
    MODELS,
    count_parameters,
    create_model,
    list_models,
    model_defaults,
    model_size_mb,
)
from kdstudio.gui.setup.form_text import TIPS
from kdstudio.gui.setup.form_widgets import (
    FLOAT_LIMIT,
    INT_LIMIT,
    ParamEditor,
    label_for,
    make_double,
    make_spin,
    no_wheel,
    set_combo_value,
)
from kdstudio.gui.setup.more_options import MoreOptions
from kdstudio.gui.widgets.file_dialogs import existing_folder, open_file_name

VALIDATE_DELAY_MS = 150
SOURCE_TRAIN, SOURCE_FILE, SOURCE_RUN = "train", "file", "run"

def _doc(entry: Any) -> str:
    return " ".join((entry.__doc__ or "").replace("`", "").split())


def _overlay(base: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    """`base` with the form's values on top, one level deep per section: keys the form does
    not show (added to the config later, or set in a TOML file) survive a round trip."""
    merged = copy.deepcopy(base)
    for key, value in form.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(copy.deepcopy(value))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class SetupPanel(QWidget):
    """The configuration form. `config_dict()` reads it, `set_config()` fills it."""

    changed = Signal()
    validated = Signal(object)  # list[str]: every problem; empty when the run can start

    def __init__(self, store_provider: Callable[[], Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setupPanel")
        self.store_provider = store_provider
        self.problems: list[str] = []
        self._loading = False
        self._fields: dict[str, list[QWidget]] = {}
        self._base_tips: dict[QWidget, str] = {}
        self._marked: list[QWidget] = []
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._checkpoint_fit: dict[tuple, str | None] = {}
        self._reuse_runs: dict[int, dict[str, Any]] = {}
        # config values the form has no field for (kept from the last loaded config)
        self._base: dict[str, Any] = RunConfig().to_dict()
        self._timer = QTimer(self)
        self._checked: tuple[str, RunConfig, list[str]] | None = None  # last validation
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate_now)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._build_sizes())
        scroll = QScrollArea()
        scroll.setObjectName("setupScroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 4, 16, 4)
        for group in (self._build_run(), self._build_data(), self._build_teacher(),
                      self._build_student(), self._build_method(), self._build_optim(),
                      self._build_more()):
            column.addWidget(group)
        column.addStretch(1)
        scroll.setWidget(body)
        outer.addWidget(scroll, 1)

        self._on_dataset_changed()
        self._on_teacher_arch_changed()
        self._on_student_arch_changed()
        self._on_method_changed()
        self._on_source_changed()
        self._on_optimizer_changed()
        self.changed.connect(self.schedule_validation)

    # ------------------------------------------------------------ building

    def _field(self, form: QFormLayout, key: str, label: str, widget: QWidget,
               name: str | None = None) -> QWidget:
        """Add a labelled row; the key path links validation problems to the widget."""
        tip = TIPS.get(key, "")
        widget.setToolTip(tip)
        if name:
            widget.setObjectName(name)
        caption = QLabel(label)
        caption.setToolTip(tip)
        caption.setBuddy(widget)
        form.addRow(caption, widget)
        self._link(key, widget)
        return widget

    def _link(self, key: str, widget: QWidget) -> None:
        self._fields.setdefault(key, []).append(widget)
        self._base_tips[widget] = widget.toolTip()

    @staticmethod
    def _form(group: QGroupBox) -> QFormLayout:
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return form

    def _emit_changed(self, *_args: Any) -> None:
        if not self._loading:
            self.changed.emit()

    def _build_sizes(self) -> QWidget:
        frame = QFrame()
        frame.setObjectName("sizesCard")
        grid = QGridLayout(frame)
        grid.setContentsMargins(8, 4, 8, 4)
        grid.setVerticalSpacing(0)
        self.teacher_size_label = QLabel()
        self.teacher_size_label.setObjectName("teacherSizeLabel")
        self.student_size_label = QLabel()
        self.student_size_label.setObjectName("studentSizeLabel")
        self.compression_label = QLabel()
        self.compression_label.setObjectName("compressionLabel")
        for column, (title, label, tip) in enumerate((
                ("Teacher", self.teacher_size_label, "Teacher parameters and size (float32)"),
                ("Student", self.student_size_label, "Student parameters and size (float32)"),
                ("Compression", self.compression_label,
                 "Teacher parameters / student parameters"))):
            caption = QLabel(f"<b>{title}</b>")
            for widget in (caption, label):
                widget.setToolTip(tip)
            grid.addWidget(caption, 0, column)
            grid.addWidget(label, 1, column)
            grid.setColumnStretch(column, 1)
        return frame

    def _build_run(self) -> QGroupBox:
        group = QGroupBox("Run")
        form = self._form(group)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("made from dataset, models and method")
        self.name_edit.textChanged.connect(self._emit_changed)
        self._field(form, "name", "Name", self.name_edit, "runNameEdit")
        self.seed_spin = make_spin(0, 2**31 - 1, 0)
        self.seed_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "seed", "Seed", self.seed_spin, "seedSpin")
        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto (best available)", "auto")
        for name, label in available_devices():
            self.device_combo.addItem(label, name)
        self.device_combo.currentIndexChanged.connect(self._emit_changed)
        self._field(form, "device", "Device", self.device_combo, "deviceCombo")
        return group

    def _build_data(self) -> QGroupBox:
        group = QGroupBox("Data")
        form = self._form(group)
        self.dataset_combo = QComboBox()
        for name in list_datasets():
            entry = DATASETS.get(name)
            self.dataset_combo.addItem(name, name)
            self.dataset_combo.setItemData(self.dataset_combo.count() - 1,
                                           entry.description or _doc(entry),
                                           Qt.ItemDataRole.ToolTipRole)
        self.dataset_combo.currentIndexChanged.connect(self._on_dataset_changed)
        self._field(form, "data.dataset", "Dataset", self.dataset_combo, "datasetCombo")

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("folder with the data files")
        self.path_edit.textChanged.connect(self._emit_changed)
        browse = QPushButton("Browse…")
        browse.setToolTip("Pick the folder that holds the dataset's files")
        browse.clicked.connect(self._browse_data)
        self.path_row = QWidget()
        row = QHBoxLayout(self.path_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.path_edit.setToolTip(TIPS["data.path"])
        self.path_edit.setObjectName("dataPathEdit")
        form.addRow("Folder", self.path_row)
        self._link("data.path", self.path_edit)
        self._data_form = form

        self.data_params = ParamEditor("data.params", form, self.dataset_combo)
        self.data_params.changed.connect(self._on_data_params_changed)

        self.batch_spin = make_spin(0, 1_000_000, 64)
        self.batch_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "data.batch_size", "Batch size", self.batch_spin, "batchSizeSpin")
        self.val_spin = make_double(0.0, 1.0, 0.1, 3, 0.05)
        self.val_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "data.val_fraction", "Validation fraction", self.val_spin,
                    "valFractionSpin")
        self.test_spin = make_double(0.0, 1.0, 0.2, 3, 0.05)
        self.test_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "data.test_fraction", "Test fraction", self.test_spin,
                    "testFractionSpin")
        return group

    def _build_teacher(self) -> QGroupBox:
        self.teacher_group = QGroupBox("Teacher")
        form = self._form(self.teacher_group)
        self._teacher_form = form
        self.teacher_note = QLabel()
        self.teacher_note.setWordWrap(True)
        self.teacher_note.setObjectName("teacherNote")
        form.addRow(self.teacher_note)

        self.source_combo = QComboBox()
        self.source_combo.addItem("Train it here", SOURCE_TRAIN)
        self.source_combo.addItem("Load a checkpoint file", SOURCE_FILE)
        self.source_combo.addItem("Reuse the teacher of a saved run", SOURCE_RUN)
        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self._field(form, "teacher.source", "Source", self.source_combo, "teacherSourceCombo")

        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setObjectName("teacherCheckpointEdit")
        self.checkpoint_edit.setPlaceholderText("teacher.safetensors or a .pt state dict")
        self.checkpoint_edit.setToolTip(TIPS["teacher.checkpoint"])
        self.checkpoint_edit.textChanged.connect(self._emit_changed)
        self.checkpoint_edit.editingFinished.connect(self._adopt_sidecar)
        self.checkpoint_row = _with_button(self.checkpoint_edit, "Browse…",
                                           "Pick a teacher weight file",
                                           self._browse_checkpoint)
        form.addRow("Checkpoint", self.checkpoint_row)
        self._link("teacher.checkpoint", self.checkpoint_edit)

        self.run_combo = QComboBox()
        self.run_combo.setObjectName("teacherRunCombo")
        self.run_combo.setToolTip(TIPS["teacher.run"])
        self.run_combo.currentIndexChanged.connect(self._on_reuse_run_changed)
        self.run_row = _with_button(self.run_combo, "Refresh",
                                    "Reload the list of saved runs that have a trained teacher",
                                    self.refresh_saved_runs)
        form.addRow("Saved run", self.run_row)
        self._link("teacher.checkpoint", self.run_combo)

        self.teacher_arch_combo = self._model_combo()
        self.teacher_arch_combo.currentIndexChanged.connect(self._on_teacher_arch_changed)
        self._field(form, "teacher.arch", "Architecture", self.teacher_arch_combo,
                    "teacherArchCombo")
        self.teacher_params = ParamEditor("teacher.params", form, self.teacher_arch_combo)
        self.teacher_params.changed.connect(self._emit_changed)
        self.teacher_epochs_spin = make_spin(0, 100_000, 10)
        self.teacher_epochs_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "teacher.epochs", "Epochs", self.teacher_epochs_spin,
                    "teacherEpochsSpin")
        self.teacher_lr_spin = make_double(0.0, 10.0, 0.0, 6, 0.0005)
        self.teacher_lr_spin.setSpecialValueText("same as optimiser")
        self.teacher_lr_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "teacher.lr", "Learning rate", self.teacher_lr_spin, "teacherLrSpin")
        return self.teacher_group

    def _model_combo(self) -> QComboBox:
        combo = QComboBox()
        for name in list_models():
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, _doc(MODELS.get(name)),
                              Qt.ItemDataRole.ToolTipRole)
        return combo

    def _build_student(self) -> QGroupBox:
        group = QGroupBox("Student")
        form = self._form(group)
        self.student_arch_combo = self._model_combo()
        self.student_arch_combo.currentIndexChanged.connect(self._on_student_arch_changed)
        self._field(form, "student.arch", "Architecture", self.student_arch_combo,
                    "studentArchCombo")
        self.student_params = ParamEditor("student.params", form, self.student_arch_combo)
        self.student_params.changed.connect(self._emit_changed)
        return group

    def _build_method(self) -> QGroupBox:
        group = QGroupBox("Distillation")
        form = self._form(group)
        self._method_form = form
        self.method_combo = QComboBox()
        for name in list_methods():
            method = METHODS.get(name)
            self.method_combo.addItem(method.label or name, name)
            self.method_combo.setItemData(self.method_combo.count() - 1, _doc(method),
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.currentIndexChanged.connect(self._on_method_changed)
        self._field(form, "distill.method", "Method", self.method_combo, "methodCombo")
        self._link("distill.params", self.method_combo)
        self.method_doc = QLabel()
        self.method_doc.setObjectName("methodFormula")
        self.method_doc.setWordWrap(True)
        form.addRow(self.method_doc)

        self.temperature_spin = make_double(0.0, 1000.0, 4.0, 2, 0.5)
        self.temperature_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "distill.temperature", "Temperature T", self.temperature_spin,
                    "temperatureSpin")
        self.weight_spins: dict[str, QDoubleSpinBox] = {}
        for part, key, label, name in (("ce", "ce_weight", "CE weight α", "ceWeightSpin"),
                                       ("kd", "kd_weight", "KD weight β", "kdWeightSpin"),
                                       ("feature", "feature_weight", "Feature weight γ",
                                        "featureWeightSpin")):
            spin = make_double(-FLOAT_LIMIT, FLOAT_LIMIT, 0.0, 3, 0.1)
            spin.valueChanged.connect(self._emit_changed)
            self._field(form, f"distill.{key}", label, spin, name)
            self.weight_spins[part] = spin
        for widget in self.weight_spins.values():
            self._link("distill", widget)  # "all loss weights are zero" marks all three

        self.student_layer_combo = self._layer_combo()
        self._field(form, "distill.student_layer", "Student hint layer",
                    self.student_layer_combo, "studentLayerCombo")
        self.teacher_layer_combo = self._layer_combo()
        self._field(form, "distill.teacher_layer", "Teacher hint layer",
                    self.teacher_layer_combo, "teacherLayerCombo")
        self.method_params_box = QWidget()
        self.method_params_form = QFormLayout(self.method_params_box)
        self.method_params_form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.method_params_box)
        self.method_param_spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self.baseline_check = QCheckBox("Also train the student alone (baseline)")
        self.baseline_check.setChecked(True)
        self.baseline_check.toggled.connect(self._emit_changed)
        self.baseline_check.setObjectName("baselineCheck")
        self.baseline_check.setToolTip(TIPS["distill.baseline"])
        form.addRow(self.baseline_check)
        return group

    def _layer_combo(self) -> QComboBox:
        combo = QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.currentTextChanged.connect(self._emit_changed)
        no_wheel(combo)
        return combo

    def _build_optim(self) -> QGroupBox:
        group = QGroupBox("Optimiser")
        form = self._form(group)
        self._optim_form = form
        self.optimizer_combo = QComboBox()
        for name in OPTIMIZERS:
            self.optimizer_combo.addItem({"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
                                         .get(name, name), name)
        self.optimizer_combo.currentIndexChanged.connect(self._on_optimizer_changed)
        self._field(form, "optim.name", "Optimiser", self.optimizer_combo, "optimizerCombo")
        self.lr_spin = make_double(0.0, 10.0, 0.001, 6, 0.0005)
        self.lr_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.lr", "Learning rate", self.lr_spin, "lrSpin")
        self.momentum_spin = make_double(0.0, 1.0, 0.9, 3, 0.05)
        self.momentum_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.momentum", "Momentum", self.momentum_spin, "momentumSpin")
        self.weight_decay_spin = make_double(0.0, 10.0, 0.0, 6, 0.0001)
        self.weight_decay_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.weight_decay", "Weight decay", self.weight_decay_spin,
                    "weightDecaySpin")
        self.schedule_combo = QComboBox()
        for name in SCHEDULES:
            self.schedule_combo.addItem(name, name)
        self.schedule_combo.currentIndexChanged.connect(self._on_optimizer_changed)
        self._field(form, "optim.schedule", "Schedule", self.schedule_combo, "scheduleCombo")
        self.step_size_spin = make_spin(0, 100_000, 0)
        self.step_size_spin.setSpecialValueText("a third of the epochs")
        self.step_size_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.step_size", "Step size (epochs)", self.step_size_spin,
                    "stepSizeSpin")
        self.gamma_spin = make_double(0.0, 1.0, 0.1, 3, 0.05)
        self.gamma_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.gamma", "Gamma", self.gamma_spin, "gammaSpin")
        self.epochs_spin = make_spin(0, 100_000, 10)
        self.epochs_spin.valueChanged.connect(self._emit_changed)
        self._field(form, "optim.epochs", "Student epochs", self.epochs_spin, "epochsSpin")
        return group

    def _build_more(self) -> QGroupBox:
        self.more = MoreOptions()
        self.more.changed.connect(self._emit_changed)
        for key, widgets in self.more.fields.items():
            for widget in widgets:
                self._link(key, widget)
        return self.more

    # ------------------------------------------------------------ reactions

    def _on_dataset_changed(self, *_args: Any) -> None:
        name = self.dataset_combo.currentData()
        if name in DATASETS:
            entry = DATASETS.get(name)
            self.data_params.set_schema(dict(entry.defaults), entry.description)
            needs_path = entry.needs_path
        else:
            self.data_params.set_schema({})
            needs_path = False
        self._data_form.setRowVisible(self.path_row, needs_path)
        self._emit_changed()

    def _on_data_params_changed(self) -> None:
        self._emit_changed()

    def _on_teacher_arch_changed(self, *_args: Any) -> None:
        self._set_model_schema(self.teacher_params, self.teacher_arch_combo.currentData())
        self._emit_changed()

    def _on_student_arch_changed(self, *_args: Any) -> None:
        self._set_model_schema(self.student_params, self.student_arch_combo.currentData())
        self._emit_changed()

    @staticmethod
    def _set_model_schema(editor: ParamEditor, arch: str) -> None:
        if arch in MODELS:
            editor.set_schema(model_defaults(arch), _doc(MODELS.get(arch)))
        else:
            editor.set_schema({})

    def _method(self) -> Any:
        name = self.method_combo.currentData()
        return METHODS.get(name) if name in METHODS else None

    def _on_method_changed(self, *_args: Any) -> None:
        method = self._method()
        parts = method.parts if method else ()
        uses_teacher = bool(method and method.uses_teacher)
        hints = bool(method and method.uses_hint_layers)
        self.method_doc.setText(_doc(method) if method else "unknown method")
        self.temperature_spin.setEnabled(bool(method and getattr(method, "uses_temperature",
                                                                 uses_teacher)))
        if method is not None and not self._loading:
            self._apply_suggested(getattr(method, "suggested", {}))
        for part, spin in self.weight_spins.items():
            spin.setEnabled(part in parts)
            spin.setToolTip(self._base_tips[spin] if part in parts else
                            f"Not used by this method (its loss has no '{part}' part).\n\n"
                            + self._base_tips[spin])
        self._method_form.setRowVisible(self.student_layer_combo, hints)
        self._method_form.setRowVisible(self.teacher_layer_combo, hints)
        self.baseline_check.setEnabled(uses_teacher)
        self.teacher_group.setEnabled(uses_teacher)
        self.teacher_note.setVisible(not uses_teacher)
        self.teacher_note.setText("This method trains the student on the labels alone: "
                                  "no teacher is used.")
        self._rebuild_method_params(method)
        self._emit_changed()

    def _apply_suggested(self, suggested: dict[str, float]) -> None:
        """Values a method recommends (e.g. its loss weights), applied when it is picked."""
        spins = {WEIGHT_KEYS[part]: spin for part, spin in self.weight_spins.items()}
        spins["temperature"] = self.temperature_spin
        for key, value in suggested.items():
            if key in spins and isinstance(value, (int, float)):
                spins[key].setValue(float(value))

    def _rebuild_method_params(self, method: Any) -> None:
        while self.method_params_form.rowCount():
            self.method_params_form.removeRow(0)
        self.method_param_spins = {}
        for spec in (method.params if method else ()):
            if getattr(spec, "integer", False):
                spin: QSpinBox | QDoubleSpinBox = make_spin(-INT_LIMIT, INT_LIMIT,
                                                            int(spec.default))
            else:
                spin = make_double(-FLOAT_LIMIT, FLOAT_LIMIT, float(spec.default), 4, 0.1)
            spin.setObjectName(f"methodParam_{spec.name}")
            low = "-∞" if spec.minimum is None else f"{spec.minimum:g}"
            high = "∞" if spec.maximum is None else f"{spec.maximum:g}"
            spin.setToolTip(f"distill.params.{spec.name}: {spec.help}\n"
                            f"default {spec.default:g}; allowed [{low}, {high}]")
            spin.valueChanged.connect(self._emit_changed)
            caption = QLabel(label_for(spec.name))
            caption.setToolTip(spin.toolTip())
            self.method_params_form.addRow(caption, spin)
            self.method_param_spins[spec.name] = spin
            self._link(f"distill.params.{spec.name}", spin)
        self.method_params_box.setVisible(bool(self.method_param_spins))

    def _source(self) -> str:
        return self.source_combo.currentData()

    def _on_source_changed(self, *_args: Any) -> None:
        source = self._source()
        self._teacher_form.setRowVisible(self.checkpoint_row, source == SOURCE_FILE)
        self._teacher_form.setRowVisible(self.run_row, source == SOURCE_RUN)
        self.teacher_epochs_spin.setEnabled(source == SOURCE_TRAIN)
        self.teacher_lr_spin.setEnabled(source == SOURCE_TRAIN)
        reuse = source == SOURCE_RUN
        self.teacher_arch_combo.setEnabled(not reuse)
        self.teacher_params.set_read_only(reuse)
        if reuse:
            self.refresh_saved_runs()
        self._emit_changed()

    def _on_optimizer_changed(self, *_args: Any) -> None:
        self.momentum_spin.setEnabled(self.optimizer_combo.currentData() == "sgd")
        step = self.schedule_combo.currentData() == "step"
        self._optim_form.setRowVisible(self.step_size_spin, step)
        self._optim_form.setRowVisible(self.gamma_spin, step)
        self._emit_changed()

    # ------------------------------------------------------------ teacher sources

    def refresh_saved_runs(self) -> None:
        """List saved runs that have a trained teacher, newest first."""
        store = self.store_provider() if self.store_provider else None
        current = self.run_combo.currentData()
        self._reuse_runs = {}
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        if store is not None:
            for run in store.runs_with_artifact("teacher", limit=500):
                run["teacher_path"] = run["artifact_path"]
                self._reuse_runs[run["id"]] = run
                acc = run.get("teacher_test_acc")
                text = (f"#{run['id']} {run['name']} — {run['teacher_arch']} on "
                        f"{run['dataset']}" + (f", test {acc:.1%}" if acc is not None else ""))
                self.run_combo.addItem(text, run["id"])
        if not self._reuse_runs:
            self.run_combo.addItem("no saved run has a teacher yet", None)
        index = self.run_combo.findData(current)
        self.run_combo.setCurrentIndex(max(index, 0))
        self.run_combo.blockSignals(False)
        self._on_reuse_run_changed()

    def history_changed(self) -> None:
        """A run was added or removed: refresh the saved-run list if it is in use."""
        if self._source() == SOURCE_RUN:
            self.refresh_saved_runs()

    def select_saved_run(self, run_id: int) -> None:
        """Reuse the teacher of this saved run (switches the source)."""
        self.source_combo.setCurrentIndex(self.source_combo.findData(SOURCE_RUN))
        index = self.run_combo.findData(run_id)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)

    def _on_reuse_run_changed(self, *_args: Any) -> None:
        run = self._reuse_runs.get(self.run_combo.currentData())
        if run is None or self._source() != SOURCE_RUN:
            self._emit_changed()
            return
        teacher = run["config"].get("teacher", {})
        self._set_teacher_model(teacher.get("arch", ""), teacher.get("params", {}))
        self._emit_changed()

    def _set_teacher_model(self, arch: str, params: dict[str, Any]) -> None:
        loading, self._loading = self._loading, True
        self.teacher_arch_combo.blockSignals(True)
        set_combo_value(self.teacher_arch_combo, arch)
        self.teacher_arch_combo.blockSignals(False)
        self._set_model_schema(self.teacher_params, arch)
        self.teacher_params.set_values(params)
        self.teacher_params.set_read_only(self._source() == SOURCE_RUN)
        self._loading = loading

    def _browse_checkpoint(self) -> None:
        path = open_file_name(
            self, "Teacher weights", self.checkpoint_edit.text(),
            "Weights (*.safetensors *.pt *.pth);;All files (*)")
        if path:
            self.checkpoint_edit.setText(path)
            self._adopt_sidecar()

    def _adopt_sidecar(self) -> None:
        """A weight file saved by KD Studio has `<stem>.json` beside it: take its model."""
        text = self.checkpoint_edit.text().strip()
        if not text:
            return
        sidecar = Path(text).expanduser().with_suffix(".json")
        try:
            spec = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(spec, dict) and spec.get("arch") in MODELS:
            self._set_teacher_model(spec["arch"], dict(spec.get("params") or {}))
            self._emit_changed()

    def _browse_data(self) -> None:
        path = existing_folder(self, "Dataset folder", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    def _checkpoint(self) -> str:
        source = self._source()
        if source == SOURCE_FILE:
            return self.checkpoint_edit.text().strip()
        if source == SOURCE_RUN:
            run = self._reuse_runs.get(self.run_combo.currentData())
            return run["teacher_path"] if run else ""
        return ""

    # ------------------------------------------------------------ reading and filling

    def config_dict(self) -> tuple[dict[str, Any], list[str]]:
        """The form as a config dict, and problems met while reading fields."""
        problems: list[str] = []
        data_params, found = self.data_params.values()
        problems += found
        teacher_params, found = self.teacher_params.values()
        problems += found
        student_params, found = self.student_params.values()
        problems += found
        more, found = self.more.values()
        problems += found
        method = self._method()
        hints = bool(method and method.uses_hint_layers)
        if (self._source() == SOURCE_FILE and self._uses_teacher()
                and not self.checkpoint_edit.text().strip()):
            problems.append("teacher.checkpoint: choose the teacher's weight file (or set the "
                            "source to Train it here)")
        if self._source() == SOURCE_RUN and self.run_combo.currentData() is None:
            problems.append("teacher.checkpoint: pick a saved run whose teacher to reuse "
                            "(none has a teacher yet: train one first)")
        data = {
            "name": self.name_edit.text().strip(),
            "seed": self.seed_spin.value(),
            "device": self.device_combo.currentData(),
            "data": {
                "dataset": self.dataset_combo.currentData(),
                "path": self.path_edit.text().strip() if self._needs_path() else "",
                "val_fraction": self.val_spin.value(),
                "test_fraction": self.test_spin.value(),
                "batch_size": self.batch_spin.value(),
                "params": data_params,
            },
            "teacher": {
                "arch": self.teacher_arch_combo.currentData(),
                "params": teacher_params,
                "checkpoint": self._checkpoint(),
                "epochs": self.teacher_epochs_spin.value(),
                "lr": self.teacher_lr_spin.value(),
            },
            "student": {"arch": self.student_arch_combo.currentData(), "params": student_params},
            "distill": {
                "method": self.method_combo.currentData(),
                "temperature": self.temperature_spin.value(),
                "ce_weight": self.weight_spins["ce"].value(),
                "kd_weight": self.weight_spins["kd"].value(),
                "feature_weight": self.weight_spins["feature"].value(),
                "student_layer": self.student_layer_combo.currentText().strip() if hints else "",
                "teacher_layer": self.teacher_layer_combo.currentText().strip() if hints else "",
                "baseline": self.baseline_check.isChecked(),
                "params": {name: spin.value() for name, spin in self.method_param_spins.items()},
            },
            "optim": {
                "name": self.optimizer_combo.currentData(),
                "lr": self.lr_spin.value(),
                "momentum": self.momentum_spin.value(),
                "weight_decay": self.weight_decay_spin.value(),
                "epochs": self.epochs_spin.value(),
                "schedule": self.schedule_combo.currentData(),
                "step_size": self.step_size_spin.value(),
                "gamma": self.gamma_spin.value(),
            },
        }
        return _overlay(_overlay(self._base, data), more), problems

    def _needs_path(self) -> bool:
        name = self.dataset_combo.currentData()
        return name in DATASETS and DATASETS.get(name).needs_path

    def run_config(self) -> tuple[RunConfig, list[str]]:
        """The RunConfig of the form and every problem with it (empty: ready to run)."""
        data, problems = self.config_dict()
        key = json.dumps(data, sort_keys=True, default=str)
        if self._checked is not None and self._checked[0] == key:
            # unchanged since the last check (Start right after the live validation): the
            # engine checks again in its thread, so nothing slips through, and the GUI
            # thread does not build the models twice
            return self._checked[1].copy(), problems + self._checked[2]
        config, checks = config_from_dict(data)
        checks += validate(config)
        checks += self._checkpoint_problems(config)
        self._checked = (key, config.copy(), checks)
        return config, problems + checks

    def set_config(self, data: dict[str, Any] | RunConfig) -> list[str]:
        """Fill the form from a config (dict as in TOML); returns the problems of its types."""
        if isinstance(data, RunConfig):
            config, problems = data.copy(), []
        else:
            config, problems = config_from_dict(data)
        self._base = config.to_dict()
        self._loading = True
        try:
            self.name_edit.setText(config.name)
            self.seed_spin.setValue(config.seed if isinstance(config.seed, int) else 0)
            set_combo_value(self.device_combo, config.device)
            set_combo_value(self.dataset_combo, config.data.dataset)
            self._on_dataset_changed()
            self.data_params.set_values(config.data.params)
            self.path_edit.setText(config.data.path)
            self.batch_spin.setValue(config.data.batch_size)
            self.val_spin.setValue(config.data.val_fraction)
            self.test_spin.setValue(config.data.test_fraction)
            source = SOURCE_FILE if config.teacher.checkpoint else SOURCE_TRAIN
            self.source_combo.setCurrentIndex(self.source_combo.findData(source))
            self.checkpoint_edit.setText(config.teacher.checkpoint)
            self._set_teacher_model(config.teacher.arch, config.teacher.params)
            self.teacher_epochs_spin.setValue(config.teacher.epochs)
            self.teacher_lr_spin.setValue(config.teacher.lr)
            set_combo_value(self.student_arch_combo, config.student.arch)
            self._on_student_arch_changed()
            self.student_params.set_values(config.student.params)
            d = config.distill
            set_combo_value(self.method_combo, d.method)
            self._on_method_changed()
            self.temperature_spin.setValue(d.temperature)
            for part, key in WEIGHT_KEYS.items():
                self.weight_spins[part].setValue(getattr(d, key))
            self.student_layer_combo.setEditText(d.student_layer)
            self.teacher_layer_combo.setEditText(d.teacher_layer)
            self.baseline_check.setChecked(d.baseline)
            self.more.set_from(config)
            for name, value in d.params.items():
                if name in self.method_param_spins and isinstance(value, (int, float)):
                    self.method_param_spins[name].setValue(value)
            o = config.optim
            set_combo_value(self.optimizer_combo, o.name)
            self.lr_spin.setValue(o.lr)
            self.momentum_spin.setValue(o.momentum)
            self.weight_decay_spin.setValue(o.weight_decay)
            set_combo_value(self.schedule_combo, o.schedule)
            self.step_size_spin.setValue(o.step_size)
            self.gamma_spin.setValue(o.gamma)
            self.epochs_spin.setValue(o.epochs)
            self._on_optimizer_changed()
        finally:
            self._loading = False
        unknown = [f"distill.params.{k}: method '{d.method}' has no such parameter"
                   for k in d.params if k not in self.method_param_spins]
        self.validate_now()
        return problems + unknown

    # ------------------------------------------------------------ validation

    def schedule_validation(self) -> None:
        self._timer.start()

    def validate_now(self) -> list[str]:
        """Refresh sizes and layer lists, check the whole config, mark the fields."""
        self._timer.stop()
        info = self._dataset_info()
        teacher = self._model("teacher", info) if self._uses_teacher() else None
        student = self._model("student", info)
        self._update_layer_lists(student, teacher)
        self._update_sizes(student, teacher)
        _config, problems = self.run_config()
        self.problems = problems
        self._mark(problems)
        self.validated.emit(problems)
        return problems

    def _uses_teacher(self) -> bool:
        method = self._method()
        return bool(method and method.uses_teacher)

    def _dataset_info(self) -> Any:
        name = self.dataset_combo.currentData()
        if name not in DATASETS:
            return None
        params, problems = self.data_params.values()
        if problems:
            return None
        try:
            return get_dataset(name).describe(self.path_edit.text().strip(),
                                              dataset_params(name, params))
        except (ValueError, TypeError, KeyError):
            return None

    def _model(self, role: str, info: Any) -> Any:
        """The model the form describes, built on the CPU for this dataset (cached), or None."""
        combo = self.teacher_arch_combo if role == "teacher" else self.student_arch_combo
        editor = self.teacher_params if role == "teacher" else self.student_params
        arch = combo.currentData()
        params, problems = editor.values()
        if info is None or problems or arch not in MODELS:
            return None
        key = json.dumps([arch, params, list(info.input_shape), info.num_classes],
                         sort_keys=True, default=str)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        try:
            model = create_model(arch, info.input_shape, info.num_classes, **params)
        except (ValueError, TypeError, RuntimeError):
            model = None
        self._models[key] = model
        while len(self._models) > 8:
            self._models.popitem(last=False)
        return model

    def _update_layer_lists(self, student: Any, teacher: Any) -> None:
        for combo, model in ((self.student_layer_combo, student),
                             (self.teacher_layer_combo, teacher)):
            if model is None:
                continue
            names = list(model.feature_layers())
            old_items = [combo.itemText(i) for i in range(combo.count())]
            if names == old_items:
                continue
            text = combo.currentText().strip()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if text in names or (text and text not in old_items):
                combo.setEditText(text)  # kept; a name that does not exist is reported
            else:
                combo.setCurrentIndex(names.index("embedding") if "embedding" in names
                                      else len(names) - 1)
            combo.blockSignals(False)

    def _update_sizes(self, student: Any, teacher: Any) -> None:
        def describe(model: Any) -> str:
            if model is None:
                return "—"
            size = model_size_mb(model)
            shown = f"{size:.2f} MB" if size >= 0.1 else f"{size * 1000:.1f} kB"
            return f"{count_parameters(model):,} params · {shown}"

        self.teacher_size_label.setText(describe(teacher) if self._uses_teacher() else "none")
        self.student_size_label.setText(describe(student))
        if teacher is not None and student is not None:
            ratio = count_parameters(teacher) / max(count_parameters(student), 1)
            self.compression_label.setText(f"{ratio:.1f}× fewer params")
        else:
            self.compression_label.setText("—")

    def _checkpoint_problems(self, config: RunConfig) -> list[str]:
        """Does the teacher file fit the teacher model? (validate only checks that it exists)"""
        from kdstudio.core.checkpoint import load_weights

        path = Path(config.teacher.checkpoint).expanduser()
        if not config.teacher.checkpoint or not self._uses_teacher() or not path.is_file():
            return []
        problems = []
        run = self._reuse_runs.get(self.run_combo.currentData())
        if self._source() == SOURCE_RUN and run is not None:
            trained_on = run["config"].get("data", {}).get("dataset")
            if trained_on != config.data.dataset:
                problems.append(f"teacher.checkpoint: run #{run['id']} trained its teacher on "
                                f"{trained_on}; this run uses {config.data.dataset}")
        model = self._model("teacher", self._dataset_info())
        if model is None:
            return problems
        key = (str(path), path.stat().st_mtime_ns, id(model))
        if key not in self._checkpoint_fit:
            try:
                load_weights(model, path)
                self._checkpoint_fit[key] = None
            except ValueError as error:
                self._checkpoint_fit[key] = str(error)
            except Exception as error:  # noqa: BLE001 - e.g. a file that is not safetensors
                self._checkpoint_fit[key] = f"cannot read {path}: {type(error).__name__}: {error}"
        if self._checkpoint_fit[key]:
            problems.append(f"teacher.checkpoint: {self._checkpoint_fit[key]}")
        return problems

    def _editors(self) -> dict[str, tuple[ParamEditor, QWidget]]:
        return {"data.params": (self.data_params, self.dataset_combo),
                "teacher.params": (self.teacher_params, self.teacher_arch_combo),
                "student.params": (self.student_params, self.student_arch_combo),
                "data.transfer_params": (self.more.transfer_params,
                                         self.more.transfer_dataset_combo)}

    def _widgets_for(self, problem: str) -> list[QWidget]:
        """The fields a problem line (`key.path: message`) is about."""
        key, _, message = problem.partition(":")
        key, message = key.strip(), message.strip()
        for prefix, (editor, owner) in self._editors().items():
            if key == prefix:  # the model or dataset refused a value: find the name
                named = [w for n, w in editor.widgets.items() if message.startswith(f"{n} ")]
                return named or [owner]
            if key.startswith(prefix + "."):
                widget = editor.widgets.get(key[len(prefix) + 1:])
                return [widget] if widget is not None else [owner]
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            widgets = self._fields.get(".".join(parts[:depth]))
            if widgets:
                return widgets
        return []

    def _mark(self, problems: list[str]) -> None:
        for widget in self._marked:
            widget.setProperty("invalid", False)
            widget.setToolTip(self._base_tips.get(widget, ""))
            widget.style().unpolish(widget)
            widget.style().polish(widget)
        self._marked = []
        notes: dict[QWidget, list[str]] = {}
        for problem in problems:
            for widget in self._widgets_for(problem):
                notes.setdefault(widget, []).append(problem)
        for widget, lines in notes.items():
            base = self._base_tips.setdefault(widget, widget.toolTip())
            widget.setProperty("invalid", True)
            widget.setToolTip(base + "\n\n⚠ " + "\n⚠ ".join(lines))
            widget.style().unpolish(widget)
            widget.style().polish(widget)
            self._marked.append(widget)

    def marked_widgets(self) -> list[QWidget]:
        """Widgets currently marked invalid (for the window and tests)."""
        return list(self._marked)

    def sizeHint(self):  # noqa: N802 - Qt override
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), 400))
        return hint


def _with_button(field: QWidget, text: str, tip: str, on_click: Callable[[], Any]) -> QWidget:
    """A row: `field`, stretched, with a push button after it."""
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(on_click)
    row = QWidget()
    line = QHBoxLayout(row)
    line.setContentsMargins(0, 0, 0, 0)
    line.addWidget(field, 1)
    line.addWidget(button)
    return row
