#!/usr/bin/env python3
"""One rescan of a large folder on a server without CONDSTORE.

Without CONDSTORE (Courier, Exchange Online) the only way to learn flag
changes and expunges is to read every stored message's UID and flags again
(`UID FETCH 1:n (UID FLAGS)`); mailfeed does that on the first pass of each
process and every `rescan_every` passes after. This measures one such pass:

  - a private Dovecot (bench.py's) with CONDSTORE and QRESYNC hidden from
    its capabilities (`imap_capability`), INBOX holding N small messages
    written straight into Maildir (default 100,000);
  - `mailfeed sync` once to store them all (not measured);
  - between rounds, flags of `--changed` messages (1%) are changed and
    `--expunged` messages removed on the server;
  - each round, `mailfeed sync` again: no new mail, so the pass is the
    rescan. Whole-process wall time and peak RSS (GNU time), and the bytes
    Dovecot sent on that session (its `out=` on disconnect). The database
    must then hold exactly the server's flags and expunges.

Run as root through benches/run_rescan (builds mailfeed in release mode).
"""

import argparse
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
        "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
        "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES "
        "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
        "STATUS=SIZE SAVEDATE LITERAL+")


def log(msg):
    print(f"[rescan-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def out_bytes(dc, before):
    """Bytes Dovecot sent to the sessions that ended since `before` lines."""
    with open(f"{dc.dir}/dovecot.log") as f:
        lines = f.read().splitlines()[before:]
    return sum(int(m.group(1)) for line in lines
               for m in [re.search(r"imap\(rescan\).*Disconnected.* out=(\d+)", line)] if m)


def log_lines(dc):
    with open(f"{dc.dir}/dovecot.log") as f:
        return len(f.read().splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--changed", type=float, default=0.01, help="share of messages whose flags change")
    ap.add_argument("--expunged", type=int, default=10, help="messages expunged before each round")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (Dovecot stopped)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="mailfeed-rescan-")
    dc = bench.Dovecot(work, ["rescan"], compress=False)
    try:
        with open(dc.conf, "a") as f:
            f.write(f"imap_capability = {CAPS}\n")
        cur = os.path.join(dc.maildir("rescan"), "cur")
        os.makedirs(cur, exist_ok=True)
        for d in ("new", "tmp"):
            os.makedirs(os.path.join(dc.maildir("rescan"), d), exist_ok=True)
        log(f"writing {args.messages} messages")
        t = int(time.time()) - args.messages
        for i in range(args.messages):
            body = (f"From: a{i % 97}@example.org\r\nTo: b@example.org\r\nSubject: message {i}\r\n"
                    f"Message-ID: <{i}@rescan>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n"
                    f"body {i} " + "x" * (200 + i % 300) + "\r\n")
            flags = "S" if i % 3 else ""
            with open(os.path.join(cur, f"{t + i}.M{i}P1.bench:2,{flags}"), "w") as m:
                m.write(body)
        dc.start()
        log("indexing (doveadm force-resync)")
        dc.resync("rescan")
        caps = dc.imap("rescan").capabilities
        assert "CONDSTORE" not in caps and "QRESYNC" not in caps, caps
        cfg = os.path.join(work, "mailfeed.toml")
        db = bench.mailfeed_config(cfg, dc, "rescan", False)
        log("first sync (not measured)")
        t0 = time.perf_counter()
        bench.run_rss([bench.MAILFEED, "-c", cfg, "sync", "--quiet"])
        log(f"first sync took {time.perf_counter() - t0:.1f} s; {bench.db_count(db)[0]} rows")
        rows = []
        for r in range(args.rounds):
            c = dc.imap("rescan")
            c.select("INBOX")
            typ, data = c.uid("SEARCH", None, "ALL")
            uids = [int(x) for x in data[0].split()]
            k = max(1, int(len(uids) * args.changed))
            for u in rng.sample(uids, k):
                c.uid("STORE", str(u), "+FLAGS.SILENT", "(\\Flagged)")
            gone = rng.sample(uids, args.expunged)
            for u in gone:
                c.uid("STORE", str(u), "+FLAGS.SILENT", "(\\Deleted)")
            c.expunge()
            c.logout()
            before = log_lines(dc)
            secs, rss, _, err = bench.run_rss([bench.MAILFEED, "-c", cfg, "sync", "--quiet"],
                                              env=bench.SYNC_LOG_ENV)
            time.sleep(0.5)  # the disconnect line
            sent = out_bytes(dc, before)
            # The pass itself (EXAMINE to its commit), from `folder synced`.
            m = re.search(rb"folder synced.* ms=(\d+)", err)
            pass_s = int(m.group(1)) / 1000 if m else float("nan")
            con = sqlite3.connect(db)
            live = con.execute("SELECT count(*) FROM message_feed WHERE expunged_at IS NULL").fetchone()[0]
            flagged = con.execute("SELECT count(*) FROM message_feed WHERE flags LIKE '%Flagged%' "
                                  "AND expunged_at IS NULL").fetchone()[0]
            con.close()
            c = dc.imap("rescan")
            c.select("INBOX", readonly=True)
            server_live = len(c.uid("SEARCH", None, "ALL")[1][0].split())
            server_flagged = len(c.uid("SEARCH", None, "FLAGGED")[1][0].split())
            c.logout()
            ok = live == server_live and flagged == server_flagged
            rows.append((secs, pass_s, rss, sent, k, ok))
            log(f"round {r + 1}: {secs:.2f} s (pass {pass_s:.2f} s), {rss:.1f} MiB, {sent / 1e6:.1f} MB from the server, "
                f"{k} flag changes, {args.expunged} expunges, database matches server: {ok}")
            if not ok:
                log(f"database {live} live / {flagged} flagged; server {server_live} / {server_flagged}")
        print(bench.fmt_table(
            [[i + 1, f"{s:.2f}", f"{p:.2f}", f"{m:.1f}", f"{b / 1e6:.2f}", k, "yes" if ok else "NO"]
             for i, (s, p, m, b, k, ok) in enumerate(rows)],
            ["round", "process s", "pass s", "peak RSS MiB", "server MB", "flag changes",
             "matches server"]))
        print(f"\nrescan of {args.messages} messages without CONDSTORE: median "
              f"{statistics.median(r[0] for r in rows):.2f} s (the pass "
              f"{statistics.median(r[1] for r in rows):.2f} s), peak RSS "
              f"{max(r[2] for r in rows):.1f} MiB, "
              f"{statistics.median(r[3] for r in rows) / 1e6:.2f} MB from the server")
    finally:
        dc.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
