"""Admin forms. Shape only; the domain (mailer.announcements.lifecycle) decides what is allowed."""

from __future__ import annotations

from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    RadioField,
    SearchField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from mailer.members import admin as member_admin
from mailer.models import AdminRole, MemberStatus
from mailer.web.libs import FileField, FileRequired, FlaskForm, SelectChoice
from mailer.web.numbers import database_id
from mailer.web.public.forms import (
    CheckboxesField,
    email_field,
    groups_field,
    name_field,
    social_media_field,
)


class LoginForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired("Enter your email address."), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=1000)])


# The roles an owner can give, in words (V4); the pages say what each may do.
ROLE_CHOICES = [
    SelectChoice(AdminRole.OWNER.value, "Owner: everything, including admins, settings, export and erasure"),
    SelectChoice(AdminRole.SENDER.value, "Sender: write, test, schedule and send announcements; see and add members"),
    SelectChoice(AdminRole.WRITER.value, "Writer: write drafts and test them to themselves; no member details"),
]


class InviteAdminForm(FlaskForm):
    email = StringField(
        "Email address", validators=[DataRequired("Enter the email address to invite."), Length(max=320)]
    )
    role = RadioField(
        "Role", choices=ROLE_CHOICES, validators=[InputRequired("Choose a role.")]  # type: ignore[arg-type]
    )


class RoleForm(FlaskForm):
    role = RadioField(
        "Role", choices=ROLE_CHOICES, validators=[InputRequired("Choose a role.")]  # type: ignore[arg-type]
    )


class NewPasswordForm(FlaskForm):
    """Choosing a password: from an invitation or a reset link."""

    password = PasswordField(
        "New password", validators=[DataRequired("Enter a password."), Length(max=1000, message="This is too long.")]
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password."), Length(max=1000)]
    )
    password = PasswordField(
        "New password",
        validators=[DataRequired("Enter a new password."), Length(max=1000, message="This is too long.")],
    )


class ChangeEmailForm(FlaskForm):
    email = StringField(
        "New email address", validators=[DataRequired("Enter your new email address."), Length(max=320)]
    )


class ForgotPasswordForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired("Enter your email address."), Length(max=320)])


class AnnouncementForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired("Enter a subject.")])
    body = TextAreaField("Message", validators=[DataRequired("Write the announcement.")])
    groups = CheckboxesField("Who should get it?", coerce=database_id, validate_choice=True)
    only_without_social_media = BooleanField("Only members who said they do not use social media")


class AutosaveForm(AnnouncementForm):
    """The compose form as autosave posts it (issue 18.4): no id yet means a new draft is made."""

    announcement_id = HiddenField()


class DraftPreviewForm(FlaskForm):
    """What the live preview and the reading-age hint need: the text as typed, not yet saved."""

    subject = StringField("Subject", validators=[Length(max=1000)])
    body = TextAreaField("Message", validators=[Length(max=200_000)])
    announcement_id = HiddenField()


class AudienceForm(FlaskForm):
    """The audience boxes as the compose page's script sends them (a GET: no CSRF token)."""

    class Meta:
        csrf = False

    groups = CheckboxesField("Who should get it?", coerce=database_id, validate_choice=True)
    only_without_social_media = BooleanField("Only members who said they do not use social media")


class TestSendForm(FlaskForm):
    """A test send (issue 18.5): up to five addresses typed in, and whose data fills it in."""

    addresses = TextAreaField(
        "Email addresses",
        validators=[Length(max=2000, message="Enter at most five email addresses.")],
    )
    sample = SelectField("Fill it in with the details of", choices=[], validate_choice=True)


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


class AuditFilterForm(FlaskForm):
    """The audit log's filters (V5): a GET form, so no CSRF token and the URL can be bookmarked.
    The choices of `who` and `what` are the admins and actions the log holds, set by the view."""

    class Meta:
        csrf = False

    who = SelectField("Who", choices=[], default="", validate_choice=True)
    what = SelectField("What", choices=[], default="", validate_choice=True)
    since = DateField("From (UK date)", validators=[Optional()])
    until = DateField("To (UK date, included)", validators=[Optional()])


class TwoStepCodeForm(FlaskForm):
    """A six-digit code from the authenticator app (setting up or turning off), or a recovery code."""

    code = StringField("Code from your authenticator app", validators=[DataRequired("Enter the code."), Length(max=40)])


class LoginCodeForm(FlaskForm):
    """The second page of a two-step log-in."""

    code = StringField(
        "Code from your authenticator app, or a recovery code",
        validators=[DataRequired("Enter the code from your authenticator app."), Length(max=40)],
    )


class SecurityPolicyForm(FlaskForm):
    require_two_step = BooleanField("Every admin must use two-step login")


class GroupForm(FlaskForm):
    """Add or change a group (V6); mailer.members.groups checks the values and says what is wrong."""

    name = StringField("Name")
    description = TextAreaField("Description (optional)")


class MoveGroupForm(FlaskForm):
    direction = SelectField(
        "Direction",
        choices=[SelectChoice("up", "Move up"), SelectChoice("down", "Move down")],  # type: ignore[list-item]
    )


class ForumSettingsForm(FlaskForm):
    """The forum's details (V6); mailer.members.forum_details checks the values and says what is wrong."""

    forum_name = StringField("Forum name")
    contact_address = StringField("Contact email address")
    privacy_notice_url = StringField("Privacy notice link (optional)")
    footer_line = StringField("Footer line (optional)")
    undo_seconds = StringField("How long you have to stop a send")


class JoiningLinesForm(FlaskForm):
    """The poster's and leaflet's three lines on what joining gives (R1)."""

    line_1 = StringField("First line")
    line_2 = StringField("Second line")
    line_3 = StringField("Third line")


# --- one member at a time (V7) ---------------------------------------------------------------------------------

SEND_CONFIRMATION = "email"
HOW_THEY_AGREED = [
    SelectChoice(SEND_CONFIRMATION, "Send them a confirmation email"),
    SelectChoice("phone", "They agreed by phone"),
    SelectChoice("paper_form", "They agreed on a paper form"),
    SelectChoice("in_person", "They agreed in person"),
]


class MemberDetailsForm(FlaskForm):
    """A member's name, groups and social media answer, as an admin changes them: the join form's fields."""

    name = name_field()
    groups = groups_field()
    social_media = social_media_field()


class NewMemberForm(MemberDetailsForm):
    """Add one member (V7): the join form's fields, and how they agreed."""

    email = email_field()
    how = RadioField(
        "How did they agree to get our emails?",
        choices=HOW_THEY_AGREED,  # type: ignore[arg-type]  # types-WTForms predates SelectChoice
        default=SEND_CONFIRMATION,
        validators=[InputRequired("Choose how they agreed.")],
    )
    agreed_on = DateField("The date they agreed", validators=[Optional()])
    wording = RadioField("The wording they were told", coerce=database_id, validators=[Optional()])
    note = TextAreaField(
        "Note (optional)", validators=[Length(max=500, message="The note must be 500 characters or fewer.")]
    )

