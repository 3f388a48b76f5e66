"""kdstudio.core must import with Qt (PySide6, pyqtgraph) unimportable."""

from __future__ import annotations

import subprocess
import sys

BLOCK_QT = """
import importlib, pkgutil, sys

class BlockQt:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', 'PyQt5', 'PyQt6'):
            raise ImportError('Qt is blocked in this test: ' + name)
        return None

sys.meta_path.insert(0, BlockQt())
import kdstudio.core
names = []
for info in pkgutil.walk_packages(kdstudio.core.__path__, 'kdstudio.core.'):
    importlib.import_module(info.name)
    names.append(info.name)
qt = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')]
print(len(names), 'modules;', 'qt loaded:', qt)
"""


def test_core_imports_without_qt() -> None:
    result = subprocess.run([sys.executable, "-c", BLOCK_QT], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    count = int(result.stdout.split()[0])
    assert count >= 15  # config, registry, engine, store, models/*, data/*, distill/* ...
    assert "qt loaded: []" in result.stdout


def test_blocker_really_blocks_qt() -> None:
    """The check above would be empty if the blocker let PySide6 through."""
    code = BLOCK_QT.split("import kdstudio.core")[0] + "import PySide6.QtCore\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "Qt is blocked" in result.stderr
