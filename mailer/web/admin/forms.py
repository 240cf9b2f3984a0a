"""Admin forms. Shape only; the domain (mailer.announcements.lifecycle) decides what is allowed."""

from __future__ import annotations

from wtforms import BooleanField, DateField, PasswordField, StringField, TextAreaField, TimeField
from wtforms.validators import DataRequired, InputRequired, Length

from mailer.web.libs import FlaskForm
from mailer.web.numbers import database_id
from mailer.web.public.forms import CheckboxesField


class LoginForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired("Enter your email address."), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1000)])


class AnnouncementForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired("Enter a subject.")])
    body = TextAreaField("Message", validators=[DataRequired("Write the announcement.")])
    groups = CheckboxesField("Who should get it?", coerce=database_id, validate_choice=True)
    only_without_social_media = BooleanField("Only members who said they do not use social media")


class ScheduleForm(FlaskForm):
    send_date = DateField("Date", validators=[InputRequired("Enter the date.")])
    send_time = TimeField("Time (UK time)", validators=[InputRequired("Enter the time.")])


class ActionForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class ConsentWordingForm(FlaskForm):
    text = TextAreaField("Consent wording", validators=[DataRequired("Enter the consent wording."), Length(max=2000)])
    privacy_notice_version = StringField(
        "Privacy notice version", validators=[DataRequired("Enter the privacy notice version."), Length(max=50)]
    )
