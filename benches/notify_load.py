#!/usr/bin/env python3
"""Many accounts watched by one `mailfeed run`: NOTIFY against IDLE per folder.

A private Dovecot (bench.py's, with process limits raised) holds N accounts
of 5 folders (INBOX and F1..F4, one message each). One `mailfeed run` watches
them all. Each arm, once every folder has had its first pass:

  connections    IMAP connections Dovecot counts (`doveadm who -1`)
  fds            mailfeed's open descriptors (/proc/PID/fd)
  rss            mailfeed's resident memory (VmRSS) after the first passes
                 and after the latency probes (VmHWM: the peak)
  idle cpu       mailfeed's user+system CPU over a quiet window, as a share
                 of one core
  latency        APPEND into a random account's random folder (never INBOX
                 half the time) → the row in `messages`, 20 samples, median
                 and max; the database is polled every 5 ms
  first pass     spawn → every folder synced once

Arms: `notify` (Dovecot as is: one connection per account), `idle` (NOTIFY
hidden with `imap_capability`: an IDLE connection per folder). Run as root
through benches/run_notify, which builds mailfeed in release mode first.
"""

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

FOLDERS = ["INBOX", "F1", "F2", "F3", "F4"]
# What Dovecot 2.3 announces after login, less NOTIFY for the `idle` arm.
CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
        "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
        "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
        "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
        "STATUS=SIZE SAVEDATE LITERAL+")


def log(msg):
    print(f"[notify-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_dovecot(work, n, hide_notify):
    users = [f"u{i}" for i in range(n)]
    dc = bench.Dovecot(work, users, compress=False)
    with open(dc.conf, "a") as f:
        f.write(f"""
default_process_limit = {n * 6 + 100}
default_client_limit = {n * 12 + 200}
default_vsz_limit = 0
mail_max_userip_connections = 20
service anvil {{
  client_limit = {n * 12 + 200}
}}
service imap-login {{
  process_min_avail = 2
  service_count = 0
}}
# Dovecot's own `service imap` says process_limit = 1024, which
# default_process_limit does not lift: one `imap` process per connection.
service imap {{
  process_limit = {n * 6 + 100}
}}
""")
        if hide_notify:
            f.write(f"imap_capability = {CAPS}\n")
    for u in users:
        for folder in FOLDERS:
            d = dc.maildir(u, folder)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            msg = f"From: a@example.org\r\nSubject: first {u} {folder}\r\n\r\nhello\r\n"
            with open(os.path.join(d, "cur", f"1.M1P1.bench:2,S"), "w") as m:
                m.write(msg)
    dc.start()
    return dc, users


def write_config(path, dc, users):
    db = os.path.join(os.path.dirname(path), "notify.db")
    folder_list = ", ".join(f'"{f}"' for f in FOLDERS)
    with open(path, "w") as f:
        f.write(f'[store]\npath = "{db}"\n\n[sync]\ntimeout = "60s"\n\n[log]\nlevel = "info"\n')
        for u in users:
            f.write(f"""
[[accounts]]
name = "{u}"
host = "127.0.0.1"
security = "plain"
allow_plaintext = true
port = {dc.plain_port}
username = "{u}"
password = "{bench.PASSWORD}"
folders = [{folder_list}]
max_connections = 5
poll_interval = "1h"
""")
    return db


def connections(dc):
    out = subprocess.run(["doveadm", "-c", dc.conf, "who", "-1"], capture_output=True,
                         text=True, check=True).stdout
    return sum(1 for line in out.splitlines()[1:] if line.strip())


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def synced_folders(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return c.execute("SELECT count(*) FROM mailboxes WHERE last_sync_at IS NOT NULL").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def count_in(db, account, folder):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        return c.execute("SELECT count(*) FROM message_feed WHERE account = ? AND mailbox = ?",
                         (account, folder)).fetchone()[0]
    finally:
        c.close()


def run_arm(name, n, idle_window, samples, rng):
    work = tempfile.mkdtemp(prefix=f"mailfeed-notify-{name}-")
    dc = None
    p = None
    try:
        dc, users = make_dovecot(work, n, hide_notify=(name == "idle"))
        cfg = os.path.join(work, "mailfeed.toml")
        db = write_config(cfg, dc, users)
        t0 = time.perf_counter()
        p = subprocess.Popen([bench.MAILFEED, "-c", cfg, "run"], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "run.log"), "w"))
        total = n * len(FOLDERS)
        deadline = time.time() + 600
        while synced_folders(db) < total:
            if p.poll() is not None:
                raise RuntimeError(f"mailfeed run exited {p.returncode}; see {work}/run.log")
            if time.time() > deadline:
                raise RuntimeError(f"only {synced_folders(db)} of {total} folders synced in 600 s")
            time.sleep(0.2)
        first_pass = time.perf_counter() - t0
        time.sleep(5)  # into IDLE everywhere
        res = {"arm": name, "accounts": n, "folders": total, "first_pass_s": first_pass}
        res["connections"] = connections(dc)
        res["fds"] = len(os.listdir(f"/proc/{p.pid}/fd"))
        res["rss_mib"] = proc_status(p.pid, "VmRSS")
        c0, w0 = cpu_seconds(p.pid), time.perf_counter()
        time.sleep(idle_window)
        res["idle_cpu_pct"] = 100 * (cpu_seconds(p.pid) - c0) / (time.perf_counter() - w0)
        lat = []
        clients = {}
        for k in range(samples):
            u = rng.choice(users)
            folder = rng.choice(FOLDERS[1:]) if k % 2 == 0 else rng.choice(FOLDERS)
            c = clients.get(u) or dc.imap(u)
            clients[u] = c
            before = count_in(db, u, folder)
            msg = f"From: a@example.org\r\nSubject: probe {k}\r\n\r\nhi\r\n".encode()
            t = time.perf_counter()
            c.append(folder, None, None, msg)
            while count_in(db, u, folder) == before:
                if time.perf_counter() - t > 30:
                    raise RuntimeError(f"no row in {u}/{folder} within 30 s")
                time.sleep(0.005)
            lat.append(time.perf_counter() - t)
            time.sleep(0.1)
        for c in clients.values():
            c.logout()
        res["latency_median_s"] = statistics.median(lat)
        res["latency_max_s"] = max(lat)
        res["rss_after_mib"] = proc_status(p.pid, "VmRSS")
        res["rss_peak_mib"] = proc_status(p.pid, "VmHWM")
        return res
    finally:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if dc is not None:
            dc.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--arms", default="notify,idle")
    ap.add_argument("--idle-window", type=float, default=30.0, help="seconds of quiet measured")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for arm in args.arms.split(","):
        log(f"{arm}: {args.accounts} accounts x {len(FOLDERS)} folders")
        rows.append(run_arm(arm, args.accounts, args.idle_window, args.samples, rng))
        log(f"{arm}: {rows[-1]}")
    headers = ["arm", "accounts", "folders", "connections", "fds", "rss MiB", "peak RSS MiB",
               "idle CPU % core", "latency median s", "latency max s", "first pass s"]
    table = [[r["arm"], r["accounts"], r["folders"], r["connections"], r["fds"],
              f"{r['rss_mib']:.1f}", f"{r['rss_peak_mib']:.1f}", f"{r['idle_cpu_pct']:.2f}",
              f"{r['latency_median_s']:.3f}", f"{r['latency_max_s']:.3f}", f"{r['first_pass_s']:.1f}"]
             for r in rows]
    print(bench.fmt_table(table, headers))
    if len(rows) == 2:
        a, b = rows
        print(f"\n{b['arm']}/{a['arm']}: connections {b['connections'] / a['connections']:.1f}x, "
              f"RSS {b['rss_mib'] / a['rss_mib']:.2f}x")


if __name__ == "__main__":
    main()
