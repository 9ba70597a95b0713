"""Renderers: each reads only the results document and writes one file."""

from __future__ import annotations

import importlib
from typing import Iterable

#: renderer name -> ("module:function", output file name)
RENDERERS = {
    "html": ("sertest.report.html:render", "report.html"),
    "junit": ("sertest.report.junit:render", "junit.xml"),
    "markdown": ("sertest.report.markdown:render", "summary.md"),
}


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
        tmp = f"{path}.tmp{os.getpid()}" if atomic else path
        try:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:  # renderer not part of this build
                    continue
                raise
            text = getattr(module, func)(results)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            if atomic:
                os.replace(tmp, path)
        except Exception as exc:  # noqa: BLE001 - one report's failure is its own
            if os.path.exists(tmp):
                os.remove(tmp)
            if failures is None:
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            failures.append((name, f"{type(exc).__name__}: {first}".rstrip(": "),
                             traceback.format_exc()))
            continue
        written.append(path)
    return written
