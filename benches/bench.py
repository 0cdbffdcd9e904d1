#!/usr/bin/env python3
"""mailfeed's end-to-end benchmark (driven by benches/run).

Starts a private Dovecot on 127.0.0.1, writes a deterministic corpus straight
into its Maildirs, and times, interleaved over several rounds:

  raw-plain / raw-tls   examples/raw_fetch: one UID FETCH 1:*, bytes discarded
                        (the ceiling)
  mailfeed-plain/-tls   `mailfeed sync` into a fresh database
  mbsync-nofsync/-fsync Debian's isync into a fresh Maildir (FSync no / yes)

then the incremental cost of 100 new messages, a no-new-mail pass over 50
folders, the first sync of those 50 folders with 1 and 5 connections, IDLE
latency (when `mailfeed run` uses IDLE), and (full mode) peak RSS at 2,000 vs
20,000 messages. Peak RSS of every process comes from wait4(2).
"""

import argparse
import base64
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
MAILFEED = os.path.join(RELEASE, "mailfeed")
RAW_FETCH = os.path.join(RELEASE, "examples", "raw_fetch")
PARSE_COST = os.path.join(RELEASE, "examples", "parse_cost")
INDEX_COST = os.path.join(RELEASE, "examples", "index_cost")
# `folder synced` (logged after the folder's commit) tells when the mail was
# stored and visible; the process then still waits for the last checkpoint.
SYNC_LOG_ENV = dict(os.environ, RUST_LOG="warn,mailfeed::sync=debug")
PASSWORD = "bench-secret"
MB = 1024 * 1024


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes: wall time and peak RSS (ru_maxrss, KiB) from wait4.


def run_rss(argv, env=None, cwd=None, check=True):
    """Runs argv to completion; returns (seconds, peak RSS MiB, stdout, stderr).

    Peak RSS comes from GNU time, not from our own wait4: Linux carries the
    high-water mark of the process that exec()s into the new program, so a
    child forked from this (large) Python process would report at least our
    RSS. time(1) is small and forks the program itself."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    rss_f = tempfile.NamedTemporaryFile(prefix="bench-rss-")
    t0 = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_f.name] + argv,
                         env=env, cwd=cwd, stdout=out_f, stderr=err_f)
    p.wait()
    secs = time.perf_counter() - t0
    out_f.seek(0)
    err_f.seek(0)
    out, err = out_f.read(), err_f.read()
    if check and p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {p.returncode}\nstdout:\n{out.decode(errors='replace')[-3000:]}\n"
            f"stderr:\n{err.decode(errors='replace')[-3000:]}"
        )
    with open(rss_f.name) as f:
        lines = [x for x in f.read().split() if x.isdigit()]
    return secs, (int(lines[-1]) / 1024.0 if lines else float("nan")), out, err


# --------------------------------------------------------------------------
# A private Dovecot (same settings as tests/support/dovecot.rs).

PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "mailfeed-test-ports")


def reserve_port(rng):
    """A free port in 20000..32000 (below the ephemeral range), locked like
    the Rust test harness does, so parallel tests never pick it."""
    os.makedirs(PORT_LOCK_DIR, exist_ok=True)
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        f = open(os.path.join(PORT_LOCK_DIR, f"{port}.lock"), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            f.close()
            continue
        finally:
            s.close()
        return port, f
    raise RuntimeError("no free port found")


def nobody_ids():
    import grp
    import pwd

    uid = pwd.getpwnam("nobody").pw_uid
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = grp.getgrnam("nobody").gr_gid
    return uid, gid


class Dovecot:
    def __init__(self, base, users, compress=True):
        self.dir = base
        self.users = users
        self.uid, self.gid = nobody_ids()
        rng = random.Random(os.getpid() ^ int(time.time()))
        self.plain_port, l1 = reserve_port(rng)
        self.tls_port, l2 = reserve_port(rng)
        self._locks = [l1, l2]
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        os.chmod(base, 0o755)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "3650", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "keyUsage=critical,digitalSignature",
             "-addext", "extendedKeyUsage=serverAuth",
             "-keyout", f"{base}/key.pem", "-out", f"{base}/cert.pem"],
            check=True, capture_output=True, stdin=subprocess.DEVNULL)
        with open(f"{base}/users", "w") as f:
            for u in users:
                f.write(f"{u}:{{PLAIN}}{PASSWORD}::::{base}/home/{u}::\n")
                os.makedirs(f"{base}/home/{u}/Maildir", exist_ok=True)
        zlib = ""
        if compress:
            # COMPRESS=DEFLATE (RFC 4978) is offered only with imap_zlib.
            zlib = "mail_plugins = $mail_plugins zlib\nprotocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n"
        self.conf = f"{base}/dovecot.conf"
        with open(self.conf, "w") as f:
            f.write(f"""# Generated by benches/bench.py
instance_name = mailfeed-bench-{os.getpid()}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_uid = {self.uid}
mail_gid = {self.gid}
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 50
mailbox_idle_check_interval = 1 secs
{zlib}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {base}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {base}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
""")
        self.proc = None

    def maildir(self, user, folder="INBOX"):
        root = f"{self.dir}/home/{user}/Maildir"
        return root if folder == "INBOX" else f"{root}/.{folder}"

    def chown_all(self):
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", f"{self.dir}/home"], check=True)

    def start(self):
        self.chown_all()
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", self.conf],
            stdin=subprocess.DEVNULL,
            stdout=open(f"{self.dir}/dovecot.stderr", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited:\n" + open(f"{self.dir}/dovecot.log").read())
            try:
                with socket.create_connection(("127.0.0.1", self.plain_port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(200).startswith(b"* OK") and self._accepts(self.tls_port):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dovecot did not start")

    @staticmethod
    def _accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def resync(self, user):
        subprocess.run(["doveadm", "-c", self.conf, "force-resync", "-u", user, "*"],
                       check=True, capture_output=True)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in self._locks:
            f.close()

    def imap(self, user):
        import imaplib

        c = imaplib.IMAP4("127.0.0.1", self.plain_port)
        c.login(user, PASSWORD)
        return c


# --------------------------------------------------------------------------
# The corpus: deterministic for (n, seed); written straight into Maildir.


class Corpus:
    POOL_LINES = 60_000  # 60,000 lines of 78 bytes: ~4.5 MB of base64 text
    VOCABULARY = 30_000  # distinct words of the text pool

    def __init__(self, seed):
        self.seed = seed
        rng = random.Random(seed)
        raw = rng.randbytes(self.POOL_LINES * 57)
        text = base64.b64encode(raw)
        lines = [text[i:i + 76] for i in range(0, len(text), 76)]
        # Attachment bodies: base64 of random bytes (incompressible, as
        # images and archives are).
        self.pool = b"\r\n".join(lines) + b"\r\n"
        # Message text: words drawn with Zipf's law from a fixed vocabulary,
        # as natural language is. Random base64 would make every token of
        # every message a new word, the worst case for a full-text index and
        # unlike any mail.
        letters = "abcdefghijklmnopqrstuvwxyz"
        lengths = [2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 9, 10, 12]
        words = ["".join(rng.choice(letters) for _ in range(rng.choice(lengths)))
                 for _ in range(self.VOCABULARY)]
        weights = [1 / (r + 1) for r in range(self.VOCABULARY)]
        drawn = rng.choices(words, weights, k=self.POOL_LINES * 12)
        text_lines, line = [], []
        for w in drawn:
            if sum(len(x) + 1 for x in line) + len(w) > 76:
                text_lines.append(" ".join(line).ljust(76).encode())
                line = []
            line.append(w)
        self.text_pool = b"\r\n".join(text_lines) + b"\r\n"
        self.text_lines = len(text_lines)

    def filler(self, rng, size, text=False):
        """`size` bytes of CRLF-terminated 78-byte lines: words when `text`,
        else base64."""
        pool, lines = (self.text_pool, self.text_lines) if text else (self.pool, self.POOL_LINES)
        out = []
        left = size
        while left > 0:
            start = rng.randrange(0, lines - 1) * 78
            chunk = pool[start:start + left]
            out.append(chunk)
            left -= len(chunk)
        return b"".join(out)

    @staticmethod
    def plan_sizes(n, rng, huge=None, attach_share=0.03):
        """Sizes: mostly 2-20 KB, `attach_share` 100 KB-2 MB, a few 20-50 MB."""
        if huge is None:
            huge = max(1, round(n / 4000))
        sizes = [rng.randrange(2_000, 20_000) for _ in range(n)]
        kinds = ["text"] * n
        idx = list(range(n))
        rng.shuffle(idx)
        n_att = round(n * attach_share)
        for i in idx[:n_att]:
            sizes[i] = rng.randrange(100_000, 2 * MB)
            kinds[i] = "attach"
        for i in idx[n_att:n_att + huge]:
            sizes[i] = rng.randrange(20 * MB, 50 * MB)
            kinds[i] = "attach"
        return list(zip(kinds, sizes))

    def message(self, i, kind, size, rng, tag):
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1_600_000_000 + i * 3_600))
        head = (
            f"From: Sender {i % 13} <sender{i % 13}@example.org>\r\n"
            f"To: Alice <alice@example.org>\r\n"
            f"Subject: {tag} message {i} ({kind})\r\n"
            f"Date: {date}\r\n"
            f"Message-ID: <{tag}-{self.seed}-{i}@bench.example>\r\n"
            f"MIME-Version: 1.0\r\n"
        ).encode()
        if kind == "text":
            head += b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            return head + self.filler(rng, max(0, size - len(head)), text=True)
        boundary = f"b{self.seed}x{i}".encode()
        intro = self.filler(rng, 1_500, text=True)
        pre = (
            head + b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n"
            + b"--" + boundary + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + intro
            + b"--" + boundary + b"\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
            + b"Content-Transfer-Encoding: base64\r\n"
            + b"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"
        )
        post = b"--" + boundary + b"--\r\n"
        return pre + self.filler(rng, max(0, size - len(pre) - len(post))) + post

    def write_folder(self, dovecot, user, folder, n, tag, huge=None, first=0, attach_share=0.03):
        """Writes n messages into a folder's Maildir (cur/); returns (count, bytes, largest)."""
        rng = random.Random(f"{self.seed}/{user}/{folder}/{tag}/{first}")
        d = dovecot.maildir(user, folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(f"{d}/{sub}", exist_ok=True)
        if folder != "INBOX":
            open(f"{d}/maildirfolder", "a").close()
        total = largest = 0
        for j, (kind, size) in enumerate(self.plan_sizes(n, rng, huge, attach_share)):
            i = first + j
            msg = self.message(i, kind, size, rng, tag)
            name = f"{1_600_000_000 + i}.M{i}P{self.seed}.bench,S={len(msg)}:2,S"
            with open(f"{d}/cur/{name}", "wb") as f:
                f.write(msg)
            t = 1_600_000_000 + i * 3_600
            os.utime(f"{d}/cur/{name}", (t, t))
            total += len(msg)
            largest = max(largest, len(msg))
        return n, total, largest


# --------------------------------------------------------------------------
# Contenders.


def mailfeed_config(path, dovecot, user, tls, folders=("INBOX",), max_connections=5,
                    extra_account="", extra_sync=""):
    db = os.path.join(os.path.dirname(path), os.path.basename(path) + ".db")
    if tls:
        sec = f'security = "tls"\nport = {dovecot.tls_port}\nca_file = "{dovecot.dir}/cert.pem"'
    else:
        sec = f'security = "plain"\nallow_plaintext = true\nport = {dovecot.plain_port}'
    folder_list = ", ".join(f'"{f}"' for f in folders)
    with open(path, "w") as f:
        f.write(f"""[store]
path = "{db}"

[sync]
timeout = "60s"
{extra_sync}

[log]
level = "warn"

[[accounts]]
name = "bench"
host = "127.0.0.1"
{sec}
username = "{user}"
password = "{PASSWORD}"
folders = [{folder_list}]
max_connections = {max_connections}
{extra_account}
""")
    return db


def remove_db(db):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass


def db_count(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT count(*), coalesce(sum(size),0) FROM messages").fetchone()
    finally:
        c.close()


def mbsync_config(path, dovecot, user, maildir, fsync, tls=False, compress=False):
    """isync 1.4 uses COMPRESS=DEFLATE whenever the server offers it (this
    Dovecot does, for the compression measurement), so it is disabled
    explicitly everywhere else."""
    if tls:
        conn = (f"Port {dovecot.tls_port}\nSSLType IMAPS\n"
                f"CertificateFile {dovecot.dir}/cert.pem")
    else:
        conn = f"Port {dovecot.plain_port}\nSSLType None"
    with open(path, "w") as f:
        f.write(f"""FSync {'yes' if fsync else 'no'}

IMAPAccount bench
Host 127.0.0.1
{conn}
User {user}
Pass {PASSWORD}
AuthMechs LOGIN
{'' if compress else 'DisableExtension COMPRESS=DEFLATE'}

IMAPStore remote
Account bench

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")


def raw_fetch(dovecot, user, tls, folder="INBOX", uid_set="1:*"):
    argv = [RAW_FETCH, "--user", user, "--password", PASSWORD, "--folder", folder, "--set", uid_set]
    if tls:
        argv += ["--port", str(dovecot.tls_port), "--tls", "--ca", f"{dovecot.dir}/cert.pem"]
    else:
        argv += ["--port", str(dovecot.plain_port)]
    secs, rss, out, _ = run_rss(argv)
    return secs, rss, json.loads(out.decode().strip().splitlines()[-1])


# --------------------------------------------------------------------------


def committed_at(stderr, t_start):
    """Seconds from start to the last `folder synced` line (UTC timestamps)."""
    import datetime

    stamps = re.findall(r"^(\S+?)Z .*folder synced", stderr.decode(errors="replace"), re.M)
    if not stamps:
        return float("nan")
    t = datetime.datetime.fromisoformat(stamps[-1]).replace(tzinfo=datetime.timezone.utc).timestamp()
    return t - t_start


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 messages, 2 rounds")
    ap.add_argument("--messages", type=int, help="messages in the main corpus (default 10,000; quick 2,000)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    ap.add_argument("--seed", type=int, default=4978)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: "
                    "mbsync-fsync,mbsync,tls,compress,incremental,folders,idle,rss")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--baseline", help="another mailfeed binary, run as contender `baseline-plain` "
                    "in the same interleaved rounds (an A/B against an earlier commit)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="one more mailfeed binary, run as contender `NAME-plain` (repeatable; "
                    "for experiments that need a different build)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--workdir", help="where to put Dovecot, corpus and databases (default: a temp dir)")
    a = ap.parse_args()
    n = a.messages or (2_000 if a.quick else 10_000)
    rounds = a.rounds or (2 if a.quick else 3)
    skip = set(filter(None, a.skip.split(",")))
    full = not a.quick

    if os.geteuid() != 0:
        sys.exit("bench: must run as root (Dovecot then serves mail as nobody)")
    for p in (MAILFEED, RAW_FETCH, PARSE_COST, INDEX_COST):
        if not os.path.exists(p):
            sys.exit(f"bench: {p} missing; run benches/run (it builds them)")

    base = a.workdir or tempfile.mkdtemp(prefix="mailfeed-bench-")
    os.makedirs(base, exist_ok=True)
    # Dovecot's unprivileged processes must reach the users file and Maildirs.
    os.chmod(base, 0o755)
    dc_dir = os.path.join(base, "dovecot")
    work = os.path.join(base, "work")
    os.makedirs(work, exist_ok=True)
    users = ["bench", "many", "idle", "scale2k", "scale20k"]
    dc = Dovecot(dc_dir, users)
    results = {"messages": n, "rounds": rounds, "seed": a.seed, "times": {}, "rss": {}}
    try:
        corpus = Corpus(a.seed)
        log(f"writing corpus: {n} messages into INBOX of `bench`")
        t = time.perf_counter()
        _, total, largest = corpus.write_folder(dc, "bench", "INBOX", n, "main")
        results.update(corpus_bytes=total, largest=largest)
        log(f"  {total / MB:.0f} MiB, largest {largest / MB:.1f} MiB ({time.perf_counter() - t:.1f} s)")
        if "folders" not in skip:
            for k in range(50):
                corpus.write_folder(dc, "many", f"f{k:02d}", 40, f"f{k:02d}", huge=0, attach_share=0)
        corpus.write_folder(dc, "idle", "INBOX", 5, "idle", huge=0, attach_share=0)
        if full and "rss" not in skip:
            log("writing the RSS scaling corpora (2,000 and 20,000 messages of 2-20 KB)")
            corpus.write_folder(dc, "scale2k", "INBOX", 2_000, "s2k", huge=0, attach_share=0)
            corpus.write_folder(dc, "scale20k", "INBOX", 20_000, "s20k", huge=0, attach_share=0)
        dc.start()
        for u in users:
            dc.resync(u)
        log(f"dovecot up: plain {dc.plain_port}, tls {dc.tls_port}")

        # Warm-up: Dovecot builds its index and cache (sizes) once.
        secs, _, info = raw_fetch(dc, "bench", False)
        assert info["messages"] == n, info
        log(f"warm-up raw fetch: {info['messages']} messages, {info['bytes'] / MB:.0f} MiB, {secs:.2f} s")

        # ---------------- the main interleaved comparison
        contenders = ["raw-plain", "raw-tls", "mailfeed-plain", "mailfeed-tls", "mbsync-nofsync",
                      "mbsync-fsync", "mbsync-tls", "mbsync-tls-deflate"]
        if "tls" in skip:
            contenders = [c for c in contenders if "tls" not in c]
        if "compress" in skip:
            contenders = [c for c in contenders if c != "mbsync-tls-deflate"]
        if "mbsync" in skip:
            contenders = [c for c in contenders if not c.startswith("mbsync")]
        if "mbsync-fsync" in skip:
            contenders = [c for c in contenders if c != "mbsync-fsync"]
        binaries = {"mailfeed-plain": MAILFEED, "mailfeed-tls": MAILFEED}
        if a.baseline:
            binaries["baseline-plain"] = a.baseline
        for spec in a.also:
            name, _, path = spec.partition("=")
            binaries[f"{name}-plain"] = path
        contenders += [c for c in binaries if c not in contenders and not c.startswith("mailfeed")]
        times = {c: [] for c in contenders}
        rss = {c: [] for c in contenders}
        committed = {c: [] for c in contenders if c in binaries}
        cfg_plain = os.path.join(work, "plain.toml")
        cfg_tls = os.path.join(work, "tls.toml")
        db_plain = mailfeed_config(cfg_plain, dc, "bench", False)
        db_tls = mailfeed_config(cfg_tls, dc, "bench", True)
        for r in range(rounds):
            # Rotate the order so no contender always runs first (or last).
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for c in order:
                # The previous contender's writes (a gigabyte for a full
                # sync) are still being written back; left alone, that
                # writeback lands in whoever runs next (the same binary
                # measured 1.35x slower right after another). Each
                # contender starts after its own cleanup and a sync(2).
                if c.startswith("raw"):
                    os.sync()
                    secs, mem, info = raw_fetch(dc, "bench", c.endswith("tls"))
                    assert info["messages"] == n, info
                elif c in binaries:
                    cfg, db = (cfg_tls, db_tls) if c.endswith("tls") else (cfg_plain, db_plain)
                    remove_db(db)
                    os.sync()
                    t_start = time.time()
                    secs, mem, _, err = run_rss([binaries[c], "-c", cfg, "sync"], env=SYNC_LOG_ENV)
                    count, _ = db_count(db)
                    assert count == n, f"{c}: {count} rows, expected {n}"
                    committed[c].append(committed_at(err, t_start))
                else:
                    md = os.path.join(work, "maildir")
                    shutil.rmtree(md, ignore_errors=True)
                    os.makedirs(md)
                    mcfg = os.path.join(work, "mbsyncrc")
                    mbsync_config(mcfg, dc, "bench", md, c == "mbsync-fsync",
                                  tls="tls" in c, compress=c.endswith("deflate"))
                    os.sync()
                    secs, mem, _, _ = run_rss(["mbsync", "-c", mcfg, "-q", "bench"])
                    got = sum(len(os.listdir(f"{md}/INBOX/{d}")) for d in ("cur", "new"))
                    assert got == n, f"{c}: {got} messages in the Maildir, expected {n}"
                times[c].append(secs)
                rss[c].append(mem)
                log(f"round {r + 1}/{rounds} {c}: {secs:.2f} s, peak RSS {mem:.1f} MiB")
        results["times"] = times
        results["rss"] = rss
        results["committed"] = committed

        # ---------------- CPU cost per stage of the writer's work, one core
        out = subprocess.run([PARSE_COST, f"{dc.maildir('bench')}/cur"], capture_output=True, check=True)
        results["parse_cost"] = json.loads(out.stdout.decode().strip().splitlines()[-1])
        log(f"parse cost: {results['parse_cost']}")
        # The full-text index alone (subject and text body, as the writer
        # indexes them), at the hashsize migration 0004 sets and FTS5's default.
        out = subprocess.run([INDEX_COST, f"{dc.maildir('bench')}/cur", "8", "1"], capture_output=True, check=True)
        results["index_cost"] = json.loads(out.stdout.decode().strip().splitlines()[-1])
        log(f"index cost: {results['index_cost']}")
        shutil.rmtree(os.path.join(work, "maildir"), ignore_errors=True)

        # ---------------- incremental: 100 new messages after the full sync
        if "incremental" not in skip:
            inc = {"mailfeed": [], "raw": [], "mailfeed-committed": []}
            snap = os.path.join(work, "snapshot.db")
            remove_db(db_plain)
            run_rss([MAILFEED, "-c", cfg_plain, "sync"])
            c = sqlite3.connect(db_plain)
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
            shutil.copy(db_plain, snap)
            c = dc.imap("bench")
            c.select("INBOX", readonly=True)
            uidnext = int(re.search(rb"UIDNEXT (\d+)", c.status("INBOX", "(UIDNEXT)")[1][0]).group(1))
            c.logout()
            corpus.write_folder(dc, "bench", "INBOX", 100, "incr", huge=0, first=n)
            dc.resync("bench")
            for r in range(max(rounds, 3)):
                for what in (["raw", "mailfeed"] if r % 2 == 0 else ["mailfeed", "raw"]):
                    if what == "raw":
                        secs, _, info = raw_fetch(dc, "bench", False, uid_set=f"{uidnext}:*")
                        assert info["messages"] == 100, info
                    else:
                        remove_db(db_plain)
                        shutil.copy(snap, db_plain)
                        # Else the checkpoint's fsync would also flush the
                        # copy's hundreds of MB of dirty pages, timed as ours.
                        os.sync()
                        t_start = time.time()
                        secs, _, _, err = run_rss([MAILFEED, "-c", cfg_plain, "sync"], env=SYNC_LOG_ENV)
                        inc["mailfeed-committed"].append(committed_at(err, t_start))
                        count, _ = db_count(db_plain)
                        assert count == n + 100, count
                    inc[what].append(secs)
            results["incremental"] = inc
            log(f"incremental: mailfeed {median(inc['mailfeed']):.3f} s, raw {median(inc['raw']):.3f} s")

        # ---------------- 50 folders: first sync by connections, then no-new-mail
        if "folders" not in skip:
            folders = [f"f{k:02d}" for k in range(50)]
            fres = {}
            for conns in (1, 5):
                cfg = os.path.join(work, f"many{conns}.toml")
                db = mailfeed_config(cfg, dc, "many", False, folders=("f*",), max_connections=conns)
                fres[f"first-{conns}"] = []
                for _ in range(max(2, rounds // 2)):
                    remove_db(db)
                    secs, _, _, _ = run_rss([MAILFEED, "-c", cfg, "sync"])
                    fres[f"first-{conns}"].append(secs)
                count, _ = db_count(db)
                assert count == 50 * 40, count
            # No new mail, one connection: count what is sent per folder.
            cfg = os.path.join(work, "many1.toml")
            env = dict(os.environ, RUST_LOG="mailfeed::session=trace")
            fres["nonew"] = []
            for _ in range(max(3, rounds)):
                secs, _, _, _ = run_rss([MAILFEED, "-c", cfg, "sync"])
                fres["nonew"].append(secs)
            _, _, _, err = run_rss([MAILFEED, "-c", cfg, "sync"], env=env)
            sent = re.findall(r"C: a\d+ ([A-Z]+(?: [A-Z]+)?)", err.decode(errors="replace"))
            counts = {}
            for s in sent:
                counts[s] = counts.get(s, 0) + 1
            fres["nonew_commands"] = counts
            results["folders"] = fres
            log(f"folders: {fres}")

        # ---------------- IDLE latency: append -> row visible
        if "idle" not in skip:
            results["idle"] = idle_latency(dc, work)

        # ---------------- RSS: 2,000 vs 20,000 messages
        if full and "rss" not in skip:
            scale = {}
            for user, count in (("scale2k", 2_000), ("scale20k", 20_000)):
                cfg = os.path.join(work, f"{user}.toml")
                db = mailfeed_config(cfg, dc, user, False)
                remove_db(db)
                secs, mem, _, _ = run_rss([MAILFEED, "-c", cfg, "sync"])
                got, _ = db_count(db)
                assert got == count, got
                scale[user] = {"seconds": secs, "rss_mib": mem}
                remove_db(db)
            results["rss_scaling"] = scale
            log(f"rss scaling: {scale}")
    finally:
        dc.stop()
        if not a.keep and not a.workdir:
            shutil.rmtree(base, ignore_errors=True)
        elif a.keep:
            log(f"kept {base}")

    report(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


def idle_latency(dc, work):
    """Latency from APPEND to the row being visible, with `mailfeed run`.

    The poll interval is an hour, so a row that shows up within seconds can
    only have come through IDLE. 20 appends, each timed from just before the
    APPEND command to the first poll of the database that sees the new row
    (polled every 2 ms, so the figure includes up to 2 ms of polling)."""
    cfg = os.path.join(work, "idle.toml")
    db = mailfeed_config(cfg, dc, "idle", False, extra_account="idle = true\npoll_interval = \"1h\"",
                         extra_sync='poll_interval = "1h"')
    remove_db(db)
    p = subprocess.Popen([MAILFEED, "-c", cfg, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    note = None
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if db_count(db)[0] >= 5:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        else:
            return {"skipped": "`mailfeed run` did not finish its first sync within 20 s"}
        time.sleep(1.0)  # let it enter IDLE
        c = dc.imap("idle")
        for k in range(20):
            before = db_count(db)[0]
            msg = (f"From: a@example.org\r\nSubject: idle {k}\r\nMessage-ID: <idle-{k}-{time.time()}@b>\r\n\r\nhi\r\n").encode()
            t0 = time.perf_counter()
            c.append("INBOX", None, None, msg)
            seen = False
            while time.perf_counter() - t0 < 5:
                try:
                    if db_count(db)[0] > before:
                        seen = True
                        break
                except sqlite3.Error:
                    pass
                time.sleep(0.002)
            if not seen:
                note = ("failed: no row within 5 s of APPEND with poll_interval = 1h, "
                        "so IDLE did not deliver it")
                break
            samples.append(time.perf_counter() - t0)
            time.sleep(0.2)
        c.logout()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if note:
        return {"skipped": note}
    return {"samples": samples}


def report(res):
    n, total = res["messages"], res.get("corpus_bytes", 0)
    t, m = res["times"], res["rss"]
    print()
    print(f"mailfeed benchmark: {n} messages, {total / MB:.0f} MiB (largest {res.get('largest', 0) / MB:.1f} MiB), "
          f"{res['rounds']} interleaved rounds, medians")
    rows = []
    for c in t:
        ceil = "raw-tls" if "tls" in c else "raw-plain"
        med = median(t[c])
        ratio = med / median(t[ceil]) if ceil in t else float("nan")
        rows.append([c, f"{med:.2f}", f"{total / MB / med:.0f}", f"{ratio:.2f}x",
                     f"{median(m[c]):.1f}", f"{max(m[c]):.1f}",
                     " ".join(f"{x:.2f}" for x in t[c])])
    print(fmt_table(rows, ["contender", "median s", "MiB/s", "vs ceiling", "RSS MiB", "max RSS", "all rounds s"]))
    for c, xs in res.get("committed", {}).items():
        ceil = "raw-tls" if "tls" in c else "raw-plain"
        print(f"{c}: feed complete (stored and committed) after {median(xs):.2f} s "
              f"({median(xs) / median(t[ceil]):.2f}x ceiling); the rest of its time is the search index "
              f"catching up, the final WAL checkpoint and exit")
    if "mbsync-tls" in t and "mbsync-tls-deflate" in t:
        print(f"COMPRESS=DEFLATE over TLS (mbsync, fsync off): {median(t['mbsync-tls-deflate']):.2f} s with, "
              f"{median(t['mbsync-tls']):.2f} s without ({median(t['mbsync-tls-deflate']) / median(t['mbsync-tls']):.2f}x)")
    if "parse_cost" in res:
        pc = res["parse_cost"]
        print("single-core cost per stage over the corpus: " + ", ".join(
            f"{k} {v['seconds']:.2f} s ({v['mib_per_s']:.0f} MiB/s)" for k, v in pc["stages"].items()))
    if "index_cost" in res:
        ic = res["index_cost"]
        print(f"single-core cost of the FTS5 index over {ic['text_bytes'] / MB:.0f} MiB of text: " + ", ".join(
            f"{r['seconds']:.2f} s at hashsize {r['hashsize_mib']} MiB" for r in ic["runs"]))
    if "mailfeed-plain" in t and "mbsync-nofsync" in t:
        print(f"mbsync (fsync off) / mailfeed plain: {median(t['mbsync-nofsync']) / median(t['mailfeed-plain']):.2f}x")
        fc = res.get("committed", {}).get("mailfeed-plain")
        if fc:
            print(f"mbsync (fsync off) / mailfeed plain feed complete: {median(t['mbsync-nofsync']) / median(fc):.2f}x")
    if "mailfeed-plain" in t and "baseline-plain" in t:
        print(f"A/B: mailfeed plain / baseline plain: {median(t['mailfeed-plain']) / median(t['baseline-plain']):.2f}x "
              f"(feed complete {median(res['committed']['mailfeed-plain']) / median(res['committed']['baseline-plain']):.2f}x)")
    if "mailfeed-plain" in t and "mbsync-fsync" in t:
        print(f"mbsync (fsync on) / mailfeed plain:  {median(t['mbsync-fsync']) / median(t['mailfeed-plain']):.2f}x")
    if "largest" in res and "mailfeed-plain" in m:
        print(f"peak RSS budget (64 MiB + largest message): {64 + res['largest'] / MB:.1f} MiB")
    if "incremental" in res:
        i = res["incremental"]
        print(f"incremental 100 new: mailfeed sync {median(i['mailfeed']):.3f} s, raw fetch of the same "
              f"{median(i['raw']):.3f} s, ratio {median(i['mailfeed']) / median(i['raw']):.2f}x (whole processes; "
              f"mailfeed committed after {median(i['mailfeed-committed']):.3f} s)")
    if "folders" in res:
        f = res["folders"]
        print(f"50 folders x 40 messages, first sync: 1 connection {median(f['first-1']):.2f} s, "
              f"5 connections {median(f['first-5']):.2f} s")
        cmds = f["nonew_commands"]
        per = cmds.get("EXAMINE", 0) + cmds.get("UID FETCH", 0) + cmds.get("SELECT", 0)
        print(f"50 folders, no new mail, 1 connection: {median(f['nonew']):.3f} s per pass; "
              f"commands sent {cmds}; per folder {per / 50:.2f}")
    if "idle" in res:
        i = res["idle"]
        if "samples" in i:
            print(f"IDLE latency append -> row visible: median {median(i['samples']) * 1000:.0f} ms "
                  f"(samples {', '.join(f'{x * 1000:.0f}' for x in i['samples'])} ms)")
        else:
            print(f"IDLE latency: {i['skipped']}")
    if "rss_scaling" in res:
        s = res["rss_scaling"]
        print(f"peak RSS, 2-20 KB messages: 2,000 -> {s['scale2k']['rss_mib']:.1f} MiB, "
              f"20,000 -> {s['scale20k']['rss_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
