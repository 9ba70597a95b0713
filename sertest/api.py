"""The library API's audit: run the engine, then write the output folder.

:func:`audit` is what ``sertest.audit`` names and what the front ends (the command line,
the pytest plugin) call.  It is the engine's :func:`sertest.engine.audit.audit`, which
only computes, plus the one step that belongs above the engine: writing ``results.json``
and the reports into ``out`` with :func:`sertest.report.write_results`.  So the engine
never imports a renderer (``tests/test_architecture.py`` holds it to that).
"""

from __future__ import annotations

from typing import Any, Sequence

from .engine.audit import audit as compute
from .results import Results

#: the renderers an audit writes by default (names in :mod:`sertest.report`'s registry)
RENDERERS = ("html", "junit", "markdown")


def audit(models: Sequence[Any], data: Any = None, suite: Any = "quick", *,
          out: str | None = None, renderers: Sequence[str] = RENDERERS,
          **options: Any) -> Results:
    """Audit ``models`` on ``data`` with ``suite``; write ``out`` when given.

    Args:
        models, data, suite, options: as :func:`sertest.engine.audit.audit` (``seed``,
            ``jobs``, ``cache``, ``baselines``, ``reference``, ``executor``, ...).
        out: folder for ``results.json``, ``timings.json``, ``replicates.npz`` and the
            reports; ``None`` writes nothing.
        renderers: the reports written into ``out`` (``html``, ``junit``, ``markdown``);
            a renderer that fails is recorded in :attr:`Results.render_failures` and
            costs none of the others.

    Returns:
        the :class:`~sertest.results.Results` (also when nothing is written).
    """
    results = compute(models, data, suite, **options)
    if out:
        from .report import write_results

        write_results(results, out, renderers=renderers)
    return results
