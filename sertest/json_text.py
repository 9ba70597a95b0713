"""The text of results.json: indented JSON whose flat arrays and objects sit on one line.

The layout (one space of indentation per level, as ``json.dumps(doc, indent=1)``) except:

* an array whose items are all numbers, ``true``, ``false`` or ``null`` (plot data) is
  written on one line: ``[0.1, 0.25, null]``;
* an object whose members are all scalars (strings, numbers, ``true``, ``false``,
  ``null``; a measurement's ``slice``, ``power``) is written on one line:
  ``{"group": "female", "n": 12}``.

Empty arrays and objects are ``[]`` and ``{}``.  :func:`dumps` walks the containers that
are not flat in Python and hands every flat one (most of a document's numbers) to json's
C encoder: about 4 times faster than json's own indenting encoder, which is pure Python
(3 million pieces for a 7-model ``default`` audit), for the same bytes
(``tests/test_json_text.py`` checks them against that encoder followed by the same
flattening).  Non-finite numbers raise ``ValueError``, as ``allow_nan=False`` does.
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # ", " and ": " separators
_SCALARS = (str, int, float, bool, type(None))
_NUMBERS = (int, float, bool, type(None))


def dumps(doc: Any) -> str:
    """``doc`` (dicts, lists, tuples, str, int, float, bool, None) as results.json text,
    without the final line break.

    >>> print(dumps({"a": [1, 2.5, None], "b": {"c": "x", "d": 1}, "e": [{"f": []}]}))
    {
     "a": [1, 2.5, null],
     "b": {"c": "x", "d": 1},
     "e": [
      {
       "f": []
      }
     ]
    }
    """
    out = _Pieces()
    _write(doc, 0, out)
    return out.text()


class _Pieces:
    """The text's pieces, joined in blocks as they come: a list of every piece of a 14 MB
    document would hold several times the text (a str object per piece)."""

    __slots__ = ("pieces", "blocks")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.blocks: list[str] = []

    def append(self, piece: str) -> None:
        self.pieces.append(piece)
        if len(self.pieces) >= 4096:
            self.blocks.append("".join(self.pieces))
            self.pieces.clear()

    def text(self) -> str:
        self.blocks.append("".join(self.pieces))
        self.pieces.clear()
        text = "".join(self.blocks)
        self.blocks.clear()
        return text


def _write(x: Any, level: int, out: _Pieces) -> None:
    if isinstance(x, dict):
        if not x or all(isinstance(v, _SCALARS) for v in x.values()):
            out.append(_COMPACT.encode(x))
            return
        pad = "\n" + " " * (level + 1)
        sep = "{" + pad
        for key, value in x.items():
            out.append(sep)
            out.append(_COMPACT.encode(_key(key)))
            out.append(": ")
            _write(value, level + 1, out)
            sep = "," + pad
        out.append("\n" + " " * level + "}")
    elif isinstance(x, (list, tuple)):
        if not x or all(isinstance(v, _NUMBERS) for v in x):
            out.append(_COMPACT.encode(x))
            return
        pad = "\n" + " " * (level + 1)
        sep = "[" + pad
        for value in x:
            out.append(sep)
            _write(value, level + 1, out)
            sep = "," + pad
        out.append("\n" + " " * level + "]")
    else:
        out.append(_COMPACT.encode(x))


def _key(key: Any) -> str:
    """An object key as json writes it (numbers, booleans and None become text)."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return _COMPACT.encode(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
