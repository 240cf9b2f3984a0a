"""The bounce mailbox over IMAP (issue 8): for operators whose bounce address is an ordinary mailbox.

Each poll stores every waiting message in bounce_message, commits, and only then flags it
\\Deleted and expunges: a crash before the commit leaves the message in the mailbox for the
next poll, and a crash after it stores the message a second time, which counts nothing twice
(mailer.bounces.records counts a delivery's permanent failure once). A message over the size limit is
not stored: it is flagged with a keyword so it is skipped from then on, and left for a person."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from imapclient import DELETED, IMAPClient

from mailer.bounces.smtp_server import Store

log = logging.getLogger(__name__)

SKIPPED_KEYWORD = b"MailerTooLarge"
FETCH_BATCH = 20


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"
    use_ssl: bool = True
    timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024



def poll_bounce_mailbox(settings: ImapSettings, store: Store) -> int:
    """Move every waiting message from the mailbox into bounce_message; returns how many were stored.

    `store` commits one message (mailer.worker.bounce_intake.store_for_app) before it leaves the mailbox."""
    stored = 0
    client = IMAPClient(settings.host, port=settings.port, ssl=settings.use_ssl, timeout=settings.timeout)
    try:
        client.login(settings.username, settings.password)
        client.select_folder(settings.folder)
        uids = client.search(["UNDELETED", "UNKEYWORD", SKIPPED_KEYWORD.decode()])
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start:start + FETCH_BATCH]
            sizes = client.fetch(batch, ["RFC822.SIZE"])
            wanted = [uid for uid in batch if sizes.get(uid, {}).get(b"RFC822.SIZE", 0) <= settings.max_bytes]
            too_big = [uid for uid in batch if uid not in wanted]
            if too_big:
                log.warning("bounce mailbox: %d message(s) over %d bytes left unread", len(too_big), settings.max_bytes)
                client.add_flags(too_big, [SKIPPED_KEYWORD])
            if not wanted:
                continue
            bodies = client.fetch(wanted, ["BODY.PEEK[]"])
            done = []
            for uid in wanted:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if raw is None:
                    continue
                _store(store, raw)
                done.append(uid)  # committed: now it may go from the mailbox
            if done:
                client.add_flags(done, [DELETED])
                client.expunge()
                stored += len(done)
    finally:
        with contextlib.suppress(Exception):  # the connection may already be gone; nothing to keep
            client.logout()
    if stored:
        log.info("bounce mailbox: stored %d message(s)", stored)
    return stored


def _store(store: Store, raw: bytes) -> int:
    headers = BytesHeaderParser().parsebytes(raw[:65536])
    rcpt = [str(v) for v in headers.get_all("Delivered-To", []) or headers.get_all("X-Original-To", []) or []]
    return store(raw, str(headers.get("Return-Path", "")), rcpt)
