"""One small registry class shared by models, datasets and distillation methods."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not in a registry; the message lists the choices."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to entries (factories, classes, loaders) of one kind. A prefix resolver
    answers for a family of names `PREFIX:REST` (e.g. `torchvision:resnet18`) without
    listing them up front."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@registry.register("name")` adds the decorated object."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def register_prefix(self, prefix: str, resolve: Callable[[str], T]) -> None:
        """`PREFIX:REST` names are looked up by `resolve(REST)`, which raises
        UnknownNameError (saying why) for a name it cannot give."""
        if prefix in self._prefixes:
            raise ValueError(f"{self.kind} prefix '{prefix}:' is registered twice")
        self._prefixes[prefix] = resolve

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        prefix, colon, rest = name.partition(":") if isinstance(name, str) else ("", "", "")
        if colon and prefix in self._prefixes:
            return self._prefixes[prefix](rest)
        choices = ", ".join(self.names() + [f"{p}:NAME" for p in self.prefixes()])
        raise UnknownNameError(f"unknown {self.kind} '{name}' (choose from: {choices})")

    def names(self) -> list[str]:
        """The registered names (not those a prefix resolves)."""
        return sorted(self._entries)

    def prefixes(self) -> list[str]:
        return sorted(self._prefixes)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        if not isinstance(name, str) or ":" not in name:
            return False
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True


def import_submodules(package_name: str) -> None:
    """Import every module of a package so that their registry decorators run."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
