"""The window's style sheet (applied to the main window, not the whole application), in
the light or the dark theme's colours."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from kdstudio.gui.widgets.theme import theme

STYLE_TEMPLATE = """
*[invalid="true"] {{
    border: 1px solid {invalid_border};
    border-radius: 2px;
    background: {invalid_background};
}}
QLabel#problemsLabel {{
    color: {problem_text};
    background: {invalid_background};
    border: 1px solid {problem_border};
    border-radius: 4px;
    padding: 4px 6px;
}}
QLabel#runStatusLabel {{ color: {status_text}; }}
QFrame#summaryCard {{
    background: {card_background};
    border: 1px solid {card_border};
    border-radius: 6px;
}}
QFrame#sizesCard {{
    background: {sizes_background};
    border: 1px solid {panel_border};
    border-radius: 4px;
}}
QFrame#dataPreview {{
    background: {preview_background};
    border: 1px solid {panel_border};
    border-radius: 4px;
}}
QFrame#viewingBanner {{
    background: {banner_background};
    border: 1px solid {banner_border};
    border-radius: 4px;
}}
QLabel#engineLoadingNote {{
    background: {banner_background};
    border: 1px solid {banner_border};
    border-radius: 4px;
    padding: 6px 8px;
}}
QLabel#chartsEmptyNote {{
    background: {card_background};
    border: 1px solid {card_border};
    border-radius: 6px;
    padding: 10px 14px;
}}
QLabel#dataPreviewError {{ color: {problem_text}; }}
QLabel#dataPreviewCaption {{ color: {caption_text}; font-size: 8pt; }}
QLabel#methodFormula {{ color: {caption_text}; font-size: 9pt; }}
QPushButton#startButton {{ font-weight: bold; padding: 4px 16px; }}
QPushButton#pauseButton, QPushButton#stopButton {{ padding: 4px 12px; }}
QGroupBox {{ font-weight: bold; margin-top: 10px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 6px; padding: 0 3px; }}
QGroupBox QLabel, QGroupBox QCheckBox, QGroupBox QComboBox, QGroupBox QLineEdit,
QGroupBox QSpinBox, QGroupBox QDoubleSpinBox, QGroupBox QPushButton {{ font-weight: normal; }}
"""

LIGHT_STYLE_COLOURS = {
    "invalid_border": "#d32f2f", "invalid_background": "#fff3f3", "problem_text": "#b71c1c",
    "problem_border": "#f0c4c4", "status_text": "#37474f", "card_background": "#f6f8fb",
    "card_border": "#c9d3e0", "sizes_background": "#f3f5f7", "panel_border": "#dde2e8",
    "preview_background": "#f7f9fb", "banner_background": "#e8f1fb",
    "banner_border": "#b6cde6", "caption_text": "#455a64",
}
DARK_STYLE_COLOURS = {
    "invalid_border": "#e57373", "invalid_background": "#4a2326", "problem_text": "#ff9e9e",
    "problem_border": "#7a3a3e", "status_text": "#c5ccd3", "card_background": "#25282d",
    "card_border": "#454c57", "sizes_background": "#26292d", "panel_border": "#41464e",
    "preview_background": "#24272b", "banner_background": "#1f3147",
    "banner_border": "#3d5f86", "caption_text": "#a9b4bd",
}


def window_style(dark: bool = False) -> str:
    """The window's style sheet in the dark or the light colours."""
    return STYLE_TEMPLATE.format(**(DARK_STYLE_COLOURS if dark else LIGHT_STYLE_COLOURS))


STYLE = window_style(dark=False)


def apply_window_style(widget: QWidget) -> None:
    """Give `widget` the window's style sheet in the current theme's colours."""
    widget.setStyleSheet(window_style(theme().dark))
