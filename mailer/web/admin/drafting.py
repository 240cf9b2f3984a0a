"""Write and see (V3, issue 18.4): what the compose page's script asks the server while the admin types.

Each answer comes from the code the email and the engine use: the preview is AnnouncementMail.sample, the
count is lifecycle.count_audience (the engine's audience query). Without JavaScript none of this is
called: the compose page saves with its Save button and shows the saved preview below."""

from __future__ import annotations

import logging

from flask import Response, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from mailer.announcements import drafts
from mailer.announcements import lifecycle as domain
from mailer.announcements.documents import find_document_links
from mailer.announcements.readability import TARGET_READING_AGE, reading_hint
from mailer.errors import InvalidInput, MailerError
from mailer.extensions import db
from mailer.mail.announcement import AnnouncementContent
from mailer.mail.personal_fields import check_placeholders
from mailer.members.membership import list_groups
from mailer.models import SOCIAL_MEDIA_QUESTIONS, Announcement, SocialMediaQuestion
from mailer.transaction import transaction
from mailer.web.admin import bp
from mailer.web.admin.forms import AudienceForm, AutosaveForm, DraftPreviewForm
from mailer.web.context import announcement_mail, clock
from mailer.web.libs import SelectChoice, current_user
from mailer.web.numbers import MAX_ID, parse_int

log = logging.getLogger(__name__)

# The frame the live preview is written into: its own script may run (it takes the HTML from the compose page
# and nothing else), the email's inline styles apply, nothing else loads.
FRAME_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)


def group_choices() -> list[SelectChoice]:
    return [SelectChoice(g.id, g.name) for g in list_groups(db.session())]


def social_media_filter_words(group_ids: list[int]) -> dict[str, object]:
    """What the "no social media" box counts, in words and numbers, for the compose page (issue 18.9)."""
    counts = drafts.without_social_media_by_question(db.session(), group_ids)
    return {
        "current": SOCIAL_MEDIA_QUESTIONS[SocialMediaQuestion.USES_SOCIAL_MEDIA],
        "earlier": SOCIAL_MEDIA_QUESTIONS[SocialMediaQuestion.FOLLOWS_FORUM],
        "current_count": counts[SocialMediaQuestion.USES_SOCIAL_MEDIA],
        "earlier_count": counts[SocialMediaQuestion.FOLLOWS_FORUM],
    }


def reading_words(markdown: str) -> dict[str, object]:
    hint = reading_hint(markdown)
    if hint.reading_age is None:
        message = "Write a little more to see its reading age."
    elif hint.above_target:
        message = (
            f"Reading age about {hint.reading_age}. GOV.UK aims for about {TARGET_READING_AGE}: "
            "shorter sentences and everyday words help. The longest sentences are below."
        )
    else:
        message = f"Reading age about {hint.reading_age}. GOV.UK aims for about {TARGET_READING_AGE}: this is fine."
    return {"age": hint.reading_age, "above": hint.above_target, "message": message, "longest": list(hint.longest)}


@bp.get("/drafting/audience")
def drafting_audience() -> ResponseReturnValue:
    """How many confirmed members the ticked boxes reach right now: the engine's own query."""
    form = AudienceForm(formdata=request.args)
    form.groups.choices = group_choices()  # type: ignore[assignment]  # types-WTForms predates SelectChoice
    if not form.validate():
        return jsonify(error="Choose groups from the list."), 400
    group_ids = list(form.groups.data or [])
    count = domain.count_audience(db.session(), group_ids, bool(form.only_without_social_media.data))
    return jsonify(count=count, members="member" if count == 1 else "members", **social_media_filter_words(group_ids))


@bp.post("/drafting/preview")
def drafting_preview() -> ResponseReturnValue:
    """The email as it will look (subject, HTML, text), rendered from the text as typed, not yet saved;
    and the reading-age hint. A misspelt `{{ field }}` is a problem to show, not an error page."""
    form = DraftPreviewForm()
    if not form.validate_on_submit():
        return jsonify(problem="The preview could not be made. Save the page and reload it."), 400
    subject, body = form.subject.data or "", (form.body.data or "").replace("\r\n", "\n")
    reading = reading_words(body)
    try:
        check_placeholders(subject, field="subject")
        check_placeholders(body, field="body")
    except InvalidInput as exc:
        return jsonify(problem=str(exc), reading=reading)
    announcement_id = _optional_id(form.announcement_id.data)
    documents = find_document_links(db.session(), [announcement_id]).get(announcement_id, ()) if announcement_id else ()
    # An unsaved draft has no id yet; its "View in your browser" link in the preview names one no row has.
    content = AnnouncementContent(announcement_id or MAX_ID, subject, body, clock().now(), documents)
    shown_subject, html, text = announcement_mail().sample(content, to_name="")
    return jsonify(subject=shown_subject, html=html, text=text, problem=None, reading=reading)


@bp.get("/drafting/frame")
def drafting_frame() -> ResponseReturnValue:
    """The empty page the live preview is written into (by preview-frame.js, from the compose page)."""
    response = Response(render_template("admin/preview_frame.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = FRAME_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/drafting/autosave")
def drafting_autosave() -> ResponseReturnValue:
    """Keep a draft as it is typed (issue 18.4): the first save makes the draft and says its edit address."""
    form = AutosaveForm()
    form.groups.choices = group_choices()  # type: ignore[assignment]  # types-WTForms predates SelectChoice
    if not form.validate_on_submit():
        first = next(
            (e[0] for e in form.errors.values() if isinstance(e, list) and e and isinstance(e[0], str)),
            "It cannot be saved yet.",
        )
        return jsonify(saved=False, message=f"Not saved yet: {first}"), 400
    announcement_id = _optional_id(form.announcement_id.data)
    draft = domain.AnnouncementDraft(
        subject=form.subject.data or "",
        body_markdown=form.body.data or "",
        group_ids=list(form.groups.data or []),
        only_without_social_media=bool(form.only_without_social_media.data),
    )
    try:
        with transaction(db.session()):
            item: Announcement = drafts.autosave_draft(
                db.session(), announcement_id, draft, admin_id=current_user.id, clock=clock()
            )
    except LookupError:
        return jsonify(saved=False, message="This draft no longer exists. Copy your text somewhere safe."), 404
    except MailerError as exc:
        db.session.rollback()
        return jsonify(saved=False, message=f"Not saved yet: {exc}"), 409 if not isinstance(exc, InvalidInput) else 400
    saved_at = domain.to_london(clock().now())
    if announcement_id is None:
        log.info("admin %d: draft %d made by autosave", current_user.id, item.id)
    return jsonify(
        saved=True,
        id=item.id,
        message=f"Saved at {saved_at:%H:%M}",
        edit_url=url_for("admin.edit_announcement", announcement_id=item.id),
    )


def _optional_id(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        return parse_int(raw)
    except ValueError:
        raise InvalidInput("The page is out of date. Reload it and try again.") from None


@bp.context_processor
def drafting_helpers() -> dict[str, object]:
    """The compose page's hints, worked out when the page is drawn (so they show without JavaScript too)."""
    return {"reading_words": reading_words, "social_media_filter_words": social_media_filter_words}
