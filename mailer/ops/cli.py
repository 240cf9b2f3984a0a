"""Flask commands (P5): parse, call the domain or the engine, print a summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from mailer.extensions import db
from mailer.settings import Settings, settings_of
from mailer.transaction import transaction
from mailer.worker.housekeeping import purge, remove_old_import_files

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

    from mailer.engine.tick import TickSummary


def _settings() -> Settings:
    return settings_of(current_app)


def _app() -> Flask:
    """The app object behind current_app, for work that outlives this app context (threads, the worker).

    Flask annotates current_app as Flask; it is a werkzeug LocalProxy, whose documented unwrapping method is
    _get_current_object."""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()


def register_cli(app: Flask) -> None:
    for command in (
        create_admin_command,
        reset_two_step_command,
        worker_command,
        send_due_command,
        purge_command,
        dev_mailbox_command,
        bounce_server_command,
        process_bounces_command,
        seed_dev_command,
        check_command,
        check_layout_command,
        backup_command,
        members_group,
    ):
        app.cli.add_command(command)


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Run one tick, print a summary and exit (like send-due).")
def worker_command(once: bool) -> None:
    """Run the mail worker: sends due mail every few seconds until stopped."""
    from mailer.worker.process import run_worker
    from mailer.worker.runner import run_tick_for_app

    app = _app()
    if once:
        from mailer.worker.process import Heartbeat

        click.echo(run_tick_for_app(app, on_batch=_terminal_progress()).describe())
        Heartbeat(app).beat()
        return
    run_worker(app)


@click.command("send-due")
@with_appcontext
def send_due_command() -> None:
    """Send everything that is due now, once (for cron), and print what happened."""
    from mailer.worker.process import Heartbeat
    from mailer.worker.runner import run_tick_for_app

    summary = run_tick_for_app(_app(), on_batch=_terminal_progress())
    Heartbeat(_app()).beat()  # cron users are monitored too
    click.echo(summary.describe())


def _terminal_progress() -> Callable[[TickSummary], None] | None:
    """A progress bar on stderr when a person runs a long send by hand; nothing in logs or pipes."""
    import sys
    import time

    from sqlalchemy import func, select

    from mailer.models import Announcement, AnnouncementState, Delivery, DeliveryState, OutboxMessage, OutboxState

    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(summary: TickSummary) -> None:
        done = summary.outbox.sent + summary.deliveries.sent + summary.deliveries.skipped + summary.deliveries.failed
        with db.engine.connect() as conn:
            waiting = (
                conn.execute(
                    select(func.count())
                    .select_from(Delivery)
                    .join(Announcement, Announcement.id == Delivery.announcement_id)
                    .where(
                        Announcement.state == AnnouncementState.SENDING,
                        Delivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
                    )
                ).scalar_one()
                + conn.execute(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == OutboxState.PENDING)
                ).scalar_one()
            )
        total = max(done + waiting, 1)
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.monotonic() - started, 1e-6)
        sys.stderr.write(
            f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {100 * done // total}% {rate:.0f} msg/s "
        )
        if waiting == 0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


@click.command("purge")
@with_appcontext
def purge_command() -> None:
    """Delete unconfirmed signups and old outbox rows past their retention period, and CSV
    import files more than a day old (C3)."""
    settings = _settings()
    clock = current_app.extensions["mailer.clock"]
    with transaction(db.session()):
        counts = purge(db.session(), clock=clock, retention=settings.retention)
    import_files = remove_old_import_files(settings.import_dir, clock=clock)
    click.echo(f"{counts.describe()}; removed {import_files} import file(s) more than a day old")


@click.command("dev-mailbox")
@with_appcontext
@click.option("--smtp-port", default=1025, show_default=True)
@click.option("--web-port", default=8025, show_default=True)
def dev_mailbox_command(smtp_port: int, web_port: int) -> None:
    """Run the development mailbox: SMTP on 127.0.0.1 and a web view of what arrived (P3)."""
    import os

    from mailer.ops.devmailbox import run_mailbox

    run_mailbox(
        smtp_port=smtp_port, web_port=web_port, directory=os.path.join(current_app.instance_path, "mailbox")
    )


@click.command("create-admin")
@with_appcontext
@click.argument("email")
def create_admin_command(email: str) -> None:
    """Create an admin (or reset their password). Password from MAILER_ADMIN_PASSWORD or a prompt."""
    import os

    from mailer.admins.accounts import create_admin
    from mailer.errors import InvalidInput

    password = os.environ.get("MAILER_ADMIN_PASSWORD") or click.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    try:
        with transaction(db.session()):
            admin = create_admin(db.session(), email, password, clock=current_app.extensions["mailer.clock"])
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Admin {admin.email} is an owner (may do everything) and can log in at "
               f"{_settings().base_url}/admin/login")


@click.command("reset-two-step")
@with_appcontext
@click.argument("email")
def reset_two_step_command(email: str) -> None:
    """Turn two-step login off for an admin who lost their phone, and log them out everywhere (issue 19)."""
    from mailer.admins import two_step
    from mailer.admins.accounts import end_admin_sessions
    from mailer.admins.audit import record_audit
    from mailer.admins.sessions import end_all_sessions
    from mailer.errors import InvalidInput

    clock = current_app.extensions["mailer.clock"]
    try:
        with transaction(db.session()):
            admin = two_step.reset(db.session(), email)
            ended = end_all_sessions(db.session(), admin, clock=clock)
            end_admin_sessions(db.session(), admin.id)
            required = two_step.get_policy(db.session()).require_two_step
            record_audit(db.session(), actor=None, action="two-step login turned off on the server",
                         object_type="admin", object_id=admin.id, ip=None, user_agent="flask reset-two-step",
                         clock=clock)
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Two-step login is now off for {admin.email}, and their recovery codes are deleted.")
    click.echo(f"They were logged out everywhere ({ended} session{'' if ended == 1 else 's'} ended).")
    if required:
        click.echo("Two-step login is required for everyone, so they will set it up again when they next log in.")
    else:
        click.echo("They can log in with their password alone, then turn two-step login on again.")


@click.command("seed-dev")
@with_appcontext
def seed_dev_command() -> None:
    """For trying it out: an admin (admin@forum.example / change-me-please) and two sample drafts.

    Refused when MAILER_ENV is production: that password is published in the README."""
    from pathlib import Path

    from sqlalchemy import select

    from mailer.admins.accounts import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, create_admin
    from mailer.announcements.lifecycle import AnnouncementDraft, create_announcement
    from mailer.models import Admin, Announcement

    if _settings().is_production:
        raise click.ClickException(
            "seed-dev is for trying mailer out: it makes an admin whose password is published in the README. "
            "MAILER_ENV is production, so nothing was created. Make your admin with `create-admin ADDRESS`."
        )
    clock = current_app.extensions["mailer.clock"]
    samples = Path(__file__).resolve().parent.parent.parent / "tests" / "data" / "samples"
    with transaction(db.session()):
        admin = db.session.scalar(select(Admin).where(Admin.email == DEV_ADMIN_EMAIL))
        if admin is None:
            admin = create_admin(db.session(), DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, clock=clock)
            click.echo(f"Created admin {DEV_ADMIN_EMAIL} with password {DEV_ADMIN_PASSWORD}")
        if db.session.scalar(select(Announcement.id).limit(1)) is None:
            for path in sorted(samples.glob("*.md")):
                body = path.read_text(encoding="utf-8")
                create_announcement(
                    db.session(),
                    AnnouncementDraft(subject=body.partition("\n")[0].lstrip("# ").strip(), body_markdown=body),
                    admin_id=admin.id,
                    clock=clock,
                )
                click.echo(f"Created sample draft: {path.stem}")


@click.group("members")
def members_group() -> None:
    """Import members from a CSV file, or export them all as CSV (J6)."""


@members_group.command("import")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--dry-run", is_flag=True, help="Only show what would happen; change nothing.")
def members_import_command(file: str, dry_run: bool) -> None:
    """Show what importing FILE.csv would do to each row, then do it.

    Rows without consent evidence become pending and get a confirmation email
    (spread out at MAILER_IMPORT_CONFIRMATIONS_PER_MINUTE); rows with consent_date and
    consent_source become members; suppressed and existing addresses are left alone."""
    from mailer.errors import InvalidInput
    from mailer.members.csv.apply import apply_import
    from mailer.members.csv.parse import read_file_lines
    from mailer.members.csv.plan import plan_import, summarise

    clock = current_app.extensions["mailer.clock"]
    settings = _settings().import_settings
    try:
        preview = summarise(
            plan_import(
                db.session(), read_file_lines(file), suppression_key=settings.suppression_key, clock=clock
            ),
            keep_rows=0,
            keep_problems=10_000,
        )
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.session.rollback()  # end the read transaction before writing
    click.echo("Preview:")
    for line in preview.describe(applied=False):
        click.echo(f"  {line}")
    if preview.problems:
        click.echo("Problems (these rows are skipped):")
        for row in preview.problems:
            click.echo(f"  line {row.line}: {row.email or '(no address)'}: {row.describe()}")
        if preview.problem_count > len(preview.problems):
            click.echo(f"  ... and {preview.problem_count - len(preview.problems)} more")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
        return
    try:
        result = apply_import(
            db.session(), read_file_lines(file), settings=settings, clock=clock
        )
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("Done:")
    for line in result.describe(applied=True):
        click.echo(f"  {line}")
    if result.first_confirmation_at and result.last_confirmation_at:
        click.echo(
            f"Confirmation emails are queued from {result.first_confirmation_at:%Y-%m-%d %H:%M} "
            f"to {result.last_confirmation_at:%Y-%m-%d %H:%M} UTC; the worker sends them."
        )


@members_group.command("export")
@with_appcontext
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file, not stdout.")
def members_export_command(output: str | None) -> None:
    """Write every member as CSV (UTF-8, header row), streamed in batches."""
    from mailer.members.csv.export import export_lines
    from mailer.uploads import open_private

    lines = export_lines(db.session())
    if output:
        with open_private(output, "w", encoding="utf-8", newline="") as target:
            target.writelines(lines)
        click.echo(f"Exported the members to {output}", err=True)
    else:
        for line in lines:
            click.echo(line, nl=False)
    db.session.rollback()


@click.command("check")
@with_appcontext
@click.option("--smtp-timeout", default=5.0, show_default=True, help="Seconds to wait for the SMTP server.")
def check_command(smtp_timeout: float) -> None:
    """Report missing or unsafe settings, one line each; exit 1 when something blocks sending."""
    from mailer.admins.accounts import DEV_ADMIN_PASSWORD, find_admins_with_password
    from mailer.ops.checks import blocks_sending, check_admin_passwords, check_database, check_settings, check_smtp
    from mailer.worker.runner import smtp_opener_for

    app = _app()
    settings = settings_of(app)
    database = check_database(settings.database_uri, app.extensions["migrate"].directory)
    findings = [
        *check_settings(settings),
        *check_smtp(smtp_opener_for(app, settings, smtp_timeout), settings),
        *database,
    ]
    if not blocks_sending(database):  # only a reachable, migrated database has admins to look at
        with transaction(db.session()):
            findings += check_admin_passwords(find_admins_with_password(db.session(), DEV_ADMIN_PASSWORD), settings)
    for finding in findings:
        click.echo(finding.line())
    if blocks_sending(findings):
        raise click.exceptions.Exit(1)


@click.command("check-layout")
@with_appcontext
def check_layout_command() -> None:
    """Check the operator's email layout override (issue 9); exit 1 when it exists but is not used."""
    from mailer.mail.layout import check_layout, override_path

    settings = _settings()
    result = check_layout(override_path(settings.email_template_dir), settings.mail_settings)
    click.echo(result.describe())
    if result.exists and not result.usable:
        raise click.exceptions.Exit(1)


@click.command("backup")
@with_appcontext
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the copy (default: instance/backups/mailer-<UTC time>.db).")
def backup_command(output: str | None) -> None:
    """Write a consistent copy of the SQLite database; on PostgreSQL, print the pg_dump command to run."""
    import os
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from mailer.ops.backup import BackupRefused, backup_sqlite, default_backup_name, pg_dump_instructions
    from mailer.worker.lock import sqlite_path

    uri = _settings().database_uri
    now = current_app.extensions["mailer.clock"].now()
    source = sqlite_path(uri)
    if source is None:
        click.echo(pg_dump_instructions(make_url(uri), output or default_backup_name(now, ".dump")))
        return
    target = Path(output) if output else Path(current_app.instance_path) / "backups" / default_backup_name(now, ".db")
    try:
        result = backup_sqlite(Path(source), target)
    except BackupRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Backed up {source} to {os.path.abspath(result.path)} ({result.members} members, {result.size} bytes)")


@click.command("bounce-server")
@with_appcontext
@click.option("--host", default=None, help="Default: MAILER_BOUNCE_SMTP_HOST.")
@click.option("--port", default=None, type=int, help="Default: MAILER_BOUNCE_SMTP_PORT.")
def bounce_server_command(host: str | None, port: int | None) -> None:
    """Accept bounces by SMTP and store them for the worker (point an MX or alias for the bounce address here)."""
    from mailer.worker.bounce_intake import run_bounce_server

    app = _app()
    port = port or settings_of(app).bounce_smtp_port
    if not port:
        raise click.ClickException("the bounce server is off: set FLASK_MAILER_BOUNCE_SMTP_PORT or pass --port")
    run_bounce_server(app, host=host, port=port)


@click.command("process-bounces")
@with_appcontext
def process_bounces_command() -> None:
    """Read and count the stored bounce messages once (the worker does this every few ticks)."""
    from mailer.worker.runner import process_bounces_for_app

    summary = process_bounces_for_app(_app())
    click.echo(
        f"bounces: {summary.processed} processed, {summary.counted} counted, {summary.complaints} complaints, "
        f"{summary.unmatched} unmatched, {summary.errors} errors"
    )
