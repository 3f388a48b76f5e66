"""`arch = "custom"`: a model from the user's own Python file, imported only with consent.

`[teacher.params] file = "models.py"`, `factory = "make"`; every other parameter goes to the
factory as a keyword, beside `num_classes` and `input_shape`. The factory returns an
`nn.Module`, wrapped as a `FeatureModel` whose feature layers are its named top-level
children (and what its own `feature_layers()` gives, if it has one).

Consent is per file content: a process-wide set of trusted sha256 hashes, added to only by
the user's say-so (`kdstudio run --trust-code`, the window's Trust button). The file's bytes
are read once, hashed, checked against the set and executed from those same bytes, so the
code that runs is the code that was trusted.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdstudio.core.models import register_model
from kdstudio.core.models._base import FeatureModel

CUSTOM = "custom"

_trusted: set[str] = set()
_modules: dict[str, types.ModuleType] = {}  # by sha256: each trusted file runs once
_lock = threading.Lock()
_import_lock = threading.Lock()  # one import of a file at a time (the window and a run)


def trust(digests: Iterable[str]) -> None:
    """Allow the files with these sha256 hashes to be imported in this process."""
    with _lock:
        _trusted.update(digests)


def is_trusted(digest: str) -> bool:
    with _lock:
        return digest in _trusted


def forget_trust() -> None:
    """Trust nothing any more (tests; a new session)."""
    with _lock:
        _trusted.clear()


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


@dataclass(frozen=True)
class CodeFile:
    """A user's Python file a config would import: the key naming it, its path and hash."""

    key: str
    path: Path
    sha256: str

    def consent_line(self) -> str:
        """The one line that says this file needs the user's consent, and how to give it."""
        return (f"{self.key}: {self.path} (sha256 {self.sha256}) is Python code that KD "
                "Studio imports only with your consent; pass --trust-code to run it")


class UntrustedCode(ValueError):
    """A custom model's file was not trusted: nothing of it was imported."""

    def __init__(self, code: CodeFile) -> None:
        super().__init__(code.consent_line())
        self.code = code


def code_file(key: str, params: dict[str, Any]) -> CodeFile | None:
    """The file a custom model's params name (`key` is e.g. 'teacher.params.file'), hashed;
    None when it names none. Raises ValueError for a file that cannot be read."""
    name = params.get("file", "")
    if not isinstance(name, str) or not name:
        return None
    path = Path(name).expanduser()
    try:
        return CodeFile(key, path.resolve(), file_sha256(path))
    except OSError as error:
        raise ValueError(f"{key}: cannot read {name} ({error.strerror or error})") from None


def _load_module(path: Path, key: str) -> tuple[types.ModuleType, bytes, str]:
    """The module of a trusted file (run once per content), its source and its hash;
    UntrustedCode (named by `key`) when it is not trusted."""
    try:
        source = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror or error})") from None
    digest = hashlib.sha256(source).hexdigest()
    if not is_trusted(digest):
        raise UntrustedCode(CodeFile(key, path.resolve(), digest))
    with _import_lock:
        module = _modules.get(digest)
        if module is None:
            module = _execute(source, path, digest)
            _modules[digest] = module
    return module, source, digest


def _execute(source: bytes, path: Path, digest: str) -> types.ModuleType:
    """Run a trusted file's source as a new module."""
    name = f"kdstudio_user_{digest[:16]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look classes up here
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - consented
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        sys.modules.pop(name, None)
        raise ValueError(f"importing {path} failed: {type(error).__name__}: {error}"
                         ) from None
    return module


class CustomModel(FeatureModel):
    """A user's module; its feature layers are its named top-level children, plus what its
    own `feature_layers()` names."""

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], source: bytes,
                 digest: str) -> None:
        super().__init__()
        self.net = net
        self.shape = input_shape
        self.code_source = source
        self.code_sha256 = digest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], *self.shape))

    def feature_layers(self) -> dict[str, nn.Module]:
        layers = dict(self.net.named_children())
        own = getattr(self.net, "feature_layers", None)
        if callable(own):
            layers |= dict(own())
        return layers

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept the weights of the user's module itself (keys without 'net.')."""
        if state and not any(key.startswith("net.") for key in state):
            return {f"net.{key}": value for key, value in state.items()}
        return state

    def spec(self) -> dict[str, Any]:
        return super().spec() | {"code_sha256": self.code_sha256}


def copy_name(file: str, digest: str) -> str:
    """The name of a run's copy of a code file (in its artifact folder's `code/`)."""
    return f"{digest[:16]}-{Path(file).name}"


@register_model(CUSTOM)
def custom(input_shape: tuple[int, ...], num_classes: int, file: str = "",
           factory: str = "make", **kwargs: Any) -> FeatureModel:
    """Your own model: `file` is a Python file whose function `factory(num_classes=...,
    input_shape=..., **other params)` returns an nn.Module; imported only with your
    consent (--trust-code, or Trust in the window)."""
    role = "model.params.file"
    if not file:
        raise ValueError("file: name the Python file that builds the model")
    path = Path(file).expanduser()
    module, source, digest = _load_module(path, role)
    make = getattr(module, factory, None)
    if not callable(make):
        raise ValueError(f"factory: {path} has no function '{factory}'")
    try:
        net = make(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
    except Exception as error:  # noqa: BLE001 - the user's code may raise anything
        raise ValueError(f"factory: {factory}() in {path.name} failed: "
                         f"{type(error).__name__}: {error}") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"factory: {factory}() in {path.name} returned a "
                         f"{type(net).__name__}, not a torch nn.Module")
    return CustomModel(net, tuple(input_shape), source, digest)


ROLES = ("teacher", "student")


def config_code_files(config: Any) -> list[CodeFile]:
    """The code files a RunConfig would import (its custom teacher and student), hashed;
    raises ValueError for a file that cannot be read."""
    from kdstudio.core.distill.methods import METHODS

    method = config.distill.method
    uses_teacher = method not in METHODS or METHODS.get(method).uses_teacher
    files = []
    for role in ROLES:
        section = getattr(config, role)
        if section.arch != CUSTOM or (role == "teacher" and not uses_teacher):
            continue
        found = code_file(f"{role}.params.file", section.params)
        if found is not None:
            files.append(found)
    return files


def untrusted_code(config: Any) -> list[CodeFile]:
    """The config's code files not trusted yet (unreadable ones are validation's to say)."""
    try:
        return [code for code in config_code_files(config) if not is_trusted(code.sha256)]
    except ValueError:
        return []
