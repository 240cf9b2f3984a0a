"""The reach page (R1, issue 20 part 4): the poster and leaflet with a preview and download links, and the
three lines on what joining gives, which both print. Sections are separate partials in templates/admin/reach/
so more ways to reach parents (an embed snippet, issue 20 part 5) are one include each."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.members.forum_details import MAX_JOINING_LINE, DetailsInput, save_forum_details
from mailer.members.posters import PrintSize, short_join_address
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import JoiningLinesForm
from mailer.web.context import clock, current_forum_details, current_settings

log = logging.getLogger(__name__)


@bp.get("/reach")
def reach() -> ResponseReturnValue:
    lines = current_forum_details().joining_lines
    form = JoiningLinesForm(formdata=None, data={"line_1": lines[0], "line_2": lines[1], "line_3": lines[2]})
    return _page(form)


@bp.post("/reach/lines")
def reach_lines() -> ResponseReturnValue:
    form = JoiningLinesForm()
    if form.validate_on_submit():
        wanted = DetailsInput(joining_lines=(form.line_1.data or "", form.line_2.data or "", form.line_3.data or ""))
        try:
            with transaction(db.session()):
                changed = save_forum_details(db.session(), wanted, settings=current_settings(), clock=clock())
        except InvalidInput as exc:
            field = (exc.field or "").replace("joining_line_", "line_")
            getattr(form, field if field in form else "line_1").errors.append(str(exc))
        else:
            if changed:
                log.info("settings changed: %s", ",".join(changed))
                flash("The three lines are saved. The poster and leaflet show them now.")
            else:
                flash("Nothing was changed.")
            return redirect(url_for("admin.reach"), 303)
    return _page(form), 400


def _page(form: JoiningLinesForm) -> str:
    return render_template(
        "admin/reach/page.html",
        form=form,
        sizes=list(PrintSize),
        short_address=short_join_address(current_settings().base_url),
        max_line=MAX_JOINING_LINE,
    )
