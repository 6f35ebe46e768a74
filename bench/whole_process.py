#!/usr/bin/env python3
"""Whole-process timing: a fresh process per run over the corpus, start-up and
rule compile included (what an analyst waits for on the command line).

  python3 whole_process.py --name NAME --mb 6.21 --articles 1000 --repeats 3 --out res.json -- CMD ARGS...
Median wall time (output to /dev/null), peak RSS (wait4) and the number of output lines
(counted in one more, untimed run).
--warm PATH (a file or a folder, repeatable) is read through before each run, so
that every engine starts with its inputs in the page cache: the time is the
process's own, not the disk's (this machine's page cache gives files back to
other work within minutes, which had added up to a third to runs of 0.2 s).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def warm(paths):
    """Reads every file under `paths` (into the page cache)."""
    for path in paths:
        files = [path] if os.path.isfile(path) else [
            os.path.join(d, n) for d, _, names in os.walk(path) for n in names]
        for name in files:
            with open(name, "rb") as f:
                while f.read(1 << 20):
                    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--mb", type=float, required=True)
    ap.add_argument("--articles", type=int, required=True)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warm", action="append", default=[], help="file or folder to read before each run")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    runs = []
    # Timed runs write to /dev/null: the time is the process's work, not the file
    # system's (35 MB of alerts written to a file on this machine's disk added ~9% at
    # 10,000 rules; the Python scripts print one line). One more run, untimed, counts
    # the output lines.
    with open(os.devnull, "wb") as null:
        for _ in range(a.repeats):
            warm(a.warm)
            t = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=null, stderr=subprocess.DEVNULL)
            try:
                p.wait(timeout=a.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                json.dump({"name": a.name, "k": a.k, "timeout_s": a.timeout}, open(a.out, "w"))
                return
            dt = time.perf_counter() - t
            runs.append(dt)
            if dt > 20:
                break
    with tempfile.TemporaryFile() as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, timeout=a.timeout)
        out.seek(0)
        lines = sum(1 for _ in out)
    # peak RSS of the children, via getrusage (max over every run)
    import resource
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    med = statistics.median(runs)
    res = {"name": a.name, "k": a.k, "cmd": " ".join(cmd), "runs_s": runs, "median_s": med,
           "mb_per_s": a.mb / med, "articles_per_s": a.articles / med, "peak_rss_mb": rss,
           "output_lines": lines}
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items() if k != "runs_s"}))


if __name__ == "__main__":
    main()
