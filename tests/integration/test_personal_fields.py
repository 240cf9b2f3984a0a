"""Issue 9, personal fields: {{ name }} and {{ groups }} filled per member in both parts and the Subject,
never read as Markdown or HTML, refused when misspelt, and still rendered once per announcement."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.mail.personal_fields import check_placeholders, groups_value
from mailer.models import Announcement
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import flat, html_words, parts

BODY = (
    "# Survey closing soon\n\n"
    "Dear {{ name }},\n\n"
    "You get this as a member of {{groups}}.\n\n"
    "- The survey closes on **Friday 10 May at 5pm**.\n"
)


def send_now(client, announcement_id: int) -> None:  # type: ignore[no-untyped-def]
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(client, page, f"{page}/send-now").status_code == 303


def test_each_member_gets_their_own_name_and_groups_in_both_parts_and_subject(app, clock, smtp):
    """Every recipient's copy carries their values (Subject, text, HTML); a member with no name gets the fallback."""
    with app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2, 3])
        add_member("sam@example.org", clock=clock, name="Sam", groups=[1])
        nameless = add_member("nameless@example.org", clock=clock, name="x", groups=[])
        from mailer.models import Member

        db.session.get(Member, nameless).name = ""
        db.session.commit()
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="{{ name }}: the survey closes on Friday", body=BODY))
    run_tick_for_app(app)
    by_address = {r.rcpt_tos[0]: r.message for r in smtp.wait_for(3)}

    zoe = by_address["zoe@example.org"]
    text, html = parts(zoe)
    assert zoe["Subject"] == "Zoë Parent: the survey closes on Friday"
    assert "Dear Zoë Parent," in text and "Dear Zoë Parent," in html
    assert "member of Local Offer working group and Voice and Influence group." in flat(text)
    assert "member of Local Offer working group and Voice and Influence group." in " ".join(html_words(html))
    assert "<title>Zoë Parent: the survey closes on Friday</title>" in html

    sam_text, sam_html = parts(by_address["sam@example.org"])
    assert "Dear Sam," in sam_text and "Dear Sam," in sam_html and "Zoë" not in sam_text + sam_html
    assert "member of Forum news." in flat(sam_text)

    nobody = by_address["nameless@example.org"]
    nobody_text, nobody_html = parts(nobody)
    assert nobody["Subject"] == "parent or carer: the survey closes on Friday"
    assert "Dear parent or carer," in nobody_text and "Dear parent or carer," in nobody_html
    assert "member of the forum's email list." in flat(nobody_text)
    for message in by_address.values():
        text, html = parts(message)
        assert "{{" not in text + html and "MAILERSLOT" not in text + html + str(message["Subject"])


def test_a_name_with_markdown_and_html_characters_appears_literally(app, clock, smtp):
    """A member's name is text, never markup: *Zoë* <b> shows as typed in both parts, escaped in the HTML."""
    with app.app_context():
        add_member("tricky@example.org", clock=clock, name="*Zoë* <b>bold</b> & [x](https://evil.example)")
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Hello {{ name }}", body=BODY))
    run_tick_for_app(app)
    message = smtp.wait_for(1)[0].message
    text, html = parts(message)
    literal = "*Zoë* <b>bold</b> & [x](https://evil.example)"
    assert f"Dear {literal}," in text
    assert "Dear *Zoë* &lt;b&gt;bold&lt;/b&gt; &amp; [x](https://evil.example)," in html
    assert "<em>Zoë</em>" not in html and "<b>bold</b>" not in html and 'href="https://evil.example' not in html
    assert message["Subject"] == f"Hello {literal}"


@pytest.mark.parametrize(
    ("subject", "body", "field", "message"),
    [
        ("Hello", "# Title\n\nHello,\n{{ nmae }} here", "body",
         "Line 4: {{ nmae }} is not a field you can use. You can use {{ name }} and {{ groups }}."),
        ("Hello {{ email }}", "Hello", "subject",
         "In the subject: {{ email }} is not a field you can use. You can use {{ name }} and {{ groups }}."),
        ("Hello", "Dear {{ name }\n", "body", "Line 1: a field is not written correctly"),
    ],
)
def test_unknown_or_broken_placeholder_is_refused_with_its_line(app, clock, subject, body, field, message):
    """Saving refuses a misspelt field with the line and the name, and saves nothing."""
    admin = logged_in_admin(app, clock)
    response = admin_post(admin, "/admin/announcements/new", "/admin/announcements/new",
                          {"subject": subject, "body": body})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    with pytest.raises(InvalidInput) as caught:
        check_placeholders(body if field == "body" else subject, field=field)
    assert caught.value.field == field
    with app.app_context():
        assert db.session.scalars(select(Announcement)).all() == []


def test_preview_shows_a_chosen_member_and_defaults_to_the_test_values(app, clock):
    """The preview fills the fields for a chosen sample member; by default, as the test email does."""
    with app.app_context():
        member_id = add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2])
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="For {{ name }}", body=BODY)
    default = admin.get(f"/admin/announcements/{announcement_id}").get_data(as_text=True)
    assert "For parent or carer" in default and "Dear parent or carer," in default
    assert "Zoë Parent – zoe@example.org" in default
    chosen = admin.get(f"/admin/announcements/{announcement_id}?sample={member_id}").get_data(as_text=True)
    assert "For Zoë Parent" in chosen and "Dear Zoë Parent," in chosen
    assert f"preview.html?sample={member_id}" in chosen
    html = admin.get(f"/admin/announcements/{announcement_id}/preview.html?sample={member_id}").get_data(as_text=True)
    assert "Dear Zoë Parent," in html and "Local Offer working group" in html


def test_archive_shows_generic_words_not_a_members_values(app, clock, smtp):
    """J7: the public copy of a personalised announcement names nobody."""
    with app.app_context():
        add_member("zoe@example.org", clock=clock, name="Zoë Parent", groups=[2])
    admin = logged_in_admin(app, clock)
    announcement_id = compose(admin, subject="News for {{ name }}", body=BODY)
    send_now(admin, announcement_id)
    run_tick_for_app(app)
    smtp.wait_for(1)
    page = f"/admin/announcements/{announcement_id}"
    assert admin_post(admin, page, f"{page}/publish", {"public": "1"}).status_code == 303
    public = app.test_client().get(f"/archive/{announcement_id}").get_data(as_text=True)
    assert "News for parent or carer" in public and "Dear parent or carer," in public
    assert "Zoë" not in public and "{{" not in public


def test_groups_are_joined_in_plain_english():
    """One, two and three groups read as a sentence; none gives the fallback."""
    assert groups_value(["A"]) == "A"
    assert groups_value(["A", "B"]) == "A and B"
    assert groups_value(["A", "B", "C"]) == "A, B and C"
    assert groups_value([]) == "the forum's email list"


def test_personalised_announcement_is_rendered_once_for_many_members(app, clock, smtp, monkeypatch):
    """Render once, fill per member: Markdown runs once for the whole send, not once per recipient."""
    import mailer.mail.emails as emails
    from support.factories import add_members

    add_members(app, clock, 25)
    calls = []
    real = emails.render_parts
    monkeypatch.setattr(emails, "render_parts", lambda md, *rest: calls.append(md) or real(md, *rest))
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Hi {{ name }}", body=BODY))
    calls.clear()  # the admin's preview pages rendered it too
    run_tick_for_app(app)
    received = smtp.wait_for(25)
    assert len({r.message["Subject"] for r in received}) == 25
    assert len(calls) <= 2  # the body and the footer, once


def test_group_names_are_read_with_one_query_per_batch(make_app, clock, smtp):
    """{{ groups }} costs one query for a whole batch of deliveries, not one per member (S7)."""
    from sqlalchemy import event

    from support.factories import add_members

    app = make_app(MAILER_BATCH_SIZE=20)
    add_members(app, clock, 50, groups=[1, 3])
    admin = logged_in_admin(app, clock)
    send_now(admin, compose(admin, subject="Hello", body="You are in {{ groups }}."))
    statements: list[str] = []
    with app.app_context():
        engine = db.engine
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        run_tick_for_app(app)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    received = smtp.wait_for(50)
    assert all("You are in Forum news and Voice and Influence group." in flat(parts(r.message)[0]) for r in received)
    group_reads = [s for s in statements if "member_group" in s and s.lstrip().upper().startswith("SELECT")]
    assert len(group_reads) == 3, group_reads  # batches of 20, 20 and 10
