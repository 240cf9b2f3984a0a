"""The 'Embed on your website' page (R2): the snippets that put /join/embed or a join button on the forum's site."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from mailer.web.admin import bp


@bp.get("/reach/embed")
def reach_embed() -> ResponseReturnValue:
    return render_template("admin/reach_embed.html")
