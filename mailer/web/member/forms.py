"""Member forms."""

from __future__ import annotations

from mailer.web.libs import FlaskForm
from mailer.web.public.forms import email_field, groups_field, name_field, social_media_field


class PreferencesForm(FlaskForm):
    name = name_field()
    groups = groups_field()
    social_media = social_media_field()


class LostLinkForm(FlaskForm):
    email = email_field()
