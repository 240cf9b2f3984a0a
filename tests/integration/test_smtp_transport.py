"""S2, the SMTP transport against a real aiosmtpd server on loopback: connection reuse, reconnects,
RSET after a refusal, MAILER_SMTP_MAX_PER_CONNECTION, the socket timeout, PIPELINING, STARTTLS,
implicit TLS with certificate checks, and AUTH.

The sink numbers connections in the order they send their first command and records every
command (`sink.verbs(n)`), so each test can say what went over which connection."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail
from flask_mail import Mail

from mailer.engine.transport import (
    Outgoing,
    PermanentFailure,
    ServerUnavailable,
    SmtpTransport,
    TransientFailure,
    Withdrawn,
)
from mailer.worker.runner import run_tick_for_app
from mailer.worker.smtp_connection import flask_mail_opener
from support.certs import Certificates, make_certificates, openssl_available
from support.smtp_sink import SmtpSink, free_port
from support.web import join

SENDER = "bounces@forum.test"
USER, PASSWORD = "mailer", "s3cret-pass"


def message(n: int | str, to: str) -> bytes:
    return (
        f"From: Test Forum <noreply@forum.test>\r\nTo: {to}\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}.test@forum.test>\r\n\r\nHello, this is message {n}.\r\n"
    ).encode()


def opener_for(sink: SmtpSink, *, timeout: float = 5.0, ca_file: Path | None = None,
               **mail_config: Any) -> Callable[[], Any]:
    """The production opener on Flask-Mail's state, built from MAIL_* settings as Flask-Mail reads them."""
    state = Mail().init_mail({"MAIL_SERVER": sink.host, "MAIL_PORT": sink.port, **mail_config})
    if ca_file is None:
        return flask_mail_opener(state, timeout)  # the default: the system's CAs
    return flask_mail_opener(state, timeout, ca_file=str(ca_file))


def transactions(verbs: list[str]) -> list[list[str]]:
    """A connection's commands cut into transactions, each starting at MAIL (QUIT left out)."""
    groups: list[list[str]] = []
    for verb in verbs:
        if verb == "MAIL":
            groups.append([verb])
        elif groups and verb != "QUIT":
            groups[-1].append(verb)
    return groups


@pytest.fixture
def start_sink() -> Iterator[Callable[..., SmtpSink]]:
    sinks: list[SmtpSink] = []

    def start(**options: Any) -> SmtpSink:
        sink = SmtpSink(**options).start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    """Whether the sink advertises PIPELINING (the transport then sends MAIL, RCPT and DATA in one write)."""
    return request.param


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if not openssl_available():
        skip_or_fail("the openssl command is not installed")
    return make_certificates(tmp_path_factory.mktemp("certs"))


# --- one connection, many messages --------------------------------------------------


def test_many_messages_share_one_connection(start_sink, pipelining):
    """Ten messages go over one connection: one EHLO, ten MAIL/RCPT/DATA, one QUIT when the transport closes."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink)) as transport:
        for n in range(10):
            transport.send(SENDER, f"member{n}@example.org", message(n, f"member{n}@example.org"))
        assert transport.connections_opened == 1
    assert sink.connections == 1
    assert [r.rcpt_tos for r in sink.received] == [[f"member{n}@example.org"] for n in range(10)]
    assert {r.connection for r in sink.received} == {1}
    assert {r.mail_from for r in sink.received} == {SENDER}
    assert sink.verbs(1) == ["EHLO", *["MAIL", "RCPT", "DATA"] * 10, "QUIT"]


def test_pipelining_is_used_exactly_when_the_server_offers_it(start_sink, pipelining):
    """With PIPELINING advertised MAIL and RCPT arrive with the next command already sent; without it, never."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink)) as transport:
        for n in range(3):
            transport.send(SENDER, f"member{n}@example.org", message(n, f"member{n}@example.org"))
    assert len(sink.received) == 3
    if pipelining:
        assert sink.pipelined == [(1, "MAIL"), (1, "RCPT")] * 3
    else:
        assert sink.pipelined == []


def test_message_bytes_arrive_unchanged_including_dot_lines(start_sink, pipelining):
    """Lines starting with a dot are stuffed on the wire and arrive exactly as written."""
    sink = start_sink(pipelining=pipelining)
    raw = (
        b"From: Test Forum <noreply@forum.test>\r\nTo: dots@example.org\r\nSubject: dots\r\n\r\n"
        b".\r\n..two dots\r\n.one dot\r\nmiddle . dot\r\n.\r\nlast line\r\n"
    )
    with SmtpTransport(opener_for(sink)) as transport:
        transport.send(SENDER, "dots@example.org", raw)
        transport.send(SENDER, "after@example.org", message("after", "after@example.org"))
    assert [r.raw for r in sink.received] == [raw, message("after", "after@example.org")]


def test_pipelined_bare_line_ends_are_sent_as_crlf(start_sink):
    """With PIPELINING, a message with bare LF and bare CR line ends goes out with CRLF ones, dot-stuffed after
    the change (it raised TypeError: smtplib's line-end helper works on str only)."""
    sink = start_sink(pipelining=True)
    raw = b"From: Test Forum <noreply@forum.test>\nTo: bare@example.org\rSubject: bare\r\n\n.dot\nend\n"
    with SmtpTransport(opener_for(sink)) as transport:
        transport.send(SENDER, "bare@example.org", raw)
    assert [r.raw for r in sink.received] == [
        b"From: Test Forum <noreply@forum.test>\r\nTo: bare@example.org\r\nSubject: bare\r\n\r\n.dot\r\nend\r\n"
    ]


def test_max_per_connection_replaces_the_connection_politely(start_sink, pipelining):
    """MAILER_SMTP_MAX_PER_CONNECTION=3 and 7 messages: connections of 3, 3 and 1; each replaced one said QUIT first."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink), max_per_connection=3) as transport:
        for n in range(7):
            transport.send(SENDER, f"member{n}@example.org", message(n, f"member{n}@example.org"))
        assert transport.connections_opened == 3
        # The last connection is still open: only the replaced ones have said QUIT so far.
        assert [c for c, verb in sink.commands if verb == "QUIT"] == [1, 2]
    assert sink.connections == 3
    assert Counter(r.connection for r in sink.received) == Counter({1: 3, 2: 3, 3: 1})
    assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in range(7)]
    for connection in (1, 2, 3):
        assert sink.verbs(connection)[-1] == "QUIT"
    # QUIT on the old connection came before the new one said anything.
    for old, new in ((1, 2), (2, 3)):
        quit_at = sink.commands.index((old, "QUIT"))
        first_of_new = next(i for i, (c, _) in enumerate(sink.commands) if c == new)
        assert quit_at < first_of_new


# --- drops and reconnects ----------------------------------------------------------


def test_drop_mid_message_on_a_fresh_connection_fails_it_and_the_next_send_reconnects(start_sink, pipelining):
    """The server hangs up during the first message: TransientFailure (not 'server unavailable'), nothing
    accepted; the next send opens a new connection and is delivered."""
    sink = start_sink(pipelining=pipelining)
    sink.drop_connection_every(1)
    with SmtpTransport(opener_for(sink)) as transport:
        with pytest.raises(TransientFailure) as failure:
            transport.send(SENDER, "first@example.org", message(1, "first@example.org"))
        assert not isinstance(failure.value, ServerUnavailable)  # a message was in flight: it is to blame too
        assert sink.dropped == 1 and sink.received == []
        sink.drop_connection_every(0)
        transport.send(SENDER, "second@example.org", message(2, "second@example.org"))
        assert transport.connections_opened == 2
    (received,) = sink.received
    assert received.rcpt_tos == ["second@example.org"] and received.connection == 2


def test_drop_mid_message_on_a_reused_connection_is_retried_once_on_a_new_one(start_sink, pipelining):
    """The server hangs up at every 3rd message of a connection: that message is resent on a new connection,
    so four sends deliver four messages, each once."""
    sink = start_sink(pipelining=pipelining)
    sink.drop_connection_every(3)
    with SmtpTransport(opener_for(sink)) as transport:
        for n in range(4):
            transport.send(SENDER, f"member{n}@example.org", message(n, f"member{n}@example.org"))
        assert transport.connections_opened == 2
    assert sink.dropped == 1
    assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in range(4)]
    assert [r.connection for r in sink.received] == [1, 1, 2, 2]
    assert "QUIT" not in sink.verbs(1)  # the server hung up; there was nothing to say QUIT on


def test_idle_connection_closed_by_the_server_is_reopened(start_sink, pipelining):
    """The server closes an idle connection (its own timeout): the next send reconnects without failing."""
    sink = start_sink(pipelining=pipelining, idle_timeout=0.3)
    with SmtpTransport(opener_for(sink)) as transport:
        transport.send(SENDER, "before@example.org", message(1, "before@example.org"))
        time.sleep(0.8)  # the server has hung up by now
        transport.send(SENDER, "after@example.org", message(2, "after@example.org"))
        assert transport.connections_opened == 2
    assert [(r.rcpt_tos[0], r.connection) for r in sink.received] == [("before@example.org", 1),
                                                                       ("after@example.org", 2)]
    assert "QUIT" not in sink.verbs(1)  # closed by the server, not by us


# --- a stream of messages (send_all): one round trip a message with PIPELINING -----------


def outgoing(n: int, to: str | None = None) -> Outgoing:
    to = to or f"member{n}@example.org"
    return Outgoing(n, SENDER, to, message(n, to))


def test_stream_sends_each_content_with_the_next_envelope(start_sink, pipelining):
    """Five messages as a stream: each arrives once, in order, on one connection; with PIPELINING every
    message but the last ended in the same write as the next one's MAIL, RCPT and DATA."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink)) as transport:
        outcomes = list(transport.send_all(outgoing(n) for n in range(5)))
        assert transport.connections_opened == 1
    assert outcomes == [(n, None) for n in range(5)]
    assert [r.rcpt_tos for r in sink.received] == [[f"member{n}@example.org"] for n in range(5)]
    assert [r.raw for r in sink.received] == [message(n, f"member{n}@example.org") for n in range(5)]
    ends_pipelined = [c for c, what in sink.pipelined if what == "END"]
    assert ends_pipelined == ([1] * 4 if pipelining else [])
    assert sink.verbs(1) == ["EHLO", *["MAIL", "RCPT", "DATA"] * 5, "QUIT"]


def test_stream_withdraws_an_open_message_and_an_envelope_before_they_are_written(start_sink, pipelining):
    """Issue 17 (J4): the `withdrawn` check runs before every write. A message whose envelope is open in DATA when
    its member leaves is never delivered (the transport hangs up, the rest go on a new connection); one withdrawn
    before its envelope is written never reaches the server at all. Both come back as Withdrawn with the reason."""
    sink = start_sink(pipelining=pipelining)
    asked: list[int] = []

    def withdrawn(keys: list[int]) -> dict[int, str]:
        # 3 has left before anything of theirs goes; 2 leaves just after the first check of 2 said "still here".
        gone = {k: "left" if k == 2 else "left too" for k in keys if k == 3 or (k == 2 and 2 in asked)}
        asked.extend(keys)
        return gone

    with SmtpTransport(opener_for(sink)) as transport:
        outcomes = list(transport.send_all((outgoing(n) for n in range(6)), withdrawn=withdrawn))
    failures = {key: failure for key, failure in outcomes if failure is not None}
    assert all(isinstance(f, Withdrawn) for f in failures.values())
    rcpts = [verb for c in range(1, sink.connections + 1) for verb in sink.verbs(c) if verb == "RCPT"]
    if pipelining:
        # 2's envelope went with 1's content; before 2's content was written, 2 had left: hung up on.
        assert {k: f.why for k, f in failures.items()} == {2: "left", 3: "left too"}
        assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in (0, 1, 4, 5)]
        assert sink.connections == 2, "the open DATA of message 2 was hung up on, the rest went on a new connection"
        assert len(rcpts) == 5, "message 3's envelope was never written"
    else:
        # Step by step a message is written whole right after its one check: only 3 is withdrawn.
        assert {k: f.why for k, f in failures.items()} == {3: "left too"}
        assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in (0, 1, 2, 4, 5)]
        assert sink.connections == 1 and len(rcpts) == 5


def test_stream_refusals_fail_their_own_message_only(start_sink, pipelining):
    """In a stream, 550 to one RCPT and 451 to another's end of data fail those two with their kind; the
    others are delivered over the same connection, with RSET after the refused envelope."""
    sink = start_sink(pipelining=pipelining)
    sink.reply_to_rcpt("member1@example.org", "550 5.1.1 no such user")
    sink.reply_to_data("member3@example.org", "451 4.3.0 try again later")
    with SmtpTransport(opener_for(sink)) as transport:
        outcomes = dict(transport.send_all(outgoing(n) for n in range(5)))
        assert transport.connections_opened == 1
    assert sorted(outcomes) == [0, 1, 2, 3, 4]
    assert type(outcomes[1]) is PermanentFailure and outcomes[1].code == 550
    assert type(outcomes[3]) is TransientFailure and outcomes[3].code == 451
    assert [outcomes[n] for n in (0, 2, 4)] == [None, None, None]
    assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in (0, 2, 4)]
    assert transactions(sink.verbs(1))[1][-1] == "RSET"  # after the refused RCPT, before the next MAIL


def test_stream_connection_lost_mid_content_resends_what_was_in_flight(start_sink, pipelining):
    """The server hangs up at every 3rd message of a connection: the message whose content was cut off
    (and, with PIPELINING, the envelope sent behind it) go again on a new connection; six messages,
    each delivered once."""
    sink = start_sink(pipelining=pipelining)
    sink.drop_connection_every(3)
    with SmtpTransport(opener_for(sink)) as transport:
        outcomes = list(transport.send_all(outgoing(n) for n in range(6)))
        assert transport.connections_opened == 3
    assert sorted(key for key, _ in outcomes) == list(range(6)) and {f for _, f in outcomes} == {None}
    assert Counter(r.rcpt_tos[0] for r in sink.received) == Counter(f"member{n}@example.org" for n in range(6))
    assert sink.dropped == 2


def test_stream_max_per_connection(start_sink, pipelining):
    """MAILER_SMTP_MAX_PER_CONNECTION=3 on a stream of 7: the open message is ended before QUIT, and
    connections carry 3, 3 and 1 messages."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink), max_per_connection=3) as transport:
        assert [f for _, f in transport.send_all(outgoing(n) for n in range(7))] == [None] * 7
        assert transport.connections_opened == 3
    assert Counter(r.connection for r in sink.received) == Counter({1: 3, 2: 3, 3: 1})
    assert [r.rcpt_tos[0] for r in sink.received] == [f"member{n}@example.org" for n in range(7)]
    for connection in (1, 2, 3):
        assert sink.verbs(connection)[-1] == "QUIT"


def test_stream_stopped_by_an_error_never_delivers_the_open_message(start_sink):
    """The caller's message source fails after three messages (say, the database went away): the two
    answered ones were delivered and reported, the third, already in DATA, is never delivered (the
    transport hangs up instead of ending it), and the error reaches the caller."""
    sink = start_sink(pipelining=True)

    def source() -> Iterator[Outgoing]:
        yield from (outgoing(n) for n in range(3))
        raise RuntimeError("database went away")

    reported: list[Any] = []
    transport = SmtpTransport(opener_for(sink))
    with pytest.raises(RuntimeError, match="database went away"):
        for key, failure in transport.send_all(source()):
            reported.append((key, failure))
    transport.close()
    assert reported == [(0, None), (1, None)]
    time.sleep(0.2)  # let the server notice the hang-up
    assert [r.rcpt_tos[0] for r in sink.received] == ["member0@example.org", "member1@example.org"]
    assert sink.verbs(1)[-3:] == ["MAIL", "RCPT", "DATA"]  # member2's envelope, then no QUIT


def test_stream_closed_early_by_the_caller_hangs_up_on_the_open_message(start_sink):
    """A caller that stops reading outcomes (closes the stream) leaves no half-sent message behind."""
    sink = start_sink(pipelining=True)
    transport = SmtpTransport(opener_for(sink))
    stream = transport.send_all(outgoing(n) for n in range(10))
    assert next(stream) == (0, None)
    stream.close()
    transport.close()
    time.sleep(0.2)
    delivered = [r.rcpt_tos[0] for r in sink.received]
    assert delivered == ["member0@example.org"]  # member1 was open in DATA (member2 was being built)
    assert "QUIT" not in sink.verbs(1)


# --- refusals: failure kind, RSET, the connection kept --------------------------------


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize(("reply", "kind"), [("550 5.1.1 no such user", PermanentFailure),
                                             ("451 4.3.0 try again later", TransientFailure)],
                         ids=["550", "451"])
def test_refusal_raises_its_kind_then_rset_and_the_connection_goes_on(start_sink, pipelining, stage, reply, kind):
    """A 550 or 451 to MAIL, RCPT or the end of DATA: PermanentFailure/TransientFailure with that code,
    nothing delivered, RSET before the next transaction (a refused end of data has already ended its
    transaction, so a pipelining client need not send one), which goes over the same connection."""
    sink = start_sink(pipelining=pipelining)
    refused_sender, refused = "refused-sender@forum.test", "refused@example.org"
    if stage == "MAIL":
        sink.reply_to_mail(refused_sender, reply)
    elif stage == "RCPT":
        sink.reply_to_rcpt(refused, reply)
    else:
        sink.reply_to_data(refused, reply)
    with SmtpTransport(opener_for(sink)) as transport:
        transport.send(SENDER, "before@example.org", message(1, "before@example.org"))
        with pytest.raises(kind) as failure:
            transport.send(refused_sender if stage == "MAIL" else SENDER, refused, message(2, refused))
        assert type(failure.value) is kind
        assert failure.value.code == int(reply[:3])
        assert reply[4:] in failure.value.reason
        transport.send(SENDER, "after@example.org", message(3, "after@example.org"))
        assert transport.connections_opened == 1
        verbs = sink.verbs(1)
    assert sink.connections == 1
    assert [r.rcpt_tos[0] for r in sink.received] == ["before@example.org", "after@example.org"]
    before, failed, after = transactions(verbs)
    assert before == after == ["MAIL", "RCPT", "DATA"]
    if pipelining and stage == "DATA":
        expected = ["MAIL", "RCPT", "DATA"]  # the end of data ends the transaction either way: no RSET needed
    elif pipelining:
        expected = ["MAIL", "RCPT", "DATA", "RSET"]  # all three were sent before any reply came back
    else:
        expected = {"MAIL": ["MAIL", "RSET"], "RCPT": ["MAIL", "RCPT", "RSET"],
                    "DATA": ["MAIL", "RCPT", "DATA", "RSET"]}[stage]
    assert failed == expected


def test_421_to_rcpt_abandons_the_connection(start_sink, pipelining):
    """421 (the server is closing the channel) is a TransientFailure, and the next message goes on a new
    connection, even when the server leaves the old one open."""
    sink = start_sink(pipelining=pipelining)
    sink.reply_to_rcpt("closing@example.org", "421 4.3.2 shutting down")
    with SmtpTransport(opener_for(sink)) as transport:
        with pytest.raises(TransientFailure) as failure:
            transport.send(SENDER, "closing@example.org", message(1, "closing@example.org"))
        assert failure.value.code == 421
        transport.send(SENDER, "next@example.org", message(2, "next@example.org"))
        assert transport.connections_opened == 2
    (received,) = sink.received
    assert received.rcpt_tos == ["next@example.org"] and received.connection == 2


# --- timeouts and an absent server ---------------------------------------------------


def test_server_slower_than_the_socket_timeout(start_sink, pipelining):
    """The server takes 2 s to answer DATA and the timeout is 0.5 s: TransientFailure in well under 2 s,
    then the transport reconnects and the next message is delivered."""
    sink = start_sink(pipelining=pipelining)
    with SmtpTransport(opener_for(sink, timeout=0.5)) as transport:
        transport.send(SENDER, "fast@example.org", message(1, "fast@example.org"))
        sink.slow_down(2.0)
        started = time.monotonic()
        with pytest.raises(TransientFailure) as failure:
            transport.send(SENDER, "slow@example.org", message(2, "slow@example.org"))
        elapsed = time.monotonic() - started
        assert not isinstance(failure.value, ServerUnavailable)
        assert 0.4 < elapsed < 1.5, f"gave up after {elapsed:.2f}s"  # one timeout, or two with the one retry
        sink.slow_down(0)
        transport.send(SENDER, "next@example.org", message(3, "next@example.org"))
        assert transport.connections_opened >= 2
    assert sink.to("fast@example.org")[0].connection == 1
    (next_message,) = sink.to("next@example.org")
    assert next_message.connection > 1


def test_server_that_accepts_but_never_greets_is_unavailable_after_the_timeout():
    """A listener that never sends its 220 greeting: ServerUnavailable after about the socket timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the handshake; nobody ever answers
        state = Mail().init_mail({"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": silent.getsockname()[1]})
        transport = SmtpTransport(flask_mail_opener(state, 0.5))
        started = time.monotonic()
        with pytest.raises(ServerUnavailable):
            transport.send(SENDER, "anyone@example.org", message(1, "anyone@example.org"))
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 1.5, f"gave up after {elapsed:.2f}s"
    assert transport.connections_opened == 0


def test_server_not_listening_is_unavailable_then_the_same_transport_connects_when_it_is_back():
    """Nothing listens on the port: ServerUnavailable; once a server listens there, the same transport delivers."""
    port = free_port()
    sink = SmtpSink(port)
    with SmtpTransport(opener_for(sink)) as transport:
        with pytest.raises(ServerUnavailable) as failure:
            transport.send(SENDER, "early@example.org", message(1, "early@example.org"))
        assert "cannot connect" in failure.value.reason
        assert transport.connections_opened == 0
        with sink:
            transport.send(SENDER, "later@example.org", message(2, "later@example.org"))
            assert transport.connections_opened == 1
            assert [r.rcpt_tos for r in sink.received] == [["later@example.org"]]
            transport.close()


# --- STARTTLS, implicit TLS, AUTH ------------------------------------------------------


def starttls_sink(start_sink: Callable[..., SmtpSink], certs: Certificates, **options: Any) -> SmtpSink:
    return start_sink(tls_context=certs.server_context(), require_starttls=True, credentials={USER: PASSWORD},
                      **options)


def test_starttls_and_auth_with_the_configured_ca(start_sink, certs, pipelining):
    """MAIL_USE_TLS with a private CA file and a login: the message goes encrypted and authenticated."""
    sink = starttls_sink(start_sink, certs, pipelining=pipelining)
    opener = opener_for(sink, ca_file=certs.ca_file, MAIL_USE_TLS=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport:
        transport.send(SENDER, "secure@example.org", message(1, "secure@example.org"))
        transport.send(SENDER, "secure2@example.org", message(2, "secure2@example.org"))
        assert transport.connections_opened == 1
    assert [(r.rcpt_tos[0], r.tls, r.login) for r in sink.received] == [
        ("secure@example.org", True, USER), ("secure2@example.org", True, USER)]
    assert sink.logins == [(1, USER)] and sink.refused_logins == []
    assert sink.verbs(1)[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]


def test_wrong_password_is_not_sent(start_sink, certs):
    """A refused login surfaces as ServerUnavailable (535 in the reason) and no MAIL command is ever sent.
    (smtplib tries each mechanism the server offers, PLAIN then LOGIN, so the server sees two attempts.)"""
    sink = starttls_sink(start_sink, certs)
    opener = opener_for(sink, ca_file=certs.ca_file, MAIL_USE_TLS=True, MAIL_USERNAME=USER, MAIL_PASSWORD="wrong")
    with SmtpTransport(opener) as transport:
        with pytest.raises(ServerUnavailable) as failure:
            transport.send(SENDER, "secure@example.org", message(1, "secure@example.org"))
        assert transport.connections_opened == 0
    assert "535" in failure.value.reason
    assert sink.refused_logins and set(sink.refused_logins) == {(1, USER)} and sink.logins == []
    assert sink.received == [] and "MAIL" not in sink.verbs(1)


def test_starttls_without_a_ca_file_refuses_a_private_certificate(start_sink, certs):
    """No MAILER_SMTP_CA_FILE: the system CAs do not know the sink's CA, so the connection is refused
    before the password is sent."""
    sink = starttls_sink(start_sink, certs)
    opener = opener_for(sink, MAIL_USE_TLS=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport, pytest.raises(ServerUnavailable) as failure:
        transport.send(SENDER, "secure@example.org", message(1, "secure@example.org"))
    assert "CERTIFICATE_VERIFY_FAILED" in failure.value.reason
    assert sink.verbs(1) == ["EHLO", "STARTTLS"]
    assert sink.logins == [] and sink.refused_logins == [] and sink.received == []


def test_starttls_refuses_a_certificate_for_another_host(start_sink, certs):
    """A certificate from the trusted CA but for mail.other.test, not 127.0.0.1: refused (hostname check)."""
    sink = start_sink(tls_context=certs.server_context(other_host=True), require_starttls=True,
                      credentials={USER: PASSWORD})
    opener = opener_for(sink, ca_file=certs.ca_file, MAIL_USE_TLS=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport, pytest.raises(ServerUnavailable) as failure:
        transport.send(SENDER, "secure@example.org", message(1, "secure@example.org"))
    assert "CERTIFICATE_VERIFY_FAILED" in failure.value.reason and "mismatch" in failure.value.reason
    assert sink.logins == [] and sink.received == []


def test_tls_required_but_server_offers_no_starttls(start_sink):
    """MAIL_USE_TLS against a server without STARTTLS: ServerUnavailable, never a fall-back to plain text."""
    sink = start_sink()
    opener = opener_for(sink, MAIL_USE_TLS=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport, pytest.raises(ServerUnavailable) as failure:
        transport.send(SENDER, "secure@example.org", message(1, "secure@example.org"))
    assert "STARTTLS" in failure.value.reason
    assert sink.verbs(1) == ["EHLO"] and sink.received == []


def test_implicit_tls_and_auth_with_the_configured_ca(start_sink, certs, pipelining):
    """MAIL_USE_SSL (SMTPS) with a private CA file and a login: delivered over TLS, logged in."""
    sink = start_sink(ssl_context=certs.server_context(), credentials={USER: PASSWORD}, pipelining=pipelining)
    opener = opener_for(sink, ca_file=certs.ca_file, MAIL_USE_SSL=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport:
        transport.send(SENDER, "smtps@example.org", message(1, "smtps@example.org"))
    (received,) = sink.received
    assert (received.rcpt_tos, received.tls, received.login) == (["smtps@example.org"], True, USER)
    assert sink.verbs(1) == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]


def test_implicit_tls_without_a_ca_file_refuses_a_private_certificate(start_sink, certs):
    """MAIL_USE_SSL with the system CAs only: the handshake fails, not one SMTP command is sent."""
    sink = start_sink(ssl_context=certs.server_context(), credentials={USER: PASSWORD})
    opener = opener_for(sink, MAIL_USE_SSL=True, MAIL_USERNAME=USER, MAIL_PASSWORD=PASSWORD)
    with SmtpTransport(opener) as transport, pytest.raises(ServerUnavailable) as failure:
        transport.send(SENDER, "smtps@example.org", message(1, "smtps@example.org"))
    assert "CERTIFICATE_VERIFY_FAILED" in failure.value.reason
    assert sink.connections == 0 and sink.received == []


# --- the worker's configuration --------------------------------------------------------


@pytest.mark.parametrize("with_ca_file", [True, False], ids=["ca-file", "system-cas"])
def test_worker_uses_mailer_smtp_ca_file(make_app, start_sink, certs, with_ca_file):
    """The tick's transport takes MAILER_SMTP_CA_FILE: with it the join mail goes out over STARTTLS;
    with it empty (system CAs) the private certificate is refused and the server counts as unavailable."""
    sink = starttls_sink(start_sink, certs)
    app = make_app(MAIL_SERVER=sink.host, MAIL_PORT=sink.port, MAIL_USE_TLS=True, MAIL_USERNAME=USER,
                   MAIL_PASSWORD=PASSWORD, MAILER_SMTP_CA_FILE=str(certs.ca_file) if with_ca_file else "")
    assert join(app.test_client(), email="tls@example.org").status_code == 303
    summary = run_tick_for_app(app)
    if with_ca_file:
        assert summary.outbox.sent == 1 and not summary.server_unavailable
        (received,) = sink.received
        assert (received.rcpt_tos, received.tls, received.login) == (["tls@example.org"], True, USER)
    else:
        assert summary.server_unavailable and summary.outbox.sent == 0
        assert sink.received == [] and sink.logins == []
