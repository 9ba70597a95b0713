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


def render_all(results, out: str, renderers: Iterable[str]) -> list[str]:
    """Render each requested format into ``out``; returns the files written."""
    import os

    written = []
    for name in renderers:
        if name not in RENDERERS:
            raise ValueError(f"unknown renderer {name!r}; known: {', '.join(RENDERERS)}")
        target, filename = RENDERERS[name]
        module_name, func = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # renderer not part of this build
                continue
            raise
        path = os.path.join(out, filename)
        text = getattr(module, func)(results)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written
