"""Perturbations: pure, seeded signal transforms with serialisable specs.

Families live in one module each (noise, filters, codecs, rooms, pitch, small changes);
each registers its classes with :func:`register`.  ``from_spec`` rebuilds any of them.
"""

from __future__ import annotations

import importlib

from .base import Perturbation, from_spec, register, registry

_BUILTIN_MODULES = ("noise", "filters", "codecs", "rooms", "pitch", "small_changes")
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:  # a family not written yet
            if exc.name != f"{__name__}.{mod}":
                raise


__all__ = ["Perturbation", "from_spec", "register", "registry"]
