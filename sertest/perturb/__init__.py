"""Perturbations: pure, seeded signal transforms with serialisable specs.

Families live in one module each (noise, filters, codecs, rooms, pitch, small changes);
each registers its classes with :func:`register`.  ``from_spec`` rebuilds any of them.
"""

from __future__ import annotations

from .._builtins import import_builtins
from .base import Perturbation, from_spec, register, registry

_BUILTIN_MODULES = ("noise", "filters", "codecs", "rooms", "pitch", "small_changes")


def _load_builtins() -> None:
    import_builtins(__name__, _BUILTIN_MODULES)


__all__ = ["Perturbation", "from_spec", "register", "registry"]
