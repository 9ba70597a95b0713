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
  :mod:`sertest.pytest_baseline`).

Settings come from the command line, else the ini file (``sertest_model``, ``sertest_suite``,
... in pytest.ini or ``[tool.pytest.ini_options]``), else ``[tool.sertest]`` in the
rootdir's pyproject.toml (keys without the prefix: ``model``, ``suite``, ...).  Relative
paths are relative to the invocation directory on the command line and to the file that
sets them otherwise.

Heavy modules (numpy, pandas, onnxruntime, the engine) are imported only once a model is
configured.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .errors import SertestError, UsageError
from .pytest_baseline import Baseline, format_regressions, parse_rules

_ADAPTER_KINDS = ("onnx", "audonnx", "random", "torch", "hf", "callable")
_OFF = ("", "0", "no", "none", "off", "false")


# -- options ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Opt:
    name: str  # key in [tool.sertest]; the option is --sertest-<name with dashes>
    kind: str  # list | str | path | int | bool
    help: str
    metavar: str | None = None


_OPTIONS: tuple[_Opt, ...] = (
    _Opt("model", "list", "model to audit (repeatable): file.onnx, NAME=file.onnx, an audonnx "
         "or Hugging Face folder, callable:pkg.mod:fn, random:gaussian ...", "[NAME=]SPEC"),
    _Opt("suite", "str", "suite YAML or bundled suite name whose tests become pytest items "
         "(a suite YAML may also be given as a path argument)", "SUITE"),
    _Opt("data", "path", "CSV/Parquet manifest, audformat or audio folder "
         "(default: the bundled corpus)", "MANIFEST|FOLDER"),
    _Opt("out", "path", "folder for results.json and the reports (default: none written)",
         "DIR"),
    _Opt("seed", "int", "audit seed (default 0)", "N"),
    _Opt("baseline", "path", "metric baseline JSON (default .sertest/baseline.json in the "
         "rootdir)", "PATH"),
    _Opt("update_baseline", "bool", "store this audit's measurements as the baseline"),
    _Opt("compare_fail", "list", "fail when a metric worsens against the baseline by more than "
         "TOLERANCE (repeatable): ccc:-0.02, mae:0.01, fraction_unchanged:-5%, *:-0.01",
         "METRIC:TOLERANCE"),
    _Opt("strict", "bool", "an inconclusive test fails instead of being skipped (as "
         "'sertest run --strict')"),
    _Opt("no_baselines", "bool", "do not add the baseline models "
         "(random:gaussian, random:categorical, random:constant) to the audit"),
    _Opt("cache", "path", "prediction cache folder, or 'none' (default: $SERTEST_CACHE or "
         "~/.cache/sertest)", "DIR"),
)
_TOML_ALIASES = {"models": "model"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sertest", "sertest: speech emotion recognition model audits")
    for opt in _OPTIONS:
        flag = "--sertest-" + opt.name.replace("_", "-")
        dest = "sertest_" + opt.name
        if opt.kind == "bool":
            group.addoption(flag, dest=dest, action="store_true", default=None, help=opt.help)
        elif opt.kind == "list":
            group.addoption(flag, dest=dest, action="append", default=None,
                            metavar=opt.metavar, help=opt.help)
        else:
            group.addoption(flag, dest=dest, default=None, metavar=opt.metavar,
                            type=int if opt.kind == "int" else str, help=opt.help)
        ini_type = {"list": "linelist", "bool": "bool"}.get(opt.kind, "string")
        parser.addini(dest, help=f"[sertest] {opt.help}", type=ini_type, default=None)


# -- settings ---------------------------------------------------------------------------
@dataclass
class Settings:
    """The resolved sertest settings of one pytest session (paths absolute)."""

    models: list[str] = field(default_factory=list)
    suite: str | None = None
    suite_from_cli: bool = False
    data: str | None = None
    out: str | None = None
    seed: int = 0
    baseline: str = ""
    update_baseline: bool = False
    compare_fail: list[str] = field(default_factory=list)
    no_baselines: bool = False
    strict: bool = False
    cache: str | bool | None = None

    @property
    def active(self) -> bool:
        return bool(self.models)


def _read_tool_sertest(rootpath: Path) -> tuple[dict[str, Any], Path | None]:
    """``[tool.sertest]`` of ``rootpath/pyproject.toml`` (empty if absent)."""
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return {}, None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}, None
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, ValueError):  # not ours to report: pytest or the build tool will
        return {}, None
    table = doc.get("tool", {}).get("sertest", {})
    if not isinstance(table, dict):
        raise pytest.UsageError(f"{path}: [tool.sertest] must be a table")
    known = {o.name for o in _OPTIONS}
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = _TOML_ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in known:
            raise pytest.UsageError(
                f"{path}: [tool.sertest] has unknown key {key!r}; known: "
                f"{', '.join(sorted(known))}")
        out[name] = value
    return out, path


def _coerce(opt: _Opt, value: Any, where: str) -> Any:
    """Check and convert one setting from the ini file or pyproject.toml."""
    if opt.kind == "list":
        if isinstance(value, str):
            value = [v for v in value.replace(",", "\n").splitlines()] \
                if opt.name == "compare_fail" else value.splitlines()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise pytest.UsageError(f"{where}: {opt.name} must be a string or a list of strings")
        return [v.strip() for v in value if v.strip()]
    if opt.kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() not in _OFF
        if not isinstance(value, bool):
            raise pytest.UsageError(f"{where}: {opt.name} must be true or false, got {value!r}")
        return value
    if opt.kind == "int":
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise pytest.UsageError(f"{where}: {opt.name} must be an integer, got {value!r}") \
                from None
    if not isinstance(value, str):
        raise pytest.UsageError(f"{where}: {opt.name} must be a string, got {value!r}")
    return value


def _resolve_model(spec: str, base: Path) -> str:
    """Make the file path inside a model spec absolute (names and adapter kinds kept)."""
    name = ""
    text = spec.strip()
    head = text.split(":", 1)[0]
    if "=" in head and not (base / text).exists():
        name, text = text.split("=", 1)
        name += "="
    kind, sep, rest = text.partition(":")
    if sep and kind in _ADAPTER_KINDS:
        if kind in ("onnx", "audonnx", "hf") and rest and not os.path.isabs(rest):
            rest = os.path.normpath(base / rest)
        return f"{name}{kind}:{rest}"
    if not os.path.isabs(text):
        text = os.path.normpath(base / text)
    return name + text


def load_settings(config: pytest.Config) -> Settings:
    """Command line, else ini, else ``[tool.sertest]``; paths made absolute."""
    table, toml_path = _read_tool_sertest(config.rootpath)
    cli_base = Path(config.invocation_params.dir)
    ini_base = config.inipath.parent if config.inipath else config.rootpath
    s = Settings(baseline=str(config.rootpath / ".sertest" / "baseline.json"))
    for opt in _OPTIONS:
        dest = "sertest_" + opt.name
        value = config.getoption(dest)
        base, source = cli_base, "command line"
        if value is None:
            value = config.getini(dest)
            base, source = ini_base, f"{config.inipath}: {dest}"
            if value in (None, []):
                value, base, source = table.get(opt.name), config.rootpath, \
                    f"{toml_path} [tool.sertest]"
            if value is None:
                continue
            value = _coerce(opt, value, source)
            if value == "":
                continue
        elif opt.name == "suite":
            s.suite_from_cli = True
        if opt.name == "model":
            s.models += [_resolve_model(v, base) for v in value]
        elif opt.name == "compare_fail":
            s.compare_fail += list(value)
        elif opt.name == "suite":
            p = base / value
            s.suite = str(p) if p.exists() else value  # else a bundled suite name
        elif opt.name == "cache":
            s.cache = False if str(value).strip().lower() in _OFF else str(base / value)
        elif opt.kind == "path":
            setattr(s, opt.name, os.path.normpath(base / value))
        else:
            setattr(s, opt.name, value)
    return s


# -- session state -----------------------------------------------------------------------
_STATE = pytest.StashKey["SertestState"]()


class AuditError(Exception):
    """The audit itself could not run (bad data, model or suite)."""


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
            from .models import load_model

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
    def fixture_suite(self) -> str:
        """The suite ``ser_audit`` uses: the configured one, the only collected one, else
        the bundled ``quick``."""
        if self.settings.suite:
            return self.settings.suite
        if len(self.suites) == 1:
            return next(iter(self.suites))
        return "quick"

    def _suite_path(self, suite: str) -> str:
        from .suite import resolve_suite_path

        return os.path.realpath(resolve_suite_path(suite))

    def _key(self, suite_path: str) -> str:
        from . import __version__

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
            path = self._suite_path(suite)
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
        from .engine import audit
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
        from .results import Results

        base = os.path.join(self.share_dir, key)
        with _FileLock(base + ".lock"):
            if os.path.exists(base + ".error"):
                with open(base + ".error", encoding="utf-8") as fh:
                    raise AuditError(fh.read())
            if os.path.exists(base + ".json"):
                with open(base + ".json", encoding="utf-8") as fh:
                    return Results(json.load(fh))
            try:
                results = compute()
            except AuditError as exc:
                _write_text(base + ".error", str(exc))
                raise
            _write_text(base + ".json", results.to_json())
            return results

    # baselines ---------------------------------------------------------------------------
    def _store_baseline(self, results) -> None:
        path = self.settings.baseline

        def update() -> None:
            baseline = Baseline.load(path) or Baseline(path)
            baseline.store(results)
            baseline.write()

        if self.share_dir:  # xdist: workers auditing other suites may write concurrently
            with _FileLock(os.path.join(self.share_dir, "baseline.lock")):
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


class _FileLock:
    """An exclusive advisory lock on a file (``fcntl`` on POSIX, ``msvcrt`` on Windows)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh = None

    def __enter__(self) -> "_FileLock":
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


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _state(config: pytest.Config) -> SertestState | None:
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
            path = state._suite_path(settings.suite)
        except Exception as exc:  # noqa: BLE001
            raise pytest.UsageError(str(exc)) from exc
        config.args.append(path)
    distributed = getattr(config.option, "numprocesses", None) or \
        getattr(config.option, "dist", "no") != "no"
    if not state.is_worker and distributed and config.pluginmanager.hasplugin("xdist"):
        state.share_dir = tempfile.mkdtemp(prefix="sertest-pytest-")
        state._own_share = True
    config.pluginmanager.register(_SessionHooks(state), "sertest-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is None:
        return
    state.close()
    if state._own_share and state.share_dir:
        shutil.rmtree(state.share_dir, ignore_errors=True)


class _SessionHooks:
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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = dict((k, str(v)) for k, v in report.user_properties)
        if "sertest.verdict" in props:
            self.state.reports.append((report.nodeid, report.outcome, props))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if self.state.is_worker:
            return
        _terminal_summary(self.state, terminalreporter)


# -- collection ---------------------------------------------------------------------------
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "SuiteFile | None":
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    state = _state(parent.config)
    if state is None and not parent.session.isinitpath(file_path):
        return None
    if not _looks_like_suite(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


def _looks_like_suite(path: Path, max_bytes: int = 1 << 20) -> bool:
    """A mapping with a non-empty ``tests`` list of test ids and only suite keys."""
    try:
        if path.stat().st_size > max_bytes:
            return False
        import yaml

        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - not YAML we can read: not ours
        return False
    from .suite import _TOP_KEYS

    if not isinstance(doc, dict) or not set(doc) <= _TOP_KEYS:
        return False
    tests = doc.get("tests")
    return isinstance(tests, list) and bool(tests) and all(
        isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("test"), str))
        for t in tests)


class SuiteFile(pytest.File):
    """A sertest suite YAML: one item per test x model x dimension."""

    def collect(self) -> Iterator["SuiteItem"]:
        from .suite import load_suite

        state = _state(self.config)
        if state is None:
            raise UsageError(f"{self.path} is a sertest suite, but no model is configured: "
                             "give --sertest-model (or sertest_model in the ini file, or "
                             "model in [tool.sertest] of pyproject.toml)")
        suite = load_suite(str(self.path))
        state.suites[os.path.realpath(self.path)] = suite.name
        models = state.candidates()
        lines = _test_lines(self.path)
        for i, (check, targets) in enumerate(suite.checks):
            for m in models:
                for target in m.targets:
                    if suite.targets and target not in suite.targets:
                        continue
                    if targets and target not in targets:
                        continue
                    if not check.supports(target):
                        continue
                    yield SuiteItem.from_parent(
                        self, name=f"{check.name}[{m.name}-{target}]", test=check.name,
                        model=m.name, dimension=target, topic=check.topic,
                        line=lines[i] if i < len(lines) else 0)
        for m in models:  # every audit has one model_health entry per model (dimension "all")
            yield SuiteItem.from_parent(
                self, name=f"{MODEL_HEALTH}[{m.name}-all]", test=MODEL_HEALTH, model=m.name,
                dimension="all", topic="correctness", line=0)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SertestError):
            return f"sertest: {excinfo.value}"
        return super().repr_failure(excinfo)


def _test_lines(path: Path) -> list[int]:
    """0-based line of each entry of the suite's ``tests`` list (for report locations)."""
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
        for key, value in root.value:
            if key.value == "tests":
                return [node.start_mark.line for node in value.value]
    except Exception:  # noqa: BLE001 - locations are a convenience
        pass
    return []


#: the per-model entry every audit writes (item failures, clipped predictions)
MODEL_HEALTH = "model_health"


class SertestFailure(Exception):
    """A failed, crashed or regressed suite item; its text is the failure report."""


class SuiteItem(pytest.Item):
    """One test x model x dimension of a suite; reads its entry from the session audit."""

    def __init__(self, *, test: str, model: str, dimension: str, topic: str, line: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.line = line
        self.test = test
        self.model = model
        self.dimension = dimension
        self.topic = topic
        self.add_marker(pytest.mark.sertest(test=test, model=model, dimension=dimension,
                                            topic=topic))

    def runtest(self) -> None:
        from .checks.verdict import ERROR, FAIL, INCONCLUSIVE, SKIPPED
        from .report import display

        state = _state(self.config)
        assert state is not None
        self.user_properties += [("sertest.test", self.test), ("sertest.model", self.model),
                                 ("sertest.dimension", self.dimension)]
        try:
            results = state.results_for(str(self.path))
        except AuditError as exc:
            self.user_properties.append(("sertest.verdict", "error"))
            raise SertestFailure(f"sertest audit could not run, so {self.test} cannot be judged "
                                 f"for model {self.model!r} on {self.dimension}:\n{exc}") from None
        entries = results.select(self.test, self.model, self.dimension)
        if not entries and self.test == MODEL_HEALTH:
            self.user_properties.append(("sertest.verdict", "skipped"))
            self._skip(f"sertest skipped: {self.test} [{self.model}-{self.dimension}]: this "
                       "audit wrote no model_health entry")
        if not entries:
            self.user_properties.append(("sertest.verdict", "error"))
            raise SertestFailure(f"the audit has no result for test {self.test!r}, model "
                                 f"{self.model!r}, dimension {self.dimension!r}")
        entry = entries[0]
        doc = results.doc
        verdict = display.verdict(doc, entry)
        try:
            status, deltas, base_model = state.compare(entry, results)
        except SertestError as exc:  # e.g. an unreadable baseline file
            self.user_properties.append(("sertest.verdict", verdict))
            raise SertestFailure(f"sertest: {exc}") from None
        self._record(entry, deltas, status, doc)
        head = (f"{self.test} for model {self.model!r} on {self.dimension} "
                f"(suite {doc['suite']['name']}, data {doc['dataset']['name']})")
        parts = []
        if verdict in (ERROR, FAIL) or (verdict == INCONCLUSIVE and state.settings.strict):
            parts.append(failure_text(doc, entry, head))
        if any(d.regressed for d in deltas):
            parts.append(f"{'and it' if parts else head} regressed against the baseline "
                         f"{state.settings.baseline} (stored model {base_model!r}):\n"
                         + format_regressions(deltas))
        if parts:
            if entry.get("description"):
                parts.append(f"(test: {entry['description']})")
            raise SertestFailure("\n".join(parts))
        if verdict in (INCONCLUSIVE, "gated", SKIPPED):
            self._skip(skip_reason(doc, entry, f"{self.test} [{self.model}-{self.dimension}]"))

    def _skip(self, reason: str) -> None:
        """Skip, reported at the test's line in the suite YAML (not at this module)."""
        raise pytest.skip.Exception(reason, _use_item_location=True)

    def _record(self, entry: dict[str, Any], deltas: list, status: str,
                doc: dict[str, Any] | None = None) -> None:
        from .report import display

        props = self.user_properties
        doc = doc or {}
        props.append(("sertest.verdict", display.verdict(doc, entry)))
        judged = display.judged_verdict(doc, entry)
        if judged:
            props.append(("sertest.judged_verdict", judged))
        if display.flags(entry):
            props.append(("sertest.flags", "; ".join(display.flag_texts(entry))))
        for m in entry.get("measurements", []):
            label = m["metric"] + (f"[{m['group']}]" if m.get("group") is not None else "")
            props.append((label, _fmt(m.get("value"))))
            if m.get("ci"):
                props.append((f"{label}.ci", f"[{_fmt(m['ci'][0])}, {_fmt(m['ci'][1])}]"))
            if m.get("threshold"):
                props.append((f"{label}.threshold", m["threshold"]["text"]))
        for d in deltas:
            props.append((f"{d.label}.baseline", _fmt(d.baseline)))
            props.append((f"{d.label}.delta", f"{d.delta:+.6g}"))
        props.append(("sertest.baseline", status))
        props.append(("sertest.regressions", str(sum(d.regressed for d in deltas))))
        props.append(("sertest.summary", _headline(entry, deltas, doc)))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SertestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.line, f"sertest {self.test} [{self.model}-{self.dimension}]"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _measurement_text(m: dict[str, Any]) -> str:
    group = f" [{m['group']}]" if m.get("group") is not None else ""
    ci = f", CI [{_fmt(m['ci'][0])}, {_fmt(m['ci'][1])}]" if m.get("ci") else ""
    n = f", n={m['n']}" if m.get("n") is not None else ""
    thr = m["threshold"]["text"] if m.get("threshold") else "no threshold"
    return f"{m['metric']}{group} = {_fmt(m.get('value'))}{ci}{n}; threshold {thr} -> {m['verdict']}"


def _describe(entry: dict[str, Any], only: tuple[str, ...], sep: str = "\n") -> str:
    from .report.display import sort_measurements

    shown = [m for m in sort_measurements(entry.get("measurements", []))
             if m.get("verdict") in only]
    prefix = "  " if sep == "\n" else ""
    return sep.join(prefix + _measurement_text(m) for m in shown) or f"{prefix}(no measurement)"


def failure_text(doc: dict[str, Any], entry: dict[str, Any], head: str) -> str:
    """The report of a failed or crashed entry: why in one line, the measurements that did
    not pass (failing first), the items the model failed, flags and multiplicity."""
    from .report import display

    lines = []
    failures = display.item_failures_text(entry)
    if display.verdict(doc, entry) == "error":
        lines.append(f"{head} crashed: {entry.get('error') or entry.get('reason') or ''}".rstrip())
        if failures:
            lines.append(f"  {failures}")
        if entry.get("traceback"):
            lines.append(entry["traceback"].rstrip())
    else:
        fb = display.failed_because(entry)
        lines.append(f"{head} failed" + (f" because {fb}:" if fb else ":"))
        lines.append(_describe(entry, only=("fail", "inconclusive")))
    for note in display.notes(entry):
        if note != failures:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def skip_reason(doc: dict[str, Any], entry: dict[str, Any], where: str) -> str:
    """The skip reason of an inconclusive, gated or skipped entry, with its flags."""
    from .report import display

    verdict = display.verdict(doc, entry)
    if verdict == "inconclusive":
        text = f"sertest inconclusive: {where}: " + _describe(entry, only=("inconclusive",), sep="; ")
    elif verdict == "gated":
        text = f"sertest gated: {where}: {display.reason(doc, entry)}"
    else:
        text = f"sertest skipped: {where}: {entry.get('reason') or 'nothing to judge'}"
    extra = display.notes(entry)
    return text + (f" [{'; '.join(extra)}]" if extra else "")


def _headline(entry: dict[str, Any], deltas: list, doc: dict[str, Any] | None = None) -> str:
    """One short phrase for the summary table: the regression, else why the entry did not
    pass (else its first judged measurement); flags as tags."""
    from .report import display

    tags = display.flag_tags(entry)
    return (_headline_text(entry, deltas, doc or {}) + (f" {tags}" if tags else "")).strip()


def _headline_text(entry: dict[str, Any], deltas: list, doc: dict[str, Any]) -> str:
    from .report import display

    bad = [d for d in deltas if d.regressed]
    if bad:
        d = bad[0]
        return f"{d.label} {_fmt(d.baseline)} -> {_fmt(d.new)} ({d.delta:+.3g}, allowed {d.allowed_text})"
    verdict = display.verdict(doc, entry)
    if verdict == "error":
        text = (entry.get("error") or entry.get("reason") or "").splitlines()
        failures = display.item_failures_text(entry, first=1)
        return "; ".join(x for x in (text[0][:80] if text else "", failures) if x)
    if verdict == "gated":
        return display.reason(doc, entry)[:100]
    if entry.get("reason"):
        return entry["reason"][:80]
    ms = entry.get("measurements", [])
    order = {"fail": 0, "inconclusive": 1, "pass": 2}
    judged = sorted((m for m in ms if m.get("verdict") in order), key=lambda m: order[m["verdict"]])
    if not judged:
        return ""
    m = judged[0]
    group = f"[{m['group']}]" if m.get("group") is not None else ""
    thr = (m.get("threshold") or {}).get("text", "")
    return f"{m['metric']}{group}={_fmt(m.get('value'))}" + (f" ({thr})" if thr else "") \
        + (f", {len(judged) - 1} more" if len(judged) > 1 else "")


def _terminal_summary(state: SertestState, tr) -> None:
    if not state.reports:
        return
    tr.section("sertest")
    from .report.display import RANK

    rows = [("outcome", "test", "model", "dimension", "verdict", "measurement")]
    statuses: dict[str, int] = {}
    failing_first = sorted(state.reports, key=lambda r: (
        r[1] != "failed", RANK.get(r[2].get("sertest.verdict", ""), len(RANK))))
    for _nodeid, outcome, p in failing_first:
        rows.append((outcome, p.get("sertest.test", "?"), p.get("sertest.model", "?"),
                     p.get("sertest.dimension", "?"), p.get("sertest.verdict", "?"),
                     p.get("sertest.summary", "")))
        st = p.get("sertest.baseline", "")
        if st:
            statuses[st] = statuses.get(st, 0) + 1
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        tr.write_line("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    s = state.settings
    if s.update_baseline:
        fresh = os.path.exists(s.baseline) and os.path.getmtime(s.baseline) >= state.started - 1
        tr.write_line(f"baseline {'updated' if fresh else 'NOT updated'}: {s.baseline}")
    elif statuses.get("absent"):
        tr.write_line(f"no baseline at {s.baseline}; create it with --sertest-update-baseline")
    else:
        n_reg = sum(p.get("sertest.regressions", "0") != "0" for _, _, p in state.reports)
        tr.write_line(f"baseline {s.baseline}: " + ", ".join(
            f"{k} x{v}" for k, v in sorted(statuses.items()))
            + (f"; {n_reg} item(s) regressed" if n_reg else "")
            + ("" if s.compare_fail else "; no --sertest-compare-fail given, nothing gated"))
    if s.out:
        tr.write_line(f"results and reports: {s.out}")


# -- fixtures --------------------------------------------------------------------------------
def _active_state(request: pytest.FixtureRequest) -> SertestState:
    state = _state(request.config)
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
    from .data import load_dataset

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
