"""The session object: settings, loaded models, the audit (once per session, shared by
pytest-xdist workers), the metric baseline, and the hooks that exist only while sertest
is active.

The audit runs lazily, when the first item or fixture needs it; under pytest-xdist one
worker runs it under a file lock and the others read its results from a shared folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import pytest

from ..errors import SertestError, UsageError
from ..report import write_text
from .baseline import Baseline, check_rules, parse_rules
from .options import Settings, load_settings
from .report import terminal_summary

_STATE = pytest.StashKey["SertestState"]()


class AuditError(Exception):
    """The audit itself could not run (bad data, model or suite)."""


class SertestRuleWarning(pytest.PytestWarning):
    """A ``--sertest-compare-fail`` rule that gates nothing in this session."""


class SertestState:
    """Per-process state: settings, loaded models, audit results, collected suites."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.share_dir: str | None = None
        self._own_share = False
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:
            self.share_dir = workerinput.get("sertest_share")
        self.suites: dict[str, str] = {}  # resolved suite path -> suite name
        #: (test name, metric id) pairs the collected suites emit (validates the rules)
        self.emitted: set[tuple[str, str]] = set()
        self._models: list[Any] | None = None
        self._results: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._rules = None
        self._baseline = None
        self._baseline_loaded = False
        self.reports: list[tuple[str, str, dict[str, str]]] = []
        self.started = time.time()

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    # models ----------------------------------------------------------------------------
    def candidates(self) -> list[Any]:
        """The configured models, loaded once per process."""
        if self._models is None:
            from ..models import load_model

            models = []
            names: set[str] = set()
            for spec in self.settings.models:
                m = load_model(spec)
                if m.name in names:
                    raise UsageError(f"--sertest-model: two models are named {m.name!r}; "
                                     "name them with NAME=SPEC")
                names.add(m.name)
                models.append(m)
            self._models = models
        return self._models

    def close(self) -> None:
        for m in self._models or []:
            try:
                m.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    # suites ------------------------------------------------------------------------------
    def add_suite(self, path: str, suite) -> list[tuple[Any, str, str]]:
        """Record a collected suite; return its cells for the configured models
        (:meth:`sertest.suite.Suite.cells`, the engine's own list).

        Raises:
            UsageError: a compare-fail rule names a metric no test declares.
        """
        from ..checks.health import health_check

        self.suites[os.path.realpath(path)] = suite.name
        models = self.candidates()
        cells = list(suite.cells(models))
        emitted = {(check.name, metric) for check, _, _ in cells for metric in check.metrics}
        health = health_check(suite)  # every audit has one model_health entry per model
        emitted |= {(health.name, metric) for metric in health.metrics} if models else set()
        check_rules(self.rules(), emitted, _known_metrics())
        self.emitted |= emitted
        return cells

    def rule_notes(self) -> list[str]:
        """Why rules gate nothing in this session (none before a suite is collected)."""
        if not self.emitted or not self.settings.compare_fail:
            return []
        try:
            return check_rules(self.rules(), self.emitted, _known_metrics())
        except UsageError:  # already reported by the collection of each suite
            return []

    def fixture_suite(self) -> str:
        """The suite ``ser_audit`` uses: the configured one, the only collected one, else
        the bundled ``quick``."""
        if self.settings.suite:
            return self.settings.suite
        if len(self.suites) == 1:
            return next(iter(self.suites))
        return "quick"

    def suite_path(self, suite: str) -> str:
        from ..suite import resolve_suite_path

        return os.path.realpath(resolve_suite_path(suite))

    def _key(self, suite_path: str) -> str:
        from .._version import __version__

        with open(suite_path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        s = self.settings
        text = json.dumps({"models": s.models, "suite": suite_path, "sha": digest,
                           "data": s.data, "seed": s.seed, "baselines": not s.no_baselines,
                           "version": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    # the audit -------------------------------------------------------------------------
    def results_for(self, suite: str):
        """The audit results for ``suite``, computed once per session (shared by workers)."""
        try:
            path = self.suite_path(suite)
        except SertestError as exc:
            raise AuditError(f"{type(exc).__name__}: {exc}") from None
        if path in self._results:
            return self._results[path]
        if path in self._errors:
            raise AuditError(self._errors[path])
        key = self._key(path)
        try:
            results = self._shared(key, lambda: self._run_audit(path))
        except AuditError as exc:
            self._errors[path] = str(exc)
            raise
        self._results[path] = results
        return results

    def _run_audit(self, suite_path: str):
        from ..api import audit

        s = self.settings
        out = s.out
        if out and len(self.suites) > 1:
            out = os.path.join(out, self.suites.get(suite_path) or
                               os.path.splitext(os.path.basename(suite_path))[0])
        try:
            results = audit(s.models, s.data, suite_path, out=out, seed=s.seed, cache=s.cache,
                            baselines=not s.no_baselines, progress=False)
        except SertestError as exc:
            raise AuditError(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - reported on every item that needs it
            import traceback

            raise AuditError(f"the audit crashed: {type(exc).__name__}: {exc}\n"
                             f"{traceback.format_exc(limit=6)}") from exc
        if s.update_baseline:
            self._store_baseline(results)
        return results

    def _shared(self, key: str, compute: Callable[[], Any]):
        """Run ``compute`` once across xdist workers: the first takes the lock and writes
        the results to the shared folder; the others wait for the lock and read them."""
        if not self.share_dir:
            return compute()
        from ..results import Results

        base = os.path.join(self.share_dir, key)
        with FileLock(base + ".lock"):
            if os.path.exists(base + ".error"):
                with open(base + ".error", encoding="utf-8") as fh:
                    raise AuditError(fh.read())
            if os.path.exists(base + ".json"):
                with open(base + ".json", encoding="utf-8") as fh:
                    return Results(json.load(fh))
            try:
                results = compute()
            except AuditError as exc:
                write_text(base + ".error", str(exc))
                raise
            write_text(base + ".json", results.to_json())
            return results

    # baselines ---------------------------------------------------------------------------
    def _store_baseline(self, results) -> None:
        path = self.settings.baseline

        def update() -> None:
            baseline = Baseline.load(path) or Baseline(path)
            baseline.store(results)
            baseline.write()

        if self.share_dir:  # xdist: workers auditing other suites may write concurrently
            with FileLock(os.path.join(self.share_dir, "baseline.lock")):
                update()
        else:
            update()

    def rules(self):
        if self._rules is None:
            self._rules = parse_rules(self.settings.compare_fail)
        return self._rules

    def baseline(self):
        if not self._baseline_loaded:
            self._baseline = Baseline.load(self.settings.baseline)
            self._baseline_loaded = True
        return self._baseline

    def compare(self, entry: dict[str, Any], results) -> tuple[str, list, str | None]:
        """Compare one entry with the baseline: (status, deltas, baseline model)."""
        if self.settings.update_baseline:
            return "updating", [], None
        baseline = self.baseline()
        if baseline is None:
            return "absent", [], None
        suite = baseline.suite(results.doc["suite"]["name"])
        if suite is None:
            return f"no entry for suite {results.doc['suite']['name']!r}", [], None
        why = baseline.incompatibility(suite, results)
        if why:
            return f"not comparable: {why}", [], None
        base_model = baseline.model_for(suite, entry["model"], len(results.candidates()))
        if base_model is None:
            return f"no entry for model {entry['model']!r}", [], None
        deltas = baseline.compare(entry, suite, base_model, self.rules())
        return "compared", deltas, base_model


def _known_metrics() -> set[str]:
    """Every metric id a registered test (or ``model_health``) declares."""
    from ..checks import registry
    from ..checks.health import ModelHealth

    return {metric for cls in (*registry().values(), ModelHealth) for metric in cls.metrics}


class FileLock:
    """An exclusive advisory lock on a file (``fcntl`` on POSIX, ``msvcrt`` on Windows)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh = None

    def __enter__(self) -> "FileLock":
        self._fh = open(self.path, "a+b")
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            while True:
                try:
                    msvcrt.locking(self._fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.1)
        else:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        assert self._fh is not None
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            self._fh.seek(0)
            msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self._fh.close()


def get_state(config: pytest.Config) -> SertestState | None:
    """The session's sertest state, or ``None`` when no model is configured."""
    return config.stash.get(_STATE, None)


# -- configuration hooks -------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sertest: a test generated from a sertest suite "
        "(one per test x model x dimension); select with -m sertest")
    settings = load_settings(config)
    if not settings.active:
        return
    try:
        parse_rules(settings.compare_fail)
    except SertestError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = SertestState(config, settings)
    config.stash[_STATE] = state
    if settings.suite and (settings.suite_from_cli
                           or config.args_source != pytest.Config.ArgsSource.ARGS):
        # a configured suite joins the collection unless the user named what to run
        try:
            path = state.suite_path(settings.suite)
        except Exception as exc:  # noqa: BLE001
            raise pytest.UsageError(str(exc)) from exc
        config.args.append(path)
    distributed = getattr(config.option, "numprocesses", None) or \
        getattr(config.option, "dist", "no") != "no"
    if not state.is_worker and distributed and config.pluginmanager.hasplugin("xdist"):
        state.share_dir = tempfile.mkdtemp(prefix="sertest-pytest-")
        state._own_share = True
    config.pluginmanager.register(SessionHooks(state), "sertest-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = get_state(config)
    if state is None:
        return
    state.close()
    if state._own_share and state.share_dir:
        shutil.rmtree(state.share_dir, ignore_errors=True)


class SessionHooks:
    """Hooks that only exist while sertest is active."""

    def __init__(self, state: SertestState) -> None:
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """xdist controller: tell each worker where the shared audit results go."""
        if self.state.share_dir:
            node.workerinput["sertest_share"] = self.state.share_dir

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.state.settings
        return [f"sertest: models {', '.join(s.models)}; suite {s.suite or '(collected)'}; "
                f"data {s.data or '(bundled corpus)'}; seed {s.seed}",
                f"sertest: baseline {s.baseline}"
                + (" (updating)" if s.update_baseline else "")
                + (f"; compare-fail {' '.join(s.compare_fail)}" if s.compare_fail else "")]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A rule that matches no metric of the collected suites is a warning: it gates
        nothing (a misspelt one already failed the collection of each suite)."""
        for note in self.state.rule_notes():
            warnings.warn(SertestRuleWarning(note), stacklevel=1)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = dict((k, str(v)) for k, v in report.user_properties)
        if "sertest.verdict" in props:
            self.state.reports.append((report.nodeid, report.outcome, props))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if self.state.is_worker:
            return
        terminal_summary(self.state, terminalreporter)
