"""Collection: a sertest suite YAML becomes one pytest item per test x model x dimension
(the cells of :meth:`sertest.suite.Suite.cells`, as the engine evaluates them), plus one
``model_health[MODEL-all]`` item per model; each item reads its entry from the session's
audit and maps its verdict to a pytest outcome.

YAML files are recognised by their content (:func:`sertest.suite.is_suite_document`);
other YAML files are never collected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from ..errors import SertestError, UsageError
from .baseline import format_regressions
from .report import failure_text, fmt, headline, skip_reason
from .session import AuditError, get_state

#: the per-model entry every audit writes (item failures, clipped predictions); the same
#: id as :data:`sertest.checks.health.HEALTH_TEST`, kept here so collecting stays cheap
MODEL_HEALTH = "model_health"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "SuiteFile | None":
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    state = get_state(parent.config)
    if state is None and not parent.session.isinitpath(file_path):
        return None
    if not looks_like_suite(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


def looks_like_suite(path: Path, max_bytes: int = 1 << 20) -> bool:
    """Whether a YAML file holds a sertest suite (:func:`sertest.suite.is_suite_document`);
    unreadable or larger than ``max_bytes`` (bytes): not ours."""
    try:
        if path.stat().st_size > max_bytes:
            return False
        import yaml

        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - not YAML we can read: not ours
        return False
    from ..suite import is_suite_document

    return is_suite_document(doc)


class SuiteFile(pytest.File):
    """A sertest suite YAML: one item per test x model x dimension."""

    def collect(self) -> Iterator["SuiteItem"]:
        from ..suite import load_suite

        state = get_state(self.config)
        if state is None:
            raise UsageError(f"{self.path} is a sertest suite, but no model is configured: "
                             "give --sertest-model (or sertest_model in the ini file, or "
                             "model in [tool.sertest] of pyproject.toml)")
        suite = load_suite(str(self.path))
        cells = state.add_suite(str(self.path), suite)
        lines = _test_lines(self.path)
        index = {id(check): i for i, (check, _) in enumerate(suite.checks)}
        for check, model, target in cells:
            i = index[id(check)]
            yield SuiteItem.from_parent(
                self, name=f"{check.name}[{model}-{target}]", test=check.name,
                model=model, dimension=target, topic=check.topic,
                line=lines[i] if i < len(lines) else 0)
        for m in state.candidates():  # every audit has one model_health entry per model
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
        from ..checks.verdict import ERROR, FAIL, INCONCLUSIVE, SKIPPED
        from ..report import display

        state = get_state(self.config)
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
        from ..report import display

        props = self.user_properties
        doc = doc or {}
        props.append(("sertest.verdict", display.verdict(doc, entry)))
        judged = display.judged_verdict(doc, entry)
        if judged:
            props.append(("sertest.judged_verdict", judged))
        if display.flags(entry):
            props.append(("sertest.flags", "; ".join(display.flag_texts(entry))))
        for m in entry.get("measurements", []):
            label = display.cell_name(m)
            props.append((label, fmt(m.get("value"))))
            if m.get("ci"):
                props.append((f"{label}.ci", f"[{fmt(m['ci'][0])}, {fmt(m['ci'][1])}]"))
            if m.get("threshold"):
                props.append((f"{label}.threshold", m["threshold"]["text"]))
        for d in deltas:
            props.append((f"{d.label}.baseline", fmt(d.baseline)))
            props.append((f"{d.label}.delta", f"{d.delta:+.6g}"))
        props.append(("sertest.baseline", status))
        props.append(("sertest.regressions", str(sum(d.regressed for d in deltas))))
        props.append(("sertest.summary", headline(entry, deltas, doc)))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SertestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.line, f"sertest {self.test} [{self.model}-{self.dimension}]"
