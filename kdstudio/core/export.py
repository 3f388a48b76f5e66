"""Take a saved run's student away: safetensors + JSON, TorchScript, ONNX, a model card.

Only the student is exported (never adapters, regressors or other training-only heads).
Every written model file is reloaded and run on a batch of real inputs (the run's own
test split, prepared again from its config) and compared with the student as the app
loads it; the largest absolute difference goes into the report, the model card and the
`artifacts` table (kind `export`). Metrics of any runs can be written as one CSV file.

torch is imported lazily, so the metrics CSV needs no torch.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstudio.core.store import Store

if TYPE_CHECKING:
    import torch

    from kdstudio.core.models import FeatureModel

FORMATS = ("safetensors", "torchscript", "onnx")
FILE_NAMES = {"safetensors": "student.safetensors", "torchscript": "student.pt",
              "onnx": "student.onnx"}
SPEC_NAME = "student.json"
CARD_NAME = "MODEL_CARD.md"
CHECK_SAMPLES = 256
LATENCY_BUDGET_S = 0.4
METRIC_COLUMNS = ("run_id", "run_name", "phase", "step", "epoch", "name", "value", "wall_time")

Progress = Callable[[str], None]


class ExportError(Exception):
    """A problem the user can fix (unknown run, nothing saved, unwritable folder)."""


@dataclass
class ExportedFile:
    """One written file and how it compared with the in-app student."""

    format: str
    path: Path
    size_bytes: int
    max_abs_diff: float | None = None
    checked_with: str = ""
    ok: bool = True


@dataclass
class ExportReport:
    run_id: int
    run_name: str
    out_dir: Path
    files: list[ExportedFile] = field(default_factory=list)
    inputs: str = ""
    batch_size: int = 0
    student_latency_ms: float | None = None
    teacher_latency_ms: float | None = None
    student_params: int = 0
    teacher_params: int | None = None

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.files)

    def lines(self) -> list[str]:
        """A short human-readable account, one line per file."""
        out = [f"Run {self.run_id} ({self.run_name}): student exported to {self.out_dir}",
               f"Checked on {self.inputs}"]
        for item in self.files:
            check = ""
            if item.max_abs_diff is not None:
                check = (f"  max |diff| {item.max_abs_diff:.2e} ({item.checked_with})"
                         + ("" if item.ok else "  MISMATCH"))
            elif item.checked_with:
                check = f"  {item.checked_with}"
            out.append(f"  {item.path.name:<22} {_size_text(item.size_bytes):>9}{check}")
        if self.student_latency_ms is not None:
            line = (f"CPU latency per batch of {self.batch_size}: student "
                    f"{self.student_latency_ms:.3f} ms")
            if self.teacher_latency_ms is not None:
                line += f", teacher {self.teacher_latency_ms:.3f} ms"
            out.append(line)
        return out


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """'all', one format, a comma list or a list of formats -> formats in a fixed order."""
    items = [text] if isinstance(text, str) else list(text)
    names = {part.strip().lower() for item in items for part in item.split(",") if part.strip()}
    if "all" in names:
        return list(FORMATS)
    unknown = sorted(names - set(FORMATS))
    if unknown or not names:
        raise ExportError(f"--format: unknown format {', '.join(unknown) or '(none)'} "
                          f"(choose from: {', '.join(FORMATS)}, all)")
    return [name for name in FORMATS if name in names]


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


def real_inputs(run: dict[str, Any], input_shape: list[int], count: int
                ) -> tuple[torch.Tensor, str]:
    """Up to `count` normalised test inputs of the run's dataset, and where they came from.

    When the data cannot be prepared again (a file dataset moved away), the check falls
    back to standard-normal inputs, which is what normalised data looks like, and says so.
    """
    import torch

    from kdstudio.core.analysis import run_data

    dataset = run["config"].get("data", {}).get("dataset", "?")
    try:
        splits = run_data(run)
    except Exception as error:  # noqa: BLE001 - any data failure falls back, and says why
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(count, *input_shape, generator=generator)
        return x, f"{count} standard-normal inputs (the {dataset} data could not be " \
                  f"prepared again: {error})"
    if list(splits.input_shape) != list(input_shape):
        raise ExportError(f"the {dataset} data now has inputs shaped "
                          f"{list(splits.input_shape)}, the student expects {input_shape}")
    source = splits.x_test if len(splits.x_test) else splits.x_val
    x = source[:count].clone()
    return x, f"{len(x)} real test inputs of {dataset}"


def measure_latency_ms(model: torch.nn.Module, batch: torch.Tensor,
                       budget_s: float = LATENCY_BUDGET_S) -> float:
    """Median single-thread CPU time of one forward pass on `batch`, in milliseconds.

    One thread, because on a shared machine a busy core stalls a multi-threaded forward pass
    for a whole scheduler tick, which would measure the neighbours rather than the model.
    """
    import torch

    model = model.cpu().eval()
    times: list[float] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(batch)
            started = time.perf_counter()
            while len(times) < 5 or (time.perf_counter() - started < budget_s
                                     and len(times) < 200):
                begin = time.perf_counter()
                model(batch)
                times.append(time.perf_counter() - begin)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times) * 1000.0


def _latency_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    import torch

    if len(x) >= size:
        return x[:size].contiguous()
    repeats = math.ceil(size / max(len(x), 1))
    return torch.cat([x] * repeats)[:size].contiguous()


# ---------------------------------------------------------------- writing and checking


@contextlib.contextmanager
def _quiet_torch() -> Any:
    """Keep exporter chatter (deprecations, registry warnings) off the user's console."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo",
                                                    "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _max_diff(expected: torch.Tensor, got: Any) -> float:
    import torch

    got_tensor = torch.as_tensor(got, dtype=torch.float32)
    if got_tensor.shape != expected.shape:
        return math.inf
    return float((got_tensor - expected).abs().max()) if expected.numel() else 0.0


def _tolerance(expected: torch.Tensor) -> float:
    """1e-5, relaxed in proportion for logits much larger than 1."""
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    return 1e-5 * max(1.0, scale)


def student_description(spec: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The content of student.json: everything needed to rebuild and feed the student."""
    return {
        "arch": spec["arch"],
        "params": spec["params"],
        "input_shape": spec["input_shape"],
        "num_classes": spec["num_classes"],
        "class_names": spec.get("class_names", []),
        "mean": spec.get("mean", []),
        "std": spec.get("std", []),
        "normalisation": "x = (raw - mean) / std, per channel (dimension 1) for inputs shaped "
                         "(C, ...); one mean and std for flat inputs",
        "weights": FILE_NAMES["safetensors"],
        "rebuild": "kdstudio.core.models.create_model(arch, input_shape, num_classes, **params), "
                   "then load_state_dict(safetensors.torch.load_file(weights))",
        "source": {"run_id": run["id"], "run_name": run["name"],
                   "created_at": run["created_at"]},
    }


def rebuild_student(spec_path: str | Path) -> FeatureModel:
    """The student from `student.json` and the `student.safetensors` named in it."""
    from kdstudio.core.checkpoint import build_model

    spec_path = Path(spec_path)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    return build_model(spec, spec_path.parent / spec.get("weights", FILE_NAMES["safetensors"]))


def _write_safetensors(student: FeatureModel, folder: Path, description: dict[str, Any]
                       ) -> list[Path]:
    from safetensors.torch import save_file

    weights = folder / FILE_NAMES["safetensors"]
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(weights), metadata={"kdstudio_student": json.dumps(description)})
    return [weights]


def _write_torchscript(student: FeatureModel, x: torch.Tensor, folder: Path) -> Path:
    import torch

    path = folder / FILE_NAMES["torchscript"]
    with _quiet_torch():
        traced = torch.jit.trace(student, x[: max(2, min(len(x), 8))], check_trace=False)
        traced.save(str(path))
    return path


def _write_onnx(student: FeatureModel, x: torch.Tensor, folder: Path) -> Path:
    import torch
    from torch.export import Dim

    path = folder / FILE_NAMES["onnx"]
    example = x[:2] if len(x) >= 2 else torch.cat([x, x])[:2]
    with _quiet_torch():
        torch.onnx.export(student, (example,), str(path), dynamo=True, external_data=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: Dim("batch")},), verbose=False)
    return path


def _check(fmt: str, path: Path, folder: Path, x: torch.Tensor, expected: torch.Tensor
           ) -> tuple[float | None, str]:
    """Reload an exported file, run it on `x`; (max abs difference, what ran it)."""
    import torch

    if fmt == "safetensors":
        with torch.no_grad():
            got = rebuild_student(folder / SPEC_NAME)(x)
        return _max_diff(expected, got), "rebuilt from student.json + student.safetensors"
    if fmt == "torchscript":
        with _quiet_torch(), torch.no_grad():
            got = torch.jit.load(str(path), map_location="cpu")(x)
        return _max_diff(expected, got), "torch.jit.load"
    try:
        import onnxruntime
    except ImportError:
        import onnx

        onnx.checker.check_model(str(path))
        return None, "onnx.checker passed; onnxruntime is not installed, outputs not compared"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # no spinning worker threads left behind after the check
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return _max_diff(expected, got), f"onnxruntime {onnxruntime.__version__}"


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


def _record(store: Store, run_id: int, report: ExportReport) -> None:
    """One `export` artifact per file; a re-export to the same path replaces its row."""
    common = {"out_dir": str(report.out_dir), "inputs": report.inputs,
              "batch_size": report.batch_size, "student_latency_ms": report.student_latency_ms,
              "teacher_latency_ms": report.teacher_latency_ms}
    with store.writing(), store.db.atomic():
        for item in report.files:
            store.db.execute("DELETE FROM artifacts WHERE run_id = ? AND kind = 'export' "
                             "AND path = ?", [run_id, store.stored_path(item.path)])
            if not item.path.is_file():  # a format that failed wrote nothing to record
                continue
            meta = common | {"max_abs_diff": item.max_abs_diff, "checked_with": item.checked_with,
                             "ok": item.ok}
            store.add_artifact(run_id, "export", item.path, item.format, meta)


# ---------------------------------------------------------------- model card


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "-"


def _size_text(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.2f} MiB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} KiB"
    return f"{size} B"


def model_card(run: dict[str, Any], spec: dict[str, Any], report: ExportReport) -> str:
    """MODEL_CARD.md: data, models, method and weights, accuracies, sizes, latency, checks."""
    config = run["config"]
    data, distill = config.get("data", {}), config.get("distill", {})
    teacher_cfg, student_cfg = config.get("teacher", {}), config.get("student", {})
    uses_teacher = report.teacher_params is not None or run.get("teacher_test_acc") is not None
    lines = [
        f"# Model card: student of run {run['id']} ({run['name']})",
        "",
        f"Exported {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} by KD Studio from a "
        f"run started {run['created_at']} (status: {run['status']}, seed {run['seed']}, "
        f"device {run.get('device') or '-'}).",
        "",
        "## Data",
        "",
        f"- Dataset: `{data.get('dataset')}`" + (f" at `{data['path']}`" if data.get("path")
                                                 else ""),
        f"- Dataset parameters: `{json.dumps(data.get('params', {}))}`",
        f"- Input shape (without the batch dimension): `{spec['input_shape']}`; "
        f"{spec['num_classes']} classes: {', '.join(map(str, spec.get('class_names', [])))}",
        f"- Input normalisation: `x = (raw - mean) / std` with mean `{_short(spec.get('mean'))}` "
        f"and std `{_short(spec.get('std'))}` (statistics of the training split)",
        "",
        "## Models",
        "",
        "| | architecture | parameters | params (count) |",
        "|---|---|---|---|",
    ]
    if uses_teacher:
        lines.append(f"| teacher | `{teacher_cfg.get('arch')}` | "
                     f"`{json.dumps(teacher_cfg.get('params', {}))}` | "
                     f"{_count(report.teacher_params or run.get('teacher_params'))} |")
    lines.append(f"| student | `{spec['arch']}` | `{json.dumps(spec['params'])}` | "
                 f"{_count(report.student_params)} |")
    if report.teacher_params:
        lines += ["", f"Compression: {report.teacher_params / max(report.student_params, 1):.1f}x "
                      "fewer parameters than the teacher."]
    lines += [
        "",
        "## Training",
        "",
        f"- Method: `{distill.get('method')}`, temperature T = {distill.get('temperature')}",
        f"- Loss weights: ce {distill.get('ce_weight')}, kd {distill.get('kd_weight')}, "
        f"feature {distill.get('feature_weight')}",
        f"- Optimiser: `{json.dumps(config.get('optim', {}))}`",
        f"- Batch size {data.get('batch_size')}, teacher epochs {teacher_cfg.get('epochs')}"
        + (f", teacher checkpoint `{teacher_cfg['checkpoint']}`"
           if teacher_cfg.get("checkpoint") else ""),
        f"- Student parameters config: `{json.dumps(student_cfg.get('params', {}))}`",
        "",
        "## Accuracy",
        "",
        "| model | best val | last val | test |",
        "|---|---|---|---|",
    ]
    for phase, label in (("teacher", "teacher"), ("baseline", "student alone (baseline)"),
                         ("student", "student + distillation (exported)")):
        values = [run.get(f"{phase}_{what}") for what in ("best_val_acc", "last_val_acc",
                                                          "test_acc")]
        if any(v is not None for v in values):
            lines.append(f"| {label} | " + " | ".join(_pct(v) for v in values) + " |")
    if run.get("kd_gain") is not None:
        lines += ["", f"KD gain (student + distillation - student alone, test accuracy): "
                      f"{run['kd_gain'] * 100:+.2f} points."]
    lines += ["", "## Files", "", "| file | size | check against the in-app student |",
              "|---|---|---|"]
    for item in report.files:
        if item.max_abs_diff is not None:
            check = (f"max abs difference {item.max_abs_diff:.2e} ({item.checked_with})"
                     + ("" if item.ok else " - **does not match**"))
        else:
            check = item.checked_with or "-"
        lines.append(f"| `{item.path.name}` | {_size_text(item.size_bytes)} | {check} |")
    lines += ["", f"Checks ran on {report.inputs}."]
    lines += ["", "## CPU latency", ""]
    if report.student_latency_ms is not None:
        lines += [f"Median time of one forward pass on a batch of {report.batch_size}, one CPU "
                  "thread, measured at export time on the exporting machine (a short timing, "
                  "indicative only):", "",
                  "| model | ms per batch |", "|---|---|",
                  f"| student | {report.student_latency_ms:.3f} |"]
        if report.teacher_latency_ms is not None:
            lines.append(f"| teacher | {report.teacher_latency_ms:.3f} |")
    lines += ["", "## Use", "", "```python",
              "from kdstudio.core.export import rebuild_student",
              "model = rebuild_student('student.json')  # or torch.jit.load('student.pt')",
              "logits = model((raw - mean) / std)", "```",
              "", "Only the student is exported; adapters and other training-only heads are not.",
              ""]
    return "\n".join(lines)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _short(values: Any) -> str:
    if not isinstance(values, list):
        return "-"
    shown = ", ".join(f"{v:.4g}" for v in values[:4])
    return f"[{shown}{', ...' if len(values) > 4 else ''}]"


# ---------------------------------------------------------------- metrics CSV


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def export_metrics_csv(store: Store, run_keys: Iterable[str | int], out_path: str | Path) -> int:
    """All metric rows of the runs as one CSV (long format); returns the number of rows."""
    keys = list(run_keys)
    if not keys:
        raise ExportError("name at least one run")
    runs, missing = [], []
    for key in keys:
        run = store.find_run(key)
        (runs.append(run) if run is not None else missing.append(str(key)))
    if missing:
        raise ExportError(f"no run {', '.join(repr(m) for m in missing)} in {store.path}")
    path = Path(out_path).expanduser()
    if path.is_dir():
        raise ExportError(f"--out: {path} is a folder; give a file name such as metrics.csv")
    store.flush()
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(METRIC_COLUMNS)
            for run in runs:
                rows = store.db.execute(
                    "SELECT phase, step, epoch, name, value, wall_time FROM metrics "
                    "WHERE run_id = ? ORDER BY rowid", [run["id"]])
                for phase, step, epoch, name, value, wall in rows:
                    writer.writerow((run["id"], run["name"], phase, step, epoch, name,
                                     _number(value), _number(wall)))
                    count += 1
    except OSError as error:
        raise ExportError(f"--out: cannot write {path} ({error.strerror or error})") from None
    return count
