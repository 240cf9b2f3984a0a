"""Public forms. Field checks here are about shape; the domain decides what the values mean."""

from __future__ import annotations

from wtforms import BooleanField, HiddenField, RadioField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, InputRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from mailer.models import SocialMedia
from mailer.web.libs import FlaskForm, SelectChoice
from mailer.web.numbers import database_id

SOCIAL_MEDIA_CHOICES = [
    SelectChoice(SocialMedia.YES.value, "Yes"),
    SelectChoice(SocialMedia.NO.value, "No"),
    SelectChoice(SocialMedia.PREFER_NOT_TO_SAY.value, "Prefer not to say"),
]


class CheckboxesField(SelectMultipleField):
    """One checkbox per choice, each with its own visible label."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def name_field() -> StringField:
    return StringField(
        "Name",
        validators=[
            DataRequired("Enter your name."),
            Length(max=100, message="Your name must be 100 characters or fewer."),
        ],
    )


def email_field() -> StringField:
    return StringField(
        "Email address",
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="Enter a valid email address, like name@example.com."),
        ],
    )


def groups_field() -> CheckboxesField:
    return CheckboxesField("Which news would you like?", coerce=database_id, validate_choice=True)


def social_media_field() -> RadioField:
    return RadioField(
        "Do you follow the forum on social media?",
        choices=SOCIAL_MEDIA_CHOICES,  # type: ignore[arg-type]  # types-WTForms predates SelectChoice
        validators=[InputRequired("Tell us whether you follow the forum on social media.")],
    )


class JoinForm(FlaskForm):
    """The join form's fields; the preferences form shares the ones a member can change."""

    name = name_field()
    email = email_field()
    groups = groups_field()
    social_media = social_media_field()
    consent = BooleanField(
        "I agree", validators=[DataRequired("Tick the box to say you want to get our emails.")]
    )
    # Honeypot: hidden from people, filled in by bots. A hit is answered like a success.
    website = StringField("Leave this empty", validators=[Length(max=200)])


class EmbedJoinForm(JoinForm):
    """The join form inside another website's frame (R2): the same fields, but its protection against forged
    posts is a signed form token and the Origin check (mailer.web.public.embed), not the session cookie that
    browsers block in a cross-site frame."""

    class Meta:
        csrf = False

    form_token = HiddenField()


class ButtonForm(FlaskForm):
    """A form that is only a button (and the CSRF token)."""
