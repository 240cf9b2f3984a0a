"""Who may use which admin page or action (V4, issue 19): one table, checked in one place.

Every admin endpoint has exactly one entry: the roles allowed, and for a change the audit action recorded
when its view commits (V5). The web layer's admin guard reads this table before every admin request, and the
menu shows only what `may` allows; a test walks the app's URL map, so a new page without an entry fails the
suite. An endpoint missing from the table is refused to everyone. Adding a page is one line here.

Roles: owners may do everything; senders write, test, schedule, send, pause and stop announcements, see members
and their consent history and add or edit single members (no export, import, erasure, admins or settings);
writers write, preview and test drafts to themselves, and see no member data at all (counts only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mailer.models import AdminRole

OWNERS = frozenset({AdminRole.OWNER})
SENDERS = frozenset({AdminRole.OWNER, AdminRole.SENDER})
EVERYONE = frozenset(AdminRole)

# An audit action: a fixed text, or worked out from the view's arguments and the posted form.
AuditAction = str | Callable[[Mapping[str, Any], Mapping[str, str]], str | None]  # None: nothing to record


@dataclass(frozen=True)
class Permission:
    """The roles that may use an endpoint, and what a change through it records in the audit log.

    `audit`: the action recorded when a POST to the endpoint commits (a view that refuses the input and
    commits nothing records nothing). `audit_get`: record it on a successful GET too (downloads).
    `creates`: the table of the row the action creates, whose new id becomes the audited object.
    `public`: reachable without logging in (the log-in page itself)."""

    roles: frozenset[AdminRole]
    audit: AuditAction | None = None
    audit_get: bool = False
    creates: str | None = None
    public: bool = False

    def allows(self, role: AdminRole) -> bool:
        return self.public or role in self.roles

    def audit_action(self, view_args: Mapping[str, Any], form: Mapping[str, str]) -> str | None:
        if self.audit is None or isinstance(self.audit, str):
            return self.audit
        return self.audit(view_args, form)


STATE_CHANGES = {
    "send-now": "announcement sent",
    "unschedule": "send stopped in the undo window (back to a draft)",
    "cancel": "announcement stopped",
    "pause": "announcement paused",
    "resume": "announcement resumed",
}


def _state_change(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str:
    return STATE_CHANGES.get(str(view_args.get("action")), "announcement changed")


def _confirm_send(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str:
    return "announcement scheduled" if view_args.get("action") == "schedule" else "announcement sent"


def _publish(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str:
    return "announcement published" if form.get("public") == "1" else "announcement taken out of the archive"


def _autosave(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str | None:
    """Autosave's first save makes the draft (recorded); the saves every few seconds after it are not."""
    return None if form.get("announcement_id") else "announcement created"


def _role_change(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str:
    role = form.get("role")
    return f"admin role changed to {role}" if role in {r.value for r in AdminRole} else "admin role changed"


def _security_policy(view_args: Mapping[str, Any], form: Mapping[str, str]) -> str:
    return "two-step login required for everyone" if form.get("require_two_step") else "two-step login not required"


PERMISSIONS: dict[str, Permission] = {
    # the log-in view records log-ins and failed log-ins itself (mailer.web.auth.audit_login)
    "admin.login": Permission(EVERYONE, public=True),
    "admin.logout": Permission(EVERYONE, audit="logged out"),
    "admin.dashboard": Permission(EVERYONE),
    # the code page of a two-step log-in (before log-in: it records the log-in itself)
    "admin.login_code": Permission(EVERYONE, public=True),
    # one's own account: two-step login and log-ins (sessions_end: anyone's for owners, checked by the domain)
    "admin.two_step": Permission(EVERYONE, audit="two-step login turned on"),
    "admin.two_step_recovery_codes": Permission(EVERYONE, audit="recovery codes made"),
    "admin.two_step_off": Permission(EVERYONE, audit="two-step login turned off"),
    "admin.sessions": Permission(EVERYONE),
    "admin.sessions_end_others": Permission(EVERYONE, audit="other log-ins ended"),
    "admin.sessions_end": Permission(EVERYONE, audit="log-in ended"),
    "admin.security_policy": Permission(OWNERS, audit=_security_policy),
    # announcements
    "admin.new_announcement": Permission(EVERYONE, audit="announcement created", creates="announcement"),
    "admin.edit_announcement": Permission(EVERYONE, audit="announcement edited"),
    "admin.announcement": Permission(EVERYONE),
    "admin.preview_html": Permission(EVERYONE),
    "admin.progress_json": Permission(EVERYONE),
    "admin.send_test": Permission(EVERYONE, audit="test sent"),
    # write and see (issue 18.4): preview and count change nothing; the send_test view lets writers test to
    # themselves only
    "admin.drafting_preview": Permission(EVERYONE),
    "admin.drafting_frame": Permission(EVERYONE),
    "admin.drafting_audience": Permission(EVERYONE),  # a count only, no member data
    "admin.drafting_autosave": Permission(EVERYONE, audit=_autosave, creates="announcement"),
    "admin.upload_document": Permission(EVERYONE, audit="document added", creates="document"),
    "admin.delete_document": Permission(EVERYONE, audit="document deleted"),
    # the check page (V1): anyone may look; confirming "brackets meant" is part of writing the draft
    "admin.check": Permission(EVERYONE, audit="brackets confirmed as meant"),
    "admin.confirm_send": Permission(SENDERS, audit=_confirm_send),
    "admin.stop_sending": Permission(SENDERS, audit="send stopped"),
    "admin.copy": Permission(EVERYONE, audit="announcement copied", creates="announcement"),
    "admin.change_state": Permission(SENDERS, audit=_state_change),
    "admin.publish": Permission(SENDERS, audit=_publish),
    "admin.delete_announcement": Permission(SENDERS, audit="announcement deleted"),
    "admin.report": Permission(SENDERS),  # lists each recipient's address
    # templates
    "admin.templates": Permission(EVERYONE),
    "admin.new_template": Permission(EVERYONE, audit="template created", creates="announcement_template"),
    "admin.edit_template": Permission(EVERYONE, audit="template edited"),
    "admin.use_template": Permission(EVERYONE, audit="announcement created", creates="announcement"),
    "admin.delete_template": Permission(SENDERS, audit="template deleted"),
    # members
    "admin.members": Permission(SENDERS),
    "admin.member": Permission(SENDERS),
    "admin.resend_confirmation": Permission(SENDERS, audit="confirmation email resent"),
    "admin.unsubscribe_member": Permission(SENDERS, audit="member unsubscribed by an admin"),
    "admin.bounces_page": Permission(SENDERS),  # names members by address
    "admin.erase_member": Permission(OWNERS, audit="member erased by an admin"),
    "admin.member_new": Permission(SENDERS, audit="member added", creates="member"),
    "admin.member_edit": Permission(SENDERS, audit="member edited"),
    "admin.member_change_address": Permission(SENDERS, audit="address change requested"),
    "admin.export_members": Permission(OWNERS, audit="members exported", audit_get=True),
    "admin.import_members": Permission(OWNERS),  # the upload changes nothing yet: apply records the import
    "admin.import_preview": Permission(OWNERS),
    "admin.import_apply": Permission(OWNERS, audit="members imported"),
    "admin.import_cancel": Permission(OWNERS),
    "admin.import_result": Permission(OWNERS),
    # settings and records
    "admin.consent_wording": Permission(OWNERS, audit="consent wording changed", creates="consent_wording"),
    "admin.audit_log": Permission(OWNERS),
    # admin accounts (issue 19 part 1)
    "admin.admins": Permission(OWNERS),
    "admin.admins_invite": Permission(OWNERS, audit="admin invited", creates="admin_invitation"),
    "admin.admins_resend_invitation": Permission(OWNERS, audit="invitation sent again"),
    "admin.admins_withdraw_invitation": Permission(OWNERS, audit="invitation withdrawn"),
    "admin.admins_change_role": Permission(OWNERS, audit=_role_change),
    "admin.admins_remove": Permission(OWNERS, audit="admin removed"),
    "admin.account": Permission(EVERYONE),
    "admin.account_password": Permission(EVERYONE, audit="password changed"),
    "admin.account_email": Permission(EVERYONE, audit="new email address asked for"),
    # emailed links and the reset request: no log-in (each view records its own event when it changes something)
    "admin.accept_invitation": Permission(EVERYONE, public=True),
    "admin.confirm_email": Permission(EVERYONE, public=True),
    "admin.forgot_password": Permission(EVERYONE, public=True),
    "admin.forgot_password_sent": Permission(EVERYONE, public=True),
    "admin.reset_password": Permission(EVERYONE, public=True),

    # the forum: groups, details, posters (issue 20)
    "admin.groups": Permission(OWNERS),
    "admin.groups_add": Permission(OWNERS, audit="group added", creates="group"),
    "admin.groups_edit": Permission(OWNERS, audit="group renamed"),
    "admin.groups_move": Permission(OWNERS, audit="group moved"),
    "admin.groups_retire": Permission(OWNERS, audit="group retired"),
    "admin.groups_restore": Permission(OWNERS, audit="group brought back"),
    "admin.forum_settings": Permission(OWNERS, audit="forum details changed"),
    "admin.reach": Permission(SENDERS),
    "admin.reach_lines": Permission(SENDERS, audit="poster lines changed"),
    "admin.reach_embed": Permission(SENDERS),
}

# The view argument that names the object an action is about, most specific first, and the type recorded.
OBJECT_ARGS = (
    ("document_id", "document"),
    ("template_id", "announcement_template"),
    ("member_id", "member"),
    ("announcement_id", "announcement"),
    ("import_id", "import"),
    ("admin_id", "admin"),
    ("invitation_id", "admin_invitation"),
    ("group_id", "group"),
    ("session_id", "admin_session"),
)


def permission_for(endpoint: str | None) -> Permission | None:
    """The entry for `endpoint`, or None: refused to everyone (a page nobody has given a permission)."""
    return PERMISSIONS.get(endpoint or "")


def may(role: AdminRole, endpoint: str) -> bool:
    """Whether an admin with `role` may use `endpoint` (for the menu and for links on pages)."""
    permission = permission_for(endpoint)
    return permission is not None and permission.allows(role)


def object_of(view_args: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (type, id) of the object a request names in its URL, if any."""
    for name, kind in OBJECT_ARGS:
        if view_args.get(name) is not None:
            return kind, str(view_args[name])
    return None
