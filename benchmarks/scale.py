"""Scale-out stays honest (issue 17, point 5): k x the bundled corpus on a Dask LocalCluster.

    .venv/bin/python benchmarks/scale.py [--k 20] [--suite quick] [--out benchmarks/scale.json]

(``make bench-scale``; not part of ``make bench`` or CI.)  The manifest of the bundled corpus
is repeated ``k`` times with new item ids (``ID#j``) and speakers (``SPEAKER#j``, so every
copy is a speaker of its own and no speaker's share of the data grows).  Copy 0 is the
corpus's own files; copies 1..k-1 are the same samples written again as FLAC files whose
comment names the copy, so each copy's bytes (hence its cache keys) are its own and the
prediction cache does the work of k distinct files (``--same-files`` points every copy at
the original files instead: identical content shares cache entries).

The audit of 1 x and of k x (``--model``, default Wav2Small; ``--suite``, default ``quick``)
runs each in a fresh process that starts a LocalCluster of ``--workers`` (default 2)
single-threaded worker processes and calls ``sertest run --executor dask --scheduler ...``
with a cache folder of its own and the report written (html, results.json).  Measured: wall
time, CPU-seconds (audit process and workers), peak RSS (``VmHWM``) of the audit process and
of each worker, the sizes of results.json and report.html and of the cache folder.  Target
(issue 17): none but time and cache grows more than 1.3 x from 1 x to k x.
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

#: figures that must not grow more than 1.3 x from 1 x to k x (time and cache may)
BOUNDED = ("peak_rss_mb", "worker_peak_rss_mb", "results_json_bytes", "report_html_bytes")


def default_model() -> str:
    path = os.path.join(REPO, "examples", "models", "wav2small.onnx")
    return f"wav2small={path}" if os.path.exists(path) else "random:gaussian"


def replicated_manifest(k: int, folder: str, same_files: bool = False,
                        items: int | None = None) -> str:
    """The bundled corpus's manifest repeated ``k`` times (see the module docstring);
    returns the manifest's path (absolute file paths: pass ``--allow-outside-root``)."""
    import pandas as pd
    import soundfile as sf

    from sertest.data import load_dataset

    table = load_dataset(None).table.reset_index()
    if items:
        table = table.iloc[:items]
    rows = []
    for j in range(k):
        df = table.copy()
        if j:
            df["id"] = [f"{i}#{j}" for i in df["id"]]
            if "speaker" in df:
                df["speaker"] = [f"{s}#{j}" for s in df["speaker"]]
            if not same_files:
                files = []
                for src in table["file"]:
                    dst = os.path.join(folder, f"copy{j}", os.path.basename(os.path.dirname(src)),
                                       os.path.basename(src))
                    if not os.path.exists(dst):
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        x, sr = sf.read(src, dtype="int16", always_2d=True)
                        info = sf.info(src)
                        with sf.SoundFile(dst, "w", sr, x.shape[1], subtype=info.subtype,
                                          format=info.format) as fh:
                            fh.comment = f"sertest bench-scale copy {j}"
                            fh.write(x)
                    files.append(dst)
                df["file"] = files
        rows.append(df)
    path = os.path.join(folder, f"x{k}.csv")
    pd.concat(rows).to_csv(path, index=False)
    return path


_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, REPO)
import dask
from distributed import Client, LocalCluster
from sertest.cli import main

def vm_hwm_mb():  # peak resident set of this process (VmHWM restarts at exec), MB
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))

def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mb": vm_hwm_mb(), "cpu_seconds": r.ru_utime + r.ru_stime}

with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                      "distributed.scheduler.worker-saturation": 1.0}):
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           dashboard_address=None,
                           env={"SERTEST_THREADS": "1", "OMP_NUM_THREADS": "1"})
client = Client(cluster)
before = client.run(usage)
t = time.perf_counter()
rc = main(ARGV + ["--scheduler", cluster.scheduler_address])
wall = time.perf_counter() - t
workers = client.run(usage)
me = usage()
client.close()
cluster.close()
print(json.dumps({"rc": rc, "wall_seconds": wall, "peak_rss_mb": me["peak_rss_mb"],
                  "cpu_seconds": me["cpu_seconds"],
                  "worker_peak_rss_mb": sorted(w["peak_rss_mb"] for w in workers.values()),
                  "worker_cpu_seconds": sum(workers[a]["cpu_seconds"] - before[a]["cpu_seconds"]
                                            for a in workers if a in before)}))
"""


def audit_on_cluster(model: str, manifest: str, suite: str, workers: int, out: str,
                     cache: str) -> dict:
    """One audit in a fresh process on a fresh LocalCluster (see the module docstring)."""
    argv = ["run", "--model", model, "--suite", suite, "--data", manifest,
            "--allow-outside-root", "--cache", cache, "--out", out, "--no-progress",
            "--no-profile", "--executor", "dask", "--jobs", str(workers)]
    for folder in (out, cache):  # a cold cache and a fresh output folder every time
        shutil.rmtree(folder, ignore_errors=True)
    code = (_CHILD.replace("REPO", repr(REPO)).replace("WORKERS", str(int(workers)))
            .replace("ARGV", repr(argv)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the audit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1])
    if res["rc"] not in (0, 1):
        if not os.path.exists(os.path.join(out, "results.json")):
            raise RuntimeError(f"the audit failed (exit {res['rc']}):\n{proc.stderr[-3000:]}")
        # e.g. exit 3: a renderer failed but results.json and the other reports were written
        res["stderr_tail"] = proc.stderr.strip().splitlines()[-3:]
        print(f"warning: the audit exited {res['rc']}: {res['stderr_tail'][0]}", flush=True)
    for name in ("report.html", "results.json"):
        path = os.path.join(out, name)
        res[name.replace(".", "_") + "_bytes"] = os.path.getsize(path) if os.path.exists(path) else None
    res["cache_bytes"] = sum(os.path.getsize(os.path.join(d, f))
                             for d, _, files in os.walk(cache) for f in files)
    with open(os.path.join(out, "timings.json")) as fh:
        timings = json.load(fh)
    res["computed"] = timings["computed"]
    res["execute_seconds"] = timings["execute_seconds"]
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=20, help="copies of the bundled corpus (default 20)")
    p.add_argument("--suite", default="quick")
    p.add_argument("--model", default=default_model())
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    p.add_argument("--same-files", action="store_true",
                   help="every copy points at the original files (shared cache entries)")
    p.add_argument("--items", type=int, default=None,
                   help="only the corpus's first N items (a smoke test)")
    p.add_argument("--work", default=None, help="folder for the copies, manifests and "
                   "outputs (default: a temporary folder, removed afterwards)")
    p.add_argument("--out", default=os.path.join(HERE, "scale.json"))
    args = p.parse_args(argv)
    if args.k < 2:
        p.error(f"--k {args.k}: give at least 2 copies (1 x is always measured)")
    work = args.work or tempfile.mkdtemp(prefix="sertest-scale-")
    os.makedirs(work, exist_ok=True)
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "k": args.k, "suite": args.suite,
                    "model": args.model, "workers": args.workers,
                    "copies": "same files" if args.same_files else "copies with their own bytes",
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_before": list(os.getloadavg())}
    try:
        runs = {}
        for k in (1, args.k):
            t = time.perf_counter()
            manifest = replicated_manifest(k, work, args.same_files, args.items)
            prep = time.perf_counter() - t
            res = audit_on_cluster(args.model, manifest, args.suite, args.workers,
                                   os.path.join(work, f"audit-x{k}"), os.path.join(work, f"cache-x{k}"))
            res["manifest_seconds"] = round(prep, 1)
            runs[k] = res
            print(f"{k:>3} x  {res['wall_seconds']:8.1f} s  CPU {res['cpu_seconds']:.1f} + "
                  f"{res['worker_cpu_seconds']:.1f} (workers) s  peak RSS {res['peak_rss_mb']:.1f}"
                  f" MB, workers {res['worker_peak_rss_mb']} MB  results.json "
                  f"{res['results_json_bytes']:,} B  report.html {res['report_html_bytes']:,} B  "
                  f"cache {res['cache_bytes']:,} B  ({res['computed']} predictions)", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = list(os.getloadavg())
    one, many = runs[1], runs[args.k]
    report["x1"], report[f"x{args.k}"] = one, many
    ratios = {
        "wall_seconds": many["wall_seconds"] / one["wall_seconds"],
        "cpu_seconds": (many["cpu_seconds"] + many["worker_cpu_seconds"])
        / (one["cpu_seconds"] + one["worker_cpu_seconds"]),
        "peak_rss_mb": many["peak_rss_mb"] / one["peak_rss_mb"],
        "worker_peak_rss_mb": max(many["worker_peak_rss_mb"]) / max(one["worker_peak_rss_mb"]),
        "results_json_bytes": many["results_json_bytes"] / one["results_json_bytes"],
        "report_html_bytes": many["report_html_bytes"] / one["report_html_bytes"],
        "cache_bytes": many["cache_bytes"] / max(1, one["cache_bytes"]),
    }
    report["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
    report["targets"] = {k: {"value": round(ratios[k], 3), "target": "<= 1.3",
                             "met": ratios[k] <= 1.3} for k in BOUNDED}
    print(f"\n{'k x / 1 x':<22} ratio   target")
    for k, v in ratios.items():
        print(f"{k:<22} {v:7.3f}   {'<= 1.3' if k in BOUNDED else '(may grow)'}"
              f"{'' if k not in BOUNDED else ('  met' if v <= 1.3 else '  NOT met')}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
