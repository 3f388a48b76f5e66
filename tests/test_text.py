"""core/text: history text made safe for a terminal, and numbers short enough for one line."""

from __future__ import annotations

from kdstudio.core.text import printable, short_number


def test_printable_escapes_control_and_format_characters() -> None:
    assert printable("a\x1b[2Jb\rc\td\ne\x07") == "a\\x1b[2Jb\\rc\\td\\ne\\x07"
    assert printable("abc\u202edef\u2066") == "abc\\u202edef\\u2066"  # bidi overrides
    assert printable("line\u2028next") == "line\\u2028next"
    assert printable("café – ünïcode ✓ 数据") == "café – ünïcode ✓ 数据"
    assert printable(42) == "42"


def test_short_number() -> None:
    assert short_number(99_999_999_999_999_999_999) == "99,999,999,999,999,999,999"
    assert short_number(-5) == "-5"
    assert short_number(10**300) == "a 301-digit number"
    assert short_number(-(10**40)) == "-a 41-digit number"
    assert short_number(1e-5) == "1e-05"
