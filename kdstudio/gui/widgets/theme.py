"""The light or dark theme: the application's palette, the chart colours that go with it,
and the View ▸ Theme switch (System / Light / Dark, saved in QSettings).

One `Theme` object per application (`theme()`); its `changed` signal fires after the
palette changed. Widgets whose colours are not in the palette (pyqtgraph plots, style
sheets) register with `follow_theme(widget, apply)`: `apply(widget)` runs at once and
again after each change, for as long as the widget lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QMenu
from shiboken6 import isValid

MODES = ("system", "light", "dark")
MODE_LABELS = {"system": "&System", "light": "&Light", "dark": "&Dark"}
MODE_TIPS = {"system": "Follow the desktop's light or dark setting",
             "light": "Light window and charts, whatever the desktop uses",
             "dark": "Dark window and charts, whatever the desktop uses"}
SETTINGS_KEY = "view/theme"
SCHEMES = {"system": Qt.ColorScheme.Unknown, "light": Qt.ColorScheme.Light,
           "dark": Qt.ColorScheme.Dark}
# near-black curves (e.g. the "total" loss) are drawn near-white in the dark theme
INK = {False: "#222222", True: "#dcdde1"}


@dataclass(frozen=True)
class ChartColours:
    """What a plot draws that is not data: background, axes, text, legend box."""

    background: str
    axis: tuple[int, int, int]
    text: tuple[int, int, int]
    muted: tuple[int, int, int]  # secondary lines: crosshair, markers, notes
    legend_brush: tuple[int, int, int, int]
    legend_text: tuple[int, int, int]


LIGHT_CHARTS = ChartColours(background="#ffffff", axis=(150, 150, 150), text=(70, 70, 70),
                            muted=(120, 120, 120), legend_brush=(255, 255, 255, 210),
                            legend_text=(30, 30, 30))
DARK_CHARTS = ChartColours(background="#1e1f22", axis=(135, 138, 145), text=(214, 216, 220),
                           muted=(150, 150, 150), legend_brush=(40, 42, 46, 210),
                           legend_text=(225, 226, 230))

DARK_ROLES = {
    QPalette.ColorRole.Window: "#2b2d31", QPalette.ColorRole.WindowText: "#e3e4e8",
    QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#26282c",
    QPalette.ColorRole.ToolTipBase: "#3a3d42", QPalette.ColorRole.ToolTipText: "#eeeeee",
    QPalette.ColorRole.PlaceholderText: "#8a8d93", QPalette.ColorRole.Text: "#e3e4e8",
    QPalette.ColorRole.Button: "#33363b", QPalette.ColorRole.ButtonText: "#e3e4e8",
    QPalette.ColorRole.BrightText: "#ff6b6b", QPalette.ColorRole.Light: "#45484e",
    QPalette.ColorRole.Midlight: "#3a3d42", QPalette.ColorRole.Mid: "#4a4d53",
    QPalette.ColorRole.Dark: "#18191b", QPalette.ColorRole.Shadow: "#0d0d0e",
    QPalette.ColorRole.Highlight: "#3d7fd6", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6fa8ff", QPalette.ColorRole.LinkVisited: "#b69cff",
}
DARK_DISABLED = {QPalette.ColorRole.WindowText: "#7c7f86", QPalette.ColorRole.Text: "#7c7f86",
                 QPalette.ColorRole.ButtonText: "#7c7f86",
                 QPalette.ColorRole.HighlightedText: "#a0a0a0",
                 QPalette.ColorRole.Base: "#25272a", QPalette.ColorRole.Button: "#2e3034"}


def dark_palette() -> QPalette:
    """The dark palette (Fusion draws every widget from it)."""
    palette = QPalette()
    for role, colour in DARK_ROLES.items():
        palette.setColor(role, QColor(colour))
    for role, colour in DARK_DISABLED.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return palette


def system_is_dark() -> bool:
    """Whether the desktop asks for dark colours (Qt 6.5+), else whether its palette is."""
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else Qt.ColorScheme.Unknown
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


class Theme(QObject):
    """The application's theme: `mode` is what the user chose, `dark` what is shown."""

    changed = Signal()

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self.mode = "system"
        self.dark = False
        self._system_palette = QPalette(app.palette())
        self._system_style = app.style().name()
        self._followers: list[tuple[weakref.ref, Callable[[Any], None]]] = []
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(self._system_changed)

    @property
    def charts(self) -> ChartColours:
        return DARK_CHARTS if self.dark else LIGHT_CHARTS

    def set_mode(self, mode: str) -> None:
        """Show `mode` ("system", "light" or "dark"; anything else means "system")."""
        self.mode = mode if mode in MODES else "system"
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "setColorScheme"):  # Qt 6.8+: native parts (title bar) follow too
            hints.setColorScheme(SCHEMES[self.mode])
        self._apply(system_is_dark() if self.mode == "system" else self.mode == "dark")

    def _system_changed(self, _scheme: object = None) -> None:
        if self.mode == "system":
            self._apply(system_is_dark())

    def _apply(self, dark: bool) -> None:
        if dark:
            if self.app.style().name().lower() != "fusion":
                self.app.setStyle("Fusion")
            self.app.setPalette(dark_palette())
        elif self._system_palette.color(QPalette.ColorRole.Window).lightness() < 128:
            # light chosen on a dark desktop: Fusion's own light palette
            if self.app.style().name().lower() != "fusion":
                self.app.setStyle("Fusion")
            self.app.setPalette(self.app.style().standardPalette())
        else:
            if self.app.style().name().lower() != self._system_style.lower():
                self.app.setStyle(self._system_style)
            self.app.setPalette(self._system_palette)
        self.dark = dark
        colours = self.charts
        pg.setConfigOptions(background=colours.background, foreground=colours.axis)
        self._notify()
        self.changed.emit()

    def follow(self, widget: QObject, apply: Callable[[Any], None]) -> None:
        """Run `apply(widget)` now and after each change while `widget` lives."""
        self._followers.append((weakref.ref(widget), apply))
        apply(widget)

    def _notify(self) -> None:
        alive = []
        for ref, apply in self._followers:
            widget = ref()
            if widget is None or not isValid(widget):
                continue
            alive.append((ref, apply))
            apply(widget)
        self._followers = alive


_THEME: Theme | None = None


def theme() -> Theme:
    """The application's one Theme (created with the QApplication's original palette)."""
    global _THEME
    app = QApplication.instance()
    if _THEME is None or not isValid(_THEME) or _THEME.app is not app:
        _THEME = Theme(app)
    return _THEME


def follow_theme(widget: QObject, apply: Callable[[Any], None]) -> None:
    """`apply(widget)` now and after each theme change, while `widget` lives."""
    theme().follow(widget, apply)


def chart_colours() -> ChartColours:
    return theme().charts


def apply_chart_colours(plot: pg.PlotWidget | pg.GraphicsLayoutWidget) -> None:
    """Give `plot` (and each PlotItem in it) the theme's background, axis and text pens,
    grid (drawn in the axis pen) and legend colours."""
    colours = chart_colours()
    plot.setBackground(colours.background)
    if isinstance(plot, pg.PlotWidget):
        items = [plot.getPlotItem()]
    else:
        items = [item for item in plot.ci.items if isinstance(item, pg.PlotItem)]
    for item in items:
        style_plot_item(item, colours)
        for data in item.listDataItems():
            recolour_ink(data)


def themed_ink(colour: Any) -> Any:
    """`colour`, or the theme's ink where `colour` is the other theme's ink."""
    if pg.mkColor(colour).name() in INK.values():
        return INK[theme().dark]
    return colour


def recolour_ink(item: pg.PlotDataItem) -> None:
    """Give a curve drawn in ink (pen, symbols) the current theme's ink."""
    opts = item.opts
    pen = pg.mkPen(opts.get("pen"))
    if pen.style() != Qt.PenStyle.NoPen and pen.color().name() in INK.values():
        pen.setColor(pg.mkColor(INK[theme().dark]))
        item.setPen(pen)
        if opts.get("symbol") is not None:
            item.setSymbolBrush(INK[theme().dark])
            item.setSymbolPen(INK[theme().dark])


def style_plot_item(item: pg.PlotItem, colours: ChartColours | None = None) -> None:
    """The theme's colours on one PlotItem's axes, title and legend."""
    colours = colours or chart_colours()
    for side in ("left", "bottom", "right", "top"):
        axis = item.getAxis(side)
        axis.setPen(colours.axis)
        axis.setTextPen(colours.text)
    if item.titleLabel.text:
        item.titleLabel.setText(item.titleLabel.text, color=pg.mkColor(colours.text))
    for child in item.items:  # marker labels (phase starts) sit on a box of the background
        label = getattr(child, "label", None)
        if isinstance(child, pg.InfiniteLine) and isinstance(label, pg.InfLineLabel):
            label.setColor(colours.text)
            label.fill = pg.mkBrush(*colours.legend_brush)
            label.update()
    legend = item.legend
    if legend is not None:
        legend.setLabelTextColor(colours.legend_text)
        for _sample, label in legend.items:  # setLabelTextColor keeps their drawn text
            label.setText(label.text, color=pg.mkColor(colours.legend_text))
        legend.setBrush(pg.mkBrush(*colours.legend_brush))


def themed_plot(plot: pg.PlotWidget) -> pg.PlotWidget:
    """`plot`, coloured by the theme now and after each change."""
    follow_theme(plot, apply_chart_colours)
    return plot


def add_theme_menu(menu: QMenu, settings: QSettings) -> QMenu:
    """A "Theme" submenu of `menu` with System / Light / Dark; applies the saved choice
    and saves each new one in `settings`."""
    submenu = menu.addMenu("&Theme")
    submenu.setToolTipsVisible(True)
    group = QActionGroup(submenu)
    group.setExclusive(True)
    saved = str(settings.value(SETTINGS_KEY, "system"))
    saved = saved if saved in MODES else "system"

    def choose(mode: str) -> None:
        settings.setValue(SETTINGS_KEY, mode)
        theme().set_mode(mode)

    for mode in MODES:
        action = QAction(MODE_LABELS[mode], submenu)
        action.setObjectName(f"theme{mode.capitalize()}Action")
        action.setToolTip(MODE_TIPS[mode])
        action.setCheckable(True)
        action.setChecked(mode == saved)
        action.triggered.connect(lambda _checked=False, chosen=mode: choose(chosen))
        group.addAction(action)
        submenu.addAction(action)
    theme().set_mode(saved)
    return submenu

