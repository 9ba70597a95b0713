"""Behavioural tests ("checks"): correctness, fairness, robustness."""

from __future__ import annotations

from .base import Check, Context, Measurement, Outcome, Request
from .registry import register, registry

__all__ = ["Check", "Context", "Measurement", "Outcome", "Request", "register", "registry"]
