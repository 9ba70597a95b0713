"""pytest plugin (``pytest11`` entry point ``sertest``): SER model audits as pytest tests.

Nothing happens unless a model is configured (``--sertest-model``, ini ``sertest_model`` or
``model`` in ``[tool.sertest]`` of pyproject.toml); then:

* a sertest suite YAML given as a path (``pytest --sertest-model m.onnx suite.yaml``), found
  while collecting, or configured with ``--sertest-suite`` becomes one pytest item per
  test x model x dimension, so pass/fail/skip, ``-k``, ``-m sertest`` and ``--junitxml`` work
  as for any test.  YAML files are recognised by their content (a mapping with a ``tests``
  list and only suite keys); other YAML files are never collected;
* the audit (:func:`sertest.audit`) runs once per session, lazily, when the first item or
  fixture needs it; under pytest-xdist one worker runs it under a file lock and the others
  read its results from a shared file;
* verdicts map to outcomes: ``pass`` passes, ``fail`` fails (saying why in one line, then
  naming the metric, group, value, confidence interval and threshold of each measurement
  that did not pass, failing first), ``inconclusive``, ``gated`` (a fairness or robustness
  result on a dimension the model is not competent on: never a pass) and ``skipped`` skip
  with the reason, ``error`` fails with the check's traceback and the items the model
  failed; an entry's flags (``[underpowered]``, ``[confound]`` ...) are named in its skip
  reason or failure text and in the ``sertest`` summary table; each item's measurements
  are recorded with ``record_property`` (JUnit ``<property>`` elements);
* besides the suite's tests, each model gets a ``model_health[MODEL-all]`` item: the
  audit's share of items the model failed;
* fixtures ``ser_model``, ``ser_dataset`` and ``ser_audit`` serve hand-written tests;
* ``--sertest-update-baseline`` stores the measurements in a JSON baseline, and later runs
  fail items whose metrics worsened beyond ``--sertest-compare-fail`` tolerances (see
  :mod:`sertest.pytest_plugin.baseline`); a rule whose metric no test emits is refused with
  the metric it was probably meant to be, and one that matches no metric of the collected
  suites is a warning (it gates nothing).

The plugin is a thin layer over the library: model specs are split by
:func:`sertest.models.split_spec` (adapters added with
:func:`sertest.models.register_adapter` work as ``--sertest-model KIND:TARGET``), the items
are the cells of :meth:`sertest.suite.Suite.cells` (the list the engine evaluates) and the
audit is :func:`sertest.audit`.  Its modules, one concept each:

``options``   the ``--sertest-*`` options, ini keys and ``[tool.sertest]``; :class:`Settings`
``session``   :class:`SertestState` (models, the shared audit, the baseline) and the hooks
              that exist only while sertest is active
``items``     collecting suite files into :class:`SuiteItem` s and judging them
``report``    failure texts, skip reasons and the ``sertest`` terminal summary
``baseline``  the metric baseline file and the ``--sertest-compare-fail`` rules
``fixtures``  ``ser_model``, ``ser_dataset``, ``ser_audit``

Settings come from the command line, else the ini file (``sertest_model``, ``sertest_suite``,
... in pytest.ini or ``[tool.pytest.ini_options]``), else ``[tool.sertest]`` in the
rootdir's pyproject.toml (keys without the prefix: ``model``, ``suite``, ...).  Relative
paths are relative to the invocation directory on the command line and to the file that
sets them otherwise.

Heavy modules (numpy, pandas, onnxruntime, yaml, the engine) are imported only once a model
is configured.
"""

from __future__ import annotations

# pytest finds hooks and fixtures among this module's names
from .fixtures import ser_audit, ser_dataset, ser_model
from .items import SuiteFile, SuiteItem, looks_like_suite, pytest_collect_file
from .options import Settings, load_settings, pytest_addoption, resolve_model_spec
from .report import failure_text, headline, skip_reason
from .session import (AuditError, SertestRuleWarning, SertestState, get_state, pytest_configure,
                      pytest_unconfigure)

# the names of the former single-module plugin, for code that imports them
_looks_like_suite = looks_like_suite
_headline = headline

__all__ = ["AuditError", "SertestRuleWarning", "SertestState", "Settings", "SuiteFile",
           "SuiteItem", "failure_text", "get_state", "headline", "load_settings",
           "looks_like_suite", "pytest_addoption", "pytest_collect_file", "pytest_configure",
           "pytest_unconfigure", "resolve_model_spec", "ser_audit", "ser_dataset", "ser_model",
           "skip_reason"]
