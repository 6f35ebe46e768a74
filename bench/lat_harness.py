#!/usr/bin/env python3
"""(newswatch copy of shared/bench/lat_harness.py; change: a unique last line per dropped file.)
End-to-end latency: file dropped into a watched dir -> webhook POST received.

  python3 lat_harness.py --name NAME --cmd 'DAEMON COMMAND' --rules rules.json \
      --corpus CORPUS_DIR --phase burst:1000 --phase steady:600@100 --repeats 3 --out res.json

DAEMON INTERFACE (what the command under test must do)
  * Watch WATCH_DIR (non-recursive). Test files appear there only via rename(2) from a
    sibling directory on the same filesystem (inotify IN_MOVED_TO): complete on arrival.
  * Load rules from RULES_FILE: JSON [{"id": str, "phrases": [str, ...]}, ...].
  * For each file with >= 1 match, HTTP POST to WEBHOOK_URL (http://127.0.0.1:PORT/hook).
    Any body/content type, but the body must contain the file's basename
    (e.g. {"file": "d01_000123.txt", "rules": ["E_HAFTAR"]}). Respond-to-200 is immediate.
    One POST per file is expected; extra POSTs are counted, the first arrival is used.
  The command is run with `bash -c` in its own process group; {watch} {url} {rules} in it
  are replaced by the (shell-quoted) values, which are also exported as WATCH_DIR,
  WEBHOOK_URL and RULES_FILE. It is stopped with SIGTERM (then SIGKILL) at the end.
  Readiness: warm-up files are dropped once a second until one is reported.

Latency = webhook arrival - moment just before rename() (both CLOCK_MONOTONIC, same process).
Also reported: sustained files/s = delivered / (last arrival - first drop), daemon CPU
seconds and peak RSS (sum over the live processes of its process group, from /proc).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time

NAME_RE = re.compile(rb"[dw]\d+_\d{6}\.txt")


def _serve_connection(conn, rec):
    """One keep-alive connection: a minimal HTTP/1.1 server (Content-Length or
    chunked request bodies) answering 200 with an empty body at once."""
    buf = b""

    def more():
        nonlocal buf
        data = conn.recv(65536)
        if not data:
            raise EOFError
        buf += data

    try:
        while True:
            while b"\r\n\r\n" not in buf:
                more()
            end = buf.index(b"\r\n\r\n")
            lines = buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            pos = end + 4
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = b""
                while True:
                    while buf.find(b"\r\n", pos) < 0:
                        more()
                    eol = buf.find(b"\r\n", pos)
                    n = int(buf[pos:eol].split(b";")[0], 16)
                    while len(buf) < eol + 2 + n + 2:
                        more()
                    body += buf[eol + 2:eol + 2 + n]
                    pos = eol + 2 + n + 2
                    if n == 0:
                        break
            else:
                n = int(headers.get("content-length", 0))
                while len(buf) < pos + n:
                    more()
                body = buf[pos:pos + n]
                pos += n
            buf = buf[pos:]
            rec.record(body, time.monotonic())
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (lines[0].endswith("HTTP/1.0") and connection != "keep-alive")
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                         + (b"Connection: close\r\n" if close else b"") + b"\r\n")
            if close:
                return
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()


class Receiver:
    """The webhook receiver on 127.0.0.1: per file basename found in a POST body, the
    time.monotonic() of its first POST (after the whole body arrived), in this process like
    the drop times. A thread per connection over raw sockets with a minimal HTTP/1.1 parser:
    the earlier http.server receiver (BaseHTTPRequestHandler, email-parser headers) cost
    ~190 us of CPU per POST and capped at ~3,600-4,000 POST/s on 2 cores, less than a
    daemon can send. The same receiver serves every peer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals, self.posts = {}, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/hook" % self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_serve_connection, args=(conn, self), daemon=True).start()

    def record(self, body, t):
        with self.lock:
            self.posts += 1
            for m in NAME_RE.findall(body):
                self.arrivals.setdefault(m.decode(), t)

    def shutdown(self):
        self.sock.close()


def pg_stats(pgid):
    """(cpu seconds incl. waited-for children, sum of peak RSS MB) over live processes of pgid."""
    tck, cpu, hwm = os.sysconf("SC_CLK_TCK"), 0.0, 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            if int(st[2]) != pgid:
                continue
            cpu += sum(int(x) for x in st[11:15]) / tck  # utime stime cutime cstime
            with open("/proc/%s/status" % pid) as f:
                hwm += sum(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024.0
        except (OSError, IndexError, ValueError):
            pass
    return cpu, hwm


def fs_type(path):
    best = ("", "?")
    with open("/proc/mounts") as f:
        for line in f:
            mnt, typ = line.split()[1:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, typ)
    return best[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--cmd", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--corpus", required=True, help="gen_corpus output (articles + truth.json)")
    ap.add_argument("--phase", action="append", required=True, help="burst:N or steady:N@RATE")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/latbench",
                    help="watch/ and tmp/ are created here; use a tmpfs so the dropper is not disk-bound")
    ap.add_argument("--idle-timeout", type=float, default=15.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    # payloads: articles that contain at least one rule of the set (per truth.json)
    with open(os.path.join(a.corpus, "truth.json"), encoding="utf-8") as f:
        truth = json.load(f)
    with open(a.rules, encoding="utf-8") as f:
        ids = {r["id"] for r in json.load(f)}
    names = [n for n, c in sorted(truth["per_article"].items()) if ids & set(c)][:200]
    payloads = [open(os.path.join(a.corpus, "articles", n), "rb").read() for n in names]

    watch, tmpd = os.path.join(a.workdir, "watch"), os.path.join(a.workdir, "tmp")
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(watch)
    os.makedirs(tmpd)
    rec = Receiver()
    env = dict(os.environ, WATCH_DIR=watch, WEBHOOK_URL=rec.url, RULES_FILE=os.path.abspath(a.rules))
    cmd = a.cmd.format(watch=shlex.quote(watch), url=shlex.quote(rec.url), rules=shlex.quote(env["RULES_FILE"]))
    log = open(os.path.join(a.workdir, "daemon.log"), "w")
    proc = subprocess.Popen(["bash", "-c", cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    seq = [0]

    def drop(name):
        # Every file gets a unique last line (that no rule matches): payloads repeat
        # after 200 files, and a daemon that skips repeated content (newswatch: same
        # BLAKE3 id = no new alerts) must still see a new article each time.
        data = payloads[seq[0] % len(payloads)] + ("\nfile serial %d\n" % seq[0]).encode()
        seq[0] += 1
        tmp = os.path.join(tmpd, name)
        with open(tmp, "wb") as f:
            f.write(data)
        t = time.monotonic()
        os.rename(tmp, os.path.join(watch, name))
        return t

    results = {"name": a.name, "cmd": a.cmd, "rules": a.rules, "workdir": a.workdir,
               "workdir_fs": fs_type(os.path.abspath(a.workdir)), "phases": []}
    try:
        t_start = time.monotonic()  # warm-up / readiness
        for j in range(120):
            if proc.poll() is not None:
                raise SystemExit("daemon exited early, see %s/daemon.log" % a.workdir)
            drop("w%d_%06d.txt" % (j, 0))
            time.sleep(1.0)
            if rec.arrivals:
                break
        else:
            raise SystemExit("daemon never posted during warm-up")
        results["ready_s"] = time.monotonic() - t_start
        time.sleep(1.0)
        for pi, ph in enumerate(a.phase):
            kind, spec = ph.split(":")
            n, rate = (int(spec), None) if kind == "burst" else (int(spec.split("@")[0]), float(spec.split("@")[1]))
            reps = []
            for rep in range(a.repeats):
                with rec.lock:
                    rec.arrivals.clear()
                    rec.posts = 0
                cpu0, _ = pg_stats(proc.pid)
                dropped = {}
                t0 = time.monotonic()
                for i in range(n):
                    if rate:
                        delay = t0 + i / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    name = "d%d%d_%06d.txt" % (pi, rep, i)
                    dropped[name] = drop(name)
                t_last_drop, last_n, last_change = time.monotonic(), -1, time.monotonic()
                while True:
                    time.sleep(0.05)
                    with rec.lock:
                        got = sum(1 for k in rec.arrivals if k in dropped)
                    if got != last_n:
                        last_n, last_change = got, time.monotonic()
                    if got == n or time.monotonic() - last_change > a.idle_timeout:
                        break
                cpu1, hwm = pg_stats(proc.pid)
                with rec.lock:
                    arr = {k: v for k, v in rec.arrivals.items() if k in dropped}
                    posts = rec.posts
                lat = [(arr[k] - dropped[k]) * 1000.0 for k in arr]
                first = min(dropped.values())
                r = {"phase": ph, "rep": rep, "dropped": n, "delivered": len(arr), "posts": posts,
                     "drop_rate_achieved": n / max(t_last_drop - first, 1e-9),
                     "sustained_files_per_s": len(arr) / max(max(arr.values()) - first, 1e-9) if arr else 0,
                     "daemon_cpu_s": cpu1 - cpu0, "daemon_peak_rss_mb": hwm}
                if lat:
                    r.update({"p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
                              "max_ms": max(lat), "mean_ms": statistics.mean(lat)})
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
                reps.append(r)
                for fn in os.listdir(watch):
                    os.unlink(os.path.join(watch, fn))
                time.sleep(1.0)
            summ = {"phase": ph, "runs": reps}
            for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "sustained_files_per_s", "daemon_cpu_s", "drop_rate_achieved",
                        "daemon_peak_rss_mb", "delivered"):
                vals = [r[key] for r in reps if key in r]
                if vals:
                    summ[key + "_median"] = statistics.median(vals)
                    summ[key + "_min"], summ[key + "_max"] = min(vals), max(vals)
            results["phases"].append(summ)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        rec.shutdown()
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
