"""How a number is written in the reports: one formatter for every renderer.

:func:`num` writes the terminal and Markdown summaries (``fixed=True``: three decimals,
scores and CCCs on their common 0-1 scale) and the JUnit, pytest and HTML texts (four
significant digits).  :func:`finite` reads a number back from a document.  The SVG figures
keep their own variant, :func:`sertest.report.svg.fmt` (thousands separators and
scientific notation for axis ticks and labels, whose width is bounded).
"""

from __future__ import annotations

import math
from typing import Any


def num(value: Any, digits: int = 4, *, fixed: bool = False) -> str:
    """A number as text: ``digits`` significant digits, or ``digits`` decimals with ``fixed``;
    ``n/a`` for ``None`` and for NaN or infinite values.  Integers and booleans are written
    as they are, and text that is not a number is returned unchanged.

    >>> num(0.123456)
    '0.1235'
    >>> num(0.5, 3, fixed=True)
    '0.500'
    >>> num(1234.5678, 3)
    '1.23e+03'
    >>> num(None), num(float("nan")), num(120), num(True), num("n.a.")
    ('n/a', 'n/a', '120', 'True', 'n.a.')
    """
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}" if fixed else f"{v:.{digits}g}"


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, not a number, NaN, infinite or a
    boolean).

    >>> finite("0.25"), finite(3), finite(None), finite(float("inf")), finite(True)
    (0.25, 3.0, None, None, None)
    """
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


__all__ = ["finite", "num"]
