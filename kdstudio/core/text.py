"""Text from the history (names, tags, notes, log lines) made safe to print on a terminal."""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def printable(text: object) -> str:
    """`text` with every control or format character (ANSI escapes, carriage returns, bells,
    bidi overrides) written as a visible escape, so it cannot move the cursor or recolour the
    terminal; everything else is kept as it is."""
    out = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(_NAMED.get(char) or _code(char))
        else:
            out.append(char)
    return "".join(out)


def _code(char: str) -> str:
    point = ord(char)
    return f"\\x{point:02x}" if point <= 0xFF else f"\\u{point:04x}"


def short_number(value: int | float) -> str:
    """A number for a one-line message: exact with thousands separators, but a number too
    long to read (a 300-digit integer) is shown by its size."""
    if isinstance(value, float):
        return f"{value:g}"
    digits = len(str(abs(value)))
    if digits > 24:
        return f"{'-' if value < 0 else ''}a {digits}-digit number"
    return f"{value:,}"
