"""Behavioural tests ("checks"): correctness, fairness, robustness."""

from __future__ import annotations

import importlib

from .base import Check, Context, Measurement, Outcome, Request, register, registry

_BUILTIN_MODULES = ("correctness", "fairness", "robustness", "dose")
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{mod}":
                raise


__all__ = ["Check", "Context", "Measurement", "Outcome", "Request", "register", "registry"]
