"""Many models in one audit (issue 17, point 4): perturbed audio is computed once and shared.

    .venv/bin/python benchmarks/many_models.py [--suite default] [--out benchmarks/many_models.json]

How the engine shares perturbed audio: the unit of work is one *item* with all its conditions
and all its models (:class:`sertest.engine.units.Unit`).  A unit decodes the file once,
resamples it once per model sampling rate, applies each needed condition once per rate, and
hands the same signals to every model that needs them (``infer_unit``); every executor runs
units this way.  So each (item, condition) is perturbed once per sampling rate, whatever the
number of models (``tests/test_many_models.py`` counts the calls).

Measured here, each in the same run and machine:

(m) the audit of the 7 reference models (``make reports``'s five plus the two robust
    students) on ``--suite``, as ``sertest run`` does it (random baselines, checks, report
    and results written, cache disabled, no efficiency profile, models in the audit's
    process: ``--no-isolate``, as ``sertest.audit`` runs them), in a fresh process: wall
    time, CPU-seconds of the process (every thread), peak RSS (``VmHWM``), report.html and
    results.json sizes, and the prediction stage's own wall time (timings.json);
(r) the irreducible work of the same plan (:func:`sertest.engine.plan.plan_audit`): every
    needed item decoded once, each (item, condition) perturbed once, then every model's pure
    inference on those signals (the checks' feature extractors on clean audio), in a tight
    loop over as many threads as the audit's ``--jobs``, one intra-op thread per call, with
    the C library's malloc setting of the audit's executor (``bound_heap``: once per process,
    so ``make bench``'s (a) had set it there already; 2026-11-30); its wall time and
    CPU-seconds, and the CPU-seconds of each stage (decode, perturb, each model), measured
    per thread with ``time.thread_time``.

Target: m/r <= 1.15 (wall, and CPU-seconds as the figure a shared machine disturbs less);
peak RSS of (m) <= 1 GB.  ``--repeat`` alternates (m) and (r); the fastest of each counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

REF = os.path.join(REPO, "examples", "models")
#: the 7 reference models: `make reports`'s REF_MODELS plus the two robust students
MODELS = ("teacher=teacher", "wav2small=wav2small.onnx", "wav2small-int8=wav2small-int8.onnx",
          "wav2small-robust=wav2small-robust.onnx",
          "wav2small-robust-int8=wav2small-robust-int8.onnx",
          "mobilenetv4=mobilenetv4.onnx", "mobilenetv3=mobilenetv3.onnx")


def reference_specs() -> list[str]:
    """``NAME=PATH`` of the reference models present in examples/models."""
    specs = []
    for entry in MODELS:
        name, file = entry.split("=")
        if os.path.exists(os.path.join(REF, file)):
            specs.append(f"{name}={os.path.join(REF, file)}")
    return specs


def audit_fresh(specs: list[str], suite: str, out: str, jobs: int, data: str | None,
                isolate: bool = False, keep_arenas: bool = False) -> dict:
    """(m): ``sertest run`` of ``specs`` in a fresh process; wall (s), CPU (s), VmHWM (MB),
    sizes of its report.html and results.json (bytes).  Models run in the audit's process
    (``--no-isolate``, as in ``sertest.audit``) unless ``isolate``; ``keep_arenas``
    measures as before issue 17 (every ONNX session keeps its arena's peak)."""
    argv = ["run", *[a for s in specs for a in ("--model", s)], "--suite", suite,
            "--no-cache", "--out", out, "--no-progress", "--no-profile", "--jobs", str(jobs),
            "--isolate" if isolate else "--no-isolate"]
    if data:
        argv += ["--data", data, "--allow-outside-root"]
    code = ("import sys, json, time, resource; sys.path.insert(0, %r)\n"
            "from sertest.cli import main\n"
            + ("import sertest.models.onnx as o; o._run_options = lambda shrink: None\n"
               if keep_arenas else "") +
            "def vm_hwm_mb():\n"
            "    with open('/proc/self/status') as fh:\n"
            "        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith('VmHWM:'))\n"
            "t = time.perf_counter()\n"
            "rc = main(%r)\n"
            "wall = time.perf_counter() - t\n"
            "r = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(json.dumps({'rc': rc, 'wall_seconds': wall, 'cpu_seconds': r.ru_utime + "
            "r.ru_stime, 'peak_rss_mb': vm_hwm_mb(), 'children_cpu_seconds': sum("
            "resource.getrusage(resource.RUSAGE_CHILDREN)[:2]), 'largest_child_peak_rss_mb': "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n") % (REPO, argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"the audit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["rc"] not in (0, 1):
        raise RuntimeError(f"the audit failed (exit {res['rc']}):\n{proc.stderr[-3000:]}")
    for name in ("report.html", "results.json"):
        path = os.path.join(out, name)
        res[name.replace(".", "_") + "_bytes"] = os.path.getsize(path) if os.path.exists(path) else None
    with open(os.path.join(out, "timings.json")) as fh:
        t = json.load(fh)
    res["execute_seconds"] = t["execute_seconds"]  # the prediction stage alone
    res["computed"] = t["computed"]
    return res


def reference_pass(specs: list[str], suite: str, jobs: int, data: str | None) -> dict:
    """(r): the plan's irreducible work in a tight loop on ``jobs`` threads (see above)."""
    import numpy as np

    from sertest import audio
    from sertest.engine.executors import bound_heap
    from sertest.engine.plan import plan_audit
    from sertest.engine.render import condition_signal
    from sertest.engine.store import CLEAN
    from sertest.seeding import derive_rng

    bound_heap()  # as the audit's executor does: (m) and (r) under the same malloc setting
    plan = plan_audit(specs, data, suite, seed=0, baselines=True, allow_outside_root=True)
    features = plan.features
    for m in plan.models.values():
        if m.concurrent:
            m.use_threads(1)
    by_item: dict[str, list[str]] = {}
    for ck in plan.conditions:
        for item_id in plan.needed.get(ck, ()):
            by_item.setdefault(item_id, []).append(ck)
    table = plan.dataset.table
    lock = threading.Lock()
    cpu: dict[str, float] = {}
    counts = {"perturbed": 0, "predictions": 0}

    def add(stage: str, secs: float, **more: int) -> None:
        with lock:
            cpu[stage] = cpu.get(stage, 0.0) + secs
            for k, v in more.items():
                counts[k] += v

    def one(item_id: str) -> None:
        row = table.loc[item_id]
        c = time.thread_time()
        try:
            start = None if row["start"] != row["start"] else row["start"]
            end = None if row["end"] != row["end"] else row["end"]
            x, sr = audio.read(row["file"], start, end)
        except Exception:  # noqa: BLE001 - the audit reports it as an item error
            return
        rates = {m.sampling_rate for m in plan.models.values()}
        decoded = {r: audio.resample(x, sr, r) for r in rates}
        add("decode", time.thread_time() - c)
        cks = sorted(by_item[item_id])
        signals: dict[int, dict[str, np.ndarray]] = {}
        for r, y in decoded.items():
            c = time.thread_time()
            signals[r] = {}
            for ck in cks:
                try:
                    signals[r][ck] = condition_signal(y, r, plan.conditions[ck], 0, item_id, ck)
                except Exception:  # noqa: BLE001 - a perturbation error, as in the audit
                    pass
            add("perturb", time.thread_time() - c, perturbed=len(cks) - (CLEAN in cks))
        for name, model in plan.models.items():
            sigs = signals[model.sampling_rate]
            keys = [CLEAN] if name in features else list(sigs)
            keys = [k for k in keys if k in sigs]
            if not keys:
                continue
            rngs = ([derive_rng(0, "model", model.fingerprint(), item_id, k) for k in keys]
                    if model.stochastic else None)
            c = time.thread_time()
            model.predict([sigs[k] for k in keys], rngs)
            add(name, time.thread_time() - c, predictions=len(keys))

    c0 = _cpu()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, list(by_item)))
    wall = time.perf_counter() - t0
    total = _cpu() - c0
    return {"wall_seconds": wall, "cpu_seconds": total,
            "stage_cpu_seconds": {k: round(v, 2) for k, v in cpu.items()}, **counts,
            "roles": {n: plan.roles[n] for n in plan.models}}


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: bench.py's targets for the figures of :func:`bench_figures` (issue 17, points 4 and 5)
TARGETS = {"ratio_many_models_over_reference": ("<=", 1.15),
           "ratio_many_models_over_reference_cpu": ("<=", 1.15),
           "many_models_peak_rss_mb": ("<=", 1000),
           **{f"ratio_scale_{k}": ("<=", 1.3) for k in (
               "peak_rss_mb", "worker_peak_rss_mb", "results_json_bytes", "report_html_bytes")}}


def bench_figures(suite: str = "default", scale_json: str = os.path.join(HERE, "scale.json"),
                  repeat: int = 2) -> dict:
    """``make bench``'s part (m): this benchmark on ``suite``, its figures named
    ``many_models_*`` for benchmarks/results.json, plus the last ``make bench-scale``
    figures (``scale_*``, from ``scale_json`` if it exists; not re-measured here).

    (m) and (r) alternate ``repeat`` times and the fastest of each counts, as (a) and (b)
    do: one (m) and one (r) minutes apart on a shared machine put 0.985 to 1.076 x (r)'s
    time on the same prediction stage (three runs on 2026-11-30)."""
    r = main(["--suite", suite, "--out", "", "--repeat", str(repeat)])
    out = {f"many_models_{k}": r[k] for k in (
        "date", "suite", "models", "audit_seconds", "audit_cpu_seconds", "reference_seconds",
        "reference_cpu_seconds", "peak_rss_mb", "report_html_bytes", "results_json_bytes")}
    out["many_models_audit_runs"] = [
        {k: round(x[k], 2) for k in ("wall_seconds", "cpu_seconds", "execute_seconds",
                                      "peak_rss_mb")} for x in r["audit_runs"]]
    out["many_models_reference_runs"] = [
        {k: round(x[k], 2) for k in ("wall_seconds", "cpu_seconds")}
        for x in r.get("reference_runs", [])]
    out["ratio_many_models_over_reference"] = r["ratio_audit_over_reference"]
    out["ratio_many_models_over_reference_cpu"] = r["ratio_audit_over_reference_cpu"]
    if os.path.exists(scale_json):
        with open(scale_json) as fh:
            scale = json.load(fh)
        out.update(scale_date=scale["date"], scale_k=scale["k"], scale_suite=scale["suite"],
                   **{f"ratio_scale_{k}": v for k, v in scale["ratios"].items()})
        print(f"(s) last make bench-scale ({scale['date']}, {scale['k']} x the corpus): "
              + ", ".join(f"{k} {v:.2f} x" for k, v in scale["ratios"].items()), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="default")
    p.add_argument("--data", default=None, help="manifest (default: the bundled corpus)")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--isolate", action="store_true",
                   help="(m) with the models isolated in worker processes (sertest run's "
                   "default; their CPU-seconds are the children's, their memory their own)")
    p.add_argument("--keep-arenas", action="store_true",
                   help="(m) as before issue 17: every ONNX session keeps its arena's peak")
    p.add_argument("--skip-reference", action="store_true",
                   help="only (m): the audit's time, memory and sizes")
    p.add_argument("--out", default=os.path.join(HERE, "many_models.json"))
    args = p.parse_args(argv)
    specs = reference_specs()
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "suite": args.suite,
                    "data": args.data or "the bundled corpus",
                    "models": [s.split("=")[0] for s in specs], "jobs": args.jobs,
                    "isolate": args.isolate, "keep_arenas": args.keep_arenas,
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_before": list(os.getloadavg())}
    print(f"{len(specs)} models | suite {args.suite} | jobs {args.jobs}", flush=True)
    tmp = tempfile.mkdtemp(prefix="sertest-many-")
    m_runs, r_runs = [], []
    try:
        for k in range(args.repeat):
            m = audit_fresh(specs, args.suite, os.path.join(tmp, f"audit{k}"), args.jobs,
                            args.data, args.isolate, args.keep_arenas)
            m_runs.append(m)
            print(f"(m) {len(specs)}-model audit  {m['wall_seconds']:8.1f} s  "
                  f"{m['cpu_seconds']:.1f} CPU-s  peak RSS {m['peak_rss_mb']:.1f} MB  "
                  f"report.html {m['report_html_bytes']:,} B  results.json "
                  f"{m['results_json_bytes']:,} B  (prediction stage {m['execute_seconds']:.1f} s, "
                  f"{m['computed']} predictions)", flush=True)
            if not args.skip_reference:
                r = reference_pass(specs, args.suite, args.jobs, args.data)
                r_runs.append(r)
                print(f"(r) one perturbation pass + each model's inference  "
                      f"{r['wall_seconds']:8.1f} s  {r['cpu_seconds']:.1f} CPU-s  "
                      f"({r['perturbed']} perturbed signals, {r['predictions']} predictions)",
                      flush=True)
                print("    CPU-s by stage: " + ", ".join(
                    f"{k} {v:.1f}" for k, v in r["stage_cpu_seconds"].items()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_average_after"] = list(os.getloadavg())
    best_m = min(m_runs, key=lambda x: x["wall_seconds"])
    report.update(audit_runs=m_runs, audit_seconds=round(best_m["wall_seconds"], 2),
                  audit_cpu_seconds=round(min(x["cpu_seconds"] for x in m_runs), 1),
                  peak_rss_mb=round(max(x["peak_rss_mb"] for x in m_runs), 1),
                  report_html_bytes=best_m["report_html_bytes"],
                  results_json_bytes=best_m["results_json_bytes"])
    if r_runs:
        report.update(reference_runs=r_runs,
                      reference_seconds=round(min(x["wall_seconds"] for x in r_runs), 2),
                      reference_cpu_seconds=round(min(x["cpu_seconds"] for x in r_runs), 1))
        report["ratio_audit_over_reference"] = round(
            report["audit_seconds"] / report["reference_seconds"], 3)
        report["ratio_audit_over_reference_cpu"] = round(
            report["audit_cpu_seconds"] / report["reference_cpu_seconds"], 3)
    targets = {"ratio_audit_over_reference": ("<=", 1.15),
               "ratio_audit_over_reference_cpu": ("<=", 1.15), "peak_rss_mb": ("<=", 1000)}
    report["targets"] = {}
    for key, (op, lim) in targets.items():
        if key in report:
            v = report[key]
            report["targets"][key] = {"value": v, "target": f"{op} {lim}",
                                      "met": v <= lim if op == "<=" else v >= lim}
            print(f"{key:<32} {v:9.3f}   {op} {lim}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
