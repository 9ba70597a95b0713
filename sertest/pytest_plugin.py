"""pytest plugin (``pytest11`` entry point ``sertest``).

Options are prefixed ``--sertest-``; nothing happens unless ``--sertest-model`` (or
``[tool.sertest]``/ini ``sertest_model``) is given.
"""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("sertest", "speech emotion recognition model audits")
    group.addoption("--sertest-model", action="append", default=None, metavar="SPEC",
                    help="model to audit (repeatable)")
    group.addoption("--sertest-suite", default=None, help="suite YAML or bundled name")
    group.addoption("--sertest-data", default=None, help="manifest or folder (default: bundled corpus)")
    group.addoption("--sertest-out", default=None, help="folder for results.json and reports")
