"""MODEL_CARD.md: what a reader of an exported student needs to know about it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kdstudio.core.config.fields import TRANSFER_LABELS
from kdstudio.core.export.report import ExportReport, _size_text

CARD_NAME = "MODEL_CARD.md"


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "-"


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
        f"- Label budget: {label_budget_text(data)}",
        f"- Transfer set (inputs the KD terms use): {transfer_set_text(data)}",
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


def label_budget_text(data: dict[str, Any]) -> str:
    """How many training labels the student used, as the config set it."""
    count = data.get("label_count") or 0
    fraction = data.get("label_fraction", 1.0)
    if isinstance(count, int) and count > 0:
        return f"{count:,} labelled training examples (`data.label_count = {count}`)"
    if isinstance(fraction, (int, float)) and fraction < 1.0:
        return (f"{fraction:.2%} of the training examples are labelled "
                f"(`data.label_fraction = {fraction}`)")
    return "every training example is labelled"


def transfer_set_text(data: dict[str, Any]) -> str:
    """The examples the distillation terms were computed on."""
    transfer = str(data.get("transfer") or "labelled")
    label = TRANSFER_LABELS.get(transfer, transfer)
    if transfer == "dataset":
        where = f" at `{data['transfer_path']}`" if data.get("transfer_path") else ""
        return (f"{label}: `{data.get('transfer_dataset')}`{where}, parameters "
                f"`{json.dumps(data.get('transfer_params', {}))}` (`data.transfer = dataset`)")
    return f"{label} (`data.transfer = {transfer}`)"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _short(values: Any) -> str:
    if not isinstance(values, list):
        return "-"
    shown = ", ".join(f"{v:.4g}" for v in values[:4])
    return f"[{shown}{', ...' if len(values) > 4 else ''}]"


# ---------------------------------------------------------------- metrics CSV
