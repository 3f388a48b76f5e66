"""The KD Studio window (PySide6). Importing this package does not import torch or Qt:
`MainWindow` and `main` are loaded on first use, so the window can show before torch loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdstudio.gui.app import MainWindow, main

__all__ = ["MainWindow", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kdstudio.gui import app

        return getattr(app, name)
    raise AttributeError(f"module 'kdstudio.gui' has no attribute '{name}'")
