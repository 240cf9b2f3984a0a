"""Announcement benchmark (issue 4): one announcement to N members (default 5000) against the
bare smtplib loop with the same prebuilt messages over one connection, to the same sink.

    .venv/bin/python bench/announce.py [--count 5000] [--rounds 3]

It is bench/send.py's one-process comparison; send.py adds the two-process figure."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import main

if __name__ == "__main__":
    main(["--count", "5000", "--postgres", "", *sys.argv[1:]])
