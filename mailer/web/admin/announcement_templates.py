"""Announcement template pages (issue 9): list, create, edit, delete, and start a draft from one.

Thin like routes.py: each change is one call to mailer.announcements.templates in a transaction."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from mailer.announcements import templates as domain
from mailer.errors import InvalidInput
from mailer.extensions import db
from mailer.models import AnnouncementTemplate
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import ActionForm, TemplateForm
from mailer.web.context import clock
from mailer.web.libs import current_user


@bp.get("/templates")
def templates() -> ResponseReturnValue:
    return render_template(
        "admin/templates/list.html", templates=domain.list_templates(db.session()), action_form=ActionForm()
    )


@bp.route("/templates/new", methods=["GET", "POST"])
def new_template() -> ResponseReturnValue:
    form = TemplateForm()
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                template = domain.create_template(db.session(), _draft(form), clock=clock())
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash(f"Template “{template.name}” saved.")
            return redirect(url_for("admin.templates"), 303)
    return render_template("admin/templates/edit.html", form=form, template=None), 400 if form.is_submitted() else 200


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
def edit_template(template_id: int) -> ResponseReturnValue:
    template = db.get_or_404(AnnouncementTemplate, template_id)
    form = TemplateForm(data={"name": template.name, "subject": template.subject, "body": template.body_markdown})
    if form.validate_on_submit():
        try:
            with transaction(db.session()):
                domain.update_template(db.session(), template, _draft(form), clock=clock())
        except InvalidInput as exc:
            _field_error(form, exc)
        else:
            flash(f"Template “{template.name}” saved.")
            return redirect(url_for("admin.templates"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/templates/edit.html", form=form, template=template), status


@bp.route("/templates/<int:template_id>/delete", methods=["GET", "POST"])
def delete_template(template_id: int) -> ResponseReturnValue:
    """GET asks; POST deletes. Announcements made from it keep their own copy."""
    template = db.get_or_404(AnnouncementTemplate, template_id)
    form = ActionForm()
    if form.validate_on_submit():
        name = template.name
        with transaction(db.session()):
            domain.delete_template(db.session(), template)
        flash(f"Template “{name}” deleted.")
        return redirect(url_for("admin.templates"), 303)
    return render_template("admin/templates/delete.html", template=template, form=form)


@bp.post("/templates/<int:template_id>/use")
def use_template(template_id: int) -> ResponseReturnValue:
    """New announcement from template: a draft with its text, opened for editing."""
    template = db.get_or_404(AnnouncementTemplate, template_id)
    if not ActionForm().validate_on_submit():
        raise InvalidInput("The form had expired. Go back and try again.")
    with transaction(db.session()):
        item = domain.draft_from_template(db.session(), template, admin_id=current_user.id, clock=clock())
    flash(f"A new draft from the template “{template.name}”. Replace the words in [square brackets], then save.")
    return redirect(url_for("admin.edit_announcement", announcement_id=item.id), 303)


def _draft(form: TemplateForm) -> domain.TemplateDraft:
    return domain.TemplateDraft(
        name=form.name.data or "", subject=form.subject.data or "", body_markdown=form.body.data or ""
    )


def _field_error(form: TemplateForm, exc: InvalidInput) -> None:
    field = exc.field if exc.field in ("name", "subject", "body") else "name"
    getattr(form, field).errors.append(str(exc))
