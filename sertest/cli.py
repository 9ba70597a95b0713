"""The ``sertest`` command line: a thin layer over :func:`sertest.audit`.

Exit codes of ``sertest run``: 0 no entry of a candidate model is ``fail`` or ``error``
(``pass``, ``skipped``, ``gated`` and ``inconclusive`` entries are allowed; with ``--strict``
``inconclusive`` is not); 1 some candidate entry is ``fail`` or ``error`` (a crashed check,
predictions the model failed to produce, a failing ``model_health``), or with ``--strict``
``inconclusive``; 2 usage or input error (bad option, manifest, suite or model; a results
folder ``report``/``compare`` cannot read; a named file that cannot be read or written); 3
internal error (one line on stderr, the traceback in a log file under ``$SERTEST_LOG_DIR`` or
``TMPDIR/sertest-logs``; a report that could not be rendered, results.json written); 130
interrupted.  The random baselines' entries never set the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap

from ._version import __version__
from .errors import SertestError


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for misspelt options and subcommands (difflib)."""

    def error(self, message: str):  # type: ignore[override]
        import difflib
        import re

        words: list[str] = []
        if message.startswith("unrecognized arguments:"):
            known = _option_strings(self)
            for token in message.split(":", 1)[1].split():
                if token.startswith("--"):
                    words += difflib.get_close_matches(token.split("=")[0], known, n=1, cutoff=0.6)
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            words += difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
        if words:
            message += f"; did you mean {' or '.join(dict.fromkeys(words))}?"
        super().error(message)


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every long option of ``parser`` and its subcommands."""
    out = []
    for action in parser._actions:
        out += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _option_strings(sub)
    return sorted(set(out))


def _label_options(parser: argparse.ArgumentParser) -> None:
    """``--label-range`` and ``--label-map`` (``run`` and ``validate`` read data alike)."""
    parser.add_argument("--label-range", metavar="MIN:MAX",
                        help="the data's label scale, mapped to [0, 1]: e.g. 1:7 for every "
                             "dimension or arousal=1:7,valence=1:5 (use --label-range=-1:1 for "
                             "a negative minimum); overrides a manifest's '# sertest: "
                             "label_range' line and audformat scheme bounds")
    parser.add_argument("--label-map", metavar="DATA=MODEL,...",
                        help="rename the data's emotion classes to the model's, e.g. "
                             "angry=anger,happy=happiness, or a YAML/JSON file holding the "
                             "mapping")


def _segment_option(parser: argparse.ArgumentParser) -> None:
    """``--segment`` (``run``, ``search`` and ``validate`` read long recordings alike)."""
    parser.add_argument("--segment", metavar="WINDOW[:HOP]", default=None,
                        help="audit items longer than WINDOW seconds in windows (every HOP "
                             "seconds, default WINDOW) decoded and predicted one at a time, "
                             "their predictions averaged by duration: memory bounded by the "
                             "window, not the file (default: every item whole)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sertest",
        description="Behavioural tests for speech emotion recognition models: correctness, "
                    "fairness and robustness audits.")
    p.add_argument("--version", action="version", version=f"sertest {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="audit one or more models",
                         description="Audit models on a dataset with a suite; writes "
                                     "results.json and reports into --out.")
    run.add_argument("--model", "-m", action="append", required=True, metavar="[NAME=]SPEC",
                     help="model to audit (repeatable): file.onnx, audonnx or HF folder, "
                          "model.pt, torch:pkg.mod:factory=weights.pt, callable:pkg.mod:fn, "
                          "random:gaussian, random:categorical, random:constant, or a Hugging "
                          "Face hub id org/name[@revision] read from the local cache (an "
                          "existing local path of that name wins)")
    run.add_argument("--allow-download", action="store_true",
                     help="let hub ids missing from the local Hugging Face cache be "
                          "downloaded (also SERTEST_ALLOW_DOWNLOAD=1; HF_HUB_OFFLINE=1 still "
                          "forbids it); without it nothing is downloaded")
    run.add_argument("--data", "-d", metavar="MANIFEST|FOLDER",
                     help="CSV/Parquet manifest, audformat folder (FOLDER::TABLE chooses its "
                          "table) or folder of audio (default: the bundled corpus)")
    _label_options(run)
    run.add_argument("--suite", "-s", default="quick",
                     help="suite YAML or bundled suite name (default: quick)")
    run.add_argument("--out", "-o", default="sertest-results", help="output folder")
    run.add_argument("--seed", type=int, default=0, help="audit seed (default 0)")
    run.add_argument("--jobs", "-j", type=int, default=None,
                     help="worker threads, each decoding, perturbing and predicting whole items "
                          "(default: CPUs, at most 4)")
    _segment_option(run)
    run.add_argument("--labels", help="output labels for ONNX models without metadata, e.g. "
                                      "'arousal,dominance,valence'")
    run.add_argument("--reference", metavar="SPEC",
                     help="label-free mode: this model's clean predictions are the truth")
    run.add_argument("--no-baselines", action="store_true",
                     help="do not add the baselines (random:gaussian, random:categorical, "
                          "random:constant)")
    run.add_argument("--cache", metavar="DIR", help="prediction cache folder "
                     "(default: $SERTEST_CACHE or ~/.cache/sertest)")
    run.add_argument("--no-cache", action="store_true", help="keep predictions in memory only")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first item error")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="per-batch model timeout; a model that hangs is skipped and reported")
    run.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                     help="run each model in supervised worker processes: a model that "
                          "crashes (segfault, abort, out of memory) costs only its own results "
                          "(the default of sertest run unless $SERTEST_ISOLATE=0)")
    run.add_argument("--no-isolate", dest="isolate", action="store_false",
                     help="run models in this process (saves a worker start per model and "
                          "the model's second copy in memory; a crashing model then ends the "
                          "run, which a rerun resumes from the cache)")
    run.add_argument("--no-profile", dest="profile", action="store_false",
                     help="skip the efficiency profile (peak RAM, real-time factor per model)")
    run.add_argument("--executor", default=None, metavar="NAME",
                     help="where predictions run: a registered executor (built in: local, "
                          "dask, batched, batched-processes; default: local threads; with a "
                          "model on a GPU: batched, model calls from several items of "
                          "similar length); an unknown name is a usage error listing them")
    run.add_argument("--device", default="cpu", metavar="cpu|auto|cuda[:N]",
                     help="where torch, Hugging Face and ONNX models compute (default cpu; "
                          "auto: GPU 0 where the model's runtime finds one, else the CPU)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address, e.g. tcp://10.0.0.1:8786 (default with "
                          "--executor dask: a local cluster of --jobs workers)")
    run.add_argument("--allow-outside-root", action="store_true",
                     help="allow manifest paths outside the manifest's folder")
    run.add_argument("--n-boot", type=int, default=None,
                     help="bootstrap resamples for confidence intervals (default: the suite's)")
    run.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="force a progress bar")
    run.add_argument("--no-progress", dest="progress", action="store_false")
    run.add_argument("--verbose", "-v", action="store_true", help="print every measurement")
    run.add_argument("--strict", action="store_true",
                     help="exit 1 also when a candidate's test is inconclusive (default: only "
                          "fail and error entries exit 1)")
    run.add_argument("--format", dest="renderers", default="html,junit,markdown",
                     help="reports to write (comma list of html, junit, markdown; '' for none)")

    lst = sub.add_parser("list", help="list tests, perturbations, suites and adapters")
    lst.add_argument("what", nargs="?", default="all",
                     choices=["all", "tests", "perturbations", "suites", "adapters"])

    rep = sub.add_parser("report", help="re-render reports from a results folder")
    rep.add_argument("results", metavar="RESULTS_DIR")
    rep.add_argument("--format", dest="renderers", default="html,junit,markdown")

    cch = sub.add_parser("cache", help="show or clear the prediction cache")
    cch.add_argument("action", choices=["info", "clear"],
                     help="info: where it is, entries and size; clear: delete it")
    cch.add_argument("--cache", default=None,
                     help="cache folder (default: $SERTEST_CACHE or ~/.cache/sertest)")

    cmp_ = sub.add_parser("compare", help="compare a baseline audit with candidates")
    cmp_.add_argument("results", nargs="+", metavar="RESULTS_DIR",
                      help="the baseline first, then one or more candidates")
    cmp_.add_argument("--out", "-o", required=True)
    cmp_.add_argument("--fail-on", choices=["never", "regression"], default="never",
                      help="exit 1 when a candidate regressed: a test verdict got worse or a "
                           "measurement got clearly worse (paired bootstrap q < 0.05 where both "
                           "audits resampled the same items, else CIs apart); default: never")

    sea = sub.add_parser(
        "search", help="worst-case search: per item, the mildest setting that moves a "
                       "model's prediction (one axis by bisection, or two with --axes)",
        description="Runs the robustness_search test alone for one model and writes "
                    "results.json and the reports into --out (see README, Worst-case search).")
    sea.add_argument("--model", "-m", required=True, metavar="[NAME=]SPEC")
    sea.add_argument("--data", "-d", metavar="MANIFEST|FOLDER", default=None,
                     help="data to search (default: the bundled corpus)")
    sea.add_argument("--axis", default="snr",
                     help="snr, bitrate, rt60, semitones_up, semitones_down or gain")
    sea.add_argument("--axes", default=None, metavar="A,B",
                     help="two axes searched together, applied in that order (e.g. snr,bitrate: "
                          "noise, then the Opus link): per item the mildest breaking pair; "
                          "replaces --axis")
    sea.add_argument("--tolerance", type=float, default=0.05,
                     help="a change of at least this counts as moved (prediction units)")
    sea.add_argument("--max-items", type=int, default=40, help="items searched (seeded sample)")
    sea.add_argument("--budget", type=int, default=600,
                     help="most model predictions per target (default 600)")
    sea.add_argument("--target", action="append", default=None,
                     help="arousal, dominance, valence or emotion (repeatable; default all)")
    sea.add_argument("--seed", type=int, default=0)
    sea.add_argument("--device", default="cpu", metavar="cpu|auto|cuda[:N]",
                     help="where the model computes (as for sertest run)")
    sea.add_argument("--cache", default=None, help="prediction cache folder")
    sea.add_argument("--no-cache", action="store_true", help="keep predictions in memory only")
    sea.add_argument("--out", "-o", required=True)
    _segment_option(sea)

    pub = sub.add_parser("publish", help="publish audit folders as one static site "
                                         "(leaderboard, reports, comparisons)")
    pub.add_argument("audits", nargs="+", metavar="AUDIT_DIR",
                     help="folders written by 'sertest run'")
    pub.add_argument("--out", "-o", required=True, metavar="SITE",
                     help="the site folder (index.html, audits/, comparisons/)")

    val = sub.add_parser(
        "validate", help="how often does a suite catch planted defects? (self-validation)",
        description="Plant known defects (group level shifts, noise/band/codec sensitivity, "
                    "lexical sentiment, constant and shuffled predictions) in a model's real "
                    "predictions at several magnitudes, run the suite on speaker resamples "
                    "of the data and report per test and defect the detection rate, and the "
                    "false-alarm rates of the clean model and of an oracle. Writes "
                    "validity.md and validity.json into --out.")
    val.add_argument("--model", "-m", required=True, metavar="[NAME=]SPEC",
                     help="the model whose predictions carry the defects")
    val.add_argument("--suite", "-s", default="default",
                     help="suite YAML or bundled suite name (default: default)")
    val.add_argument("--data", "-d", metavar="MANIFEST|FOLDER",
                     help="data with labels; FOLDER::TABLE chooses an audformat table "
                          "(default: the bundled corpus)")
    _label_options(val)
    val.add_argument("--resamples", "-r", type=int, default=None,
                     help="speaker resamples (default 20; 5 with --quick)")
    val.add_argument("--share", type=float, default=0.8,
                     help="share of the speakers in each resample (default 0.8)")
    val.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    val.add_argument("--out", "-o", default="sertest-validity", help="output folder")
    val.add_argument("--defects", metavar="A,B",
                     help="defect ids (default: all; see sertest/validate/defects.py)")
    val.add_argument("--magnitudes", metavar="M1,M2",
                     help="magnitudes for every chosen defect instead of their grids (the "
                          "sizes the thresholds name are added anyway)")
    val.add_argument("--carrier", choices=["model", "oracle"], default="model",
                     help="whose predictions carry the defects: the model's (default) or the "
                          "oracle's (detection then measures the suite alone)")
    val.add_argument("--quick", action="store_true",
                     help="5 resamples, the largest magnitude and the at-threshold sizes only")
    val.add_argument("--oracle-sigma", type=float, default=0.1,
                     help="the oracle's noise SD around the labels (default 0.1)")
    val.add_argument("--oracle-confusion", type=float, default=0.1,
                     help="the oracle's share of confused emotion classes (default 0.1)")
    val.add_argument("--jobs", "-j", type=int, default=None,
                     help="worker threads predicting (as for sertest run)")
    val.add_argument("--workers", type=int, default=None,
                     help="processes judging resamples at once (default 1; the table does not "
                          "depend on it)")
    val.add_argument("--labels", help="output labels for ONNX models without metadata")
    _segment_option(val)
    val.add_argument("--cache", metavar="DIR", help="prediction cache folder")
    val.add_argument("--no-cache", action="store_true", help="keep predictions in memory only")
    val.add_argument("--n-boot", type=int, default=None,
                     help="bootstrap resamples for confidence intervals (default: the suite's)")
    val.add_argument("--allow-outside-root", action="store_true",
                     help="allow manifest paths outside the manifest's folder")
    val.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="no progress lines on stderr")
    return p


def _cache(args) -> int:
    """``sertest cache info|clear``: entries of older cache schemas (a sertest release that
    changed a perturbation or the call pattern) are never read again; ``clear`` drops them."""
    from .engine.cache import PredictionCache, default_cache_dir

    folder = args.cache or default_cache_dir()
    path = os.path.join(folder, "predictions.sqlite")
    files = [path + suffix for suffix in ("", "-wal", "-shm") if os.path.exists(path + suffix)]
    if args.action == "info":
        if not files:
            print(f"{path}: no cache yet")
            return 0
        cache = PredictionCache(path)
        try:
            n = len(cache)
        finally:
            cache.close()
        size = sum(os.path.getsize(f) for f in files if os.path.exists(f))
        print(f"{path}: {n} predictions, {size / 1e6:.1f} MB")
        return 0
    for f in files:
        try:
            os.remove(f)
        except OSError as exc:  # a read-only folder, a file of another user: say so
            from .errors import UsageError

            raise UsageError(f"cannot clear the cache {f}: {exc.strerror or exc}; remove it "
                             "yourself or point --cache at a folder you may write") from exc
    print(f"{path}: " + ("cleared" if files else "no cache to clear"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":  # recorded in timings.json and the report's reproducibility facts
        from . import results

        results.COMMAND = results.command_line(["sertest"] + list(sys.argv[1:] if argv is None
                                                                  else argv))
        try:
            return _main(args)
        finally:
            results.COMMAND = None
    return _main(args)


def _main(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="sertest: %(message)s")
    for handler in logging.getLogger().handlers:  # the CLI reports these itself, in one line
        handler.addFilter(lambda record: not getattr(record, "render_failure", False))
    if not args.command:
        _parser().print_help()
        return 2
    try:
        return {"run": _run, "list": _list, "report": _report, "compare": _compare,
                "publish": _publish,
                "cache": _cache, "validate": _validate, "search": _search}[args.command](args)
    except SertestError as exc:
        print(f"sertest: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("sertest: interrupted; finished predictions are cached, re-run to resume",
              file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: a bug of sertest
            return _internal_error(exc)
        # a file or folder that cannot be read or written (permissions, disk full): input
        print(f"sertest: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug of sertest: exit 3, never 1 ("tests failed")
        return _internal_error(exc)


def _search(args) -> int:
    """``sertest search``: the robustness_search test alone, for one model."""
    from . import audit

    cache = False if args.no_cache else (args.cache or True)
    params = {"axis": args.axis, "tolerance": args.tolerance, "max_items": args.max_items,
              "budget": args.budget}
    along = f"along {args.axis}"
    if args.axes is not None:
        from .checks.search import AXES
        from .errors import UsageError

        pair = [a.strip() for a in args.axes.split(",")]
        if len(pair) != 2 or pair[0] == pair[1] or any(a not in AXES for a in pair):
            raise UsageError(f"--axes {args.axes!r}: give two different axes separated by a "
                             f"comma, e.g. snr,bitrate; axes: {', '.join(AXES)}")
        params["axes"], along = pair, f"over {pair[0]} x {pair[1]}"
    suite = {"name": "search", "description": f"worst-case search {along}",
             "tests": [{"test": "robustness_search", "params": params}]}
    if args.target:
        suite["targets"] = args.target
    res = audit(_on_device([args.model], args), args.data, suite, out=args.out, seed=args.seed,
                cache=cache, baselines=False, segment=args.segment)
    for t in res.select("robustness_search"):
        cells = {m["metric"]: m for m in t["measurements"]}
        if args.axes is not None:
            med = cells.get("median_pair_severity", {})
            sev = med.get("value")
            text = ("beyond the grid" if sev == float("inf") or (
                sev is None and (med.get("extra") or {}).get("censored"))
                else "n/a" if sev is None else f"{sev:.3g} (0-1 of each axis' range)")
            print(f"{t['model']} {t['dimension']}: median breaking-pair severity {text} "
                  f"({t['verdict']}); {args.out}/results.json")
            continue
        med = cells.get("median_breakdown", {})
        unit = (med.get("extra") or {}).get("unit", "")
        value = med.get("value")
        text = "beyond the range" if value is None and med.get("extra", {}).get("censored") \
            else (f"{value:g} {unit}" if value is not None else "n/a")
        print(f"{t['model']} {t['dimension']}: median breakdown {text} "
              f"({t['verdict']}); {args.out}/results.json")
    return res.exit_code()


def _internal_error(exc: BaseException, what: str = "") -> int:
    """Exit 3: one line on stderr naming the error and the log holding the traceback."""
    import traceback

    from .errors import one_line, write_error_log

    log = write_error_log(f"sertest {__version__}: {' '.join(sys.argv)}\n"
                          + "".join(traceback.format_exception(exc)))
    where = f"traceback in {log}" if log else "the traceback could not be logged"
    print(f"sertest: internal error{what} (a bug of sertest, please report it): "
          f"{one_line(exc)}; {where}", file=sys.stderr)
    if log is None:
        traceback.print_exception(exc)
    return 3


def _check_renderers(names: list[str]) -> None:
    """--format names known renderers (checked before the audit runs)."""
    from .errors import UsageError
    from .report import RENDERERS

    unknown = [n for n in names if n not in RENDERERS]
    if unknown:
        raise UsageError(f"--format {','.join(names)}: unknown report(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(RENDERERS)} ('' for none)")


def _render_failures(results) -> int:
    """Exit 3 when a report could not be rendered (results.json was written): one line."""
    from .errors import write_error_log

    failures = results.render_failures
    log = write_error_log("".join(tb for _, _, tb in failures))
    names = ", ".join(f"{name} ({message})" for name, message, _ in failures)
    where = f"traceback in {log}" if log else "the traceback could not be logged"
    print(f"sertest: internal error (a bug of sertest, please report it): report(s) not "
          f"written: {names}; results.json and the other reports were; {where}",
          file=sys.stderr)
    return 3


def _cli_isolate(flag: bool | None) -> bool:
    """``sertest run`` isolates models unless told not to (``--no-isolate`` or
    ``SERTEST_ISOLATE=0``): from the command line nothing a model does may cost the audit.
    The library (:func:`sertest.audit`) keeps ``SERTEST_ISOLATE``'s default, off."""
    if flag is not None:
        return flag
    value = os.environ.get("SERTEST_ISOLATE", "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _on_device(specs: list[str], args) -> list:
    """``--device``: the models loaded onto it (the specs as they are for ``cpu``)."""
    from .models.device import parse_device

    if parse_device(args.device) == "cpu":
        return list(specs)
    from .models import load_model

    return [load_model(s, labels=getattr(args, "labels", None), device=args.device)
            for s in specs]


def _executor(args, models: list) -> str:
    """``--executor``, or by default ``batched`` where a model landed on a GPU, else
    ``local`` (``--device auto`` without a GPU audits exactly as ``cpu``)."""
    if args.executor:
        return args.executor
    on_gpu = any(getattr(m, "device", "cpu") != "cpu" for m in models if not isinstance(m, str))
    return "batched" if on_gpu else "local"


def _run(args) -> int:
    from .data.labels import header_lines
    from .api import audit
    from .report.terminal import summary_text

    renderers = [r.strip() for r in args.renderers.split(",") if r.strip()]
    _check_renderers(renderers)
    if args.allow_download:   # read by sertest.models.hub, also in profiling subprocesses
        from .models.hub import ALLOW_DOWNLOAD_ENV

        previous = os.environ.get(ALLOW_DOWNLOAD_ENV)
        os.environ[ALLOW_DOWNLOAD_ENV] = "1"
        try:
            return _run(argparse.Namespace(**{**vars(args), "allow_download": False}))
        finally:
            if previous is None:
                os.environ.pop(ALLOW_DOWNLOAD_ENV, None)
            else:
                os.environ[ALLOW_DOWNLOAD_ENV] = previous
    models = _on_device(args.model, args)
    results = audit(models, args.data, args.suite, out=args.out, seed=args.seed,
                    jobs=args.jobs, cache=False if args.no_cache else args.cache,
                    baselines=not args.no_baselines, reference=args.reference,
                    labels=args.labels, progress=args.progress, fail_fast=args.fail_fast,
                    allow_outside_root=args.allow_outside_root, n_boot=args.n_boot,
                    renderers=renderers, executor=_executor(args, models),
                    scheduler=args.scheduler,
                    timeout=args.timeout, profile=args.profile, isolate=_cli_isolate(args.isolate),
                    label_range=args.label_range, label_map=args.label_map,
                    segment=args.segment)
    head, _, rest = summary_text(results, verbose=args.verbose).partition("\n")
    # the run header: the data's table, label scales and class names as audited
    print("\n".join([head] + [f"  {line}" for line in header_lines(results.doc["dataset"])]
                    + ([rest] if rest else [])))
    print(f"\nwrote {os.path.join(args.out, 'results.json')}")
    if results.render_failures:
        return _render_failures(results)
    if os.path.exists(os.path.join(args.out, "report.html")):  # the last line: what to open
        print(f"report: {os.path.join(args.out, 'report.html')}")
    return results.exit_code(strict=args.strict)


def _validate(args) -> int:
    """``sertest validate``: exit 0 when it ran (the table is the result, not a verdict)."""
    from .validate import validate
    from .validate.report import targets

    data = args.data
    if args.label_range or args.label_map:
        from .data import load_dataset

        data = load_dataset(args.data, allow_outside_root=args.allow_outside_root,
                            label_range=args.label_range, label_map=args.label_map)
    result = validate(args.model, data, args.suite, resamples=args.resamples,
                      seed=args.seed, share=args.share, defects=args.defects,
                      quick=args.quick, magnitudes=_numbers(args.magnitudes, "--magnitudes"),
                      sigma=args.oracle_sigma,
                      confusion=args.oracle_confusion,
                      cache=False if args.no_cache else args.cache, jobs=args.jobs,
                      labels=args.labels, n_boot=args.n_boot, progress=args.progress,
                      allow_outside_root=args.allow_outside_root, workers=args.workers,
                      carrier=args.carrier,
                      out=args.out, segment=args.segment)
    t = targets(result.doc)
    for what, rows in (("detection at the named size", t["detection"]),
                       ("oracle false alarms", t["false_alarms"])):
        judged = [r for r in rows if r["met"] is not None]
        print(f"{what}: {sum(r['met'] for r in judged)} of {len(judged)} entries meet the "
              "target")
    print(f"wrote {os.path.join(args.out, 'validity.md')}")
    return 0


def _numbers(text: str | None, option: str) -> list[float] | None:
    from .errors import UsageError

    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{option} {text!r}: give comma-separated numbers, e.g. 0.1,0.2") \
            from None


def _report(args) -> int:
    from .report import render_all
    from .results import Results

    renderers = [r.strip() for r in args.renderers.split(",") if r.strip()]
    _check_renderers(renderers)
    results = Results.load(args.results)
    folder = args.results if os.path.isdir(args.results) else os.path.dirname(args.results)
    for path in render_all(results, folder, renderers, failures=results.render_failures):
        print(f"wrote {path}")
    return _render_failures(results) if results.render_failures else 0


def _compare(args) -> int:
    from .errors import UsageError

    try:
        from .report.compare import run_compare
    except ModuleNotFoundError as exc:
        raise UsageError("sertest compare is not available in this build") from exc
    result = run_compare(args.results, args.out)
    for path in result.paths:
        print(f"wrote {path}")
    for line in result.regressions[:20]:
        print(f"regression: {line}")
    if len(result.regressions) > 20:
        print(f"... and {len(result.regressions) - 20} more regression(s): see compare.md")
    if args.fail_on == "regression":
        print(f"{len(result.regressions)} regression(s): exit "
              f"{result.exit_code(args.fail_on)} (--fail-on regression)")
    return result.exit_code(args.fail_on)


def _publish(args) -> int:
    from .report.site import publish

    pages = publish(args.audits, args.out)
    print(f"wrote {len(pages)} page(s); open {pages[0]}")
    return 0


def _list(args) -> int:
    what = args.what
    if what in ("all", "tests"):
        from .checks import registry

        print("Tests:")
        for cid, cls in registry().items():
            kinds = "/".join("A/D/V" if k == "regression" else "emotion" for k in cls.kinds)
            print(f"  {cid:<42} [{cls.topic}, {kinds}] {cls.description}")
            judged = [f"{k} {v}" for k, v in cls.metrics.items() if v is not None]
            shown = [k for k, v in cls.metrics.items() if v is None]
            text = ("thresholds: " + ", ".join(judged) if judged else "") + (
                ("; " if judged else "") + "reported without a threshold: " + ", ".join(shown)
                if shown else "")
            if text:
                print(textwrap.fill(text, width=100, initial_indent=" " * 46,
                                    subsequent_indent=" " * 48, break_on_hyphens=False))
        print()
    if what in ("all", "perturbations"):
        from .perturb import registry as preg

        print("Perturbations:")
        for name, cls in preg().items():
            print(f"  {name:<28} {cls.description}")
            if cls.defaults:
                print(" " * 30 + ", ".join(f"{k}={v}" for k, v in cls.defaults.items()))
        print()
    if what in ("all", "suites"):
        from .suite import bundled_suites, load_suite

        print("Bundled suites:")
        for name, path in bundled_suites().items():
            try:
                s = load_suite(path)
                n = len(s.checks)
                count = f"{n} test{'' if n == 1 else 's'}"
                print(f"  {name:<12} {count:<9} {s.description}")
            except SertestError as exc:
                print(f"  {name:<12} (cannot load: {exc})")
        print()
    if what in ("all", "adapters"):
        from .models import ADAPTERS

        print("Model adapters:")
        for kind in ADAPTERS:
            print(f"  {kind}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
