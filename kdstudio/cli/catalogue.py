"""`kdstudio models [--filter TEXT]`: every architecture with its size and feature layers."""

from __future__ import annotations

import argparse
import sys

from kdstudio.cli.exits import EXIT_OK, BadInput

REFERENCE_SHAPE = (3, 32, 32)
REFERENCE_CLASSES = 10
COUNT_WIDTH = 13  # "1,000,000,000"


def cmd_models(args: argparse.Namespace) -> int:
    """One line per architecture (registered, then torchvision:/timm: ones installed here),
    sized on the meta device for a reference input; a filter that matches nothing is bad
    input (exit 2)."""
    from kdstudio.core.models import list_models
    from kdstudio.core.models.ecosystem import PACKAGES, ecosystem_models, package_problem

    text = (args.filter or "").strip().lower()
    names = [n for n in list_models() + ecosystem_models() if text in n.lower()]
    notes = [f"{package}:NAME {problem}" for package in PACKAGES
             if (problem := package_problem(package))]
    if not names:
        raise BadInput([f"--filter: no architecture matches {args.filter!r}", *notes])
    shape = "x".join(map(str, REFERENCE_SHAPE))
    print(f"{len(names)} architectures, sized for {shape} inputs and {REFERENCE_CLASSES} "
          "classes")
    width = max(len(n) for n in names + ["architecture"])
    print(f"{'architecture':<{width}}  {'parameters':>{COUNT_WIDTH}}  feature layers")
    print(f"{'-' * width}  {'-' * COUNT_WIDTH}  {'-' * 14}")
    for name in names:
        count, layers = _describe(name)
        print(f"{name:<{width}}  {count:>{COUNT_WIDTH}}  {layers}")
        sys.stdout.flush()  # a long list shows as it is sized
    for note in notes:
        print(f"note: {note}")
    return EXIT_OK


def _describe(name: str) -> tuple[str, str]:
    """The parameter count and feature layers, or '-' and why it does not build here."""
    from kdstudio.core.models import model_size
    from kdstudio.core.models.custom import CUSTOM

    if name == CUSTOM:
        return "-", "(your own file: params file = \"models.py\", factory; needs consent)"
    try:
        size = model_size(name, {}, REFERENCE_SHAPE, REFERENCE_CLASSES)
    except Exception as error:  # noqa: BLE001 - any model code may refuse the reference input
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return "-", f"(does not build for this input: {reason})"
    return f"{size.parameters:,}", ", ".join(size.layers)
