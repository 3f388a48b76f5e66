"""`--trust-code`: the user's consent to import the Python files of custom models."""

from __future__ import annotations

import argparse
from typing import Any

from kdstudio.cli.exits import BadInput


def add_trust_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-code", action="store_true",
                        help="import the Python files of custom models (arch = \"custom\"); "
                             "without it such a run is refused and nothing is imported")


def consent(files: list[Any], trust_code: bool) -> None:
    """Trust `files` (CodeFile) when --trust-code was given, else refuse them, one line
    each, before anything is imported."""
    if not files:
        return
    if not trust_code:
        raise BadInput([code.consent_line() for code in files])
    from kdstudio.core.models.custom import trust

    trust(code.sha256 for code in files)


def config_code(config: Any) -> list[Any]:
    """The code files of a RunConfig (CodeFile each); raises BadInput for an unreadable one."""
    from kdstudio.core.models.custom import config_code_files

    try:
        return config_code_files(config)
    except ValueError as error:
        raise BadInput([str(error)]) from None


def run_code(store: Any, run_id: int) -> list[Any]:
    """The code files a saved run imported: the copies kept with it, by their sha256."""
    from pathlib import Path

    from kdstudio.core.models.custom import CodeFile

    return [CodeFile(f"{artifact['meta'].get('role', 'model')}.params.file",
                     Path(artifact["path"]), artifact["sha256"])
            for artifact in store.artifacts(run_id, "code")]
