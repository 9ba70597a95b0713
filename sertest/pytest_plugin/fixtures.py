"""Fixtures for hand-written tests beside a suite: ``ser_model``, ``ser_dataset`` and
``ser_audit`` (session-scoped; skipped when no model is configured)."""

from __future__ import annotations

import pytest

from .session import AuditError, SertestState, get_state


def _active_state(request: pytest.FixtureRequest) -> SertestState:
    state = get_state(request.config)
    if state is None:
        pytest.skip("sertest: no model configured (give --sertest-model, sertest_model in the "
                    "ini file, or model in [tool.sertest])")
    return state


@pytest.fixture(scope="session")
def ser_model(request: pytest.FixtureRequest):
    """The (first) configured candidate model, loaded (:class:`sertest.models.Model`)."""
    return _active_state(request).candidates()[0]


@pytest.fixture(scope="session")
def ser_dataset(request: pytest.FixtureRequest):
    """The configured dataset (:class:`sertest.data.Dataset`; default: the bundled corpus)."""
    from ..data import load_dataset

    return load_dataset(_active_state(request).settings.data)


@pytest.fixture(scope="session")
def ser_audit(request: pytest.FixtureRequest):
    """The session's audit (:class:`sertest.results.Results`), computed once and shared
    with the suite items; e.g. ``assert ser_audit.result("correctness_regression").passed``."""
    state = _active_state(request)
    try:
        return state.results_for(state.fixture_suite())
    except AuditError as exc:
        pytest.fail(f"sertest audit could not run: {exc}", pytrace=False)
