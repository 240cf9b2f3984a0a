"""The groups page (V6, issue 20): owners add, rename, reorder, retire and bring back groups.

Thin like the other admin pages: each change is one call to mailer.members.groups in a transaction.
Retiring is asked first (GET shows how many people are in the group; POST retires)."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.members import groups as domain
from mailer.models import Group
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import ActionForm, GroupForm, MoveGroupForm
from mailer.web.context import clock

log = logging.getLogger(__name__)


@bp.get("/groups")
def groups() -> ResponseReturnValue:
    return _list_page(GroupForm(formdata=None))


@bp.post("/groups")
def groups_add() -> ResponseReturnValue:
    form = GroupForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                group = domain.add_group(db.session(), form.name.data or "", form.description.data or "")
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            log.info("group added: id=%s", group.id)
            flash(f"Group “{group.name}” added. It is on the join form now.")
            return redirect(url_for("admin.groups"), 303)
    return _list_page(form), 400


@bp.route("/groups/<int:group_id>/edit", methods=["GET", "POST"])
def groups_edit(group_id: int) -> ResponseReturnValue:
    group = _group(group_id)
    form = GroupForm(data={"name": group.name, "description": group.description})
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                changes = domain.change_group(db.session(), group, form.name.data or "", form.description.data or "")
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            if changes:
                log.info("group renamed: id=%s fields=%s", group.id, ",".join(sorted(changes)))
                flash(f"Group “{group.name}” saved.")
            else:
                flash("Nothing was changed.")
            return redirect(url_for("admin.groups"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/groups/edit.html", form=form, group=group), status


@bp.post("/groups/<int:group_id>/move")
def groups_move(group_id: int) -> ResponseReturnValue:
    group = _group(group_id)
    form = MoveGroupForm()
    if not form.validate_on_submit():
        raise InvalidInput("The form had expired or was not complete. Go back and try again.")
    with transaction(db.session()):
        moved = domain.move_group(db.session(), group, domain.Direction(form.direction.data))
    if moved:
        log.info("group moved: id=%s direction=%s", group.id, form.direction.data)
        flash(f"Group “{group.name}” moved {form.direction.data}.")
    else:
        flash(f"Group “{group.name}” is already at the {'top' if form.direction.data == 'up' else 'bottom'}.")
    return redirect(url_for("admin.groups", _anchor=f"group-{group.id}"), 303)


@bp.route("/groups/<int:group_id>/retire", methods=["GET", "POST"])
def groups_retire(group_id: int) -> ResponseReturnValue:
    """GET asks, saying how many people are in the group; POST retires it."""
    group = _group(group_id)
    form = ActionForm()
    if form.validate_on_submit():
        with transaction(db.session()):
            retired = domain.retire_group(db.session(), group, clock=clock())
        if retired:
            log.info("group retired: id=%s", group.id)
            flash(f"Group “{group.name}” retired. It is no longer on the join form or in the audience.")
        return redirect(url_for("admin.groups"), 303)
    people = domain.count_people_in(db.session(), group.id)
    return render_template("admin/groups/retire.html", group=group, people=people, form=form)


@bp.post("/groups/<int:group_id>/restore")
def groups_restore(group_id: int) -> ResponseReturnValue:
    group = _group(group_id)
    if not ActionForm().validate_on_submit():
        raise InvalidInput("The form had expired. Go back and try again.")
    with transaction(db.session()):
        restored = domain.restore_group(db.session(), group)
    if restored:
        log.info("group restored: id=%s", group.id)
        flash(f"Group “{group.name}” brought back. It is on the join form again.")
    return redirect(url_for("admin.groups"), 303)


def _group(group_id: int) -> Group:
    return db.get_or_404(Group, group_id)


def _list_page(form: GroupForm) -> str:
    summaries = domain.summarise_groups(db.session())
    return render_template(
        "admin/groups/list.html",
        form=form,
        active=[g for g in summaries if not g.retired],
        retired=[g for g in summaries if g.retired],
        action_form=ActionForm(),
    )


def _field_error(form: GroupForm, exc: InvalidInput) -> None:
    field = exc.field if exc.field in ("name", "description") else "name"
    getattr(form, field).errors.append(str(exc))
