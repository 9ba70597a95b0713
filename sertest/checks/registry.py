"""The table of behavioural tests: every check class by its ``id``.

A check module registers its classes with :func:`register` (a class decorator) when it is
imported.  The built-in modules are named in :data:`BUILTIN_MODULES`, one line each, and
imported by name on the first lookup (:func:`registry`), the way entry points are: this
module never imports them, so they may import it.  A new test is one new module under
``sertest/checks/`` plus its name in :data:`BUILTIN_MODULES` (see docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._builtins import import_builtins

if TYPE_CHECKING:
    from .base import Check

#: the modules of this package that define the built-in tests (imported on first lookup)
BUILTIN_MODULES = ("correctness", "fairness", "robustness", "dose", "metamorphic", "slices",
                   "search")

_REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: make a check available under its ``id``."""
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise TypeError(f"check id {cls.id!r} registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def registry() -> dict[str, type[Check]]:
    """All registered checks by id (imports the built-in modules first).

    >>> from sertest.checks.registry import registry
    >>> "correctness_regression" in registry()
    True
    """
    import_builtins(__package__, BUILTIN_MODULES)
    return dict(sorted(_REGISTRY.items()))


__all__ = ["BUILTIN_MODULES", "register", "registry"]
