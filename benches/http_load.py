#!/usr/bin/env python3
"""What serving the page and the API costs a first sync.

`mailfeed run` syncs a fresh database from a private Dovecot (the corpus of
bench.py), timed from spawn until every message is committed, in three
arms run in interleaved rounds (the order rotates each round), medians
reported:

  no-http   run without [http]                       (the baseline)
  http      run with [http], nobody connected        (the listener and the
                                                     conversation broadcast)
  clients   run with [http] and busy clients: 8 threads looping over feed
            pages, search, one message, a raw download and status, plus 4
            open event streams (status, conversation)

Every arm polls the database the same way (a read-only count every 100 ms)
to see the end. Run as root through benches/run_http (it builds mailfeed in
release mode first).
"""

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the Dovecot, corpus and config helpers)


def count(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return c.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def clients(base, stop, counts):
    """Busy API clients until `stop` is set; counts answers."""
    words = ["report", "meeting", "invoice", "server", "update", "notes"]

    def get(path, limit=None):
        with urllib.request.urlopen(base + path, timeout=30) as r:
            data = r.read(limit) if limit else r.read()
            return r.status, data

    def worker(k):
        rng = random.Random(k)
        while not stop.is_set():
            try:
                get(f"/api/v1/messages?after_id={rng.randrange(0, 2000)}&limit=100")
                get(f"/api/v1/search?q={rng.choice(words)}&limit=20")
                get(f"/api/v1/messages/{rng.randrange(1, 50)}")
                get(f"/api/v1/messages/{rng.randrange(1, 50)}/raw")
                get("/api/v1/status")
                counts[k] += 5
            except Exception:
                time.sleep(0.05)

    def stream(path):
        while not stop.is_set():
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    while not stop.is_set():
                        if not r.read1(65536):
                            break
            except Exception:
                time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(8)]
    threads += [threading.Thread(target=stream, args=(p,), daemon=True)
                for p in ["/api/v1/status/live", "/api/v1/conversation/live"] * 2]
    for t in threads:
        t.start()
    return threads


def one_run(arm, dc, work, n, port):
    cfg = os.path.join(work, f"{arm}.toml")
    db = bench.mailfeed_config(cfg, dc, "bench", False)
    if arm != "no-http":
        with open(cfg, "a") as f:
            f.write(f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
    bench.remove_db(db)
    stop = threading.Event()
    counts = [0] * 8
    t0 = time.perf_counter()
    p = subprocess.Popen([bench.MAILFEED, "-c", cfg, "run"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        if arm == "clients":
            base = f"http://127.0.0.1:{port}"
            while True:
                try:
                    urllib.request.urlopen(base + "/api/v1/status", timeout=5).read()
                    break
                except Exception:
                    time.sleep(0.01)
            clients(base, stop, counts)
        while count(db) < n:
            if p.poll() is not None:
                sys.exit(f"{arm}: mailfeed exited early ({p.returncode})")
            time.sleep(0.1)
        secs = time.perf_counter() - t0
    finally:
        stop.set()
        p.terminate()
        # CPU seconds of mailfeed itself: steadier than wall time on a
        # shared machine (the clients' own CPU is not counted).
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
    return secs, sum(counts), ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=4978)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("http_load: must run as root (Dovecot then serves mail as nobody)")
    base = tempfile.mkdtemp(prefix="mailfeed-http-bench-")
    os.chmod(base, 0o755)
    work = os.path.join(base, "work")
    os.makedirs(work)
    dc = bench.Dovecot(os.path.join(base, "dovecot"), ["bench"])
    try:
        _, total, _ = bench.Corpus(a.seed).write_folder(dc, "bench", "INBOX", a.messages, "main", huge=0)
        dc.start()
        dc.resync("bench")
        port, _lock = bench.reserve_port(random.Random(os.getpid()))
        # Untimed: Dovecot builds its index and cache once.
        one_run("no-http", dc, work, a.messages, port)
        arms = ["no-http", "http", "clients"]
        times = {k: [] for k in arms}
        cpu = {k: [] for k in arms}
        answers = []
        for r in range(a.rounds):
            order = arms[r % 3:] + arms[:r % 3]
            for arm in order:
                secs, served, cpu_secs = one_run(arm, dc, work, a.messages, port)
                times[arm].append(secs)
                cpu[arm].append(cpu_secs)
                if arm == "clients":
                    answers.append(served / secs)
                bench.log(f"round {r + 1}: {arm:8} {secs:6.2f} s, CPU {cpu_secs:6.2f} s" +
                          (f"  ({served / secs:.0f} API answers/s)" if arm == "clients" else ""))
        base_med = statistics.median(times["no-http"])
        base_cpu = statistics.median(cpu["no-http"])
        print(f"\nfirst sync of {a.messages} messages ({total / bench.MB:.0f} MiB), "
              f"{a.rounds} interleaved rounds, medians:")
        for arm in arms:
            med = statistics.median(times[arm])
            c = statistics.median(cpu[arm])
            print(f"  {arm:8} wall {med:6.2f} s {100 * (med / base_med - 1):+6.1f}%   "
                  f"mailfeed CPU {c:6.2f} s {100 * (c / base_cpu - 1):+6.1f}%   "
                  f"(wall: {', '.join(f'{t:.2f}' for t in times[arm])})")
        print(f"  clients were answered {statistics.median(answers):.0f} times a second (median)")
    finally:
        dc.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
