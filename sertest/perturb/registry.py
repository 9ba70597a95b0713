"""The table of perturbations: every perturbation class by its ``name``.

A family module registers its classes with :func:`register` (a class decorator) when it is
imported.  The built-in families are named in :data:`BUILTIN_MODULES`, one line each, and
imported by name on the first lookup (:func:`registry`), the way entry points are: this
module never imports them, so they may import it.  A new perturbation is one new module
under ``sertest/perturb/`` plus its name in :data:`BUILTIN_MODULES` (see
docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._builtins import import_builtins

if TYPE_CHECKING:
    from .base import Perturbation

#: the family modules of this package (imported on first lookup)
BUILTIN_MODULES = ("noise", "filters", "codecs", "rooms", "pitch", "small_changes", "chain")

_REGISTRY: dict[str, type[Perturbation]] = {}


def register(cls: type[Perturbation]) -> type[Perturbation]:
    """Class decorator: make a perturbation available by its ``name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"perturbation name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Perturbation]]:
    """All registered perturbations by name (imports the built-in families first).

    >>> from sertest.perturb.registry import registry
    >>> "white_noise" in registry()
    True
    """
    import_builtins(__package__, BUILTIN_MODULES)
    return dict(sorted(_REGISTRY.items()))


__all__ = ["BUILTIN_MODULES", "register", "registry"]
