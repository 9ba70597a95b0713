"""Perturbations: pure, seeded signal transforms with serialisable specs.

Families live in one module each (noise, filters, codecs, rooms, pitch, small changes);
each registers its classes with :func:`register`.  ``from_spec`` rebuilds any of them.
"""

from __future__ import annotations

from .base import Perturbation, from_spec
from .registry import register, registry

__all__ = ["Perturbation", "from_spec", "register", "registry"]
