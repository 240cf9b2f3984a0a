"""Member forms."""

from __future__ import annotations

from wtforms import RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from mailer.web.libs import FlaskForm
from mailer.web.numbers import database_id
from mailer.web.public.forms import SOCIAL_MEDIA_CHOICES, CheckboxesField


class PreferencesForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired("Enter your name."),
            Length(max=100, message="Your name must be 100 characters or fewer."),
        ],
    )
    groups = CheckboxesField("Which news would you like?", coerce=database_id, validate_choice=True)
    social_media = RadioField(
        "Do you follow the forum on social media?",
        choices=SOCIAL_MEDIA_CHOICES,  # type: ignore[arg-type]  # types-WTForms predates SelectChoice
        validators=[InputRequired("Tell us whether you follow the forum on social media.")],
    )


class LostLinkForm(FlaskForm):
    email = StringField(
        "Email address",
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="Enter a valid email address, like name@example.com."),
        ],
    )
