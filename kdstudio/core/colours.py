"""The colour each run keeps in every view (Qt-free: views turn it into a QColor)."""

from __future__ import annotations

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (0, 128, 128), (188, 189, 34), (23, 190, 207)]


def run_colour(run_id: int) -> tuple[int, int, int]:
    """The colour a run keeps wherever it is drawn: ten distinct colours for ten
    consecutive ids, darker shades for the next ten and the ten after."""
    index = (int(run_id) - 1) % len(PALETTE)
    shade = (1.0, 0.62, 0.8)[((int(run_id) - 1) // len(PALETTE)) % 3]
    red, green, blue = PALETTE[index]
    return round(red * shade), round(green * shade), round(blue * shade)
