"""Configs in and out of the setup form: File > Open and Save (TOML, as `kdstudio run`
reads), the Presets menu, Re-run from the History and the last config on start.

Every way in goes through `load_config_dict`, which reports each value the form cannot hold
as given, by key path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from kdstudio.gui.widgets.file_dialogs import open_file_name, save_file_name

if TYPE_CHECKING:
    from kdstudio.gui.main_window import MainWindow

DEFAULT_PRESET = "digits-kd"
CONFIG_FILTER = "Config (*.toml)"


class ConfigFiles(QObject):
    """Loads configs into the window's setup form and saves the form; owned by the
    `MainWindow` (which must have its form, `setup`, before any of these is called)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def load_config_dict(self, data: dict[str, Any], title: str, origin: str,
                         dialog: bool = True) -> list[str]:
        """The one loading path of the form (Open, Re-run, the last config on start): fill
        it and report every value it could not take as given, by key path (in a dialog
        unless `dialog` is False, and in the status bar; the fields are marked)."""
        problems = self.window.setup.set_config(data)
        if problems:
            if dialog:
                self.window.warn(title, f"{origin} was loaded, except for these values "
                                 "(marked in the form):\n\n" + "\n".join(problems))
            self.window.statusBar().showMessage(
                f"{origin} loaded; {len(problems)} value(s) could not be kept: {problems[0]}",
                15000)
        return problems

    # ------------------------------------------------------------ files

    def open_dialog(self) -> None:
        path = open_file_name(self.window, "Open config", str(Path.home()),
                              f"{CONFIG_FILTER};;All files (*)")
        if path:
            self.open_config(path)

    def open_config(self, path: str | Path) -> list[str]:
        """Load a TOML config into the form; returns (and shows) the problems found."""
        from kdstudio.core.config import read_toml

        try:
            data = read_toml(path)
        except ValueError as error:
            self.window.warn("Open config", str(error))
            return [str(error)]
        problems = self.load_config_dict(data, "Open config", str(path))
        if not problems:
            self.window.statusBar().showMessage(f"Config loaded from {path}", 5000)
        return problems

    def save_dialog(self) -> None:
        path = save_file_name(self.window, "Save config as",
                              str(Path.home() / "kdstudio-run.toml"), CONFIG_FILTER)
        if path:
            self.save_config(path)

    def save_config(self, path: str | Path) -> Path | None:
        """Write the form as a TOML config that `kdstudio run` reads; None if it failed."""
        from kdstudio.core.config import config_from_dict, save_toml

        data, problems = self.window.setup.config_dict()
        config, more = config_from_dict(data)
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".toml")
        try:
            save_toml(config, target)
        except OSError as error:
            self.window.warn("Save config", f"Cannot write {target}: {error.strerror or error}")
            return None
        if problems + more:
            self.window.warn("Save config", f"Saved {target}, but these fields could not be "
                             "read and were saved with their defaults:\n\n"
                             + "\n".join(problems + more))
        self.window.statusBar().showMessage(f"Config saved to {target}", 5000)
        return target

    # ------------------------------------------------------------ presets

    def fill_presets_menu(self) -> None:
        from kdstudio.core.presets import list_presets, preset_description

        menu = self.window.presets_menu
        menu.clear()
        for name in list_presets():
            action = menu.addAction(name)
            action.setToolTip(preset_description(name))
            action.setObjectName(f"preset_{name}")
            action.triggered.connect(lambda _checked=False, n=name: self.load_preset(n))
        if not menu.actions():
            menu.addAction("no presets found").setEnabled(False)

    def load_preset(self, name: str) -> list[str]:
        from kdstudio.core.presets import load_preset

        try:
            data = load_preset(name)
        except ValueError as error:
            self.window.warn("Preset", str(error))
            return [str(error)]
        problems = self.window.setup.set_config(data)
        self.window.statusBar().showMessage(f"Preset {name} loaded", 5000)
        return problems

    # ------------------------------------------------------------ from the history and settings

    def rerun_config(self, config: dict[str, Any]) -> bool:
        """Load a saved run's config into the form and show the workbench."""
        window = self.window
        if window.setup is None:
            window.statusBar().showMessage("The engine is still loading; Re-run again in a "
                                           "moment", 8000)
            return False
        if window.controller.running:
            window.statusBar().showMessage("A run is in progress: stop it before loading "
                                           "another config", 8000)
            return False
        window.tabs.setCurrentIndex(0)
        name = config.get("name") or "the run"
        self.load_config_dict(config, "Re-run", f"the config of {name}")
        if not window.setup.load_problems:
            window.statusBar().showMessage(f"Config of {name} loaded; press Start to run it "
                                           "again", 8000)
        return True

    def restore_last_config(self) -> None:
        """The config the form held when the window last closed, else the default preset."""
        saved = self.window.settings.value("setup/last_config")
        if isinstance(saved, str) and saved:
            try:
                data = json.loads(saved)
            except ValueError:
                data = None
            if isinstance(data, dict):
                self.load_config_dict(data, "Last config", "The last config", dialog=False)
                return
        from kdstudio.core.presets import list_presets

        if DEFAULT_PRESET in list_presets():
            self.load_preset(DEFAULT_PRESET)
        else:
            self.window.setup.validate_now()

    def save_last_config(self) -> None:
        """Keep the form's config in the settings, for the next start."""
        if self.window.setup is not None:
            data, _problems = self.window.setup.config_dict()
            self.window.settings.setValue("setup/last_config", json.dumps(data))
