"""The import graph of the ``sertest`` package: no cycles, no upward imports.

The graph is read with :mod:`ast` from the source files (nothing is imported), so the test
sees every import a module can make:

* an edge ``a -> b`` for every ``import``/``from ... import`` of a sertest module in ``a``,
  at module level **and** inside functions (lazy imports, used to keep torch, transformers
  and heavy renderers optional): both kinds count, for cycles and for layers alike;
* not counted: imports under ``if TYPE_CHECKING:`` (never run), and modules loaded by name
  through a registry table (``BUILTIN_MODULES`` in ``checks/registry.py`` and
  ``perturb/registry.py``, ``ADAPTERS`` in ``models/__init__.py``): those are plug-in
  tables, like entry points; the registry never imports its plug-ins' code, they import it;
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``;
  the implicit import of a package's ``__init__`` when a submodule is imported is not an edge.

The layers, lowest first, are :data:`LAYERS` (docs/architecture.md explains them).  A module
may import modules of its own layer or of lower layers; the whole graph must be acyclic.
:data:`KNOWN_EXCEPTIONS` lists the few edges still waiting for their owners' rework, each
with its reason; an entry whose edge no longer exists fails the test, so the list only
shrinks.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re

import pytest

import sertest

PACKAGE_DIR = os.path.dirname(sertest.__file__)

#: (layer name, module prefixes), lowest layer first.  A module belongs to the layer of its
#: longest matching prefix; every module must belong to one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("sertest._version", "sertest.vocabulary", "sertest.errors",
                    "sertest.seeding", "sertest._builtins", "sertest.figures")),
    ("numerics", ("sertest.stats", "sertest.metrics", "sertest.audio")),
    ("inputs", ("sertest.data", "sertest.models", "sertest.features", "sertest.perturb")),
    ("checks", ("sertest.checks", "sertest.suite")),
    ("results", ("sertest.results", "sertest.published", "sertest.json_text")),
    ("engine", ("sertest.engine", "sertest.efficiency")),
    ("outputs", ("sertest.report", "sertest.validate")),
    # the package root is the library API (``sertest.audit``, ``sertest.load_dataset``, ...):
    # the front ends may use it, nothing below them imports it
    ("library API", ("sertest",)),
    ("front ends", ("sertest.cli", "sertest.pytest_plugin", "sertest.pytest_baseline")),
]

#: (importer, imported) -> why the edge is still there.  Owned by the work named in it;
#: delete the entry when the edge goes (the test then demands it).
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

#: names of the vocabulary leaf that no other module may define again
VOCABULARY_NAMES = ("DIMENSIONS", "EMOTION", "CATEGORIES", "TOPICS", "CLEAN", "VERDICTS",
                    "PASS", "FAIL", "INCONCLUSIVE", "ERROR", "SKIPPED", "GATED", "INFO",
                    "SECONDARY", "__version__")
#: (module, name) -> why it still defines a vocabulary word itself
KNOWN_REDEFINITIONS: dict[tuple[str, str], str] = {}


# -- reading the graph -------------------------------------------------------------------------
def _module_files() -> dict[str, str]:
    out = {}
    root = os.path.dirname(PACKAGE_DIR)
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


MODULES = _module_files()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            full = ".".join(base + ([node.module] if node.module else []))
        else:
            full = node.module or ""
        names = [f"{full}.{a.name}" if f"{full}.{a.name}" in MODULES else full
                 for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:  # `import sertest.x.y` of a non-module name
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def import_graph() -> dict[str, dict[str, str]]:
    """``{importer: {imported: "module" | "lazy"}}`` over the package's modules."""
    graph: dict[str, dict[str, str]] = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        edges: dict[str, str] = {}
        is_package = path.endswith("__init__.py")

        def visit(node: ast.AST, lazy: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _targets(module, is_package, child):
                        if edges.get(target) != "module":
                            edges[target] = "lazy" if lazy else "module"
                elif isinstance(child, ast.If) and _is_type_checking(child):
                    for sub in child.orelse:
                        visit(ast.Module(body=[sub], type_ignores=[]), lazy)
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    visit(child, True)
                else:
                    visit(child, lazy)

        visit(tree, False)
        graph[module] = edges
    return graph


def layer_of(module: str) -> int:
    best, index = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    return index


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


GRAPH = import_graph()


def _without_exceptions(graph):
    return {a: {b: k for b, k in edges.items() if (a, b) not in KNOWN_EXCEPTIONS}
            for a, edges in graph.items()}


# -- the rules ---------------------------------------------------------------------------------
def test_the_graph_reader_sees_module_level_lazy_and_relative_imports():
    edges = GRAPH["sertest.checks.dose"]
    assert edges["sertest.checks.conditions"] == "module"   # from .conditions import (...)
    assert edges["sertest.vocabulary"] == "module"          # from ..vocabulary import EMOTION
    assert GRAPH["sertest.checks.verdict"]["sertest.stats"] == "lazy"  # inside a function
    assert "sertest.checks.base" not in GRAPH["sertest.checks.registry"]  # TYPE_CHECKING only
    assert cycles({"a": {"b": "module"}, "b": {"c": "lazy"}, "c": {"a": "lazy"},
                   "d": {"a": "module"}}) == [["a", "b", "c"]]


def test_every_module_belongs_to_a_layer():
    lost = sorted(m for m in MODULES if layer_of(m) < 0)
    assert not lost, f"place these modules in LAYERS of tests/test_architecture.py: {lost}"


def test_no_import_cycles():
    found = cycles(_without_exceptions(GRAPH))
    assert not found, "import cycles (module-level and lazy imports both count):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_no_upward_imports():
    upward = []
    for a, edges in sorted(GRAPH.items()):
        for b, kind in sorted(edges.items()):
            if layer_of(b) > layer_of(a) and (a, b) not in KNOWN_EXCEPTIONS:
                upward.append(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} "
                              f"({LAYERS[layer_of(b)][0]}), {kind} import")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_known_exceptions_still_exist_and_are_needed():
    stale = [f"{a} -> {b}" for a, b in KNOWN_EXCEPTIONS
             if b not in GRAPH.get(a, {}) or layer_of(b) <= layer_of(a) and not any(
                 a in c and b in c for c in cycles(GRAPH))]
    assert not stale, ("these KNOWN_EXCEPTIONS no longer describe an upward or cyclic import; "
                       f"delete them from tests/test_architecture.py: {stale}")


def test_leaf_modules_import_nothing_from_sertest():
    for leaf in ("sertest._version", "sertest.vocabulary", "sertest.errors", "sertest.seeding",
                 "sertest.figures"):
        assert not GRAPH[leaf], f"{leaf} must stay a leaf, imports {sorted(GRAPH[leaf])}"


def test_the_vocabulary_is_defined_once():
    pattern = re.compile(r"^(%s)\s*(:[^=]*)?=" % "|".join(re.escape(n) for n in VOCABULARY_NAMES))
    found = set()
    for module, path in MODULES.items():
        if module in ("sertest.vocabulary", "sertest._version"):
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                m = pattern.match(line)
                if m:
                    found.add((module, m.group(1)))
    extra = sorted(found - set(KNOWN_REDEFINITIONS))
    assert not extra, f"import these from sertest.vocabulary instead of defining them: {extra}"
    stale = sorted(set(KNOWN_REDEFINITIONS) - found)
    assert not stale, f"delete from KNOWN_REDEFINITIONS (no longer defined there): {stale}"


def test_compatibility_names_are_the_vocabulary():
    from sertest import vocabulary
    from sertest.checks import verdict
    from sertest.models import base

    assert base.DIMENSIONS is vocabulary.DIMENSIONS and base.EMOTION is vocabulary.EMOTION
    assert base.CATEGORIES is vocabulary.CATEGORIES
    assert verdict.VERDICTS is vocabulary.VERDICTS and verdict.PASS == "pass"
    assert sertest.__version__ == importlib.import_module("sertest._version").__version__


# -- runnable examples -------------------------------------------------------------------------
#: modules whose docstring examples are part of the test suite (fast: no models, no audio
#: files); pytest runs them here so that CI needs no extra option
DOCTEST_MODULES = ("sertest", "sertest.vocabulary", "sertest._version", "sertest.metrics",
                   "sertest.stats.bootstrap", "sertest.stats.inference", "sertest.seeding",
                   "sertest.checks.registry", "sertest.perturb.registry", "sertest.checks.verdict",
                   "sertest.models", "sertest.data.dataset", "sertest.report.numbers",
                   "sertest.results", "sertest.checks.base", "sertest.figures",
                   "sertest.checks.metric_info", "sertest.report", "sertest.report.display",
                   "sertest.report.compare", "sertest.report.gallery")


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             raise_on_error=False, verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}; run " \
        f"`python -m doctest -v {MODULES[name]}` to see them"
    assert result.attempted > 0, f"{name} has no runnable example"
