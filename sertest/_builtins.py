"""Import the built-in modules of a registry package once (they register on import)."""

from __future__ import annotations

import functools
import importlib


@functools.cache
def import_builtins(package: str, modules: tuple[str, ...]) -> None:
    """Import ``package.module`` for each module, once per process."""
    for mod in modules:
        importlib.import_module(f"{package}.{mod}")
