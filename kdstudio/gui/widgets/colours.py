"""Colours and labels every view shares, so a phase, a loss part or a run looks the same
wherever it is drawn."""

from __future__ import annotations

import pyqtgraph as pg

PHASE_LABELS = {"teacher": "Teacher", "baseline": "Student alone", "student": "Student + KD"}
PHASE_COLORS = {"teacher": "#1f77b4", "baseline": "#7f7f7f", "student": "#d62728"}
PART_LABELS = {"total": "total", "ce": "CE", "kd": "KD", "feature": "feature"}
PART_COLORS = {"total": "#222222", "ce": "#1f77b4", "kd": "#ff7f0e", "feature": "#2ca02c"}
SCHEDULE_LABELS = {"temperature": "T", "ce_weight": "CE weight", "kd_weight": "KD weight",
                   "feature_weight": "feature weight"}
SCHEDULE_COLORS = {"temperature": "#e377c2", "ce_weight": "#1f77b4", "kd_weight": "#ff7f0e",
                   "feature_weight": "#2ca02c"}
LOG_COLORS = {"info": "#333333", "warning": "#b36b00", "error": "#c62828"}
GAIN_COLORS = {True: "#2e7d32", False: "#c62828"}  # KD helped / KD hurt

SOFT_COLORMAP = "CET-L17"  # sequential, white (0) to dark
# diverging for differences: blue (< 0), pure white at 0, red (> 0)
DIFF_COLORMAP = pg.ColorMap([0.0, 0.5, 1.0], [(33, 102, 172), (255, 255, 255), (178, 24, 43)])

RUN_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
               (148, 103, 189), (140, 86, 75), (227, 119, 194), (0, 128, 128),
               (188, 189, 34), (23, 190, 207)]


def run_colour(run_id: int) -> tuple[int, int, int]:
    """The colour a run keeps wherever it is drawn: ten distinct colours for ten
    consecutive ids, darker shades for the next ten and the ten after."""
    index = (int(run_id) - 1) % len(RUN_PALETTE)
    shade = (1.0, 0.62, 0.8)[((int(run_id) - 1) // len(RUN_PALETTE)) % 3]
    red, green, blue = RUN_PALETTE[index]
    return round(red * shade), round(green * shade), round(blue * shade)
