"""A search interval whose severe end lies beyond the searched range says so in a note.

When more than about half of the items held over the whole range, bootstrap resamples put
the median among censored items: the interval's severe end is infinite, which results.json
can only write as null.  The note says what the null means (constructed search results:
the statistic, not the search, is under test here).
"""

from __future__ import annotations

import math

import numpy as np

from sertest.checks.search import (AXES, ItemBreakdown, PairBreakdown, PairSearchResult,
                                    SearchResult, pair_outcome, search_outcome)


def _broke(item, snr_db):
    return ItemBreakdown(item, snr_db, snr_db + 0.5, clean_value=0.5, broken_value=0.7)


def test_one_axis_interval_beyond_the_range_is_noted():
    res = SearchResult(AXES["snr"], "arousal", 0.05, items=[
        _broke("a", 20.0), _broke("b", 10.0), _broke("c", 0.0),
        ItemBreakdown("d", None, -10.0, 0.5), ItemBreakdown("e", None, -10.0, 0.5)])
    ms, _, notes = search_outcome(res, n_boot=200, confidence=0.95,
                                  rng=np.random.default_rng(0))
    med = next(m for m in ms if m.metric == "median_breakdown")
    assert med.value == 0.0 and med.ci[0] == -math.inf  # lower SNR = more severe
    assert any(n.startswith("median_breakdown: the interval's severe end lies beyond")
               for n in notes)
    # an item set that broke everywhere inside the range needs no such note
    res.items = [_broke(str(i), float(i)) for i in range(5)]
    _, _, notes = search_outcome(res, n_boot=200, confidence=0.95,
                                 rng=np.random.default_rng(0))
    assert not any("beyond" in n for n in notes)


def test_pair_interval_beyond_the_grid_is_noted():
    res = PairSearchResult((AXES["snr"], AXES["bitrate"]), "arousal", 0.05, items=[
        PairBreakdown("a", (1, 1), (50.0, 60000.0), 0.2),
        PairBreakdown("b", (2, 2), (49.5, 58000.0), 0.3),
        PairBreakdown("c", (3, 3), (49.0, 56000.0), 0.4),
        PairBreakdown("d", None, None, math.inf), PairBreakdown("e", None, None, math.inf)])
    ms, _, notes = pair_outcome(res, n_boot=200, confidence=0.95,
                                rng=np.random.default_rng(0))
    sev = next(m for m in ms if m.metric == "median_pair_severity")
    assert sev.value == 0.4 and sev.ci[1] == math.inf
    assert any(n.startswith("median_pair_severity: the interval's upper end lies beyond")
               for n in notes)
