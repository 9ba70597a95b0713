"""The plugin's settings: ``--sertest-*`` options, ini keys and ``[tool.sertest]``.

Each setting comes from the command line, else the ini file (``sertest_model``,
``sertest_suite``, ... in pytest.ini or ``[tool.pytest.ini_options]``), else
``[tool.sertest]`` in the rootdir's pyproject.toml (keys without the prefix: ``model``,
``suite``, ...).  Relative paths are relative to the invocation directory on the command
line and to the file that sets them otherwise.  Nothing here imports numpy or the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_OFF = ("", "0", "no", "none", "off", "false")


@dataclass(frozen=True)
class Option:
    """One sertest setting: ``--sertest-<name>``, ini ``sertest_<name>``, toml ``<name>``."""

    name: str  # key in [tool.sertest]; the option is --sertest-<name with dashes>
    kind: str  # list | str | path | int | bool
    help: str
    metavar: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option("model", "list", "model to audit (repeatable): file.onnx, NAME=file.onnx, an audonnx "
           "or Hugging Face folder, callable:pkg.mod:fn, random:gaussian, or KIND:TARGET for "
           "an adapter registered with sertest.models.register_adapter", "[NAME=]SPEC"),
    Option("suite", "str", "suite YAML or bundled suite name whose tests become pytest items "
           "(a suite YAML may also be given as a path argument)", "SUITE"),
    Option("data", "path", "CSV/Parquet manifest, audformat or audio folder "
           "(default: the bundled corpus)", "MANIFEST|FOLDER"),
    Option("out", "path", "folder for results.json and the reports (default: none written)",
           "DIR"),
    Option("seed", "int", "audit seed (default 0)", "N"),
    Option("baseline", "path", "metric baseline JSON (default .sertest/baseline.json in the "
           "rootdir)", "PATH"),
    Option("update_baseline", "bool", "store this audit's measurements as the baseline"),
    Option("compare_fail", "list", "fail when a metric worsens against the baseline by more "
           "than TOLERANCE (repeatable): ccc:-0.02, mae:0.01, unchanged:-5%, *:-0.01; METRIC "
           "is a metric id the suite's tests emit (a glob, or TEST/METRIC)",
           "METRIC:TOLERANCE"),
    Option("strict", "bool", "an inconclusive test fails instead of being skipped (as "
           "'sertest run --strict')"),
    Option("no_baselines", "bool", "do not add the baseline models "
           "(random:gaussian, random:categorical, random:constant) to the audit"),
    Option("cache", "path", "prediction cache folder, or 'none' (default: $SERTEST_CACHE or "
           "~/.cache/sertest)", "DIR"),
)
_TOML_ALIASES = {"models": "model"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sertest", "sertest: speech emotion recognition model audits")
    for opt in OPTIONS:
        flag = "--sertest-" + opt.name.replace("_", "-")
        dest = "sertest_" + opt.name
        text = opt.help.replace("%", "%%")  # argparse %-formats option help
        if opt.kind == "bool":
            group.addoption(flag, dest=dest, action="store_true", default=None, help=text)
        elif opt.kind == "list":
            group.addoption(flag, dest=dest, action="append", default=None,
                            metavar=opt.metavar, help=text)
        else:
            group.addoption(flag, dest=dest, default=None, metavar=opt.metavar,
                            type=int if opt.kind == "int" else str, help=text)
        ini_type = {"list": "linelist", "bool": "bool"}.get(opt.kind, "string")
        parser.addini(dest, help=f"[sertest] {opt.help}", type=ini_type, default=None)


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
    known = {o.name for o in OPTIONS}
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = _TOML_ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in known:
            raise pytest.UsageError(
                f"{path}: [tool.sertest] has unknown key {key!r}; known: "
                f"{', '.join(sorted(known))}")
        out[name] = value
    return out, path


def _coerce(opt: Option, value: Any, where: str) -> Any:
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


def resolve_model_spec(spec: str, base: Path) -> str:
    """Make the path inside a model spec absolute, relative to ``base``; the display name
    and the adapter kind are kept.

    The spec is split by :func:`sertest.models.split_spec`, so kinds registered with
    :func:`sertest.models.register_adapter` are recognised.  A spec without a kind is a
    path (made absolute) unless it is a Hugging Face hub id (``org/name``) that names no
    file under ``base``; the target of a spec with a kind is made absolute when it names
    an existing file or folder under ``base`` (``onnx:m.onnx``) and is kept as written
    otherwise (``random:gaussian``, ``callable:pkg.mod:fn``, ``hf:org/name``).
    """
    from ..models import split_spec

    name, kind, target = split_spec(spec, root=str(base))
    prefix = f"{name}=" if name is not None else ""
    if kind is not None:
        if target and not os.path.isabs(target) and (base / target).exists():
            target = os.path.normpath(base / target)
        return f"{prefix}{kind}:{target}"
    if not os.path.isabs(target) and not (base / target).exists():
        from ..models.hub import parse_hub_id

        if parse_hub_id(target) is not None:
            return prefix + target
    if not os.path.isabs(target):
        target = os.path.normpath(base / target)
    return prefix + target


def load_settings(config: pytest.Config) -> Settings:
    """Command line, else ini, else ``[tool.sertest]``; paths made absolute."""
    table, toml_path = _read_tool_sertest(config.rootpath)
    cli_base = Path(config.invocation_params.dir)
    ini_base = config.inipath.parent if config.inipath else config.rootpath
    s = Settings(baseline=str(config.rootpath / ".sertest" / "baseline.json"))
    for opt in OPTIONS:
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
            s.models += [resolve_model_spec(v, base) for v in value]
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
