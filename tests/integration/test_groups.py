"""V6 groups (issue 20 part 1) through the pages: add, rename, reorder, retire and bring back at /admin/groups;
the join form, the preferences page and the audience follow at once; bad input gets a clear message."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Announcement, Group, Member
from mailer.worker.runner import run_tick_for_app
from support.factories import add_member, admin_post, compose, logged_in_admin
from support.mail import link_to
from support.web import csrf_token, join, join_and_confirm, path_of

STARTING_SET = ["Forum news", "Local Offer working group", "Voice and Influence group"]


def group_names(page: str) -> list[str]:
    """The group labels offered by the checkboxes on a page, in order."""
    return [html.unescape(label) for label in re.findall(r'name="groups"[^>]*>\s*<label[^>]*>([^<]+)</label>', page)]


def groups_in_db(app: Any) -> list[tuple[int, str, bool]]:
    with app.app_context():
        rows = db.session.scalars(select(Group).order_by(Group.position, Group.id)).all()
        result = [(g.id, g.name, g.retired_at is not None) for g in rows]
        db.session.remove()
    return result


def group_id(app: Any, name: str) -> int:
    return next(gid for gid, gname, _ in groups_in_db(app) if gname == name)


def test_the_first_migrations_groups_are_the_starting_set_with_their_ids(app, clock):
    """V6: the three groups of the first migration are there, in order, with ids 1-3, none retired."""
    assert groups_in_db(app) == [(1, STARTING_SET[0], False), (2, STARTING_SET[1], False), (3, STARTING_SET[2], False)]
    client = logged_in_admin(app, clock)
    page = client.get("/admin/groups").get_data(as_text=True)
    assert all(html.escape(name) in page for name in STARTING_SET)


def test_add_rename_reorder_retire_and_bring_back_and_the_forms_follow(app, clock):
    """V6: each change made on /admin/groups shows at once on the join form and in the audience picker."""
    client = logged_in_admin(app, clock)
    response = admin_post(client, "/admin/groups", "/admin/groups",
                          {"name": "Autism support group", "description": "For parents of autistic children"})
    assert response.status_code == 303
    assert group_names(client.get("/join").get_data(as_text=True)) == [*STARTING_SET, "Autism support group"]
    autism = group_id(app, "Autism support group")
    assert autism == 4

    response = admin_post(client, f"/admin/groups/{autism}/edit", f"/admin/groups/{autism}/edit",
                          {"name": "Autism and ADHD support group", "description": "For parents"})
    assert response.status_code == 303
    assert "Autism and ADHD support group" in group_names(client.get("/join").get_data(as_text=True))

    for _ in range(2):
        response = admin_post(client, "/admin/groups", f"/admin/groups/{autism}/move", {"direction": "up"})
        assert response.status_code == 303
    assert group_names(client.get("/join").get_data(as_text=True)) == [
        "Forum news", "Autism and ADHD support group", "Local Offer working group", "Voice and Influence group"
    ]
    response = admin_post(client, "/admin/groups", "/admin/groups/1/move", {"direction": "up"})
    assert response.status_code == 303
    assert "already at the top" in client.get("/admin/groups").get_data(as_text=True)

    confirm_page = client.get(f"/admin/groups/{autism}/retire").get_data(as_text=True)
    assert "0 people are in this group" in confirm_page
    response = admin_post(client, f"/admin/groups/{autism}/retire", f"/admin/groups/{autism}/retire")
    assert response.status_code == 303
    assert "Autism and ADHD support group" not in group_names(client.get("/join").get_data(as_text=True))
    audience = client.get("/admin/announcements/new").get_data(as_text=True)
    assert "Autism and ADHD support group" not in group_names(audience)
    assert "Local Offer working group" in group_names(audience)
    assert (autism, "Autism and ADHD support group", True) in groups_in_db(app)

    response = admin_post(client, "/admin/groups", f"/admin/groups/{autism}/restore")
    assert response.status_code == 303
    assert group_names(client.get("/join").get_data(as_text=True))[1] == "Autism and ADHD support group"
    assert "Autism and ADHD support group" in group_names(client.get("/admin/announcements/new").get_data(as_text=True))


@pytest.mark.parametrize(
    ("name", "description", "message"),
    [
        ("", "", "Enter a name for the group."),
        ("   ", "x", "Enter a name for the group."),
        ("x" * 300, "", "The group&#39;s name must be 100 characters or fewer."),
        ("Sensory group", "y" * 301, "The description must be 300 characters or fewer."),
        ("forum NEWS", "", "There is already a group called “Forum news”. Choose another name."),
    ],
)
def test_bad_group_input_gets_a_clear_message_and_changes_nothing(app, clock, name, description, message):
    """V6: empty, too long (300 characters) and duplicate names, whatever their case, are refused with a
    message on the form (400); the groups are as they were."""
    client = logged_in_admin(app, clock)
    before = groups_in_db(app)
    response = admin_post(client, "/admin/groups", "/admin/groups", {"name": name, "description": description})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and "There is a problem" in page
    response = admin_post(client, "/admin/groups/2/edit", "/admin/groups/2/edit",
                          {"name": name, "description": description})
    if name.casefold() != "forum news":  # renaming to a different case of another group's name is refused too
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert groups_in_db(app) == before


def test_renaming_a_group_to_its_own_name_in_another_case_is_allowed(app, clock):
    """V6: the duplicate check ignores the group being renamed ("Forum news" -> "Forum News")."""
    client = logged_in_admin(app, clock)
    response = admin_post(client, "/admin/groups/1/edit", "/admin/groups/1/edit", {"name": "Forum News"})
    assert response.status_code == 303
    assert groups_in_db(app)[0] == (1, "Forum News", False)


def test_retiring_asks_first_and_says_how_many_are_in_the_group(app, clock):
    """V6: GET /retire changes nothing and names the number of people; members keep the group afterwards."""
    with app.app_context():
        for n in range(3):
            add_member(f"p{n}@example.org", clock=clock, groups=[2])
        db.session.remove()
    client = logged_in_admin(app, clock)
    page = client.get("/admin/groups/2/retire").get_data(as_text=True)
    assert "3 people are in this group" in page and "Yes, retire the group" in page
    assert groups_in_db(app)[1][2] is False
    admin_post(client, "/admin/groups/2/retire", "/admin/groups/2/retire")
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email == "p0@example.org"))
        assert member is not None and [g.id for g in member.groups] == [2]
        db.session.remove()
    assert "3 people in this group" in client.get("/admin/groups").get_data(as_text=True)


def test_unknown_group_is_a_404_and_a_retired_group_cannot_be_chosen_on_the_join_form(app, clock, smtp):
    """V6: actions on a group that does not exist are a 404; posting a retired group's id to /join is refused."""
    client = logged_in_admin(app, clock)
    assert client.get("/admin/groups/99/edit").status_code == 404
    assert admin_post(client, "/admin/groups", "/admin/groups/99/move", {"direction": "up"}).status_code == 404
    admin_post(client, "/admin/groups/3/retire", "/admin/groups/3/retire")
    response = join(app.test_client(), email="late@example.org", groups=[3])
    assert response.status_code == 400
    assert "is not a valid choice" in response.get_data(as_text=True)


def test_a_member_keeps_a_retired_group_and_an_announcement_to_it_still_reports(app, clock, smtp):
    """V6: a member of a retired group keeps it when saving preferences (the page no longer offers it), and an
    announcement sent to the group before it was retired still reports its audience and deliveries."""
    client = logged_in_admin(app, clock)
    admin_post(client, "/admin/groups", "/admin/groups", {"name": "Sensory group"})
    sensory = group_id(app, "Sensory group")
    public = app.test_client()
    welcome = join_and_confirm(app, public, smtp, "sam@example.org", groups=[1, sensory])
    item = compose(client, subject="Sensory walk", body="Hello {{ name }}.", groups=[sensory])
    response = admin_post(client, f"/admin/announcements/{item}", f"/admin/announcements/{item}/send-now")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    before = len(smtp.received)
    run_tick_for_app(app)
    run_tick_for_app(app)
    assert len(smtp.wait_for(before + 1)) == before + 1

    admin_post(client, f"/admin/groups/{sensory}/retire", f"/admin/groups/{sensory}/retire")
    report = client.get(f"/admin/announcements/{item}/report").get_data(as_text=True)
    assert "1 sent, 0 waiting, 0 failed, 0 skipped" in report and "sam@example.org" in report
    summary = client.get(f"/admin/announcements/{item}").get_data(as_text=True)
    assert '<span data-field="sent">1</span> sent' in summary
    with app.app_context():
        sent = db.session.get(Announcement, item)
        assert sent is not None and [g.name for g in sent.groups] == ["Sensory group"]
        db.session.remove()

    preferences = path_of(link_to(welcome, "/preferences/"))
    page = public.get(preferences).get_data(as_text=True)
    assert "Sensory group" not in group_names(page)
    response = public.post(preferences, data={"csrf_token": csrf_token(page), "name": "Sam", "groups": ["1"],
                                              "social_media": "no"})
    assert response.status_code == 200
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.email == "sam@example.org"))
        assert member is not None and sorted(g.id for g in member.groups) == [1, sensory]
        db.session.remove()
