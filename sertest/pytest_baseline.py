"""Moved to :mod:`sertest.pytest_plugin.baseline` (the plugin's metric baselines); this
module re-exports it for code that imports the old path."""

from __future__ import annotations

from .pytest_plugin.baseline import (SCHEMA, DEFAULT_PATH, Baseline, CompareRule, Delta,
                                     check_rules, direction, dumps, format_regressions,
                                     measurement_key, parse_rules, rule_for, worsening)

__all__ = ["Baseline", "CompareRule", "DEFAULT_PATH", "Delta", "SCHEMA", "check_rules",
           "direction", "dumps", "format_regressions", "measurement_key", "parse_rules",
           "rule_for", "worsening"]
