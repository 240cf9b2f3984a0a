"""Admin forms. Shape only; the domain (mailer.announcements.lifecycle) decides what is allowed."""

from __future__ import annotations

from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    SearchField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from mailer.members import admin as member_admin
from mailer.models import MemberStatus
from mailer.web.libs import FileField, FileRequired, FlaskForm, SelectChoice
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


class ConfirmSendForm(FlaskForm):
    """The check page's button (V1, issue 18): the signed token says what the admin was shown."""

    check = HiddenField(validators=[DataRequired("Check the announcement first."), Length(max=2000)])


class ConsentWordingForm(FlaskForm):
    text = TextAreaField("Consent wording", validators=[DataRequired("Enter the consent wording."), Length(max=2000)])
    privacy_notice_version = StringField(
        "Privacy notice version", validators=[DataRequired("Enter the privacy notice version."), Length(max=50)]
    )


class TemplateForm(FlaskForm):
    name = StringField("Template name", validators=[DataRequired("Give the template a name.")])
    subject = StringField("Subject", validators=[DataRequired("Enter a subject.")])
    body = TextAreaField("Message", validators=[DataRequired("Write the template's message.")])


class DocumentForm(FlaskForm):
    document = FileField(
        "Document (PDF, Word or OpenDocument)", validators=[FileRequired("Choose the document to upload.")]
    )
    title = StringField("Link text")


# A member's status in words: the filter's choices, and the members pages show the same (members.py).
STATUS_WORDS = {
    MemberStatus.MEMBER: "Member",
    MemberStatus.PENDING: "Waiting to confirm",
    MemberStatus.UNSUBSCRIBED: "Unsubscribed",
}


class MemberFilterForm(FlaskForm):
    """The search and filters: a GET form, so no CSRF token and the URL can be bookmarked."""

    class Meta:
        csrf = False

    q = SearchField(
        "Name or email address",
        validators=[
            Optional(),
            Length(max=member_admin.MAX_SEARCH_LENGTH, message="Search for 320 characters or fewer."),
        ],
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status")]  # type: ignore[arg-type]  # types-WTForms predates SelectChoice
        + [SelectChoice(s.value, w) for s, w in STATUS_WORDS.items()],
        default="",
    )
    group = SelectField(
        "Group",
        choices=[SelectChoice("", "Any group")],  # type: ignore[list-item]  # types-WTForms predates SelectChoice
        default="",
    )


class ImportUploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose the CSV file to upload.")])
