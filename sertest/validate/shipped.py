"""Validity measurements shipped with sertest, for the reports of audits they apply to.

``make validity`` runs :func:`sertest.validate.validate` on a bundled suite and the bundled
corpus and copies the compact summary (:func:`sertest.validate.report.summary`) to
``sertest/validity/<suite>.json``.  An audit of *the same suite* (same SHA-256) on *the same
data* (same dataset name and number of items) can then show, beside each test's verdict, how
that test fared against planted defects and an oracle on this data: the reader learns what a
pass or an inconclusive is worth here.  Any other suite or data gets nothing (``None``):
those figures would not apply.
"""

from __future__ import annotations

import json
import os
from typing import Any

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "validity")


def shipped_validity(suite: dict[str, Any] | None, dataset: dict[str, Any] | None
                     ) -> dict[str, Any] | None:
    """The shipped validity summary measured for exactly this suite and data, else ``None``.

    Args:
        suite: the results document's ``suite`` (``name``, ``sha256``).
        dataset: the results document's ``dataset`` (``name``, ``items``).
    """
    if not suite or not dataset or not os.path.isdir(FOLDER):
        return None
    for name in sorted(os.listdir(FOLDER)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(FOLDER, name), encoding="utf-8") as fh:
                found = json.load(fh)
        except (OSError, ValueError):
            continue
        ds = found.get("dataset") or {}
        if (found.get("suite_sha256") and found.get("suite_sha256") == suite.get("sha256")
                and ds.get("name") == dataset.get("name")
                and ds.get("items") == dataset.get("items")):
            return found
    return None


def validity_line(summary: dict[str, Any], test: str, dimension: str) -> str | None:
    """One line for a test entry: the oracle's pass/fail rates and the detection of each
    planted defect at the threshold's size, e.g. ``"validated on this data (20 resamples of
    80 % of the speakers): a sound model (oracle) passes 95 %, fails 0 %; level_shift_sex at
    the threshold caught in 100 %"``; ``None`` where the summary has no row."""
    cell = (summary.get("tests") or {}).get(test, {}).get(dimension)
    if not cell:
        return None
    s = summary.get("settings") or {}
    parts = []
    oracle = cell.get("oracle")
    if oracle:
        parts.append(f"a sound model (oracle) passes {100 * oracle['pass']:.0f} %, fails "
                     f"{100 * oracle['fail']:.0f} %")
    for defect, rate in sorted((cell.get("defects") or {}).items()):
        parts.append(f"{defect} at the threshold's size caught in {100 * rate:.0f} %")
    if not parts:
        return None
    share = s.get("share")
    where = (f"{s.get('resamples')} resamples of {100 * share:.0f} % of the speakers"
             if share else f"{s.get('resamples')} resamples")
    return f"validated on this data (sertest validate, {where}): " + "; ".join(parts)
