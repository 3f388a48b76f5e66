"""The setup form's "More options" box: schedules of the temperature and loss weights, the
label budget and transfer set, the teacher-output cache, mixed precision and whether the
resumable checkpoint is kept after a run completes.

Folded by default. `values()` gives its part of the config, `set_from()` fills it, and
`fields` maps config key paths to widgets so the form can mark problems on them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config import TRANSFER_SETS, RunConfig
from kdstudio.core.data import DATASETS, list_datasets
from kdstudio.core.distill.schedules import SCHEDULE_KINDS, SCHEDULED_KEYS
from kdstudio.gui.setup.form_text import TIPS
from kdstudio.gui.setup.form_widgets import (
    FLOAT_LIMIT,
    INT_LIMIT,
    ParamEditor,
    label_for,
    make_double,
    make_spin,
    set_combo_value,
)

TRANSFER_LABELS = {"labelled": "the labelled examples",
                   "all": "all training inputs (labels unused)",
                   "dataset": "inputs of another dataset"}
SCHEDULE_TIP = ("How distill.{key} moves during the distillation phase. constant: the value "
                "above throughout. warmup: linear from 'start' up to the value above over "
                "'epochs' epochs. decay: linear from the value above down to 'end' over "
                "'epochs' epochs (0 = the whole phase). The value moves every step.")


class MoreOptions(QGroupBox):
    """Less common settings, behind a Show/Hide button."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("More options", parent)
        self.fields: dict[str, list[QWidget]] = {}
        self.loading = False  # set while filling from a config: no suggested defaults then
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
        self._build_schedules()
        self._build_transfer()
        self._build_speed()
        self._toggle(False)

    # ------------------------------------------------------------ building

    def _add(self, key: str, label: str, widget: QWidget, name: str) -> None:
        widget.setObjectName(name)
        widget.setToolTip(TIPS[key])
        caption = QLabel(label)
        caption.setToolTip(TIPS[key])
        self.form.addRow(caption, widget)
        self.fields.setdefault(key, []).append(widget)

    def _build_schedules(self) -> None:
        self.form.addRow(QLabel("<i>Schedules over the distillation phase</i>"))
        self.schedule_rows: dict[str, tuple[QComboBox, QSpinBox, QDoubleSpinBox]] = {}
        for key in SCHEDULED_KEYS:
            kind = QComboBox()
            kind.setObjectName(f"schedule_{key}_kind")
            for name in SCHEDULE_KINDS:
                kind.addItem(name, name)
            epochs = make_spin(0, 100_000, 0)
            epochs.setObjectName(f"schedule_{key}_epochs")
            epochs.setSuffix(" ep")
            epochs.setSpecialValueText("phase")
            value = make_double(0.0, FLOAT_LIMIT, 0.0, 3, 0.1)
            value.setObjectName(f"schedule_{key}_value")
            tip = SCHEDULE_TIP.format(key=key)
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            for widget, stretch in ((kind, 2), (epochs, 1), (value, 1)):
                widget.setMinimumWidth(64)  # the spin boxes' huge ranges would widen the form
                widget.setToolTip(tip)
                line.addWidget(widget, stretch)
                self.fields.setdefault(f"distill.schedules.{key}", []).append(widget)
            kind.currentIndexChanged.connect(lambda _i, k=key: self._on_schedule_kind(k))
            epochs.valueChanged.connect(self.changed)
            value.valueChanged.connect(self.changed)
            caption = QLabel({"ce_weight": "CE weight", "kd_weight": "KD weight"}
                             .get(key, label_for(key)))
            caption.setToolTip(tip)
            self.form.addRow(caption, row)
            self.schedule_rows[key] = (kind, epochs, value)
            self._on_schedule_kind(key)

    def _build_transfer(self) -> None:
        self.form.addRow(QLabel("<i>Labels and transfer set</i>"))
        self.label_fraction_spin = make_double(0.0, 1.0, 1.0, 3, 0.05)
        self.label_fraction_spin.valueChanged.connect(self.changed)
        self._add("data.label_fraction", "Labelled share", self.label_fraction_spin,
                  "labelFractionSpin")
        self.label_count_spin = make_spin(0, INT_LIMIT, 0)
        self.label_count_spin.setSpecialValueText("use the share")
        self.label_count_spin.valueChanged.connect(self.changed)
        self._add("data.label_count", "Labelled examples", self.label_count_spin,
                  "labelCountSpin")
        self.transfer_combo = QComboBox()
        for name in TRANSFER_SETS:
            self.transfer_combo.addItem(TRANSFER_LABELS.get(name, name), name)
        self.transfer_combo.currentIndexChanged.connect(self._on_transfer_changed)
        self._add("data.transfer", "KD terms on", self.transfer_combo, "transferCombo")
        self.transfer_dataset_combo = QComboBox()
        for name in list_datasets():
            self.transfer_dataset_combo.addItem(name, name)
        self.transfer_dataset_combo.currentIndexChanged.connect(self._on_transfer_dataset)
        self._add("data.transfer_dataset", "Transfer dataset", self.transfer_dataset_combo,
                  "transferDatasetCombo")
        self.transfer_path_edit = QLineEdit()
        self.transfer_path_edit.setPlaceholderText("folder with the transfer data files")
        self.transfer_path_edit.textChanged.connect(self.changed)
        self._add("data.transfer_path", "Transfer folder", self.transfer_path_edit,
                  "transferPathEdit")
        self.transfer_params = ParamEditor("data.transfer_params", self.form,
                                           self.transfer_dataset_combo)
        self.transfer_params.changed.connect(self.changed)
        self._on_transfer_changed()

    def _build_speed(self) -> None:
        self.form.addRow(QLabel("<i>Speed</i>"))
        self.cache_check = QCheckBox("Cache the teacher's outputs")
        self.cache_check.setChecked(True)
        self.autocast_check = QCheckBox("Mixed precision (CUDA)")
        for key, check, name in (("distill.cache_teacher", self.cache_check, "cacheTeacherCheck"),
                                 ("autocast", self.autocast_check, "autocastCheck")):
            check.setObjectName(name)
            check.setToolTip(TIPS[key])
            check.toggled.connect(self.changed)
            self.form.addRow(check)
            self.fields.setdefault(key, []).append(check)
        self.keep_checkpoints_check = QCheckBox("Keep the resumable checkpoint after the run")
        self.keep_checkpoints_check.setObjectName("keepCheckpointsCheck")
        self.keep_checkpoints_check.setToolTip(
            "keep_checkpoints: every epoch end saves what a stopped or interrupted run needs "
            "to be resumed (History > Resume); once the run completes it is deleted unless "
            "this is ticked")
        self.keep_checkpoints_check.toggled.connect(self.changed)
        self.form.addRow(self.keep_checkpoints_check)
        self.fields["keep_checkpoints"] = [self.keep_checkpoints_check]

    # ------------------------------------------------------------ reactions

    def _toggle(self, shown: bool) -> None:
        self.box.setVisible(shown)
        self.button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.button.setText("Hide" if shown else "Show")

    def _on_schedule_kind(self, key: str) -> None:
        kind, epochs, value = self.schedule_rows[key]
        name = kind.currentData()
        epochs.setEnabled(name != "constant")
        value.setEnabled(name != "constant")
        value.setPrefix({"warmup": "start ", "decay": "end "}.get(name, ""))
        if not self.loading:  # sensible starting points when the user picks a kind
            if name == "warmup" and epochs.value() == 0:
                epochs.setValue(1)
            if key == "temperature" and name != "constant" and value.value() == 0:
                value.setValue(1.0)
        self.changed.emit()

    def _other_dataset(self) -> bool:
        return self.transfer_combo.currentData() == "dataset"

    def _on_transfer_changed(self, *_args: Any) -> None:
        self.form.setRowVisible(self.transfer_dataset_combo, self._other_dataset())
        self._on_transfer_dataset()

    def _on_transfer_dataset(self, *_args: Any) -> None:
        name = self.transfer_dataset_combo.currentData()
        entry = DATASETS.get(name) if name in DATASETS else None
        self.transfer_params.set_schema(dict(entry.defaults) if entry else {},
                                        entry.description if entry else "")
        self.transfer_params.set_visible(self._other_dataset())
        self.form.setRowVisible(self.transfer_path_edit, self._other_dataset()
                                and entry is not None and entry.needs_path)
        self.changed.emit()

    # ------------------------------------------------------------ reading and filling

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """This box's part of a config dict, and problems met reading it."""
        other = self._other_dataset()
        transfer_params, problems = self.transfer_params.values()
        schedules: dict[str, Any] = {}
        for key, (kind, epochs, value) in self.schedule_rows.items():
            name = kind.currentData()
            if name != "constant":
                schedules[key] = {"kind": name, "epochs": epochs.value(),
                                  "start" if name == "warmup" else "end": value.value()}
        data = {
            "autocast": self.autocast_check.isChecked(),
            "keep_checkpoints": self.keep_checkpoints_check.isChecked(),
            "data": {
                "label_fraction": self.label_fraction_spin.value(),
                "label_count": self.label_count_spin.value(),
                "transfer": self.transfer_combo.currentData(),
                "transfer_dataset": self.transfer_dataset_combo.currentData() if other else "",
                "transfer_path": self.transfer_path_edit.text().strip() if other else "",
                "transfer_params": transfer_params if other else {},
            },
            "distill": {"cache_teacher": self.cache_check.isChecked(), "schedules": schedules},
        }
        return data, problems if other else []

    def set_from(self, config: RunConfig) -> None:
        """Show a config's values; unfolds the box when they differ from the defaults."""
        self.loading = True
        try:
            data = config.data
            self.label_fraction_spin.setValue(data.label_fraction)
            self.label_count_spin.setValue(data.label_count)
            set_combo_value(self.transfer_combo, data.transfer)
            if data.transfer_dataset:
                set_combo_value(self.transfer_dataset_combo, data.transfer_dataset)
            self._on_transfer_changed()
            self.transfer_params.set_values(data.transfer_params)
            self.transfer_path_edit.setText(data.transfer_path)
            self.autocast_check.setChecked(config.autocast)
            self.keep_checkpoints_check.setChecked(config.keep_checkpoints)
            self.cache_check.setChecked(config.distill.cache_teacher)
            self._set_schedules(config.distill.schedules)
        finally:
            self.loading = False
        if config.distill.schedules or data.transfer != "labelled" or config.autocast or (
                config.keep_checkpoints) or (
                data.label_fraction < 1 or data.label_count):
            self.button.setChecked(True)  # show what the config sets here

    def _set_schedules(self, table: Any) -> None:
        table = table if isinstance(table, dict) else {}
        for key, (kind, epochs, value) in self.schedule_rows.items():
            entry = table.get(key) if isinstance(table.get(key), dict) else {}
            set_combo_value(kind, str(entry.get("kind", "constant")))
            number = entry.get("epochs", 0)
            epochs.setValue(number if isinstance(number, int) else 0)
            amount = entry.get("start" if entry.get("kind") == "warmup" else "end", 0.0)
            value.setValue(float(amount) if isinstance(amount, (int, float)) else 0.0)
            self._on_schedule_kind(key)
