"""sertest: behavioural testing of speech emotion recognition (SER) models.

An audit is ``models x dataset x suite -> results -> report``.  The library API is
:func:`sertest.audit`; the ``sertest`` command line and the pytest plugin are thin
layers over it::

    import sertest
    results = sertest.audit(["wav2small.onnx"], data=None, suite="default", out="audit")
    results.result("robustness_small_changes").passed

A runnable example: a constant baseline (0.5 for every dimension) on twelve items of the
bundled corpus, judged by one test, nothing written to disk:

>>> import sertest
>>> data = sertest.load_dataset()  # no source: the bundled corpus
>>> few = data.subset(data.ids[:12])
>>> suite = {"name": "example", "bootstrap": {"n_boot": 50},
...          "tests": [{"test": "correctness_regression"}]}
>>> results = sertest.audit(["random:constant"], few, suite, baselines=False, cache=False,
...                         progress=False, renderers=())
>>> results.result("correctness_regression").verdict  # a constant agrees with nothing
'fail'
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["Dataset", "Results", "__version__", "audit", "load_dataset", "load_model",
           "load_suite"]


def __getattr__(name: str):
    # Imported lazily so that `import sertest` (e.g. by the pytest plugin) stays cheap.
    if name == "audit":
        from .api import audit
        return audit
    if name == "Results":
        from .results import Results
        return Results
    if name in ("Dataset", "load_dataset"):
        from . import data
        return getattr(data, name)
    if name == "load_model":
        from .models import load_model
        return load_model
    if name == "load_suite":
        from .suite import load_suite
        return load_suite
    raise AttributeError(f"module 'sertest' has no attribute {name!r}")
