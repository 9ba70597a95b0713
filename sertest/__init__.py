"""sertest: behavioural testing of speech emotion recognition (SER) models.

An audit is ``models x dataset x suite -> results -> report``.  The library API is
:func:`sertest.audit`; the ``sertest`` command line and the pytest plugin are thin
layers over it::

    import sertest
    results = sertest.audit(["wav2small.onnx"], data=None, suite="default", out="audit")
    results.result("robustness_small_changes").passed
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Dataset", "Results", "__version__", "audit", "load_dataset", "load_model",
           "load_suite"]


def __getattr__(name: str):
    # Imported lazily so that `import sertest` (e.g. by the pytest plugin) stays cheap.
    if name == "audit":
        from .engine import audit
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
