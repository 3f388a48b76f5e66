"""Take a saved run's student away: safetensors + JSON, TorchScript, ONNX, a model card.

Only the student is exported (never adapters, regressors or other training-only heads).
Every written model file is reloaded and run on a batch of real inputs (the run's own
test split, prepared again from its config) and compared with the student as the app
loads it; the largest absolute difference goes into the report, the model card and the
`artifacts` table (kind `export`). Metrics of any runs can be written as one CSV file.

torch is imported lazily, so the metrics CSV needs no torch. The parts: `formats` (writing
each format, rebuilding from the spec), `verify` (real inputs, reload-and-compare, latency),
`card` (MODEL_CARD.md), `metrics_csv`, `report` (what an export produced); this module runs
an export and records its files in the history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstudio.core.export.card import CARD_NAME, model_card
from kdstudio.core.export.formats import (
    FILE_NAMES,
    FORMATS,
    SPEC_NAME,
    _write_onnx,
    _write_safetensors,
    _write_torchscript,
    give_user_permissions,
    parse_formats,
    rebuild_student,
    student_description,
)
from kdstudio.core.export.metrics_csv import METRIC_COLUMNS, export_metrics_csv
from kdstudio.core.export.report import ExportedFile, ExportError, ExportReport, Progress
from kdstudio.core.export.verify import (
    CHECK_SAMPLES,
    LATENCY_BUDGET_S,
    _check,
    _latency_batch,
    _tolerance,
    measure_latency_ms,
    real_inputs,
)
from kdstudio.core.store import Store

if TYPE_CHECKING:
    from kdstudio.core.models import FeatureModel

__all__ = [
    "CARD_NAME", "CHECK_SAMPLES", "FILE_NAMES", "FORMATS", "LATENCY_BUDGET_S", "METRIC_COLUMNS",
    "SPEC_NAME", "ExportError", "ExportReport", "ExportedFile", "Progress", "export_metrics_csv",
    "export_student", "find_run", "load_saved_model", "measure_latency_ms", "model_card",
    "parse_formats", "real_inputs", "rebuild_student", "saved_spec", "student_description",
]


# ---------------------------------------------------------------- loading a run's models


def find_run(store: Store, key: str | int) -> dict[str, Any]:
    run = store.find_run(key)
    if run is None:
        raise ExportError(f"no run '{key}' in {store.path}")
    return run


def load_saved_model(store: Store, run: dict[str, Any], kind: str) -> FeatureModel | None:
    """The run's saved `kind` model (teacher, baseline, student), or None when not saved."""
    from kdstudio.core.checkpoint import load_model

    rows = [row for row in store.artifacts(run["id"], kind) if row["format"] == "safetensors"]
    if not rows:
        return None
    weights = store.artifact_file(rows[-1]["path"])
    sidecar = weights.with_suffix(".json")
    if not weights.is_file() or not sidecar.is_file():
        raise ExportError(f"the {kind} files of run {run['id']} are missing "
                          f"({weights.name} or {sidecar.name} in {weights.parent})")
    try:
        return load_model(sidecar)
    except (ValueError, KeyError, OSError) as error:
        raise ExportError(f"cannot load the {kind} of run {run['id']}: {error}") from None


def saved_spec(store: Store, run: dict[str, Any], kind: str = "student") -> dict[str, Any]:
    rows = [row for row in store.artifacts(run["id"], kind) if row["format"] == "safetensors"]
    sidecar = store.artifact_file(rows[-1]["path"]).with_suffix(".json")
    return json.loads(sidecar.read_text(encoding="utf-8"))


def export_student(store: Store, run_key: str | int, out_dir: str | Path,
                   formats: Iterable[str] | str = "all", on_progress: Progress | None = None
                   ) -> ExportReport:
    """Write the run's student in `formats` plus student.json and MODEL_CARD.md to `out_dir`.

    Raises ExportError for bad input; a file that does not match the student is reported
    (ExportReport.ok is False), not raised.
    """
    import torch

    say = on_progress or (lambda _message: None)
    chosen = parse_formats(formats)
    run = find_run(store, run_key)
    say("Loading the saved student")
    student = load_saved_model(store, run, "student")
    if student is None:
        raise ExportError(f"run {run['id']} ({run['name']}, {run['status']}) has no saved "
                          "student; only a run that trained its student can be exported")
    spec = saved_spec(store, run)
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"--out: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"--out: cannot create {folder} ({error.strerror})") from None
    say("Preparing real inputs for the checks")
    batch_size = int(run["config"].get("data", {}).get("batch_size") or 64)
    x, inputs = real_inputs(run, spec["input_shape"], max(CHECK_SAMPLES, batch_size))
    x_check = x[:CHECK_SAMPLES]
    with torch.no_grad():
        expected = student(x_check)
    report = ExportReport(run["id"], run["name"], folder, inputs=inputs, batch_size=batch_size)
    from kdstudio.core.models import count_parameters

    report.student_params = count_parameters(student)
    description = student_description(spec, run)
    try:
        _copy_code(student, folder, description)
        spec_file = folder / SPEC_NAME
        spec_file.write_text(json.dumps(description, indent=2), encoding="utf-8")
        written: list[tuple[str, Path]] = [("json", spec_file)]
        for fmt in chosen:
            say(f"Writing {FILE_NAMES[fmt]}")
            try:
                if fmt == "safetensors":
                    path = _write_safetensors(student, folder, description)[0]
                elif fmt == "torchscript":
                    path = _write_torchscript(student, x_check, folder)
                else:
                    path = _write_onnx(student, x_check, folder)
                say(f"Checking {FILE_NAMES[fmt]}")
                diff, how = _check(fmt, path, folder, x_check, expected)
            except OSError:
                raise
            except Exception as error:  # noqa: BLE001 - a format that fails is reported
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                report.files.append(ExportedFile(
                    fmt, folder / FILE_NAMES[fmt], 0, None,
                    f"failed: {type(error).__name__} {reason}".strip(), False))
                continue
            give_user_permissions(path)
            ok = diff is None or diff <= _tolerance(expected)
            report.files.append(ExportedFile(fmt, path, path.stat().st_size, diff, how, ok))
            written.append((fmt, path))
    except OSError as error:
        raise ExportError(f"--out: cannot write in {folder} ({error.strerror or error})") from None
    say("Timing the student and the teacher on the CPU")
    batch = _latency_batch(x, batch_size)
    report.student_latency_ms = measure_latency_ms(student, batch)
    teacher = load_saved_model(store, run, "teacher")
    if teacher is not None:
        report.teacher_params = count_parameters(teacher)
        report.teacher_latency_ms = measure_latency_ms(teacher, batch)
    report.files.insert(0, ExportedFile("json", spec_file, spec_file.stat().st_size,
                                        checked_with="rebuild spec"))
    card = folder / CARD_NAME
    card.write_text(model_card(run, spec, report), encoding="utf-8")
    report.files.append(ExportedFile("markdown", card, card.stat().st_size))
    _record(store, run["id"], report)
    say("Done")
    return report


def _copy_code(student: FeatureModel, folder: Path, description: dict[str, Any]) -> None:
    """A custom student's code (the bytes it was built from) goes beside student.json, which
    names its sha256: `rebuild_student` builds from that copy."""
    source = getattr(student, "code_source", None)
    if source is None:
        return
    from kdstudio.core.models.custom import copy_name

    digest = student.code_sha256
    code = folder / "code"
    code.mkdir(exist_ok=True)
    (code / copy_name(str(description["params"].get("file", "")), digest)).write_bytes(source)
    description["code_sha256"] = digest


def _record(store: Store, run_id: int, report: ExportReport) -> None:
    """One `export` artifact per file; a re-export to the same path replaces its row."""
    common = {"out_dir": str(report.out_dir), "inputs": report.inputs,
              "batch_size": report.batch_size, "student_latency_ms": report.student_latency_ms,
              "teacher_latency_ms": report.teacher_latency_ms}
    # a format that failed wrote nothing: its old row goes and no new one is recorded
    store.replace_artifacts(run_id, "export", [
        (item.path, item.format, common | {"max_abs_diff": item.max_abs_diff,
                                           "checked_with": item.checked_with, "ok": item.ok})
        for item in report.files])
