"""Renderers: each reads only the results document and writes one file.

:func:`write_results` writes a run's output folder: the results document with its timings
and replicates, and the requested renderings, all at once.
"""

from __future__ import annotations

import importlib
from typing import Iterable

#: renderer name -> ("module:function", output file name)
RENDERERS = {
    "html": ("sertest.report.html:render", "report.html"),
    "junit": ("sertest.report.junit:render", "junit.xml"),
    "markdown": ("sertest.report.markdown:render", "summary.md"),
}


def write_text(path: str, text: str, atomic: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path``.  ``atomic`` writes ``PATH.tmpPID`` first and renames
    it over ``path``: a reader sees the old file or the new one, never half of one, and a
    write that fails (a full disk) leaves ``path`` as it was and no temporary file behind.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "summary.md")
    >>> write_text(path, "# audit\\n")
    >>> open(path, encoding="utf-8").read(), os.listdir(os.path.dirname(path))
    ('# audit\\n', ['summary.md'])
    """
    import os

    tmp = f"{path}.tmp{os.getpid()}" if atomic else path
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        if atomic:
            os.replace(tmp, path)
    except BaseException:
        if atomic and os.path.exists(tmp):
            os.remove(tmp)
        raise


def render_all(results, out: str, renderers: Iterable[str],
               failures: list | None = None, atomic: bool = True) -> list[str]:
    """Render each requested format into ``out``; returns the files written.

    With a ``failures`` list, a renderer that raises costs only its own file: the others
    are written and ``(name, "Type: message", traceback)`` is appended (without it, the
    exception propagates).  ``atomic`` writes each file under a temporary name first
    (``NAME.tmpPID``) so a reader never sees half a report; a staging folder does not need it.
    """
    import os
    import traceback

    from ..errors import UsageError

    names = list(renderers)
    written = []
    for name in names:
        if name not in RENDERERS:
            error = UsageError(f"unknown report {name!r}; known: {', '.join(RENDERERS)}")
            if failures is None:
                raise error
            failures.append((name, f"UsageError: {error}", f"UsageError: {error}\n"))
            continue
        target, filename = RENDERERS[name]
        module_name, func = target.split(":")
        path = os.path.join(out, filename)
        try:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:  # renderer not part of this build
                    continue
                raise
            write_text(path, getattr(module, func)(results), atomic)
        except Exception as exc:  # noqa: BLE001 - one report's failure is its own
            if not atomic and os.path.exists(path):  # half a file (write_text cleans its own)
                os.remove(path)
            if failures is None:
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            failures.append((name, f"{type(exc).__name__}: {first}".rstrip(": "),
                             traceback.format_exc()))
            continue
        written.append(path)
    return written


def write_results(results, out: str, renderers: Iterable[str] = ("html", "junit", "markdown")
                  ) -> list[tuple[str, str, str]]:
    """Write results.json, timings.json, replicates.npz and the requested renderings of
    ``results`` (a :class:`sertest.results.Results`) into the folder ``out``, all at once
    (:mod:`sertest.report.publish`: a reader never sees files of two runs side by side).

    A renderer that raises costs only its own file: the others and results.json are written
    and the failure is kept in ``results.render_failures`` (also returned:
    ``[(name, "Type: message", traceback)]``).  A folder that cannot be written (disk full,
    read-only) raises :class:`sertest.errors.OutputError` naming ``out``; results.json is then
    kept in the error log folder.  Sets ``results.path`` to the written results.json.
    """
    import json
    import logging
    import os

    from ..errors import OutputError
    from ..results import REPLICATES, write_replicates
    from .publish import OutputFolder

    text = results.to_json()  # fails before anything is touched, if it fails
    results.render_failures = []
    try:
        with OutputFolder(out) as folder:
            _write_synced(folder.path("results.json"), text)
            if results.timings:
                _write_synced(folder.path("timings.json"),
                              json.dumps(results.timings, indent=1, sort_keys=True,
                                         allow_nan=False) + "\n")
            if results.replicates:
                write_replicates(folder.path(REPLICATES), results.replicates)
            render_all(results, folder.staging, renderers, failures=results.render_failures,
                       atomic=False)
            folder.commit()
    except OSError as exc:  # disk full, read-only, a file where the folder should be
        kept = _rescue(text)
        raise OutputError(f"--out {out}: cannot write the results ({exc.strerror or exc}"
                          f"{': ' + str(exc.filename) if exc.filename else ''}); "
                          + (f"results.json kept as {kept}; " if kept else "")
                          + "free disk space or choose another folder") from exc
    results.path = os.path.join(os.path.abspath(out), "results.json")
    for name, message, _ in results.render_failures:
        logging.getLogger("sertest").error(
            "the %s report could not be written (%s); results.json and the other reports "
            "were", name, message, extra={"render_failure": True})
    return results.render_failures


def _rescue(text: str) -> str | None:
    """Keep a results document that ``out`` could not take in the error log folder
    (:func:`sertest.errors.error_log_dir`); its path, or None."""
    import os
    import time

    from ..errors import error_log_dir

    try:
        folder = error_log_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, time.strftime("results-%Y%m%d-%H%M%S") + f"-{os.getpid()}.json")
        _write_synced(path, text)
        return path
    except OSError:
        return None


def _write_synced(path: str, text: str) -> None:
    """Write ``text`` and flush it to disk (results.json survives a power cut once
    published)."""
    import os

    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
