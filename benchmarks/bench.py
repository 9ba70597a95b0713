"""Performance benchmarks of sertest, measured as ratios within one run on one machine.

    .venv/bin/python benchmarks/bench.py [--model M] [--suite default] [--out benchmarks/results.json]

(a) sertest audit, cold cache
(b) the irreducible work: each needed (item, condition) decoded, perturbed and predicted
    once, in a tight loop with no cache, checks or bookkeeping; measured as one loop with
    onnxruntime's default threads (b1) and split over as many worker threads as sertest
    uses, one onnxruntime thread per call (b), the figure a/b uses
(c) per-file loop in the style of audEERING's harness (audinterface.Feature around
    onnxruntime, one file at a time, the perturbation applied per file; like ser-tests'
    run_model, predictions are memoised per (condition, index), so a test that asks for
    exactly the items and condition of an earlier test reuses them)
(d) warm re-run (everything cached)            (e) peak RSS at 1x and 10x the dataset
    ((a), (b) and (d) run --repeat times, (a) and (b) alternating; the fastest run counts)
(f) Dask LocalCluster with 2 workers against 1 (cluster started before timing)
(g) long recordings: peak RSS of the --rss-suite audit with generated 10- and 60-minute
    files added to the manifest (--long-minutes), segmented (--long-segment, default 30 s
    windows), against the same audit without them; --long-whole adds the whole-utterance
    audit of the long files and a bare model call on the longest one
(h) the teacher (a torch/Hugging Face model, --teacher) as (a) and (b): its audit against
    its irreducible work, both with one intra-op thread per call and calls concurrent

Targets: a/b <= 1.15; c/a >= 5; d/a <= 0.05; RSS(10x)/RSS(1x) <= 1.3; dask 1/2 >= 1.6;
RSS(long)/RSS(1x) <= 1.5; teacher a/b <= 1.15.
Also printed: c/b, the most c/a could be if sertest had no overhead at all.
Wall-clock times on a shared machine are noisy; only the ratios of one run are claimed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from sertest import audio  # noqa: E402
from sertest.checks.base import Context  # noqa: E402
from sertest.data import load_dataset  # noqa: E402
from sertest import audit  # noqa: E402
from sertest.engine.plan import plan_audit  # noqa: E402
from sertest.engine.store import condition_key  # noqa: E402
from sertest.models import load_model  # noqa: E402
from sertest.seeding import derive_rng  # noqa: E402
from sertest.suite import load_suite, select_items  # noqa: E402


def default_model() -> str:
    path = os.path.join(REPO, "examples", "models", "wav2small.onnx")
    return path if os.path.exists(path) else "random:gaussian"


def plan(model_spec: str, data, suite_name: str):
    """Per test: the (condition, ids) pairs it needs; plus the feature extractors the
    audit runs on clean audio: the checks' own and the signal statistics every audit
    computes (clipping warnings, confound checks, slices), as the audit's plan has them."""
    dataset = load_dataset(data)
    suite = load_suite(suite_name)
    model = load_model(model_spec)
    per_test = []
    for check, _ in suite.checks:
        sub = dataset if not check.where else dataset.subset(select_items(dataset, check.where))
        ctx = Context(sub, None, {model.name: model}, seed=0)
        reqs = [(r.condition, sub.ids if r.ids is None else list(r.ids)) for r in check.requests(ctx)]
        per_test.append((check.name, reqs))
    audit_plan = plan_audit([model], dataset, suite, seed=0, baselines=False)
    features = [audit_plan.models[n] for n in sorted(audit_plan.features)]
    return dataset, suite, model, per_test, features


def tight_loop(dataset, model_spec: str, per_test, features, threads: int = 1) -> float:
    """(b): each needed (item, condition) decoded, perturbed and predicted once, batching
    an item's equal-length signals as the engine does; no cache, checks or bookkeeping.
    With ``threads`` > 1 the items are split over that many threads, and ONNX sessions
    run one thread per call, as in the engine; with 1, onnxruntime's default (every core).

    The model is loaded here (not timed) and dropped on return, so that the harness holds
    no session of its own while sertest audits: with two ONNX sessions open in a process
    each call hands its arena back (``sertest.models.onnx._run_options``), and a session
    kept for (b) made the single-model audit (a) shrink after every call where a real
    ``sertest run`` does not (5-6 M page faults, 12 s of system time; 2026-11-30)."""
    from concurrent.futures import ThreadPoolExecutor

    model = load_model(model_spec)
    needed: dict[str, dict[str, object]] = {}
    for _, reqs in per_test:
        for cond, ids in reqs:
            for i in ids:
                needed.setdefault(i, {})[condition_key(cond)] = cond
    for m in [model, *features]:
        if m.concurrent:
            m.use_threads(1 if threads > 1 else os.cpu_count() or 1)

    def one(item) -> None:
        item_id, conds = item
        row = dataset.table.loc[item_id]
        try:
            x, sr = audio.read(row["file"])
        except Exception:  # noqa: BLE001
            return
        x = audio.resample(x, sr, model.sampling_rate)
        sigs = [x if c is None else c(x, model.sampling_rate, derive_rng(0, item_id, ck))
                for ck, c in sorted(conds.items())]
        rngs = [derive_rng(0, item_id, ck) for ck in sorted(conds)] if model.stochastic else None
        model.predict(sigs, rngs)
        for f in features:
            f.predict([x])

    t = time.perf_counter()
    if threads <= 1:
        for item in needed.items():
            one(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, needed.items()))
    return time.perf_counter() - t


def per_file_loop(dataset, model_spec: str, per_test, features) -> tuple[float, str]:
    """(c): one file at a time, per test and condition, through audinterface.Feature;
    predictions memoised per (condition, index) as ser-tests' run_model cache does, so a
    test reuses them only when it asks for exactly the items of an earlier test."""
    model = load_model(model_spec)
    try:
        import audinterface
        style = "audinterface.Feature"
    except ModuleNotFoundError:
        audinterface = None
        style = "plain per-file loop (audinterface not installed)"
    for m in [model, *features]:
        if m.concurrent:
            m.use_threads(os.cpu_count() or 1)  # onnxruntime's default: every core per call
    memo: set[tuple[str, tuple[str, ...]]] = set()
    t = time.perf_counter()
    for _, reqs in per_test:
        for cond, ids in reqs:
            ck = condition_key(cond)
            if (ck, tuple(ids)) in memo:  # ser-tests' run_model cache: same index and mode
                continue
            memo.add((ck, tuple(ids)))

            def process(signal, sampling_rate, cond=cond, ck=ck, file=None):
                x = np.asarray(signal, dtype=np.float32).reshape(-1)
                y = x if cond is None else cond(x, sampling_rate, derive_rng(0, file or "", ck))
                rngs = [derive_rng(0, file or "", ck)] if model.stochastic else None
                return model.predict([y], rngs)[0]

            files = [dataset.table.loc[i, "file"] for i in ids]
            if audinterface is not None:
                feat = audinterface.Feature(
                    list(model.outputs), process_func=process, sampling_rate=model.sampling_rate,
                    resample=True, channels=0, mixdown=True)
                for f in files:
                    try:
                        feat.process_file(f)
                    except Exception:  # noqa: BLE001
                        pass
            else:
                for f in files:
                    try:
                        x = audio.load(f, model.sampling_rate)
                    except Exception:  # noqa: BLE001
                        continue
                    process(x, model.sampling_rate, file=f)
    for f in features:
        for i in dataset.ids:
            try:
                f.predict([audio.load(dataset.table.loc[i, "file"], f.sampling_rate)])
            except Exception:  # noqa: BLE001
                pass
    return time.perf_counter() - t, style


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system, every thread), s."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_audit(model_spec, data, suite, cache, **kw) -> tuple[float, dict]:
    gc.collect()  # models of earlier parts gone: only the audit's own sessions are open
    t = time.perf_counter()
    res = audit([model_spec], data, suite, cache=cache, baselines=False, renderers=(),
                profile=False, progress=False, **kw)
    return time.perf_counter() - t, res.timings


def peak_rss_mb(model_spec, manifest, suite, segment: str | None = None) -> float:
    """Peak RSS (MB) of a fresh process auditing ``manifest`` (``segment``: its windows)."""
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (it would report our own peak)
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from sertest import audit\n"
            "from sertest.efficiency import process_memory_mb\n"
            "audit([%r], %r, %r, cache=False, baselines=False, renderers=(), profile=False,"
            " progress=False, allow_outside_root=True, segment=%r)\n"
            "print(process_memory_mb('VmHWM'))\n") % (REPO, model_spec, manifest, suite, segment)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def model_call_rss_mb(model_spec, seconds: float) -> float:
    """Peak RSS of a fresh process that only loads the model and predicts one signal of
    ``seconds`` (one thread): what a whole-utterance prediction of that length needs at
    least, whatever the engine around it."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import numpy as np\n"
            "from sertest.models import load_model\n"
            "from sertest.efficiency import process_memory_mb\n"
            "from sertest.seeding import derive_rng\n"
            "m = load_model(%r)\n"
            "m.use_threads(1)\n"
            "x = (0.1 * derive_rng(0, 'bench-call').standard_normal(int(%r * m.sampling_rate)))"
            ".astype(np.float32)\n"
            "m.predict([x])\n"
            "print(process_memory_mb('VmHWM'))\n") % (REPO, model_spec, float(seconds))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def replicate(dataset, times: int, folder: str) -> str:
    rows = []
    for k in range(times):
        df = dataset.table.reset_index()
        df["id"] = [f"{i}#{k}" for i in df["id"]]
        rows.append(df)
    path = os.path.join(folder, f"x{times}.csv")
    pd.concat(rows).to_csv(path, index=False)
    return path


def long_manifest(dataset, minutes: list[float], folder: str) -> str:
    """The dataset's manifest plus one generated 16 kHz 16-bit WAV of speech-like noise (a
    4 Hz syllable envelope with a pause every 5 s) per entry of ``minutes``."""
    import soundfile as sf

    rows = [dataset.table.reset_index()]
    first = dataset.table.reset_index().iloc[:1]
    for m in minutes:
        path = os.path.join(folder, f"long-{m:g}min.wav")
        rng = derive_rng(0, "bench-long", str(m))
        block = 16000 * 60  # written a minute at a time
        with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as fh:
            for k in range(int(round(m))):
                t = (k * block + np.arange(block)) / 16000
                env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
                env *= np.sin(2 * np.pi * 0.2 * t) > -0.5
                fh.write((0.2 * env * rng.standard_normal(block)).astype(np.float32))
        row = first.copy()
        row["id"], row["file"] = f"long-{m:g}min", path
        row["start"], row["end"] = np.nan, np.nan
        rows.append(row)
    out = os.path.join(folder, "long.csv")
    pd.concat(rows).to_csv(out, index=False)
    return out


def default_teacher() -> str | None:
    path = os.path.join(REPO, "examples", "models", "teacher")
    return path if os.path.isdir(path) else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=default_model())
    p.add_argument("--data", default=None, help="manifest (default: the bundled corpus)")
    p.add_argument("--suite", default="default")
    p.add_argument("--rss-suite", default="quick", help="suite for the 1x/10x memory runs")
    p.add_argument("--dask-suite", default=None, help="suite for the Dask runs (default: --suite)")
    p.add_argument("--out", default=os.path.join(HERE, "results.json"))
    p.add_argument("--skip", default="", help="comma list of parts to skip: a (with b, c, d), "
                   "c,e,f,g,h")
    p.add_argument("--long-minutes", default="10,60",
                   help="lengths of the generated long files of (g), in minutes")
    p.add_argument("--long-segment", default="30", metavar="WINDOW[:HOP]",
                   help="the segmentation (g) audits the long files with (default 30 s)")
    p.add_argument("--long-whole", action="store_true",
                   help="(g) also audits the long files whole (a 60-minute file needs about "
                        "8 GB with Wav2Small)")
    p.add_argument("--teacher", default=default_teacher(), help="the model of (h)")
    p.add_argument("--teacher-suite", default="quick", help="suite of (h)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs of (a), (b) and (d), alternating; the fastest counts (default 2)")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    tmp = tempfile.mkdtemp(prefix="sertest-bench-")
    report: dict = {"model": args.model, "suite": args.suite, "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    try:
        dataset, suite, model, per_test, features = plan(args.model, args.data, args.suite)
        del model  # (b) and (c) load their own (see tight_loop)
        data = args.data or dataset.source
        report["items"] = len(dataset)
        # what the tests ask for, counted per test (the per-file loop's work before memoising)
        report["requested_predictions"] = sum(len(ids) for _, reqs in per_test for _, ids in reqs)
        print(f"model {args.model} | suite {args.suite} | {len(dataset)} items", flush=True)

        # (a) and (b) alternate, args.repeat times each, and the fastest run of each counts:
        # noise on a shared machine only ever adds time (the timeit convention)
        threads = min(4, os.cpu_count() or 1)  # the engine's default --jobs
        if "a" in skip:
            skip.update("bcd")
        a_runs, b_runs = [], []
        for r in range(0 if "a" in skip else args.repeat):
            a_r, timings = timed_audit(args.model, data, args.suite, os.path.join(tmp, f"cache-a{r}"))
            a_runs.append(a_r)
            print(f"(a) sertest cold        {a_r:8.2f} s  ({timings['computed']} predictions computed)",
                  flush=True)
            b_r = tight_loop(dataset, args.model, per_test, features, threads=threads)
            b_runs.append(b_r)
            print(f"(b) tight loop, {threads} threads {b_r:6.2f} s", flush=True)
        if "a" not in skip:
            a, b = min(a_runs), min(b_runs)
            report["computed_predictions"] = timings["computed"]
            b1 = tight_loop(dataset, args.model, per_test, features, threads=1)
            print(f"(b1) tight loop, 1 loop {b1:8.2f} s", flush=True)
            d_runs = []
            for _ in range(args.repeat):
                d_r, timings_d = timed_audit(args.model, data, args.suite,
                                             os.path.join(tmp, "cache-a0"))
                d_runs.append(d_r)
                print(f"(d) sertest warm        {d_r:8.2f} s  ({timings_d['computed']} computed)",
                      flush=True)
            d = min(d_runs)
            report.update(a_seconds=round(a, 3), b_seconds=round(b, 3), b_threads=threads,
                          b1_seconds=round(b1, 3), d_seconds=round(d, 3), repeat=args.repeat,
                          a_runs=[round(x, 3) for x in a_runs],
                          b_runs=[round(x, 3) for x in b_runs],
                          d_runs=[round(x, 3) for x in d_runs])
            report["ratio_a_over_b"] = round(a / b, 3)
            report["ratio_a_over_b1"] = round(a / b1, 3)
            report["ratio_d_over_a"] = round(d / a, 4)
        if "c" not in skip:
            c, style = per_file_loop(dataset, args.model, per_test, features)
            print(f"(c) per-file loop       {c:8.2f} s  [{style}]", flush=True)
            report.update(c_seconds=round(c, 3), c_style=style, ratio_c_over_a=round(c / a, 3),
                          ratio_c_over_b=round(c / b, 3))
        r1 = None
        if "e" not in skip:
            one = replicate(dataset, 1, tmp)
            ten = replicate(dataset, 10, tmp)
            r1 = peak_rss_mb(args.model, one, args.rss_suite)
            r10 = peak_rss_mb(args.model, ten, args.rss_suite)
            print(f"(e) peak RSS 1x / 10x   {r1:8.1f} / {r10:.1f} MB ({args.rss_suite} suite)", flush=True)
            report.update(rss_1x_mb=round(r1, 1), rss_10x_mb=round(r10, 1),
                          ratio_rss_10x_over_1x=round(r10 / r1, 3), rss_suite=args.rss_suite)
        if "g" not in skip:
            minutes = [float(m) for m in args.long_minutes.split(",") if m]
            if r1 is None:
                r1 = peak_rss_mb(args.model, replicate(dataset, 1, tmp), args.rss_suite)
            manifest = long_manifest(dataset, minutes, tmp)
            what = " + ".join(f"{m:g} min" for m in minutes)
            t = time.perf_counter()
            rl = peak_rss_mb(args.model, manifest, args.rss_suite, segment=args.long_segment)
            secs = time.perf_counter() - t
            print(f"(g) peak RSS 1x / 1x + {what}, --segment {args.long_segment}  {r1:8.1f} / "
                  f"{rl:.1f} MB ({args.rss_suite} suite, {secs:.0f} s)", flush=True)
            window = float(args.long_segment.split(":")[0])
            call = model_call_rss_mb(args.model, 1.5 * window)  # the longest window
            print(f"(g) one bare model call on a {1.5 * window:g}-s signal  {call:8.1f} MB",
                  flush=True)
            report.update(rss_long_base_mb=round(r1, 1), rss_long_mb=round(rl, 1),
                          long_minutes=minutes, long_seconds=round(secs, 1),
                          long_segment=args.long_segment,
                          rss_long_window_call_mb=round(call, 1),
                          ratio_rss_long_over_1x=round(rl / r1, 3))
            if args.long_whole:
                t = time.perf_counter()
                rw = peak_rss_mb(args.model, manifest, args.rss_suite)
                secs_w = time.perf_counter() - t
                call_w = model_call_rss_mb(args.model, 60 * max(minutes))
                print(f"(g) peak RSS 1x + {what}, whole  {rw:8.1f} MB ({secs_w:.0f} s); one "
                      f"bare call on the {max(minutes):g}-min signal {call_w:.1f} MB", flush=True)
                report.update(rss_long_whole_mb=round(rw, 1), long_whole_seconds=round(secs_w, 1),
                              rss_long_model_call_mb=round(call_w, 1),
                              ratio_rss_long_whole_over_1x=round(rw / r1, 3))
        if "h" not in skip and args.teacher:
            t_data, _, t_model, t_tests, t_feats = plan(args.teacher, args.data,
                                                       args.teacher_suite)
            del t_model
            ta_runs, tb_runs, ta_cpu, tb_cpu = [], [], [], []
            for r in range(args.repeat):
                c = cpu_seconds()
                ta, t_timings = timed_audit(args.teacher, data, args.teacher_suite,
                                            os.path.join(tmp, f"cache-h{r}"))
                ta_runs.append(ta)
                ta_cpu.append(cpu_seconds() - c)
                print(f"(h) teacher audit       {ta:8.2f} s  ({t_timings['computed']} predictions"
                      f" computed, {ta_cpu[-1]:.1f} CPU-s)", flush=True)
                c = cpu_seconds()
                tb = tight_loop(t_data, args.teacher, t_tests, t_feats, threads=threads)
                tb_runs.append(tb)
                tb_cpu.append(cpu_seconds() - c)
                print(f"(h) teacher tight loop  {tb:8.2f} s  ({tb_cpu[-1]:.1f} CPU-s)", flush=True)
            report.update(teacher=args.teacher, teacher_suite=args.teacher_suite,
                          teacher_a_seconds=round(min(ta_runs), 3),
                          teacher_b_seconds=round(min(tb_runs), 3),
                          teacher_a_runs=[round(x, 3) for x in ta_runs],
                          teacher_b_runs=[round(x, 3) for x in tb_runs],
                          teacher_a_cpu_seconds=[round(x, 1) for x in ta_cpu],
                          teacher_b_cpu_seconds=[round(x, 1) for x in tb_cpu],
                          ratio_teacher_a_over_b_cpu=round(min(ta_cpu) / min(tb_cpu), 3),
                          ratio_teacher_a_over_b=round(min(ta_runs) / min(tb_runs), 3))
        if "f" not in skip:
            from distributed import LocalCluster

            dsuite = args.dask_suite or args.suite
            times = {}
            for n in (1, 2):
                with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  env={"SERTEST_THREADS": "1", "OMP_NUM_THREADS": "1"}) as cluster:
                    times[n], _ = timed_audit(args.model, data, dsuite, os.path.join(tmp, f"cache-f{n}"),
                                              executor="dask", scheduler=cluster.scheduler_address)
                print(f"(f) dask {n} worker(s)     {times[n]:8.2f} s", flush=True)
            report.update(dask_1_seconds=round(times[1], 3), dask_2_seconds=round(times[2], 3),
                          ratio_dask_1_over_2=round(times[1] / times[2], 3), dask_suite=dsuite)
        if "m" not in skip:  # (m) 7 models in one audit; (s) the last `make bench-scale`
            sys.path.insert(0, HERE)
            import many_models

            report.update(many_models.bench_figures(args.suite))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    targets = {"ratio_a_over_b": ("<=", 1.15), "ratio_c_over_a": (">=", 5),
               "ratio_d_over_a": ("<=", 0.05), "ratio_rss_10x_over_1x": ("<=", 1.3),
               "ratio_dask_1_over_2": (">=", 1.6), "ratio_rss_long_over_1x": ("<=", 1.5),
               "ratio_teacher_a_over_b": ("<=", 1.15), "ratio_teacher_a_over_b_cpu": ("<=", 1.15)}
    if "many_models" in sys.modules:  # the targets of (m) and (s)
        targets.update(sys.modules["many_models"].TARGETS)
    report["targets"] = {}
    print("\nratio                     value   target   met")
    for key, (op, lim) in targets.items():
        if key not in report:
            continue
        v = report[key]
        ok = v <= lim if op == "<=" else v >= lim
        report["targets"][key] = {"value": v, "target": f"{op} {lim}", "met": ok}
        print(f"{key:<24} {v:7.3f}   {op} {lim:<5} {'yes' if ok else 'NO'}")
    if "ratio_c_over_b" in report:
        print(f"{'ratio_c_over_b':<24} {report['ratio_c_over_b']:7.3f}   "
              "(the ceiling of c/a: sertest with zero overhead)")
    if skip and os.path.exists(args.out):
        # the skipped parts keep their earlier figures, each part with the date it was measured
        with open(args.out) as fh:
            earlier = json.load(fh)
        dates = earlier.pop("measured", {})
        for part in "abcdefgh":
            dates.setdefault(part, earlier.get("date"))
        for part in set("abcdefgh") - skip - ({"h"} if not args.teacher else set()):
            dates[part] = time.strftime("%Y-%m-%d")
        if "a" in skip:  # the main run's description stays with its figures
            report = {k: v for k, v in report.items()
                      if k not in ("model", "suite", "date", "items", "requested_predictions")}
        report = {**earlier, **report, "targets": {**earlier.get("targets", {}),
                                                   **report["targets"]}, "measured": dates}
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
