"""Member forms."""

from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired, Length

from mailer.web.libs import FlaskForm
from mailer.web.public.forms import email_field, groups_field, name_field, social_media_field


class PreferencesForm(FlaskForm):
    name = name_field()
    groups = groups_field()
    social_media = social_media_field()


class LostLinkForm(FlaskForm):
    email = email_field()


class ChangeAddressForm(FlaskForm):
    """A new email address for a membership, from the member's page or an admin's (V7)."""

    email = StringField(
        "New email address",
        validators=[
            DataRequired("Enter the new email address."),
            Length(max=254, message="Enter a valid email address, like name@example.com."),
        ],
    )
