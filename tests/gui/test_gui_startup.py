"""`kdstudio` opens the window before torch is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_importing_the_gui_does_not_import_torch():
    code = ("import sys; import kdstudio.gui; from kdstudio.gui import app; "
            "from kdstudio.gui.run import live_view, worker; "
            "assert kdstudio.gui.MainWindow is app.MainWindow; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_kdstudio_shows_the_window_then_loads_the_engine(tmp_path: Path):
    probe = tmp_path / "probe.txt"
    env = dict(os.environ, KDSTUDIO_STARTUP_PROBE=str(probe), QT_QPA_PLATFORM="offscreen",
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-m", "kdstudio", "gui", "--db",
                           str(tmp_path / "h.db")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in probe.read_text().splitlines()]
    assert [line[0] for line in lines] == ["shown", "ready"]
    assert lines[0][2] == "torch=0"  # painted before torch was even imported
    assert lines[0][3] == "form=setupSkeleton"  # the form's skeleton in that first paint
    assert lines[1][2] == "torch=1"
    assert float(lines[0][1]) < float(lines[1][1])
    assert "Traceback" not in done.stderr
