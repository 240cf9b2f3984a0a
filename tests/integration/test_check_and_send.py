"""Check and send (V1, V2, issue 18) through the pages, on SQLite and PostgreSQL: the check page, the token
that proves it was seen, the undo window with "Stop, don't send", gaps that block sends, copying."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.announcements.check import SEND_NOW, check_send, sign_check
from mailer.extensions import db
from mailer.models import Announcement, AnnouncementState, Delivery, Member, MemberStatus, OutboxMessage, SocialMedia
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, add_members, admin_post, compose, logged_in_admin
from support.processes import WorkerProcess
from support.web import csrf_token

S = AnnouncementState
LETTER = "# The re-visit\n\nDear {{ name }},\n\nInspectors are coming back.\n\nBest wishes,\n\nSam, for the forum"
TOKEN = re.compile(r'name="check" value="([^"]+)"')


def state_and_deliveries(app: Any, announcement_id: int) -> tuple[AnnouncementState, int, datetime | None]:
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        assert item is not None
        count = db.session.scalar(select(func.count()).where(Delivery.announcement_id == announcement_id)) or 0
        result = (item.state, count, item.scheduled_at)
        db.session.remove()
        return result


def open_check(admin: Any, page: str, **query: str) -> tuple[Any, str, str | None]:
    response = admin.get(f"{page}/check", query_string=query or {"action": "send-now"})
    html = response.get_data(as_text=True)
    found = TOKEN.search(html)
    return response, html, found.group(1) if found else None


def press(admin: Any, page: str, action: str, html: str, token: str) -> Any:
    return admin.post(f"{page}/{action}", data={"csrf_token": csrf_token(html), "check": token})


def test_check_page_says_what_who_how_many_and_when(app, clock):
    """V1: subject, audience in words, the exact count from the engine's query in digits, UK time in words,
    and a button "Send to N members"; Schedule shows the day in words and "Schedule for N members"."""
    clock.set(datetime(2026, 5, 8, 16, 0, tzinfo=UTC))  # Friday, 17:00 in London
    add_members(app, clock, 1234)
    with app.app_context():
        add_member("offer@example.org", clock=clock, groups=[2], social_media=SocialMedia.NO)
        add_member("offer-social@example.org", clock=clock, groups=[2], social_media=SocialMedia.YES)
    admin = logged_in_admin(app, clock)
    everyone = compose(admin, subject="The re-visit", body=LETTER)
    response, html, token = open_check(admin, f"/admin/announcements/{everyone}")
    assert response.status_code == 200 and token
    assert "The re-visit" in html and "All members" in html
    assert '<strong id="check-count">1,236</strong>' in html
    assert "Today at 17:00:00 (UK time)" in html
    assert re.search(r"<button type=\"submit\">Send to 1,236 members</button>", html)
    narrow = compose(admin, subject="Offer", body=LETTER, groups=[2], only_no_social=True)
    _, html, _ = open_check(admin, f"/admin/announcements/{narrow}", action="schedule",
                            send_date="2026-05-15", send_time="12:00")
    assert "Members of Local Offer working group who said they do not use social media" in html
    assert "Friday 15 May at 12:00 (UK time)" in html and "Schedule for 1 member</button>" in html


def test_a_post_that_skipped_the_check_page_is_refused_and_changes_nothing(app, clock, smtp):
    """V1: send-now or schedule without the check page's token, with a forged one, or with another announcement's
    token is a 400 page; nothing is scheduled and nothing is sent."""
    add_members(app, clock, 2)
    admin = logged_in_admin(app, clock)
    first, second = compose(admin, subject="One", body=LETTER), compose(admin, subject="Two", body=LETTER)
    page = f"/admin/announcements/{first}"
    html = admin.get(page).get_data(as_text=True)
    _, _, other_token = open_check(admin, f"/admin/announcements/{second}")
    assert other_token
    for data in ({}, {"check": "forged"}, {"check": other_token}):
        for action in ("send-now", "schedule"):
            response = admin.post(f"{page}/{action}", data={"csrf_token": csrf_token(html), **data})
            assert response.status_code == 400, (action, data)
            assert "check the announcement on its check page first" in response.get_data(as_text=True)
    assert state_and_deliveries(app, first) == (S.DRAFT, 0, None)
    run_tick_for_app(app)
    assert smtp.received == []


def test_a_draft_changed_after_the_check_gets_the_check_page_again(app, clock, smtp):
    """V1: the token names the content it showed; an edit (or a new member) since means the check page again
    (409) with the new count, and nothing sent."""
    add_members(app, clock, 2)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Changing", body=LETTER)
    page = f"/admin/announcements/{announcement_id}"
    _, html, token = open_check(admin, page)
    assert token
    edited = admin_post(admin, f"{page}/edit", f"{page}/edit", {"subject": "Changed", "body": LETTER + "\n\nPS."})
    assert edited.status_code == 303
    response = press(admin, page, "send-now", html, token)
    assert response.status_code == 409
    assert "changed after you checked it" in response.get_data(as_text=True)
    assert "Send to 2 members" in response.get_data(as_text=True)
    assert state_and_deliveries(app, announcement_id) == (S.DRAFT, 0, None)
    _, html, token = open_check(admin, page)
    add_members(app, clock, 1, prefix="late")
    response = press(admin, page, "send-now", html, token or "")
    assert response.status_code == 409 and "Send to 3 members" in response.get_data(as_text=True)
    assert state_and_deliveries(app, announcement_id)[0] is S.DRAFT
    _, html, token = open_check(admin, page, action="schedule", send_date="2026-03-05", send_time="12:00")
    add_members(app, clock, 1, prefix="later")
    response = admin.post(f"{page}/schedule?send_date=2026-03-05&send_time=12:00",
                          data={"csrf_token": csrf_token(html), "check": token})
    again = response.get_data(as_text=True)
    assert response.status_code == 409 and "Thursday 5 March at 12:00" in again and "Schedule for 4 members" in again
    run_tick_for_app(app)
    assert smtp.received == []


def test_an_audience_of_nobody_has_no_button_and_a_forged_post_is_refused(app, clock, smtp):
    """V1: nobody in the audience: the check page says so with a way back and no send button; a token signed for
    nobody, or one shown when somebody was there who has since left, is refused and changes nothing."""
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Nobody", body=LETTER, groups=[3])
    page = f"/admin/announcements/{announcement_id}"
    response, html, token = open_check(admin, page)
    assert response.status_code == 200 and token is None
    assert "Nobody would get it" in html and "<button type=\"submit\">Send" not in html
    assert f'href="{page}/edit"' in html
    with app.app_context():
        item = db.session.get(Announcement, announcement_id)
        forged = sign_check(check_send(db.session, item, action=SEND_NOW, when=None, clock=clock,
                                       undo=timedelta(0)), "test-only-secret")
        member = add_member("only@example.org", clock=clock, groups=[3])
    refused = press(admin, page, "send-now", html, forged)
    assert refused.status_code == 409  # nobody when signed, somebody now: check again
    _, html, token = open_check(admin, page)
    assert token and "Send to 1 member</button>" in html
    with app.app_context():
        db.session.get(Member, member).status = MemberStatus.UNSUBSCRIBED
        db.session.commit()
    for forged_token in (token, forged):
        response = press(admin, page, "send-now", html, forged_token)
        assert response.status_code == 409 and "nobody to send it to" in response.get_data(as_text=True)
    assert state_and_deliveries(app, announcement_id) == (S.DRAFT, 0, None)
    run_tick_for_app(app)
    assert smtp.received == []


def test_gaps_block_sending_and_test_sends_and_meant_brackets_can_be_confirmed(app, clock, smtp):
    """V2: a draft from the shipped "Forward a letter" template lists its gaps by line on the edit, announcement and
    check pages; no send button, a test send is refused (400, nothing queued); "These brackets are meant to be there"
    clears only bracket gaps, and a bracket added later is caught again."""
    add_members(app, clock, 1)
    admin = logged_in_admin(app, clock)
    with app.app_context():
        from mailer.models import AnnouncementTemplate

        named = AnnouncementTemplate.name == "Forward a letter"
        template = db.session.scalar(select(AnnouncementTemplate).where(named))
        assert template is not None
        body = template.body_markdown
    announcement_id = compose(admin, subject="A letter", body=body)
    page = f"/admin/announcements/{announcement_id}"
    for path in (f"{page}/edit", page):
        html = admin.get(path).get_data(as_text=True)
        assert "look unfinished" in html and "<strong>Line 5:</strong> [say what it is about]" in html
    _, html, token = open_check(admin, page)
    assert token is None and "[your name]" in html and "These brackets are meant to be there" in html
    response = admin_post(admin, page, f"{page}/test")
    assert response.status_code == 400 and "[say what it is about]" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    meant = admin.post(f"{page}/check?action=send-now", data={"csrf_token": csrf_token(html)})
    assert meant.status_code == 303
    _, html, token = open_check(admin, page)
    assert token and "Send to 1 member" in html
    assert admin_post(admin, page, f"{page}/test").status_code == 303
    edited = admin_post(admin, f"{page}/edit", f"{page}/edit",
                        {"subject": "A letter", "body": body + "\n[another gap]\n[Survey](https://example.org/x)"})
    assert edited.status_code == 303
    _, html, token = open_check(admin, page)
    assert token is None and "[another gap]" in html and "example address" in html
    assert "These brackets are meant to be there" not in html  # not while a link is wrong too
    assert "[your name]" not in html


def test_send_now_waits_for_the_undo_window_then_starts(make_app, clock, smtp):
    """V1: after "Send to N members" the page counts down to the start time with "Stop, don't send"; with a frozen
    clock a tick one second before the window ends starts nothing, a tick at its end sends."""
    app = make_app(MAILER_UNDO_SECONDS=60)
    add_members(app, clock, 2)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Wait", body=LETTER)
    page = f"/admin/announcements/{announcement_id}"
    _, html, token = open_check(admin, page)
    assert "after 60 seconds in which you can still stop it" in html
    assert press(admin, page, "send-now", html, token or "").status_code == 303
    shown = admin.get(page).get_data(as_text=True)
    assert "It will start sending at <strong>09:01:00</strong> (UK time)" in shown  # 2 March: GMT
    assert ", in 60 seconds" in shown and "Stop, don't send</button>" in shown
    assert admin.get(f"{page}/progress.json").get_json()["starts_at"] == "2026-03-02T09:01:00+00:00"
    clock.advance(seconds=59)
    summary = run_tick_for_app(app)
    assert summary.deliveries.started == [] and smtp.received == []
    assert state_and_deliveries(app, announcement_id)[:2] == (S.SCHEDULED, 0)
    clock.advance(seconds=1)
    assert run_tick_for_app(app).deliveries.started == [announcement_id]
    assert len(smtp.wait_for(2)) == 2


def test_stop_dont_send_within_the_window_makes_it_a_draft_and_sends_nothing(make_app, clock, smtp):
    """V1: "Stop, don't send" in the window puts it back to a draft; ticks after the window send nothing; a second
    confirm starts a new window."""
    app = make_app(MAILER_UNDO_SECONDS=60)
    add_members(app, clock, 2)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Regret", body=LETTER)
    page = f"/admin/announcements/{announcement_id}"
    _, html, token = open_check(admin, page)
    press(admin, page, "send-now", html, token or "")
    clock.advance(seconds=30)
    stopped = admin_post(admin, page, f"{page}/unschedule")
    assert stopped.status_code == 303
    assert "nothing was sent" in admin.get(page).get_data(as_text=True)
    clock.advance(seconds=120)
    run_tick_for_app(app)
    assert smtp.received == [] and state_and_deliveries(app, announcement_id) == (S.DRAFT, 0, None)
    _, html, token = open_check(admin, page)
    press(admin, page, "send-now", html, token or "")
    assert state_and_deliveries(app, announcement_id)[2] == clock.now() + timedelta(seconds=60)


@pytest.mark.parametrize("stop_after", [0.0, 0.02, 0.05, 0.1])
def test_stop_at_the_last_moment_against_a_tick_has_one_outcome(make_app, clock, smtp, stop_after):
    """V1 race: at the end of the window "Stop, don't send" (over HTTP) and a worker tick are let go together. Stop
    won: a draft, no deliveries, no mail. The start won: the stop is a 409 page and every member gets it."""
    app = make_app(MAILER_UNDO_SECONDS=60)
    add_members(app, clock, 3)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Race", body=LETTER)
    page = f"/admin/announcements/{announcement_id}"
    _, html, token = open_check(admin, page)
    press(admin, page, "send-now", html, token or "")
    clock.advance(seconds=60)
    stop_token = csrf_token(admin.get(page).get_data(as_text=True))
    ready, results = threading.Barrier(2), {}

    def stop() -> None:
        ready.wait()
        time.sleep(stop_after)
        results["stop"] = admin.post(f"{page}/unschedule", data={"csrf_token": stop_token})

    def tick() -> None:
        ready.wait()
        results["tick"] = run_tick_for_app(app)

    threads = [threading.Thread(target=stop), threading.Thread(target=tick)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stopped = results["stop"].status_code == 303
    started = announcement_id in results["tick"].deliveries.started
    assert stopped != started, (results["stop"].status_code, results["tick"])
    run_tick_for_app(app)
    if stopped:
        assert smtp.received == [] and state_and_deliveries(app, announcement_id)[:2] == (S.DRAFT, 0)
    else:
        assert results["stop"].status_code == 409
        assert len(smtp.wait_for(3)) == 3 and state_and_deliveries(app, announcement_id)[:2] == (S.SENT, 3)


def test_a_real_worker_starts_nothing_before_the_window_ends(make_app, database_uri, clock, smtp, tmp_path):
    """V1 with a real worker process (0.2 s ticks) and a 2-second window: nothing arrives in the window, then
    everyone gets it; one stopped in its window never goes."""
    app = make_app(MAILER_UNDO_SECONDS=2)
    clock.set(datetime.now(UTC))  # the pages and the worker share the real time
    add_members(app, clock, 2)
    admin = logged_in_admin(app, clock)
    go, stop = compose(admin, subject="Goes", body=LETTER), compose(admin, subject="Stops", body=LETTER)
    worker = WorkerProcess(database_uri, smtp, tmp_path / "worker.log", MAILER_UNDO_SECONDS=2)
    try:
        worker.wait_for_log("worker")
        for announcement_id in (stop, go):
            clock.set(datetime.now(UTC))  # the pages and the worker share the real time
            page = f"/admin/announcements/{announcement_id}"
            _, html, token = open_check(admin, page)
            assert press(admin, page, "send-now", html, token or "").status_code == 303
            if announcement_id == stop:
                assert admin_post(admin, page, f"{page}/unschedule").status_code == 303
        due = state_and_deliveries(app, go)[2]
        assert due is not None
        while datetime.now(UTC) < due - timedelta(seconds=0.1):  # the worker ticks every 0.2 s meanwhile
            assert smtp.received == [], "sent before the undo window ended"
            time.sleep(0.05)
        received = smtp.wait_for(2, timeout=20)
        assert {m.message["Subject"] for m in received} == {"Goes"}
        time.sleep(1.0)
        assert len(smtp.received) == 2
        assert state_and_deliveries(app, stop)[:2] == (S.DRAFT, 0)
    finally:
        worker.stop()


def test_copy_into_a_new_draft_from_a_sent_announcement(app, clock, smtp):
    """V3/issue 18.6: "Copy into a new draft" on a sent announcement makes a draft with its text and audience;
    the page has no "Cancel it" button for a draft."""
    add_members(app, clock, 1, groups=[2])
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Again", body=LETTER, groups=[2])
    page = f"/admin/announcements/{announcement_id}"
    assert "Cancel it" not in admin.get(page).get_data(as_text=True)
    _, html, token = open_check(admin, page)
    press(admin, page, "send-now", html, token or "")
    run_tick_for_app(app)
    response = admin_post(admin, page, f"{page}/copy")
    assert response.status_code == 303
    copy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert copy_id != announcement_id
    with app.app_context():
        copy, original = db.session.get(Announcement, copy_id), db.session.get(Announcement, announcement_id)
        assert copy is not None and original is not None
        assert (copy.state, copy.subject, copy.body_markdown) == (S.DRAFT, "Again", LETTER)
        assert [g.id for g in copy.groups] == [2] and not copy.only_without_social_media
        assert original.state in (S.SENDING, S.SENT)
    assert "Copy into a new draft" in admin.get(f"/admin/announcements/{copy_id}").get_data(as_text=True)


def test_stop_this_send_asks_first_then_the_rest_never_get_it(app, clock, smtp):
    """Issue 18.6: while sending, "Stop this send" leads to a page saying what happens (who got it, who will not);
    confirming ends it as cancelled and a later tick sends nothing more. A draft has no such button."""
    add_members(app, clock, 3)
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="Halt", body=LETTER)
    page = f"/admin/announcements/{announcement_id}"
    assert "Stop this send" not in admin.get(page).get_data(as_text=True)
    assert admin.get(f"{page}/stop").status_code == 409
    _, html, token = open_check(admin, page)
    press(admin, page, "send-now", html, token or "")
    with app.app_context():
        from mailer.engine.announcement_sender import DeliverySummary, start_due_announcements

        start_due_announcements(db.session, clock=clock, hold_after=timedelta(hours=6), summary=DeliverySummary())
    assert 'href="/admin/announcements/1/stop">Stop this send</a>'.replace("1", str(announcement_id)) in (
        admin.get(page).get_data(as_text=True)
    )
    asked = admin.get(f"{page}/stop").get_data(as_text=True)
    assert "the 3 still waiting will not get it" in asked and "Keep sending" in asked
    stopped = admin_post(admin, f"{page}/stop", f"{page}/stop")
    assert stopped.status_code == 303
    assert "3 members waiting for it will not get it" in admin.get(page).get_data(as_text=True)
    run_tick_for_app(app)
    assert smtp.received == [] and state_and_deliveries(app, announcement_id)[0] is S.CANCELLED
    assert admin_post(admin, page, f"{page}/stop").status_code == 409


def test_every_shipped_template_has_its_gaps_caught(app):
    """V2: the four templates `db upgrade` installs mark what to fill in, in square brackets (or an example link), so
    a draft made from any of them cannot be sent until it is finished."""
    from mailer.announcements.gaps import find_gaps
    from mailer.models import AnnouncementTemplate

    with app.app_context():
        templates = list(db.session.scalars(select(AnnouncementTemplate)))
        assert len(templates) == 4
        for template in templates:
            found = find_gaps(template.subject, template.body_markdown)
            assert "[your name]" in {g.found for g in found}, template.name
