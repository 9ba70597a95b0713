"""Suites: YAML files that say which tests run, with which parameters and thresholds.

Format::

    name: quick
    description: one line
    targets: [arousal, dominance, valence, emotion]   # optional: restrict what is judged
    bootstrap: {n_boot: 1000, confidence: 0.95}       # optional
    model_health: {thresholds: {item_failure_share: "< 0.05"}}  # optional (the default)
    tests:
      - test: correctness_regression                  # a registered test id
        thresholds: {ccc: "> 0.5", mae: "< 0.1"}      # optional: override defaults
        params: {}                                    # optional: test parameters
        targets: [arousal]                            # optional
        where: {recording: [null, headset]}           # optional: only items whose column
                                                      # holds one of these values (null =
                                                      # empty or no such column)

Unknown keys are refused with their name; YAML is loaded with ``yaml.SafeLoader`` (no
Python objects), refusing aliases that would expand a small file into a huge document
(:func:`safe_load_bounded`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import yaml

from .checks import Check, registry
from .errors import UsageError
from .vocabulary import DIMENSIONS, EMOTION

SUITE_DIR = os.path.join(os.path.dirname(__file__), "test_suites")
_TOP_KEYS = {"name", "description", "targets", "bootstrap", "tests", "version",
             "model_health"}
_TEST_KEYS = {"test", "name", "thresholds", "params", "targets", "where"}
_BOOT_KEYS = {"n_boot", "confidence"}
_TARGETS = set(DIMENSIONS) | {EMOTION}


@dataclass
class Suite:
    """A parsed suite: its checks and settings."""

    name: str
    checks: list[tuple[Check, tuple[str, ...] | None]]
    description: str = ""
    targets: tuple[str, ...] | None = None
    n_boot: int = 1000
    confidence: float = 0.95
    path: str = ""
    sha256: str = ""
    raw: dict = field(default_factory=dict)
    #: the model-health check (always run; its thresholds from the ``model_health`` key)
    health: Check | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "path": os.path.basename(self.path) if self.path else None,
                "sha256": self.sha256, "n_boot": self.n_boot, "confidence": self.confidence,
                "tests": [c.name for c, _ in self.checks]}

    def cells(self, models: Iterable[Any] | Mapping[str, Any]
              ) -> Iterator[tuple[Check, str, str]]:
        """Every (check, model name, target) the suite judges, in the order of the results:
        checks in suite order, then models in the given order, then each model's targets;
        a target is left out when the suite's or the test's ``targets`` leave it out, or
        when the check does not support it (a regression test on ``emotion``).  The engine
        evaluates these cells and the pytest plugin collects them as items (each model's
        ``model_health`` entry aside).

        Args:
            models: models (objects with ``name`` and ``targets``), or a mapping
                name -> model.

        >>> from types import SimpleNamespace
        >>> suite = load_suite({"tests": ["correctness_regression"],
        ...                     "targets": ["arousal", "valence", "emotion"]})
        >>> model = SimpleNamespace(name="w2s", targets=("arousal", "dominance", "valence",
        ...                                              "emotion"))
        >>> [(check.name, name, target) for check, name, target in suite.cells([model])]
        [('correctness_regression', 'w2s', 'arousal'), ('correctness_regression', 'w2s', 'valence')]
        """
        named = list(models.items()) if isinstance(models, Mapping) else \
            [(m.name, m) for m in models]
        for check, targets in self.checks:
            for name, model in named:
                for target in model.targets:
                    if self.targets and target not in self.targets:
                        continue
                    if targets and target not in targets:
                        continue
                    if check.supports(target):
                        yield check, name, target


def is_suite_document(doc: Any) -> bool:
    """Whether a parsed YAML document has the shape of a suite: a mapping with only suite
    keys and a non-empty ``tests`` list of test ids (strings, or mappings with a ``test``
    string).  It does not look the tests up (:func:`load_suite` does).

    >>> is_suite_document({"name": "ci", "tests": ["correctness_regression"]})
    True
    >>> is_suite_document({"name": "ci", "on": ["push"], "jobs": {}})
    False
    """
    if not isinstance(doc, dict) or not set(doc) <= _TOP_KEYS:
        return False
    tests = doc.get("tests")
    return isinstance(tests, list) and bool(tests) and all(
        isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("test"), str))
        for t in tests)


def bundled_suites() -> dict[str, str]:
    """Bundled suite names and their paths."""
    if not os.path.isdir(SUITE_DIR):
        return {}
    return {os.path.splitext(f)[0]: os.path.join(SUITE_DIR, f)
            for f in sorted(os.listdir(SUITE_DIR)) if f.endswith((".yaml", ".yml"))}


def resolve_suite_path(suite: str) -> str:
    """A path for ``suite``: an existing file, or the name of a bundled suite."""
    if os.path.isfile(suite):
        return suite
    bundled = bundled_suites()
    name = os.path.splitext(os.path.basename(suite))[0]
    if suite in bundled:
        return bundled[suite]
    if not os.path.exists(suite) and name in bundled and os.sep not in suite.strip("./"):
        return bundled[name]
    import difflib

    close = difflib.get_close_matches(name, list(bundled), n=2, cutoff=0.6)
    raise UsageError(f"--suite {suite!r}: no such file, and no bundled suite of that name"
                     + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
                     + f" (bundled: {', '.join(bundled) or 'none'})")


def load_suite(suite: str | dict = "quick") -> Suite:
    """Parse a suite from a path, a bundled name or an already-loaded mapping."""
    if isinstance(suite, dict):
        doc, path, digest = suite, "", ""
    else:
        path = resolve_suite_path(suite)
        with open(path, "rb") as fh:
            raw = fh.read()
        digest = hashlib.sha256(raw).hexdigest()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}: not UTF-8 text ({exc}); save the suite as UTF-8") from None
        doc = safe_load_bounded(text, path)
    where = path or "suite"
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: a suite must be a mapping with a 'tests' list")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(sorted(_TOP_KEYS))}")
    tests = doc.get("tests")
    if not isinstance(tests, list) or not tests:
        raise UsageError(f"{where}: 'tests' must be a non-empty list")
    targets = _targets(doc.get("targets"), f"{where}: targets")
    boot = doc.get("bootstrap") or {}
    if not isinstance(boot, dict) or set(boot) - _BOOT_KEYS:
        raise UsageError(f"{where}: bootstrap takes only {sorted(_BOOT_KEYS)}")
    n_boot = _int(boot.get("n_boot", 1000), f"{where}: bootstrap.n_boot", minimum=0)
    confidence = float(boot.get("confidence", 0.95))
    if not 0 < confidence < 1:
        raise UsageError(f"{where}: bootstrap.confidence must be in (0, 1), got {confidence}")
    health = _health(doc.get("model_health"), f"{where}: model_health")
    reg = registry()
    checks: list[tuple[Check, tuple[str, ...] | None]] = []
    names: set[str] = set()
    for i, entry in enumerate(tests):
        here = f"{where}: tests[{i}]"
        if isinstance(entry, str):
            entry = {"test": entry}
        if not isinstance(entry, dict):
            raise UsageError(f"{here}: each test is a mapping with a 'test' key")
        unknown = sorted(set(entry) - _TEST_KEYS)
        if unknown:
            raise UsageError(f"{here}: unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(sorted(_TEST_KEYS))}")
        test_id = entry.get("test")
        if not isinstance(test_id, str) or test_id not in reg:
            import difflib

            close = difflib.get_close_matches(str(test_id), list(reg), n=2, cutoff=0.6)
            raise UsageError(f"{here}: unknown test {test_id!r}"
                             + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
                             + f"; known: {', '.join(reg)}")
        name = entry.get("name") or test_id
        if not isinstance(name, str):
            raise UsageError(f"{here}: 'name' must be a string, got {name!r}")
        if name in names:
            raise UsageError(f"{here}: test name {name!r} used twice; give one a 'name'")
        names.add(name)
        for key in ("params", "thresholds"):
            if entry.get(key) is not None and not isinstance(entry[key], dict):
                raise UsageError(f"{here}: {key!r} must be a mapping")
        try:
            check = reg[test_id](entry.get("params"), entry.get("thresholds"), name=name)
        except UsageError as exc:  # a parameter or threshold: say which suite entry
            raise UsageError(f"{here}: {exc}") from None
        where = entry.get("where")
        if where is not None:
            if not isinstance(where, dict) or not all(
                    isinstance(v, list) and all(x is None or isinstance(x, (str, int, float)) for x in v)
                    for v in where.values()):
                raise UsageError(f"{here}: 'where' maps a column to a list of allowed values, "
                                 f"e.g. {{recording: [null, headset]}}")
        check.where = where
        checks.append((check, _targets(entry.get("targets"), f"{here}: targets")))
    return Suite(name=str(doc.get("name") or os.path.splitext(os.path.basename(path))[0] or "suite"),
                 checks=checks, description=str(doc.get("description") or ""),
                 targets=targets, n_boot=n_boot, confidence=confidence, path=path,
                 sha256=digest, raw=doc, health=health)


#: YAML aliases a suite may use, and the nodes it may hold once every alias is expanded
#: (the bundled suites hold a few hundred): a 1 KB "billion laughs" suite is refused at once
MAX_ALIASES = 1000
MAX_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts aliases while composing (see :func:`safe_load_bounded`)."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooLarge(f"more than {MAX_ALIASES} YAML aliases (*name)")
        return super().compose_node(parent, index)


class _TooLarge(Exception):
    pass


def safe_load_bounded(text: str, where: str = "suite") -> Any:
    """``yaml.safe_load`` for suites, refusing documents whose aliases would expand beyond
    :data:`MAX_NODES` nodes or that use more than :data:`MAX_ALIASES` aliases (the
    expanded size is counted on the composed graph, without expanding it)."""
    loader = _BoundedLoader(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            size = _expanded_size(node, {}, set())
            if size > MAX_NODES:
                raise _TooLarge(f"its YAML aliases expand to more than {MAX_NODES:,} nodes")
            return loader.construct_document(node)
        except _TooLarge as exc:
            raise UsageError(f"{where}: refused: {exc} (a suite may hold {MAX_NODES:,} "
                             f"nodes and {MAX_ALIASES} aliases); write it out without nested "
                             "aliases") from None
        except RecursionError:
            raise UsageError(f"{where}: refused: YAML nested too deeply") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _expanded_size(node, memo: dict[int, int], active: set[int]) -> int:
    """Nodes in the tree ``node`` would become with every alias expanded (memoised on the
    shared nodes; a node that contains itself counts as too large)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _TooLarge("a YAML alias refers to the node that contains it")
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, active)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, active) + _expanded_size(v, memo, active)
            if total > MAX_NODES:
                break
    active.discard(key)
    memo[key] = total
    return total


def _health(value, where) -> Check:
    """The model-health check (:mod:`sertest.checks.health`) with the suite's thresholds."""
    from .checks.health import ModelHealth

    if value is None:
        return ModelHealth()
    if not isinstance(value, dict) or set(value) - {"thresholds"} or (
            value.get("thresholds") is not None and not isinstance(value["thresholds"], dict)):
        raise UsageError(f"{where}: expected {{thresholds: {{item_failure_share: '< 0.05'}}}}")
    return ModelHealth(None, value.get("thresholds"))


def select_items(dataset, where: dict | None) -> list[str]:
    """Ids of the items whose columns hold one of the allowed values (``None`` = empty)."""
    table = dataset.table
    mask = None
    for col, allowed in (where or {}).items():
        values = table[col] if col in table.columns else None
        keep_empty = any(v is None for v in allowed)
        wanted = {str(v) for v in allowed if v is not None}
        if values is None:
            m = [keep_empty] * len(table)
        else:
            m = [(keep_empty if (v is None or (isinstance(v, float) and v != v) or v == "")
                  else str(v) in wanted) for v in values]
        mask = m if mask is None else [a and b for a, b in zip(mask, m)]
    if mask is None:
        return list(table.index)
    return [i for i, k in zip(table.index, mask) if k]


def _targets(value, where) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or set(value) - _TARGETS:
        raise UsageError(f"{where}: expected a list from {sorted(_TARGETS)}, got {value!r}")
    return tuple(value)


def _int(value, where, minimum=None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise UsageError(f"{where}: must be at least {minimum}")
    return value
