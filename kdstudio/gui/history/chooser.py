"""The history's column chooser: a menu of the default columns, the summary metrics, the
run fields and every config key path the runs have (one submenu per config section)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtWidgets import QMenu, QWidget

from kdstudio.core.config.tips import TIPS
from kdstudio.core.run_table import ROW_FIELDS, SUMMARY_FIELDS
from kdstudio.gui.history.columns import COLUMNS, DEFAULT_KEYS


def fill_column_menu(menu: QMenu, shown: Sequence[str], config_keys: Sequence[str],
                     toggle: Callable[[str, bool], None], reset: Callable[[], None]) -> None:
    """Fill `menu` with checkable entries; `toggle(key, on)` adds or removes a column."""
    menu.clear()
    menu.setToolTipsVisible(True)
    current = set(shown)

    def add(target: QMenu, key: str, text: str, tip: str) -> None:
        action = target.addAction(text)
        action.setCheckable(True)
        action.setChecked(key in current)
        action.setToolTip(tip)
        action.toggled.connect(lambda on, key=key: toggle(key, on))

    menu.addSection("Table")
    for column in COLUMNS:
        add(menu, column.key, column.header, column.tip)
    metrics = menu.addMenu("Summary metrics")
    for key, tip in SUMMARY_FIELDS.items():
        if key not in DEFAULT_KEYS:
            add(metrics, key, key, tip)
    fields = menu.addMenu("Run fields")
    for key, tip in ROW_FIELDS.items():
        if key not in DEFAULT_KEYS:
            add(fields, key, key, tip)
    sections: dict[str, QMenu] = {}
    config = menu.addMenu("Config keys")
    if not config_keys:
        config.addAction("(no runs yet)").setEnabled(False)
    for key in config_keys:
        head, _, rest = key.partition(".")
        if not rest:
            add(config, key, key, TIPS.get(key, f"Config key {key}"))
            continue
        if head not in sections:
            sections[head] = config.addMenu(head)
            sections[head].setToolTipsVisible(True)
        add(sections[head], key, rest, TIPS.get(key, f"Config key {key}"))
    menu.addSeparator()
    menu.addAction("Default columns", reset).setToolTip(
        "Show the default columns in their default order")


def column_menu(parent: QWidget) -> QMenu:
    menu = QMenu(parent)
    menu.setObjectName("historyColumnMenu")
    return menu
