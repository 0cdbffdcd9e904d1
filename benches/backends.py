#!/usr/bin/env python3
"""SQLite against PostgreSQL: the same first sync and the same consumer, in
interleaved rounds, with ratios measured in one run.

A private Dovecot (benches/bench.py's, same corpus generator) and a private
PostgreSQL (initdb/pg_ctl into the temp dir, a free high port on 127.0.0.1,
fsync on as a server would run it) serve both contenders. Each round, in an
order that rotates:

- `raw-plain`: the raw-fetch ceiling (examples/raw_fetch);
- `sync-sqlite`: `mailfeed sync` into a fresh SQLite file;
- `sync-postgres`: `mailfeed sync` into a fresh PostgreSQL database;
- `read-sqlite` / `read-postgres`: a consumer following `message_feed.id`
  from 0 in pages of 500 rows (id, account, mailbox, uid, subject, raw),
  as the contract describes, through Python's DB-API drivers (sqlite3 and
  psycopg2), counting rows and raw bytes.

Both syncs must store every message and both consumers must see every row
exactly once, in rising id order, or the run fails. Whole-process wall time
for the syncs; "feed complete" (the folder's last commit) as in bench.py.

    benches/run_backends            # 2,000 messages, 3 rounds
    benches/run_backends --messages 10000 --rounds 3
"""

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the Dovecot, corpus and process helpers)

PG_USER = "mailfeed"
PG_PASSWORD = "bench-pg-secret"
PAGE = 500


def pg_bin():
    found = sorted(
        os.path.join("/usr/lib/postgresql", v, "bin")
        for v in os.listdir("/usr/lib/postgresql")
        if os.path.exists(os.path.join("/usr/lib/postgresql", v, "bin", "pg_ctl"))
    )
    if not found:
        sys.exit("backends: no PostgreSQL under /usr/lib/postgresql (benches/run_backends installs it)")
    return found[-1]


class Postgres:
    """A private PostgreSQL run as the `postgres` user in `base`."""

    def __init__(self, base):
        self.dir = base
        self.bin = pg_bin()
        self.port, self._lock = bench.reserve_port(random.Random(os.getpid()))
        os.makedirs(base, exist_ok=True)
        pw = os.path.join(base, "pw")
        with open(pw, "w") as f:
            f.write(PG_PASSWORD)
        subprocess.run(["chown", "-R", "postgres:postgres", base], check=True)
        self.data = os.path.join(base, "data")
        self._run("initdb", "-D", self.data, "-U", PG_USER, "--auth=scram-sha-256",
                  f"--pwfile={pw}", "--encoding=UTF8")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={base} -c max_connections=40")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(base, "server.log"),
                  "-o", opts, "-w", "-t", "120", "start")
        self.n = 0

    def _run(self, tool, *args):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, tool), *args],
                       check=True, cwd="/", stdout=subprocess.DEVNULL)

    def fresh_database(self):
        self.n += 1
        name = f"bench_{self.n}"
        env = dict(os.environ, PGPASSWORD=PG_PASSWORD)
        subprocess.run([os.path.join(self.bin, "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", PG_USER, name], check=True, env=env)
        return name

    def drop_database(self, name):
        env = dict(os.environ, PGPASSWORD=PG_PASSWORD)
        subprocess.run([os.path.join(self.bin, "dropdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", PG_USER, name], check=True, env=env)

    def url(self, name):
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, "pg_ctl"),
                        "-D", self.data, "-m", "fast", "-w", "stop"], cwd="/",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def config(path, dc, store):
    """A mailfeed config for the bench user, with `store` as its [store] body."""
    db = bench.mailfeed_config(path, dc, "bench", False)
    with open(path) as f:
        text = f.read()
    text = text.replace(f'[store]\npath = "{db}"\n', f"[store]\n{store}\n")
    with open(path, "w") as f:
        f.write(text)


QUERY = ("SELECT id, account, mailbox, uid, subject, raw FROM message_feed "
         "WHERE id > {p} ORDER BY id LIMIT {n}")


def consume(connect, placeholder):
    """Follows message_feed by id from 0; returns (seconds, rows, raw bytes)."""
    t0 = time.perf_counter()
    conn = connect()
    cur = conn.cursor()
    last, rows, size = 0, 0, 0
    while True:
        cur.execute(QUERY.format(p=placeholder, n=PAGE), (last,))
        page = cur.fetchall()
        if not page:
            break
        for row in page:
            if row[0] <= last:
                raise RuntimeError(f"consumer: id {row[0]} after {last}")
            last = row[0]
            size += len(row[5])
        rows += len(page)
        if hasattr(conn, "commit"):
            conn.commit()
    conn.close()
    return time.perf_counter() - t0, rows, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=4978)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("backends: must run as root (Dovecot serves mail as nobody, PostgreSQL as postgres)")
    import psycopg2

    base = tempfile.mkdtemp(prefix="mailfeed-backends-")
    os.chmod(base, 0o755)
    work = os.path.join(base, "work")
    os.makedirs(work)
    dc = bench.Dovecot(os.path.join(base, "dovecot"), ["bench"])
    pg = None
    times = {c: [] for c in ("raw-plain", "sync-sqlite", "sync-postgres", "read-sqlite", "read-postgres")}
    committed = {"sync-sqlite": [], "sync-postgres": []}
    try:
        corpus = bench.Corpus(a.seed)
        _, total, largest = corpus.write_folder(dc, "bench", "INBOX", a.messages, "main")
        bench.log(f"corpus: {a.messages} messages, {total / bench.MB:.0f} MiB, largest {largest / bench.MB:.1f} MiB")
        dc.start()
        dc.resync("bench")
        pg = Postgres(os.path.join(base, "pg"))
        bench.log(f"dovecot on {dc.plain_port}, postgresql on {pg.port}")
        bench.raw_fetch(dc, "bench", False)  # warm-up: Dovecot's index and cache

        cfg_sqlite = os.path.join(work, "sqlite.toml")
        db = os.path.join(work, "feed.db")
        config(cfg_sqlite, dc, f'path = "{db}"')
        env_pg = dict(bench.SYNC_LOG_ENV, PGPASSWORD=PG_PASSWORD)
        order = ["raw-plain", "sync-sqlite", "sync-postgres"]
        for r in range(a.rounds):
            for c in order[r % 3:] + order[:r % 3]:
                if c == "raw-plain":
                    secs, _, info = bench.raw_fetch(dc, "bench", False)
                    assert info["messages"] == a.messages, info
                elif c == "sync-sqlite":
                    bench.remove_db(db)
                    t_start = time.time()
                    secs, _, _, err = bench.run_rss([bench.MAILFEED, "-c", cfg_sqlite, "sync"], env=bench.SYNC_LOG_ENV)
                    committed[c].append(bench.committed_at(err, t_start))
                    s, rows, size = consume(lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True), "?")
                    assert rows == a.messages, f"sqlite consumer saw {rows} rows"
                    times["read-sqlite"].append(s)
                else:
                    name = pg.fresh_database()
                    cfg = os.path.join(work, "pg.toml")
                    config(cfg, dc, f'url = "{pg.url(name)}"')
                    t_start = time.time()
                    secs, _, _, err = bench.run_rss([bench.MAILFEED, "-c", cfg, "sync"], env=env_pg)
                    committed[c].append(bench.committed_at(err, t_start))
                    s, rows, size = consume(
                        lambda: psycopg2.connect(host="127.0.0.1", port=pg.port, user=PG_USER,
                                                 password=PG_PASSWORD, dbname=name), "%s")
                    assert rows == a.messages, f"postgres consumer saw {rows} rows"
                    times["read-postgres"].append(s)
                    pg.drop_database(name)
                times[c].append(secs)
                bench.log(f"round {r + 1}/{a.rounds} {c}: {secs:.2f} s")
    finally:
        if pg:
            pg.stop()
        dc.stop()
        shutil.rmtree(base, ignore_errors=True)

    med = {c: bench.median(v) for c, v in times.items()}
    feed = {c: bench.median(v) for c, v in committed.items()}
    rows = [
        ["raw-plain (ceiling)", f"{med['raw-plain']:.2f}", "1.00x", "", ""],
        ["sync-sqlite", f"{med['sync-sqlite']:.2f}", f"{med['sync-sqlite'] / med['raw-plain']:.2f}x",
         f"{feed['sync-sqlite']:.2f}", f"{a.messages / med['sync-sqlite']:.0f}"],
        ["sync-postgres", f"{med['sync-postgres']:.2f}", f"{med['sync-postgres'] / med['raw-plain']:.2f}x",
         f"{feed['sync-postgres']:.2f}", f"{a.messages / med['sync-postgres']:.0f}"],
    ]
    print(bench.fmt_table(rows, ["contender", "median s", "vs ceiling", "feed complete s", "msg/s"]))
    print()
    print(bench.fmt_table([
        ["read-sqlite", f"{med['read-sqlite']:.2f}", f"{a.messages / med['read-sqlite']:.0f}"],
        ["read-postgres", f"{med['read-postgres']:.2f}", f"{a.messages / med['read-postgres']:.0f}"],
    ], ["consumer", "median s", "rows/s"]))
    print()
    print(f"postgres / sqlite: first sync {med['sync-postgres'] / med['sync-sqlite']:.2f}x, "
          f"feed complete {feed['sync-postgres'] / feed['sync-sqlite']:.2f}x, "
          f"consumer read {med['read-postgres'] / med['read-sqlite']:.2f}x "
          f"({a.messages} messages, {a.rounds} interleaved rounds, medians)")


if __name__ == "__main__":
    main()
