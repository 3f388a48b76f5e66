"""The window's style sheet (applied to the main window, not the whole application)."""

STYLE = """
*[invalid="true"] {
    border: 1px solid #d32f2f;
    border-radius: 2px;
    background: #fff3f3;
}
QLabel#problemsLabel {
    color: #b71c1c;
    background: #fff3f3;
    border: 1px solid #f0c4c4;
    border-radius: 4px;
    padding: 4px 6px;
}
QLabel#runStatusLabel { color: #37474f; }
QFrame#summaryCard {
    background: #f6f8fb;
    border: 1px solid #c9d3e0;
    border-radius: 6px;
}
QFrame#sizesCard {
    background: #f3f5f7;
    border: 1px solid #dde2e8;
    border-radius: 4px;
}
QFrame#dataPreview {
    background: #f7f9fb;
    border: 1px solid #dde2e8;
    border-radius: 4px;
}
QLabel#dataPreviewError { color: #b71c1c; }
QLabel#dataPreviewCaption { color: #455a64; font-size: 8pt; }
QLabel#methodFormula { color: #455a64; font-size: 9pt; }
QPushButton#startButton { font-weight: bold; padding: 4px 16px; }
QPushButton#pauseButton, QPushButton#stopButton { padding: 4px 12px; }
QGroupBox { font-weight: bold; margin-top: 10px; }
QGroupBox::title { subcontrol-origin: margin; left: 6px; padding: 0 3px; }
QGroupBox QLabel, QGroupBox QCheckBox, QGroupBox QComboBox, QGroupBox QLineEdit,
QGroupBox QSpinBox, QGroupBox QDoubleSpinBox, QGroupBox QPushButton { font-weight: normal; }
"""
