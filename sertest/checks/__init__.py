"""Behavioural tests ("checks"): correctness, fairness, robustness."""

from __future__ import annotations

from .._builtins import import_builtins
from .base import Check, Context, Measurement, Outcome, Request, register, registry

_BUILTIN_MODULES = ("correctness", "fairness", "robustness", "dose")


def _load_builtins() -> None:
    import_builtins(__name__, _BUILTIN_MODULES)


__all__ = ["Check", "Context", "Measurement", "Outcome", "Request", "register", "registry"]
