"""The Sweep dialog: which keys of the form's config to vary and how, then Start.

The base of the sweep is the form's config (already validated), written as a TOML file whose
name is its content's hash, so the same form gives the same sweep (and a re-run skips the
trials done before). The dialog reads its widgets into the dict a sweep TOML holds and checks
it with `sweep_from_dict`, as `kdstudio sweep` does; every problem is shown inline, naming
the key, and Start stays disabled until there is none. Save writes that file (and the base
config beside it); Open reads one back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
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

from kdstudio.core.config.rules import value_at
from kdstudio.gui.sweep.axes import ERROR_STYLE, AxisRow
from kdstudio.gui.sweep.values import axis_keys, parse_seeds, plural
from kdstudio.gui.widgets.file_dialogs import open_file_name, save_file_name

METRICS = (("student_test_acc", "student test accuracy"),
           ("student_best_val_acc", "student best validation accuracy"),
           ("student_last_val_acc", "student last validation accuracy"),
           ("kd_gain", "KD gain (student − baseline test accuracy)"),
           ("baseline_test_acc", "baseline test accuracy"),
           ("teacher_test_acc", "teacher test accuracy"))
SWEEP_FILTER = "Sweep files (*.toml);;All files (*)"


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def write_base(config: dict[str, Any], folder: Path) -> Path:
    """The form's config as `sweep-base-<hash>.toml` in `folder` (the same config, the same
    file)."""
    text = tomli_w.dumps(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sweep-base-{hashlib.sha256(text.encode()).hexdigest()[:12]}.toml"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


class SweepDialog(QDialog):
    """A sweep over the form's config; emits `start_requested(spec, workers, backend)`."""

    start_requested = Signal(object, int, str)

    def __init__(self, config: dict[str, Any], folder: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepDialog")
        self.setWindowTitle("Sweep")
        self.setModal(False)
        self.config = config
        self.base = str(write_base(config, folder))
        self.fixed: dict[str, Any] = {}  # a sweep file's [set] table
        self.draw_seed = 0  # a sweep file's seed of the random draws
        self.keys = {axis.key: axis for axis in axis_keys(config)}
        self.rows: list[AxisRow] = []
        self.spec: Any = None
        self.problems: list[str] = []

        self.base_label = QLabel()
        self.base_label.setObjectName("sweepBase")
        self.base_label.setWordWrap(True)
        self._show_base("the form's config")

        self.name_edit = QLineEdit(str(config.get("name") or "") or "sweep")
        self.name_edit.setObjectName("sweepName")
        self.name_edit.setToolTip("The sweep's name: its runs share the group id "
                                  "sweep:<name>:<hash of the sweep>")
        self.key_combo = QComboBox()
        self.key_combo.setObjectName("sweepKeyCombo")
        self.key_combo.setToolTip("A key of the form to vary")
        for axis in self.keys.values():
            self.key_combo.addItem(axis.label, axis.key)
            self.key_combo.setItemData(self.key_combo.count() - 1, axis.key,
                                       Qt.ItemDataRole.ToolTipRole)
        add = QPushButton("Add axis")
        add.setObjectName("sweepAddAxis")
        add.setToolTip("Vary the chosen key: every trial takes one of its values")
        add.clicked.connect(lambda: self.add_axis(self.key_combo.currentData()))
        adder = QHBoxLayout()
        adder.addWidget(self.key_combo, 1)
        adder.addWidget(add)
        self.axes_box = QVBoxLayout()
        self.axes_box.addStretch(1)
        holder = QWidget()
        holder.setLayout(self.axes_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        scroll.setMinimumHeight(200)
        axes_group = QGroupBox("Axes")
        axes_layout = QVBoxLayout(axes_group)
        axes_layout.addLayout(adder)
        axes_layout.addWidget(scroll, 1)

        self.seed_mode = QComboBox()
        self.seed_mode.setObjectName("sweepSeedMode")
        self.seed_mode.addItem("number of seeds", "count")
        self.seed_mode.addItem("list of seeds", "list")
        self.seed_mode.setToolTip(f"Every trial is run with each seed; a number N means "
                                  f"seeds {self.first_seed} … {self.first_seed} + N − 1")
        self.seed_edit = QLineEdit("1")
        self.seed_edit.setObjectName("sweepSeeds")
        self.seed_edit.setToolTip("How many seeds, or a comma-separated list, e.g. 0, 1, 2")
        seeds = QHBoxLayout()
        seeds.addWidget(self.seed_mode)
        seeds.addWidget(self.seed_edit, 1)
        self.method = QComboBox()
        self.method.setObjectName("sweepMethod")
        self.method.addItem("grid (every combination)", "grid")
        self.method.addItem("random (sampled trials)", "random")
        self.method.addItem("optuna (TPE search)", "optuna")
        if not importable("optuna"):
            self._disable_item(self.method, 2, "Optuna is not installed: pip install optuna")
        self.trials = QSpinBox()
        self.trials.setObjectName("sweepTrials")
        self.trials.setRange(1, 10_000)
        self.trials.setValue(8)
        self.trials.setToolTip("How many trials random search or optuna runs")
        self.metric_combo = QComboBox()
        self.metric_combo.setObjectName("sweepMetric")
        self.metric_combo.setToolTip("What optuna maximises and what the summary ranks by")
        for name, label in METRICS:
            self.metric_combo.addItem(label, name)
            self.metric_combo.setItemData(self.metric_combo.count() - 1, name,
                                          Qt.ItemDataRole.ToolTipRole)
        self.backend = QComboBox()
        self.backend.setObjectName("sweepBackend")
        self.backend.addItem("local (process pool)", "local")
        self.backend.addItem("ray", "ray")
        self.backend.setToolTip("local: a pool of processes on this machine; ray: Ray tasks "
                                "on a local Ray instance")
        if not importable("ray"):
            self._disable_item(self.backend, 1, "Ray is not installed: pip install "
                                                "'kdstudio[ray]'")
        self.workers = QSpinBox()
        self.workers.setObjectName("sweepWorkers")
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("auto")
        self.workers.setToolTip("Trials run at once; auto: the cores divided by the threads "
                                "each trial needs")
        settings = QFormLayout()
        settings.addRow("Name", self.name_edit)
        settings.addRow("Seeds", seeds)
        settings.addRow("Method", self.method)
        settings.addRow("Trials", self.trials)
        settings.addRow("Metric", self.metric_combo)
        settings.addRow("Backend", self.backend)
        settings.addRow("Workers", self.workers)

        self.count_label = QLabel()
        self.count_label.setObjectName("sweepCount")
        self.problems_label = QLabel()
        self.problems_label.setObjectName("sweepProblems")
        self.problems_label.setStyleSheet(ERROR_STYLE)
        self.problems_label.setWordWrap(True)
        open_button = QPushButton("Open…")
        open_button.setObjectName("sweepOpen")
        open_button.setToolTip("Read a sweep TOML (as `kdstudio sweep` runs) into the dialog")
        open_button.clicked.connect(self._open_dialog)
        self.save_button = QPushButton("Save as…")
        self.save_button.setObjectName("sweepSave")
        self.save_button.setToolTip("Write the sweep TOML that `kdstudio sweep FILE` runs, "
                                    "with the base config beside it")
        self.save_button.clicked.connect(self._save_dialog)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("sweepStart")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for button in (open_button, self.save_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.start_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.base_label)
        layout.addWidget(axes_group, 1)
        layout.addLayout(settings)
        layout.addWidget(self.count_label)
        layout.addWidget(self.problems_label)
        layout.addLayout(buttons)
        for signal in (self.name_edit.textChanged,
                       self.seed_mode.currentIndexChanged, self.seed_edit.textChanged,
                       self.method.currentIndexChanged, self.trials.valueChanged,
                       self.metric_combo.currentIndexChanged):
            signal.connect(self.refresh)
        self.resize(640, 620)
        self.refresh()

    @staticmethod
    def _disable_item(combo: QComboBox, index: int, tip: str) -> None:
        item = combo.model().item(index)  # type: ignore[attr-defined]
        item.setEnabled(False)
        item.setToolTip(tip)
        combo.setItemText(index, combo.itemText(index) + " (not installed)")

    @property
    def first_seed(self) -> int:
        seed = value_at(self.config, "seed")
        return seed if isinstance(seed, int) else 0

    def _show_base(self, what: str) -> None:
        self.base_label.setText(f"<b>Base:</b> {what} — every trial is this config with the "
                                "values below")
        self.base_label.setToolTip(self.base)

    # ------------------------------------------------------------ axes

    def add_axis(self, key: str) -> AxisRow | None:
        """Add (or show) the row of `key`; None if the form offers no such key."""
        if key not in self.keys:
            return None
        for row in self.rows:
            if row.key == key:
                return row
        current = value_at(self.config, key) if "." in key or key in self.config else None
        row = AxisRow(self.keys[key], self.keys[key].field.default if current is None
                      else current)
        row.changed.connect(self.refresh)
        row.removed.connect(self.remove_axis)
        self.rows.append(row)
        self.axes_box.insertWidget(self.axes_box.count() - 1, row)
        self.refresh()
        return row

    def remove_axis(self, row: AxisRow) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self.refresh()

    # ------------------------------------------------------------ reading and checking

    @property
    def method_name(self) -> str:
        return str(self.method.currentData())

    def seeds(self) -> list[int]:
        return parse_seeds(self.seed_edit.text(), self.seed_mode.currentData() == "count",
                           self.first_seed)

    def sweep_dict(self) -> tuple[dict[str, Any], list[str]]:
        """What the sweep TOML holds, and every problem of the widgets (naming the key)."""
        problems: list[str] = []
        axes: dict[str, Any] = {}
        grid = self.method_name == "grid"
        for row in self.rows:
            try:
                axes[row.key] = row.values(grid)
                row.show_problem("")
            except ValueError as error:
                row.show_problem(str(error))
                problems.append(str(error))
        try:
            seeds = self.seeds()
            if seeds != [self.first_seed]:
                axes["seed"] = seeds
        except ValueError as error:
            problems.append(str(error))
        data: dict[str, Any] = {"base": self.base, "name": self.name_edit.text().strip(),
                                "method": self.method_name,
                                "trials": 0 if grid else self.trials.value(),
                                "metric": self.metric_combo.currentData(), "axes": axes}
        if self.fixed:
            data["set"] = dict(self.fixed)
        if self.draw_seed:
            data["seed"] = self.draw_seed
        return data, problems

    def refresh(self) -> None:
        """Check the sweep, show its problems inline and its trial count."""
        from kdstudio.core.sweep import plan_trials, sweep_from_dict

        self.trials.setEnabled(self.method_name != "grid")
        data, problems = self.sweep_dict()
        self.spec = None
        if not problems and not self.rows and "seed" not in data["axes"]:
            problems.append("Add an axis or more than one seed: a sweep needs something to vary")
        if not problems:
            try:
                self.spec = sweep_from_dict(data, source="the sweep")
            except ValueError as error:
                problems.append(str(error))
        self.problems = problems
        self.problems_label.setText("<br>".join(f"• {p}" for p in problems
                                                if not self._shown_in_row(p)))
        self.problems_label.setVisible(any(not self._shown_in_row(p) for p in problems))
        if self.spec is None:
            self.count_label.setText("<b>—</b> trials: fix the problems first")
        elif self.method_name == "optuna":
            self.count_label.setText(f"<b>{self.spec.trials} trials</b> suggested by Optuna")
        else:
            count = len(plan_trials(self.spec))
            self.count_label.setText(f"<b>{count} trial{'s' * (count != 1)}</b>"
                                     + self._breakdown(data["axes"]))
        self.start_button.setEnabled(self.spec is not None)
        self.save_button.setEnabled(self.spec is not None)
        self.start_button.setToolTip("Run the sweep in the background; its queue opens in "
                                     "a tab" if self.spec else "Fix first:\n"
                                     + "\n".join(problems))

    def _shown_in_row(self, problem: str) -> bool:
        return any(row.problem == problem for row in self.rows)

    def _breakdown(self, axes: dict[str, Any]) -> str:
        if self.method_name != "grid":
            return f" (random over {len(axes)} key{'s' * (len(axes) != 1)})"
        parts = [plural(self.keys[k].label if k in self.keys else k, len(v))
                 for k, v in axes.items() if k != "seed"]
        if "seed" in axes:
            parts.append(plural("seed", len(axes["seed"])))
        return f" ({' × '.join(parts)})" if len(parts) > 1 or parts and math.prod(
            len(v) for v in axes.values()) > 1 else ""

    # ------------------------------------------------------------ start, save, open

    def start(self) -> bool:
        """Emit the checked sweep and close; False (nothing emitted) while it has problems."""
        self.refresh()
        if self.spec is None:
            return False
        self.start_requested.emit(self.spec, self.workers.value(),
                                  str(self.backend.currentData()))
        self.accept()
        return True

    def _save_dialog(self) -> None:
        path = save_file_name(self, "Save the sweep", "sweep.toml", SWEEP_FILTER)
        if path:
            self.save_sweep(path)

    def save_sweep(self, path: str | Path) -> Path | None:
        """Write the sweep TOML (its base config beside it, as `<name>.base.toml`, unless the
        base is a preset or a file of its own); None if it has problems."""
        self.refresh()
        if self.spec is None:
            return None
        from kdstudio.core.sweep import sweep_to_dict

        path = Path(path)
        data = sweep_to_dict(self.spec)
        if Path(self.base).name.startswith("sweep-base-"):
            base = path.with_name(f"{path.stem}.base.toml")
            base.write_text(Path(self.base).read_text(encoding="utf-8"), encoding="utf-8")
            data["base"] = base.name
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return path

    def _open_dialog(self) -> None:
        path = open_file_name(self, "Open a sweep", "", SWEEP_FILTER)
        if path:
            self.open_sweep(path)

    def open_sweep(self, path: str | Path) -> str:
        """Fill the dialog from a sweep TOML; returns the problem ("" when it was read)."""
        from kdstudio.core.sweep import read_sweep

        try:
            spec = read_sweep(path)
        except (OSError, ValueError) as error:
            self.problems_label.setText(str(error))
            self.problems_label.show()
            return str(error)
        for row in list(self.rows):
            self.remove_axis(row)
        self.base = spec.base
        self.fixed = dict(spec.fixed)
        self.draw_seed = spec.seed
        self._show_base(f"{spec.base} (from {Path(path).name})")
        self.name_edit.setText(spec.name)
        self.method.setCurrentIndex(max(0, self.method.findData(spec.method)))
        if spec.trials:
            self.trials.setValue(spec.trials)
        self.metric_combo.setCurrentIndex(max(0, self.metric_combo.findData(spec.metric)))
        missing = []
        for key, values in spec.axes.items():
            if key == "seed":
                self.seed_mode.setCurrentIndex(1)
                self.seed_edit.setText(", ".join(str(s) for s in values))
                continue
            row = self.add_axis(key)
            if row is None:
                missing.append(key)
            else:
                row.set_values(values)
        self.refresh()
        if missing:
            problem = (f"{Path(path).name}: the form offers no {', '.join(missing)} for this "
                       "config; run that file with `kdstudio sweep`")
            self.problems_label.setText(problem)
            self.problems_label.show()
            self.start_button.setEnabled(False)
            return problem
        return ""
