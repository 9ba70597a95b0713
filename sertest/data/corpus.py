"""The bundled corpus: synthetic TTS speech with nominal labels, shipped in the package.

This module only knows where the corpus lies; :func:`sertest.data.load_corpus` reads it
as a :class:`~sertest.data.Dataset`.
"""

from __future__ import annotations

import os

from ..errors import DataError

CORPUS_DIR = os.path.join(os.path.dirname(__file__), "corpus")


def corpus_path() -> str:
    """Path of the bundled corpus manifest."""
    path = os.path.join(CORPUS_DIR, "manifest.csv")
    if not os.path.exists(path):
        raise DataError(f"bundled corpus missing: {path} (regenerate with `make corpus`)")
    return path
