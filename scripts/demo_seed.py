#!/usr/bin/env python3
"""Fills the demo Dovecot with sample mail over IMAP.

Usage: demo_seed.py PORT USER PASSWORD [EML_DIR]

Generates a deterministic set of varied messages (several languages and
charsets, HTML alternatives, attachments, forwarded messages) into INBOX,
Archive and Archive/2024, and appends every .eml file below EML_DIR (the
mail-parser crate's real-world samples) to Archive.
"""

import imaplib
import pathlib
import random
import sys
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timedelta, timezone

SUBJECTS = [
    ("Quarterly report", "utf-8"),
    ("Grüße aus Köln", "iso-8859-1"),
    ("Привет из Москвы", "koi8-r"),
    ("会議の議事録", "iso-2022-jp"),
    ("日本語の件名", "shift_jis"),
    ("Ünïcödé ✓ 测试 🎉", "utf-8"),
    ("Invoice #{n}", "us-ascii"),
    ("Re: lunch on Friday?", "us-ascii"),
]
PEOPLE = ["Alice Example <alice@example.org>", "Bob <bob@example.net>",
          "Jürgen Müller <juergen@example.de>", "Софья <sofia@example.ru>"]
WORDS = ("mail sync folder meeting budget review attached tomorrow invoice "
         "thanks regards update database release notes the of and to").split()


def prose(rng, words):
    lines, line = [], []
    for _ in range(words):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


def message(rng, n, when):
    subject, charset = SUBJECTS[n % len(SUBJECTS)]
    subject = subject.format(n=1000 + n)
    msg = EmailMessage()
    msg["From"] = rng.choice(PEOPLE)
    msg["To"] = "demo@example.org"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    if n % 17 != 5:  # a few without Message-ID, as in real mailboxes
        msg["Message-ID"] = make_msgid(idstring=str(n), domain="demo.example")
    body = f"Message {n}: {subject}\n\n" + prose(rng, rng.randint(20, 400))
    try:
        msg.set_content(body, charset=charset)
    except (UnicodeEncodeError, LookupError):
        msg.set_content(body, charset="utf-8")
    kind = n % 6
    if kind == 1:
        msg.add_alternative(f"<html><body><h1>{subject}</h1><p>{body}</p></body></html>",
                            subtype="html")
    elif kind == 2:
        size = rng.choice([2_000, 30_000, 200_000])
        blob = rng.randbytes(size)
        msg.add_attachment(blob, maintype="application", subtype="octet-stream",
                           filename=f"data-{n}.bin")
    elif kind == 3:
        inner = EmailMessage()
        inner["From"] = rng.choice(PEOPLE)
        inner["Subject"] = "Original message"
        inner.set_content(prose(rng, 50))
        msg.add_attachment(inner)
    return msg.as_bytes()


def main():
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    eml_dir = pathlib.Path(sys.argv[4]) if len(sys.argv) > 4 else None
    rng = random.Random(2024)
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, password)
    for folder in ("Archive", "Archive/2024"):
        imap.create(folder)
    plan = [("INBOX", 150), ("Archive", 80), ("Archive/2024", 80)]
    start = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
    n = 0
    for folder, count in plan:
        for _ in range(count):
            when = start + timedelta(hours=7 * n)
            flags = rng.choice(["", "", "(\\Seen)", "(\\Seen \\Flagged)"])
            typ, data = imap.append(folder, flags or None, imaplib.Time2Internaldate(when),
                                    message(rng, n, when))
            if typ != "OK":
                sys.exit(f"APPEND to {folder} failed: {data}")
            n += 1
    samples = 0
    if eml_dir and eml_dir.is_dir():
        for path in sorted(eml_dir.rglob("*.eml")):
            raw = path.read_bytes()
            if b"\0" in raw:
                continue
            typ, _ = imap.append("Archive", None, None, raw)
            samples += typ == "OK"
    imap.logout()
    print(f"seeded {n} generated messages and {samples} sample .eml files")


if __name__ == "__main__":
    main()
