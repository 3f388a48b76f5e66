"""The form's field table: one `Field` per config value, in the order the form shows them.

Each field names its key path, label, widget kind, tooltip and when it is shown or enabled;
number fields carry the validation `NumberRule` of their key, so the form's ranges are the
rules validation applies. Model, dataset and method parameters become fields through
`param_fields`, from their registries' schemas. Qt-free: the GUI builds widgets from this.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kdstudio.core.config.rules import RULES, NumberRule, value_at
from kdstudio.core.config.schema import AUGMENTS, LOADERS, OPTIMIZERS, SCHEDULES, TRANSFER_SETS
from kdstudio.core.config.tips import SCHEDULE_TIP, TIPS, wrap_tip

Values = dict[str, Any]  # a config as a nested dict (what the form holds)
Choice = tuple[str, str, str]  # value, label, tooltip

KINDS = ("text", "int", "float", "bool", "choice", "model", "folder", "file", "layer", "list",
         "params", "schedule")
GROUPS = {"run": "Run", "data": "Data", "teacher": "Teacher", "student": "Student",
          "distill": "Distillation", "optim": "Optimiser", "more": "More options"}
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Field:
    """One value of the config as the form shows it."""

    key: str
    label: str
    kind: str
    group: str
    name: str = ""  # the widget's objectName
    tip: str = ""
    rule: NumberRule | None = None
    choices: Callable[[], list[Choice]] | None = None
    shown: Callable[[Values], bool] | None = None
    enabled: Callable[[Values], bool] | None = None
    unused_tip: Callable[[Values], str] | None = None  # why it is disabled, for its tooltip
    blank_when_hidden: bool = False  # a hidden field gives its empty value
    special: str = ""  # what the value 0 means, shown in its place
    placeholder: str = ""
    owner: str = ""  # params: the key whose registry entry gives the parameters
    heading: str = ""  # a sub-heading shown above the field
    item_type: type = float  # list: the type of its items
    default: Any = None  # params: the registry's default

    def __post_init__(self) -> None:
        object.__setattr__(self, "tip", wrap_tip(self.tip))  # tooltips stay ~60 wide

    @property
    def minimum(self) -> float | None:
        return self.rule.smallest if self.rule else None

    @property
    def maximum(self) -> float | None:
        return self.rule.largest if self.rule else None

    def fits_int32(self) -> bool:
        """Whether every value the rule allows fits a 32-bit spin box."""
        low, high = self.minimum, self.maximum
        return (low is not None and high is not None and low >= INT32[0] and high <= INT32[1])

    def is_shown(self, values: Values) -> bool:
        return self.shown is None or bool(self.shown(values))

    def is_enabled(self, values: Values) -> bool:
        return self.enabled is None or bool(self.enabled(values))

    def disabled_reason(self, values: Values) -> str:
        """Why the field does not apply to these values ("" when it does)."""
        if self.is_enabled(values):
            return ""
        return self.unused_tip(values) if self.unused_tip else "Not used with these settings."


# ---------------------------------------------------------------- registry look-ups


def _method(values: Values) -> Any:
    from kdstudio.core.distill.methods import METHODS

    name = value_at(values, "distill.method")
    return METHODS.get(name) if name in METHODS else None


def uses_teacher(values: Values) -> bool:
    method = _method(values)
    return bool(method and method.uses_teacher)


def _uses_hints(values: Values) -> bool:
    method = _method(values)
    return bool(method and method.uses_hint_layers)


def _uses_temperature(values: Values) -> bool:
    method = _method(values)
    return bool(method and getattr(method, "uses_temperature", method.uses_teacher))


def _uses_part(part: str) -> Callable[[Values], bool]:
    def check(values: Values) -> bool:
        method = _method(values)
        return bool(method and part in method.parts)
    return check


def _method_name(values: Values) -> str:
    return str(value_at(values, "distill.method") or "this method")


def _not_in_loss(part: str, term: str) -> Callable[[Values], str]:
    return lambda v: f"Not used: the loss of {_method_name(v)} has no {term} ('{part}' part)."


_has_ce = _uses_part("ce")
_no_ce_tip = _not_in_loss("ce", "label loss")


def _weighs_ce(values: Values) -> bool:
    """Whether ce_weight weighs the labels' CE against a teacher's terms (a student trained
    alone takes plain CE, as a baseline does)."""
    return uses_teacher(values) and _has_ce(values)


def _ce_weight_unused(values: Values) -> str:
    if uses_teacher(values):
        return _no_ce_tip(values)
    return (f"Not used: {_method_name(values)} trains on the labels' cross-entropy alone, "
            "with weight 1, as a run's baseline does.")


def has_official_test(values: Values) -> bool:
    """Whether the dataset is known to bring its own test split (files: see the data check)."""
    from kdstudio.core.data import DATASETS

    name = value_at(values, "data.dataset")
    return name in DATASETS and getattr(DATASETS.get(name), "official_test", None) is True


OFFICIAL_TEST_TIP = ("Not used: this dataset has an official test split, which is used as "
                     "it is; nothing is carved out of the training data.")


def _needs_path(key: str) -> Callable[[Values], bool]:
    def check(values: Values) -> bool:
        from kdstudio.core.data import DATASETS

        name = value_at(values, key)
        return name in DATASETS and DATASETS.get(name).needs_path
    return check


def _other_dataset(values: Values) -> bool:
    return value_at(values, "data.transfer") == "dataset"


def entry_doc(entry: Any) -> str:
    """A registry entry's docstring on one line (tooltips, the method's formula)."""
    return " ".join((entry.__doc__ or "").replace("`", "").split())


def _dataset_choices() -> list[Choice]:
    from kdstudio.core.data import DATASETS, list_datasets

    return [(n, n, DATASETS.get(n).description or entry_doc(DATASETS.get(n)))
            for n in list_datasets()]


def _model_choices() -> list[Choice]:
    from kdstudio.core.models import MODELS, list_models

    return [(n, n, entry_doc(MODELS.get(n))) for n in list_models()]


def _teacher_choices() -> list[Choice]:
    return _model_choices() + [("", "file only (ONNX, TorchScript, .pt2)",
                                "An opaque teacher: the checkpoint is an ONNX, TorchScript or "
                                "torch.export .pt2 file, used as it is (epochs 0; logit "
                                "methods only)")]


def _method_choices() -> list[Choice]:
    from kdstudio.core.distill.methods import METHODS, list_methods

    return [(n, METHODS.get(n).label or n, entry_doc(METHODS.get(n))) for n in list_methods()]


def _device_choices() -> list[Choice]:
    from kdstudio.core.devices import available_devices

    return [("auto", "Auto (best available)", "")] + [(n, label, "")
                                                       for n, label in available_devices()]


def _sgd_only(values: Values) -> str:
    name = OPTIMIZER_LABELS.get(str(value_at(values, "optim.name")), "this optimiser")
    return f"Not used: only SGD has this momentum ({name} keeps its own moments)."


def _static(pairs: dict[str, str]) -> Callable[[], list[Choice]]:
    return lambda: [(value, label, "") for value, label in pairs.items()]


TRANSFER_LABELS = {"labelled": "the labelled examples",
                   "all": "all training inputs (labels unused)",
                   "dataset": "inputs of another dataset"}
LOADER_LABELS = {"auto": "auto (memory when it fits)", "memory": "memory (decoded once)",
                 "stream": "stream (read while training)"}
AUGMENT_LABELS = {"none": "none", "crop-flip": "random crop (4 px padding) and flip"}
assert set(LOADER_LABELS) == set(LOADERS) and set(AUGMENT_LABELS) == set(AUGMENTS)
OPTIMIZER_LABELS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def _field(key: str, label: str, kind: str, name: str = "", **extra: Any) -> Field:
    group = extra.pop("group", key.split(".")[0] if "." in key else "run")
    return Field(key, label, kind, group, name, tip=extra.pop("tip", TIPS.get(key, "")),
                 rule=RULES.get(key), **extra)


def _schedule_fields() -> list[Field]:
    from kdstudio.core.distill.schedules import SCHEDULED_KEYS

    names = {"ce_weight": "CE weight", "kd_weight": "KD weight"}
    return [_field(f"distill.schedules.{key}", names.get(key, key.replace("_", " ").capitalize()),
                   "schedule", f"schedule_{key}", group="more", tip=SCHEDULE_TIP.format(key=key),
                   heading="Schedules over the distillation phase" if i == 0 else "")
            for i, key in enumerate(SCHEDULED_KEYS)]


def _build_fields() -> tuple[Field, ...]:
    f = _field
    return (
        f("name", "Name", "text", "runNameEdit",
          placeholder="made from dataset, models and method"),
        f("seed", "Seed", "int", "seedSpin"),
        f("device", "Device", "choice", "deviceCombo", choices=_device_choices),
        f("data.dataset", "Dataset", "choice", "datasetCombo", choices=_dataset_choices),
        f("data.path", "Folder", "folder", "dataPathEdit", shown=_needs_path("data.dataset"),
          blank_when_hidden=True, placeholder="folder with the data files"),
        f("data.params", "", "params", owner="data.dataset"),
        f("data.batch_size", "Batch size", "int", "batchSizeSpin"),
        f("data.val_fraction", "Validation fraction", "float", "valFractionSpin"),
        f("data.test_fraction", "Test fraction", "float", "testFractionSpin",
          enabled=lambda v: not has_official_test(v), unused_tip=lambda v: OFFICIAL_TEST_TIP),
        f("teacher.checkpoint", "Checkpoint", "file", "teacherCheckpointEdit",
          placeholder="teacher.safetensors, a .pt state dict, or an ONNX / TorchScript / .pt2"),
        f("teacher.arch", "Architecture", "model", "teacherArchCombo",
          choices=_teacher_choices),
        f("teacher.params", "", "params", owner="teacher.arch"),
        f("teacher.epochs", "Epochs", "int", "teacherEpochsSpin"),
        f("teacher.lr", "Learning rate", "float", "teacherLrSpin", special="same as optimiser"),
        f("student.arch", "Architecture", "model", "studentArchCombo", choices=_model_choices),
        f("student.params", "", "params", owner="student.arch"),
        f("distill.method", "Method", "choice", "methodCombo", choices=_method_choices),
        f("distill.temperature", "Temperature T", "float", "temperatureSpin",
          enabled=_uses_temperature, unused_tip=lambda v: f"Not used: {_method_name(v)} "
          "does not soften the logits with a temperature."),
        f("distill.ce_weight", "CE weight α", "float", "ceWeightSpin",
          enabled=_weighs_ce, unused_tip=_ce_weight_unused),
        f("distill.kd_weight", "KD weight β", "float", "kdWeightSpin", enabled=_uses_part("kd"),
          unused_tip=_not_in_loss("kd", "KL term")),
        f("distill.feature_weight", "Feature weight γ", "float", "featureWeightSpin",
          enabled=_uses_part("feature"), unused_tip=_not_in_loss("feature", "feature term")),
        f("distill.student_layer", "Student hint layer", "layer", "studentLayerCombo",
          shown=_uses_hints, blank_when_hidden=True),
        f("distill.teacher_layer", "Teacher hint layer", "layer", "teacherLayerCombo",
          shown=_uses_hints, blank_when_hidden=True),
        f("distill.params", "", "params", owner="distill.method"),
        f("distill.baseline", "Also train the student alone (baseline)", "bool",
          "baselineCheck", enabled=uses_teacher, unused_tip=lambda v: "Not used: "
          f"{_method_name(v)} has no teacher, so the run is a baseline already."),
        f("optim.name", "Optimiser", "choice", "optimizerCombo",
          choices=_static({n: OPTIMIZER_LABELS.get(n, n) for n in OPTIMIZERS})),
        f("optim.lr", "Learning rate", "float", "lrSpin"),
        f("optim.momentum", "Momentum", "float", "momentumSpin",
          enabled=lambda v: value_at(v, "optim.name") == "sgd", unused_tip=_sgd_only),
        f("optim.nesterov", "Nesterov momentum", "bool", "nesterovCheck",
          enabled=lambda v: value_at(v, "optim.name") == "sgd", unused_tip=_sgd_only),
        f("optim.weight_decay", "Weight decay", "float", "weightDecaySpin"),
        f("optim.schedule", "Schedule", "choice", "scheduleCombo",
          choices=_static({n: n for n in SCHEDULES})),
        f("optim.step_size", "Step size (epochs)", "int", "stepSizeSpin",
          shown=lambda v: value_at(v, "optim.schedule") == "step",
          special="a third of the epochs"),
        f("optim.gamma", "Gamma", "float", "gammaSpin",
          shown=lambda v: value_at(v, "optim.schedule") in ("step", "multistep")),
        f("optim.milestones", "Milestones (epochs)", "list", "milestonesEdit", item_type=int,
          shown=lambda v: value_at(v, "optim.schedule") == "multistep",
          placeholder="comma-separated, e.g. 150, 180, 210"),
        f("optim.epochs", "Student epochs", "int", "epochsSpin"),
        *_schedule_fields(),
        f("data.label_fraction", "Labelled share", "float", "labelFractionSpin", group="more",
          heading="Labels and transfer set", enabled=lambda v: not value_at(v, "data.label_count"),
          unused_tip=lambda v: "Not used: 'Labelled examples' is set and takes its place."),
        f("data.label_count", "Labelled examples", "int", "labelCountSpin", group="more",
          special="use the share"),
        f("data.transfer", "KD terms on", "choice", "transferCombo", group="more",
          choices=_static({n: TRANSFER_LABELS.get(n, n) for n in TRANSFER_SETS})),
        f("data.transfer_dataset", "Transfer dataset", "choice", "transferDatasetCombo",
          group="more", choices=_dataset_choices, shown=_other_dataset, blank_when_hidden=True),
        f("data.transfer_path", "Transfer folder", "folder", "transferPathEdit", group="more",
          shown=lambda v: _other_dataset(v) and _needs_path("data.transfer_dataset")(v),
          blank_when_hidden=True, placeholder="folder with the transfer data files"),
        f("data.transfer_params", "", "params", group="more", owner="data.transfer_dataset",
          shown=_other_dataset, blank_when_hidden=True),
        f("data.augment", "Augmentation", "choice", "augmentCombo", group="more",
          heading="Input pipeline", choices=_static(AUGMENT_LABELS)),
        f("data.loader", "Loader", "choice", "loaderCombo", group="more",
          choices=_static(LOADER_LABELS)),
        f("data.workers", "Loader workers", "int", "workersSpin", group="more",
          special="none (in the training process)",
          enabled=lambda v: value_at(v, "data.loader") != "memory",
          unused_tip=lambda v: "Not used: the memory loader decodes the data once, in the "
          "training process."),
        f("distill.cache_teacher", "Cache the teacher's outputs", "bool", "cacheTeacherCheck",
          group="more", heading="Speed", enabled=lambda v: value_at(v, "data.augment") == "none",
          unused_tip=lambda v: "Not used: augmentation gives new inputs every epoch."),
        f("autocast", "Mixed precision (CUDA)", "bool", "autocastCheck", group="more",
          enabled=lambda v: not str(value_at(v, "device")).startswith(("cpu", "mps")),
          unused_tip=lambda v: f"Not used: mixed precision is for CUDA (device "
          f"{value_at(v, 'device')})."),
        f("compile", "Compile the models (torch.compile)", "bool", "compileCheck", group="more"),
        f("threads", "CPU threads", "int", "threadsSpin", group="more", special="auto"),
        f("keep_checkpoints", "Keep the resumable checkpoint after the run", "bool",
          "keepCheckpointsCheck", group="more"),
    )


FIELDS: tuple[Field, ...] = _build_fields()
FIELDS_BY_KEY: dict[str, Field] = {field.key: field for field in FIELDS}


# ---------------------------------------------------------------- registry parameters


def method_param_rule(spec: Any) -> NumberRule:
    """The rule of a method parameter, from its `ParamSpec`."""
    return NumberRule(int if spec.integer else float, low=spec.minimum, high=spec.maximum,
                      text=f"in [{spec.minimum}, {spec.maximum}]")


def _param_kind(default: Any) -> tuple[str, type]:
    if isinstance(default, bool):
        return "bool", bool
    if isinstance(default, int):
        return "int", int
    if isinstance(default, float):
        return "float", float
    if isinstance(default, (list, tuple)):
        return "list", float if any(isinstance(v, float) for v in default) else int
    return "text", str


def _show(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else repr(value)


def param_fields(params_key: str, entry_name: str) -> list[Field]:
    """The fields of a params table (e.g. `teacher.params` for architecture `entry_name`),
    from the registry's schema: model factory defaults, dataset defaults or method specs."""
    label = _label
    if params_key == "distill.params":
        from kdstudio.core.distill.methods import METHODS

        if entry_name not in METHODS:
            return []
        fields = []
        for spec in METHODS.get(entry_name).params:
            low = "-∞" if spec.minimum is None else f"{spec.minimum:g}"
            high = "∞" if spec.maximum is None else f"{spec.maximum:g}"
            fields.append(Field(
                f"distill.params.{spec.name}", label(spec.name), "int" if spec.integer
                else "float", "distill", f"methodParam_{spec.name}",
                tip=f"distill.params.{spec.name}: {spec.help}\ndefault {spec.default:g}; "
                    f"allowed [{low}, {high}]",
                rule=method_param_rule(spec), default=spec.default))
        return fields
    defaults, help_text = _schema(params_key, entry_name)
    fields = []
    for name, default in defaults.items():
        kind, item_type = _param_kind(default)
        if name == "file" and entry_name == "custom" and params_key.endswith(".params"):
            kind = "file"  # the Python file a custom model comes from: a file picker
        tip = f"{params_key}.{name} (default: {_show(default)})"
        fields.append(Field(f"{params_key}.{name}", label(name), kind, params_key.split(".")[0],
                            f"{params_key.replace('.', '_')}_{name}",
                            tip=tip + (f"\n\n{help_text}" if help_text else ""),
                            item_type=item_type, default=default,
                            placeholder="comma-separated, e.g. 32, 64" if kind == "list" else ""))
    return fields


def _schema(params_key: str, entry_name: str) -> tuple[dict[str, Any], str]:
    if params_key in ("data.params", "data.transfer_params"):
        from kdstudio.core.data import DATASETS

        if entry_name not in DATASETS:
            return {}, ""
        entry = DATASETS.get(entry_name)
        return dict(entry.defaults), entry.description
    from kdstudio.core.models import MODELS, model_defaults

    if entry_name not in MODELS:
        return {}, ""
    return model_defaults(entry_name), entry_doc(MODELS.get(entry_name))


def _label(name: str) -> str:
    """`hidden_sizes` -> `Hidden sizes`."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- what a form kept


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Equal values; 2 and 2.0 are the same number, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _describe(value: Any) -> str:
    return "nothing" if value is _MISSING else repr(value)


def config_differences(wanted: Values, held: Values, prefix: str = "") -> list[str]:
    """Every value of `wanted` that `held` does not have exactly, by key path."""
    problems = []
    for key in [*wanted, *(k for k in held if k not in wanted)]:
        path = f"{prefix}.{key}" if prefix else key
        a, b = wanted.get(key, _MISSING), held.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            problems += config_differences(a, b, path)
        elif not _same(a, b):
            problems.append(f"{path}: the form cannot hold {_describe(a)} (it shows "
                            f"{_describe(b)})")
    return problems
