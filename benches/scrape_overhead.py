#!/usr/bin/env python3
"""What serving /metrics costs a first sync: `mailfeed run` syncs a fresh
database of N messages from a private Dovecot, once left alone (A) and once
while a client scrapes /metrics 100 times a second over one keep-alive
connection (B). Rounds are interleaved (A B, B A, A B, ...) so drift of the
shared machine hits both sides alike. Reported per side: the median time from
start to the last `folder synced` log line, and mailfeed's CPU seconds
(utime + stime from /proc) at that moment; and the scrapes served.

    cargo build --release --bin mailfeed
    python3 benches/scrape_overhead.py [--messages 5000] [--rounds 4] [--rate 100]

Must run as root (Dovecot serves mail as `nobody`), like benches/run.
"""

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the Dovecot, corpus and config helpers)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scraper(port, rate, stop, served):
    conn = None
    period = 1.0 / rate
    next_at = time.perf_counter()
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                served[0] += 1
        except OSError:
            conn = None
            time.sleep(0.01)
        next_at += period
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.perf_counter()


def one_run(dc, work, n, scrape, rate):
    cfg = os.path.join(work, "mf.toml")
    db = bench.mailfeed_config(cfg, dc, "bench", tls=False)
    bench.remove_db(db)
    port, lock = bench.reserve_port(__import__("random").Random(time.time_ns()))
    lock.close()
    with open(cfg, "a") as f:
        f.write(f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
    err_path = os.path.join(work, "run.err")
    err = open(err_path, "wb")
    env = dict(os.environ, RUST_LOG="warn,mailfeed::sync=debug")
    t0 = time.time()
    p = subprocess.Popen([bench.MAILFEED, "-c", cfg, "run"], env=env,
                         stdout=subprocess.DEVNULL, stderr=err)
    stop = threading.Event()
    served = [0]
    t = None
    if scrape:
        t = threading.Thread(target=scraper, args=(port, rate, stop, served), daemon=True)
        t.start()
    cpu = None
    deadline = time.time() + 1800
    while time.time() < deadline:
        with open(err_path, "rb") as f:
            text = f.read()
        if b"folder synced" in text:
            cpu = cpu_seconds(p.pid)
            break
        if p.poll() is not None:
            raise RuntimeError("mailfeed exited:\n" + text.decode(errors="replace")[-3000:])
        time.sleep(0.02)
    stop.set()
    if t:
        t.join()
    p.terminate()
    p.wait(10)
    with open(err_path, "rb") as f:
        secs = bench.committed_at(f.read(), t0)
    count, _ = bench.db_count(db)
    if count != n:
        raise RuntimeError(f"stored {count} of {n}")
    return secs, cpu, served[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rate", type=int, default=100, help="scrapes per second on side B")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mailfeed-scrape-")
    # Dovecot's unprivileged processes must reach the users file and Maildirs.
    os.chmod(work, 0o755)
    dc = bench.Dovecot(os.path.join(work, "dovecot"), ["bench"])
    try:
        corpus = bench.Corpus(a.seed)
        _, total, _ = corpus.write_folder(dc, "bench", "INBOX", a.messages, "main", huge=0)
        dc.start()
        dc.resync("bench")
        bench.log(f"{a.messages} messages, {total / bench.MB:.1f} MiB; {a.rounds} rounds")
        res = {False: [], True: []}
        for r in range(a.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            for scrape in order:
                secs, cpu, served = one_run(dc, work, a.messages, scrape, a.rate)
                res[scrape].append((secs, cpu, served))
                bench.log(f"round {r + 1} {'B scraped' if scrape else 'A alone  '}: "
                          f"{secs:.2f} s, {cpu:.2f} CPU s, {served} scrapes "
                          f"({served / secs if secs else 0:.0f}/s)")
        rows = []
        for scrape in (False, True):
            xs = res[scrape]
            rows.append([
                f"B: {a.rate} scrapes/s" if scrape else "A: no scrapes",
                f"{bench.median([x[0] for x in xs]):.2f}",
                f"{bench.median([x[1] for x in xs]):.2f}",
                f"{bench.median([x[2] / x[0] for x in xs]):.0f}" if scrape else "-",
            ])
        print(bench.fmt_table(rows, ["side", "first sync s (median)", "mailfeed CPU s (median)",
                                     "scrapes/s served"]))
        a_s, b_s = (bench.median([x[0] for x in res[k]]) for k in (False, True))
        a_c, b_c = (bench.median([x[1] for x in res[k]]) for k in (False, True))
        print(f"\noverhead: time {100 * (b_s - a_s) / a_s:+.1f} %, "
              f"mailfeed CPU {100 * (b_c - a_c) / a_c:+.1f} %")
    finally:
        dc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
