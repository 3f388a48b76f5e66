"""How the form names things to the user: problems by the fields' labels, and the name of
a run changed away from the config it was loaded from."""

from __future__ import annotations

from typing import Any

from kdstudio.core.config.fields import FIELDS, GROUPS
from kdstudio.core.config.rules import value_at


def _form_labels() -> dict[str, str]:
    """Each field's label as the form shows it; a label used twice gets its box's title."""
    shown = [f for f in FIELDS if f.label and f.kind != "params"]
    counts: dict[str, int] = {}
    for f in shown:
        counts[f.label] = counts.get(f.label, 0) + 1
    return {f.key: f.label if counts[f.label] == 1
            else f"{GROUPS[f.group]} {f.label[0].lower()}{f.label[1:]}" for f in shown}


_LABELS = _form_labels()
DETACHING_KEYS = ("distill.method", "teacher.arch", "student.arch")


def custom_name(origin: str) -> str:
    """The name of a run changed from the config `origin` in its method or models."""
    return f"custom (from {origin})"


def readable(problem: str) -> str:
    """A problem with its key path ("distill.teacher_layer: ...") named by the form's
    label ("Teacher hint layer: ..."); problems of other keys are returned unchanged."""
    key, sep, rest = problem.partition(":")
    label = _LABELS.get(key.strip())
    return f"{label}:{rest}" if sep and label else problem


def follow_preset_name(inputs: dict[str, Any], loaded: dict[str, Any]) -> None:
    """A loaded config's name detaches when its method or models change: "custom (from
    NAME)"; it comes back when they are set back. A name the user typed is kept."""
    origin = str(loaded.get("name") or "")
    if not origin or origin.startswith("custom (from "):
        return
    detached = any(inputs[key].get()[0] != value_at(loaded, key) for key in DETACHING_KEYS)
    name = inputs["name"]
    current = name.get()[0]
    if detached and current == origin:
        name.set(custom_name(origin))
    elif not detached and current == custom_name(origin):
        name.set(origin)
