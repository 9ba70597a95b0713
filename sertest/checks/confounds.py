"""Confounds of a group comparison: what else differs between the groups than the group.

A fairness verdict says "the model treats group A differently from group B"; that reading
only holds if nothing else separates A from B.  :func:`group_confounds` names what does:

* a group that is **one speaker** (a difference may be that person's, not the group's);
* groups that differ in **bandwidth** (Hz; the effective bandwidth of the clean audio from
  :class:`~sertest.engine.signal_stats.SignalStats`): e.g. one group recorded at 8 kHz or
  over a phone channel;
* groups that differ in a **source column** (``source``, ``corpus``, ``recording``,
  ``channel``, ``device``, ...): e.g. each group from another corpus or microphone.

Each confound is one line for the entry's ``flags`` (kind ``confound``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: columns that name where or how an item was recorded
SOURCE_COLUMNS = ("source", "corpus", "database", "dataset", "recording", "channel", "device",
                  "microphone", "session")
NARROWBAND_HZ = 4200.0  # band edge at or below this: narrowband (8 kHz sampling, phone)
BANDWIDTH_RATIO = 1.35  # group medians further apart than this ratio are a confound
SHARE_GAP = 0.25  # shares (narrowband, source value) further apart than this are a confound


def group_confounds(ctx, selection: dict[str, list[str]]) -> list[str]:
    """One line per confound of the compared groups (``selection``: group -> item ids)."""
    out: list[str] = []
    groups = {g: ids for g, ids in selection.items() if ids}
    if len(groups) < 2:
        return out
    table = ctx.table
    if "speaker" in table.columns:
        for g, ids in groups.items():
            spk = table.loc[ids, "speaker"].dropna().astype(str).unique()
            if len(spk) == 1:
                out.append(f"group {g!r} is one speaker ({spk[0]}): a difference may be that "
                           "speaker's, not the group's")
    out += _bandwidth(ctx, groups)
    for col in SOURCE_COLUMNS:
        if col in table.columns:
            out += _source(table, groups, col)
    return out


def _bandwidth(ctx, groups: dict[str, list[str]]) -> list[str]:
    store = getattr(ctx, "store", None)
    if store is None or "signal-stats" not in ctx.models:
        return []
    frame = store.frame("signal-stats", None)
    if "bandwidth_hz" not in frame.columns or frame.empty:
        return []
    bw = frame["bandwidth_hz"]
    med, narrow = {}, {}
    for g, ids in groups.items():
        v = bw.reindex(ids).dropna().to_numpy(float)
        if v.size:
            med[g] = float(np.median(v))
            narrow[g] = float(np.mean(v <= NARROWBAND_HZ))
    if len(med) < 2:
        return []
    lo, hi = min(med, key=med.get), max(med, key=med.get)
    gap = max(narrow.values()) - min(narrow.values())
    if med[lo] > 0 and (med[hi] / med[lo] > BANDWIDTH_RATIO or gap > SHARE_GAP):
        parts = ", ".join(f"{g}: median {med[g] / 1000:.1f} kHz, {100 * narrow[g]:.0f} % "
                          "narrowband" for g in med)
        return [f"groups differ in bandwidth ({parts}): e.g. another sampling rate or channel"]
    return []


def _source(table: pd.DataFrame, groups: dict[str, list[str]], col: str) -> list[str]:
    shares = {g: table.loc[ids, col].astype(str).value_counts(normalize=True)
              for g, ids in groups.items()}
    values = sorted(set().union(*(s.index for s in shares.values())))
    if len(values) < 2:
        return []
    gap = max(max(s.get(v, 0.0) for s in shares.values()) - min(s.get(v, 0.0)
                                                                for s in shares.values())
              for v in values)
    if gap <= SHARE_GAP:
        return []
    parts = "; ".join(f"{g}: " + ", ".join(f"{v} {100 * p:.0f} %" for v, p in s.head(2).items())
                      for g, s in shares.items())
    return [f"groups differ in {col!r} ({parts})"]
