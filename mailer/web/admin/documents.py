"""Hosted document pages for admins (issue 9): upload a letter with an announcement, remove it.

Thin: read the upload, call mailer.announcements.documents in a transaction, respond. Only the upload page
takes a large body, and only from a logged-in admin (see import_upload_limit in members.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, cast

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from mailer.announcements import documents as domain
from mailer.announcements.states import EDITABLE
from mailer.errors import InvalidInput, StorageFull
from mailer.extensions import db
from mailer.mail.document_links import human_size
from mailer.models import Announcement, Document
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import ActionForm, DocumentForm
from mailer.web.context import clock, current_settings
from mailer.web.libs import current_user

log = logging.getLogger(__name__)
FORM_OVERHEAD = 64 * 1024  # the multipart envelope and the other fields, on top of the file itself


@bp.url_value_preprocessor
def document_upload_limit(endpoint: str | None, values: dict[str, object] | None) -> None:
    """Raise the body limit for the upload page only, before anything reads the form."""
    if endpoint == "admin.upload_document" and current_user.is_authenticated:
        request.max_content_length = _max_bytes() + FORM_OVERHEAD


@bp.route("/announcements/<int:announcement_id>/documents/new", methods=["GET", "POST"])
def upload_document(announcement_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Announcement, announcement_id)
    form = DocumentForm()
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        upload = form.document.data
        try:
            with transaction(db.session()):
                document = domain.store_document(
                    db.session(),
                    item,
                    cast(BinaryIO, upload.stream),  # werkzeug's IO[bytes]: a binary file, as store_document reads
                    file_name=upload.filename or "",
                    title=form.title.data or "",
                    directory=_directory(),
                    max_bytes=_max_bytes(),
                    clock=clock(),
                )
        except InvalidInput as exc:
            field = form.title if exc.field == "title" else form.document
            field.errors = [*field.errors, str(exc)]
        except StorageFull as exc:
            log.error("admin %d: a document could not be stored: the disk is full", current_user.id)
            form.document.errors = [*form.document.errors, str(exc)]
            status = 507
        else:
            log.info("admin %d: added document %d to announcement %d", current_user.id, document.id, item.id)
            flash(f"“{document.title}” is attached. The email links to it.")
            return redirect(url_for("admin.announcement", announcement_id=item.id) + "#documents-title", 303)
    if item.state not in EDITABLE:
        flash(f"This announcement is {item.state.value}: documents can no longer be added.")
        return redirect(url_for("admin.announcement", announcement_id=item.id), 303)
    return render_template(
        "admin/documents/upload.html", item=item, form=form, max_size=human_size(_max_bytes())
    ), status


@bp.route("/announcements/<int:announcement_id>/documents/<int:document_id>/delete", methods=["GET", "POST"])
def delete_document(announcement_id: int, document_id: int) -> ResponseReturnValue:
    """GET asks for confirmation; POST removes the document and its file."""
    item = db.get_or_404(Announcement, announcement_id)
    document = db.get_or_404(Document, document_id)
    if document.announcement_id != item.id:
        return redirect(url_for("admin.announcement", announcement_id=item.id), 303)
    form = ActionForm()
    if form.validate_on_submit():
        title = document.title
        with transaction(db.session()):
            storage_name = domain.delete_document(db.session(), item, document, clock=clock())
        domain.remove_stored_file(_directory(), storage_name)  # after the commit: the row went first
        flash(f"“{title}” is no longer attached.")
        return redirect(url_for("admin.announcement", announcement_id=item.id) + "#documents-title", 303)
    size = human_size(document.size_bytes)
    return render_template("admin/documents/delete.html", item=item, document=document, form=form, size=size)


def _max_bytes() -> int:
    return current_settings().document_max_bytes


def _directory() -> Path:
    return current_settings().document_dir
