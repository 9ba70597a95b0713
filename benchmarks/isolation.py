"""What crash isolation costs: the same audit with and without ``isolate``.

    .venv/bin/python benchmarks/isolation.py [--model M] [--suite default] [--repeat 1]
                                             [--out benchmarks/isolation.json]

Each run is a fresh process (``sertest.audit`` with the cache disabled, no random
baselines, no reports, no efficiency profile) on the bundled corpus; the runs alternate
(off, on, off, on, ...) and the fastest of each way counts.  Reported: wall-clock seconds,
CPU seconds of the audit's process and of its workers (``RUSAGE_CHILDREN``) and the ratio
isolated / in-process.  Wall-clock times on a shared machine are noisy; only the ratio of
one run is claimed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

_CODE = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from sertest import audit
t = time.perf_counter()
res = audit([{model!r}], None, {suite!r}, cache=False, baselines=False, renderers=(),
            profile=False, progress=False, jobs={jobs!r}, isolate={isolate!r})
wall = time.perf_counter() - t
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"wall_seconds": wall, "cpu_seconds": me.ru_utime + me.ru_stime,
                  "worker_cpu_seconds": kids.ru_utime + kids.ru_stime,
                  "computed": res.timings["computed"],
                  "errors": len(res.doc["items"]["errors"]),
                  "doc": res.to_json()}}))
"""


def one_run(model: str, suite: str, jobs, isolate: bool) -> dict:
    code = _CODE.format(repo=REPO, model=model, suite=suite, jobs=jobs, isolate=isolate)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(REPO, "examples", "models", "wav2small.onnx"))
    p.add_argument("--suite", default="default")
    p.add_argument("--jobs", type=int, default=None, help="worker threads (default: sertest's)")
    p.add_argument("--repeat", type=int, default=1, help="runs each way (default 1)")
    p.add_argument("--out", default=os.path.join(HERE, "isolation.json"))
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"in_process": [], "isolated": []}
    for _ in range(args.repeat):
        for way, isolate in (("in_process", False), ("isolated", True)):
            r = one_run(args.model, args.suite, args.jobs, isolate)
            runs[way].append(r)
            print(f"{way:>10}: {r['wall_seconds']:.1f} s wall, {r['cpu_seconds']:.1f} + "
                  f"{r['worker_cpu_seconds']:.1f} CPU-s (audit + workers), "
                  f"{r['computed']} predictions", flush=True)
    best = {way: min(rs, key=lambda r: r["wall_seconds"]) for way, rs in runs.items()}
    same = best["in_process"].pop("doc") == best["isolated"].pop("doc")
    for rs in runs.values():
        for r in rs:
            r.pop("doc", None)
    ratio = best["isolated"]["wall_seconds"] / best["in_process"]["wall_seconds"]
    cpu = {way: b["cpu_seconds"] + b["worker_cpu_seconds"] for way, b in best.items()}
    summary = {"model": os.path.relpath(args.model, REPO) if os.path.exists(args.model)
               else args.model, "suite": args.suite, "repeat": args.repeat,
               "cpu_count": os.cpu_count(), "runs": runs,
               "ratio_wall": round(ratio, 3),
               "ratio_cpu": round(cpu["isolated"] / cpu["in_process"], 3),
               "identical_results": same}
    print(f"isolated / in-process: {ratio:.3f} wall, {summary['ratio_cpu']:.3f} CPU; "
          f"identical results.json: {same}")
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
