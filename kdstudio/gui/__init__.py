"""The KD Studio window (PySide6). Importing this package does not import torch or Qt:
`MainWindow` and `main` are loaded on first use, so the window can show before torch loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdstudio.gui.app import main
    from kdstudio.gui.main_window import MainWindow

__all__ = ["MainWindow", "main"]


def __getattr__(name: str) -> Any:
    if name == "MainWindow":
        from kdstudio.gui.main_window import MainWindow

        return MainWindow
    if name == "main":
        from kdstudio.gui.app import main

        return main
    raise AttributeError(f"module 'kdstudio.gui' has no attribute '{name}'")
