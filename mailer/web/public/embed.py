"""The join form for the forum's own website (R2): /join/embed, made to sit in a cross-site iframe.

In a cross-site frame Chromium (and Safari, Firefox) withhold third-party cookies, so the session cookie that
carries the usual CSRF token never arrives. This form is protected instead by
- a signed, time-limited form token in the page (itsdangerous, the app's secret key): bound to no session and
  holding nothing secret, it proves the post came from a form this server made within FORM_TOKEN_MAX_AGE;
- the Origin (or Referer) of the post: a browser names the page that sent it, and only our own pages (and the
  origins the owner listed) may post here, so another site cannot make its visitors' browsers join someone.
Everything else is the join form's own code (accept_join: the consent wording, no enumeration, the honeypot, the
double opt-in) and its rate limits, shared with /join.

Only this page may be framed, and only by the origins in MAILER_EMBED_ORIGINS: its Content-Security-Policy says
`frame-ancestors 'self' <origins>`; every other page keeps the site-wide policy."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Response, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from mailer.clock import Clock
from mailer.web import CONTENT_SECURITY_POLICY
from mailer.web.context import clock, current_settings
from mailer.web.libs import CSRFError, csrf_exempt
from mailer.web.public import bp
from mailer.web.public.forms import EmbedJoinForm
from mailer.web.public.routes import accept_join, join_address_limit, join_limit, prepare_join_form

log = logging.getLogger(__name__)

FORM_TOKEN_SALT = "mailer.join-embed-form"
FORM_TOKEN_MAX_AGE_SECONDS = 6 * 3600  # a parent may leave the form open a while before finishing it
FRAMED_BY_NOBODY = "frame-ancestors 'none'"


def form_serializer(secret_key: str, clock: Clock) -> URLSafeTimedSerializer:
    """Signs and reads the embedded form's token, timed by the app's clock."""

    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return URLSafeTimedSerializer(secret_key, salt=FORM_TOKEN_SALT, signer=ClockSigner)


def embed_policy(origins: tuple[str, ...]) -> str:
    """The site's Content-Security-Policy with the frame ancestors this page allows: ourselves and the listed
    origins (already checked to be plain origins by Settings)."""
    return CONTENT_SECURITY_POLICY.replace(FRAMED_BY_NOBODY, " ".join(("frame-ancestors 'self'", *origins)))


def _own_origins() -> set[str]:
    settings = current_settings()
    own = {request.host_url.rstrip("/").lower()}
    base = urlsplit(settings.base_url)
    if base.scheme and base.netloc:
        own.add(f"{base.scheme}://{base.netloc}".lower())
    return own | set(settings.embed_origins)


def _check_post() -> None:
    """Refuse a post that is not from a page we made (CSRF, R2): raises CSRFError, the 400 form-expired page."""
    sender = request.headers.get("Origin")
    if sender is None or sender == "null":
        referer = urlsplit(request.headers.get("Referer") or "")
        sender = f"{referer.scheme}://{referer.netloc}" if referer.scheme and referer.netloc else None
    if sender is None or sender.lower() not in _own_origins():
        log.info("join embed: a post from another site was refused")
        raise CSRFError("The form was not sent from our website.")
    token = request.form.get("form_token") or ""
    try:
        form_serializer(current_settings().secret_key, clock()).loads(
            token[:200], max_age=FORM_TOKEN_MAX_AGE_SECONDS
        )
    except BadSignature:  # also SignatureExpired
        raise CSRFError("The form was missing its security token, or it was too old.") from None


def _framable(body: str, status: int = 200) -> Response:
    response = make_response(body, status)
    response.headers["Content-Security-Policy"] = embed_policy(current_settings().embed_origins)
    # A post from this page must carry its origin (no-referrer would send "Origin: null"); only our own pages
    # get the referrer, and only the origin of it.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.route("/join/embed", methods=["GET", "POST"])
@join_limit
@join_address_limit
@csrf_exempt
def join_embed() -> ResponseReturnValue:
    if request.method == "POST":
        _check_post()
    form = EmbedJoinForm()
    wording_text = prepare_join_form(form)
    if accept_join(form):
        return redirect(url_for(".join_embed_done"), 303)
    form.form_token.data = form_serializer(current_settings().secret_key, clock()).dumps("join")
    status = 400 if form.is_submitted() else 200
    return _framable(render_template("public/embed.html", form=form, wording_text=wording_text, done=False), status)


@bp.get("/join/embed/check-your-email")
def join_embed_done() -> ResponseReturnValue:
    return _framable(render_template("public/embed.html", done=True))
