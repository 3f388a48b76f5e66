"""Every file dialog of the window: open a file, save a file, pick a folder.

Qt's file dialog reads the files of the folder it shows: its model asks the icon provider
for each file's type, and Qt's providers ask QMimeDatabase, which opens a file whose name
alone does not say its type (`history.db`, `history.db-wal`, `history.db-shm`) to sniff its
first bytes. On Linux closing any descriptor of the history file drops every SQLite lock
this process holds on it, so another `kdstudio` process then checkpoints and deletes the
WAL under the window's open connection. The dialogs built here take icons and type names
from file names only and are never the platform's native dialog (a GTK dialog runs inside
this process and sniffs files too), so they never open a file they list.

No other module of the window may use QFileDialog (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QFileInfo, QMimeDatabase, QMimeType
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QFileDialog, QFileIconProvider, QMessageBox, QWidget


class NameOnlyIconProvider(QFileIconProvider):
    """Icons and type names chosen from a file's name, never from its contents."""

    def __init__(self) -> None:
        super().__init__()
        self._mime = QMimeDatabase()

    def icon(self, what: QFileIconProvider.IconType | QFileInfo) -> QIcon:
        if isinstance(what, QFileIconProvider.IconType):
            return super().icon(what)
        kind = QFileIconProvider.IconType
        generic = super().icon(kind.Folder if what.isDir() else kind.File)
        if what.isDir():
            return generic
        return QIcon.fromTheme(self._mime_type(what).iconName(), generic)

    def type(self, info: QFileInfo) -> str:
        if info.isDir():
            return "Folder"
        return self._mime_type(info).comment() or "File"

    def _mime_type(self, info: QFileInfo) -> QMimeType:
        return self._mime.mimeTypeForFile(info, QMimeDatabase.MatchMode.MatchExtension)


_provider: NameOnlyIconProvider | None = None


def icon_provider() -> NameOnlyIconProvider:
    """The provider every dialog shares (it must outlive them: Qt keeps a bare pointer)."""
    global _provider
    if _provider is None:
        _provider = NameOnlyIconProvider()
    return _provider


def file_dialog(parent: QWidget | None, caption: str, start: str = "",
                name_filter: str = "", mode: str = "open") -> QFileDialog:
    """A dialog that never reads the files it lists; `mode` is open, save or folder.

    `start` is a folder, or a file path whose folder is shown with the file selected.
    """
    dialog = QFileDialog(parent, caption, start, name_filter)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setIconProvider(icon_provider())
    if mode == "save":
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    elif mode == "folder":
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    elif mode == "open":
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    else:
        raise ValueError(f"file dialog mode {mode!r}: use open, save or folder")
    return dialog


def _ask(dialog: QFileDialog) -> str:
    try:
        if dialog.exec() != QFileDialog.DialogCode.Accepted:
            return ""
        chosen = dialog.selectedFiles()
        return chosen[0] if chosen else ""
    finally:
        dialog.deleteLater()


def open_file_name(parent: QWidget | None, caption: str, start: str = "",
                   name_filter: str = "") -> str:
    """Ask for an existing file; "" if cancelled."""
    return _ask(file_dialog(parent, caption, start, name_filter, "open"))


def save_file_name(parent: QWidget | None, caption: str, start: str = "",
                   name_filter: str = "") -> str:
    """Ask for a file to write (the dialog asks before replacing one); "" if cancelled."""
    return _ask(file_dialog(parent, caption, start, name_filter, "save"))


def existing_folder(parent: QWidget | None, caption: str, start: str = "") -> str:
    """Ask for an existing folder; "" if cancelled."""
    return _ask(file_dialog(parent, caption, start, mode="folder"))


def export_with_dialog(parent: QWidget, caption: str, start: str, name_filter: str,
                       export: Callable[[str], Path]) -> None:
    """Ask where to save, then `export(path)`; a write that fails is a warning naming it."""
    path = save_file_name(parent, caption, start, name_filter)
    if not path:
        return
    try:
        export(path)
    except (OSError, ValueError) as error:
        QMessageBox.warning(parent, "Export failed", f"Could not write {path}:\n{error}")
