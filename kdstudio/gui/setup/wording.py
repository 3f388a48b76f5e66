"""How the form names things to the user: problems by the fields' labels, and the name of
a run changed away from the config it was loaded from."""

from __future__ import annotations

import re
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


# problem texts of validation -> what the user should do, in the form's words
_ADVICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"no layer '(?P<layer>[^']*)' in (?P<arch>\S+) \(choose from: (?P<names>.*)\)"),
     "pick a layer of the {arch} ('{layer}' is not one): {names}"),
    (re.compile(r"method '(?P<method>[^']*)' needs a layer \(choose from: (?P<names>.*)\)"),
     "pick a layer ({method} needs one): {names}"),
    (re.compile(r"not a number \((?P<text>.*)\)"), "type a number (got {text})"),
)


def _label(key: str) -> str | None:
    """The form's name of a key: its field's label, or a parameter's under its box."""
    if key in _LABELS:
        return _LABELS[key]
    group, _, rest = key.partition(".")
    section, _, name = rest.partition(".")
    if section in ("params", "transfer_params") and name and group in GROUPS:
        words = name.split(".")[0].replace("_", " ")
        box = "Transfer dataset" if section == "transfer_params" else GROUPS[group]
        return f"{box} {words}"
    return None


def readable(problem: str, labels: dict[str, str] | None = None) -> str:
    """A problem with its key path ("distill.teacher_layer: ...") named by the form's
    label and saying what to do ("Teacher hint layer: pick a layer of the cnn ...");
    problems of keys the form does not show are returned unchanged. `labels` gives the
    labels the form shows now where they differ from the table's ("File" for "Folder")."""
    key, sep, rest = problem.partition(":")
    label = (labels or {}).get(key.strip()) or _label(key.strip())
    if not sep or not label:
        return problem
    message = rest.strip()
    for pattern, advice in _ADVICE:
        found = pattern.fullmatch(message)
        if found:
            message = advice.format(**found.groupdict())
            break
    return f"{label}: {message}"


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
