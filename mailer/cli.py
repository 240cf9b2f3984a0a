"""Flask commands (P5): parse, call the domain or the engine, print a summary."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .extensions import db
from .housekeeping import Retention, purge
from .transaction import transaction


def register_cli(app: Flask) -> None:
    for command in (
        create_admin_command,
        worker_command,
        send_due_command,
        purge_command,
        dev_mailbox_command,
        seed_dev_command,
    ):
        app.cli.add_command(command)


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Run one tick, print a summary and exit (like send-due).")
def worker_command(once: bool) -> None:
    """Run the mail worker: sends due mail every few seconds until stopped."""
    from .runner import run_tick_for_app
    from .scheduling import run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        click.echo(run_tick_for_app(app, on_batch=_terminal_progress()).describe())
        return
    run_worker(app)


@click.command("send-due")
@with_appcontext
def send_due_command() -> None:
    """Send everything that is due now, once (for cron), and print what happened."""
    from .runner import run_tick_for_app

    summary = run_tick_for_app(current_app._get_current_object(), on_batch=_terminal_progress())  # type: ignore[attr-defined]
    click.echo(summary.describe())


def _terminal_progress():  # type: ignore[no-untyped-def]
    """A progress bar on stderr when a person runs a long send by hand; nothing in logs or pipes."""
    import sys
    import time

    from sqlalchemy import func, select

    from .models import Announcement, AnnouncementState, Delivery, DeliveryState, OutboxMessage, OutboxState

    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(summary) -> None:  # type: ignore[no-untyped-def]
        done = summary.outbox.sent + summary.deliveries.sent + summary.deliveries.skipped + summary.deliveries.failed
        with db.engine.connect() as conn:
            waiting = conn.scalar(
                select(func.count()).select_from(Delivery).join(Announcement, Announcement.id == Delivery.announcement_id)
                .where(Announcement.state == AnnouncementState.SENDING,
                       Delivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]))
            ) + conn.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == OutboxState.PENDING))
        total = max(done + waiting, 1)
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.monotonic() - started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {100 * done // total}% {rate:.0f} msg/s ")
        if waiting == 0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


@click.command("purge")
@with_appcontext
def purge_command() -> None:
    """Delete unconfirmed signups and old outbox rows past their retention period (C3)."""
    config = current_app.config
    with transaction(db.session):
        counts = purge(db.session, clock=current_app.extensions["mailer.clock"], retention=Retention.from_config(config))
    click.echo(counts.describe())


@click.command("dev-mailbox")
@with_appcontext
@click.option("--smtp-port", default=1025, show_default=True)
@click.option("--web-port", default=8025, show_default=True)
def dev_mailbox_command(smtp_port: int, web_port: int) -> None:
    """Run the development mailbox: SMTP on 127.0.0.1 and a web view of what arrived (P3)."""
    import os

    from .devmailbox import run_mailbox

    run_mailbox(
        smtp_port=smtp_port, web_port=web_port, directory=os.path.join(current_app.instance_path, "mailbox")
    )


@click.command("create-admin")
@with_appcontext
@click.argument("email")
def create_admin_command(email: str) -> None:
    """Create an admin (or reset their password). Password from MAILER_ADMIN_PASSWORD or a prompt."""
    import os

    from .admins import create_admin
    from .errors import InvalidInput

    password = os.environ.get("MAILER_ADMIN_PASSWORD") or click.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    try:
        with transaction(db.session):
            admin = create_admin(db.session, email, password, clock=current_app.extensions["mailer.clock"])
    except InvalidInput as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Admin {admin.email} can now log in at {current_app.config['MAILER_BASE_URL']}/admin/login")


@click.command("seed-dev")
@with_appcontext
def seed_dev_command() -> None:
    """For trying it out: an admin (admin@forum.example / change-me-please) and two sample drafts."""
    from pathlib import Path

    from sqlalchemy import select

    from .admins import create_admin
    from .announcements import AnnouncementDraft, create_announcement
    from .models import Admin, Announcement

    clock = current_app.extensions["mailer.clock"]
    samples = Path(__file__).resolve().parent.parent / "tests" / "data" / "samples"
    with transaction(db.session):
        admin = db.session.scalar(select(Admin).where(Admin.email == "admin@forum.example"))
        if admin is None:
            admin = create_admin(db.session, "admin@forum.example", "change-me-please", clock=clock)
            click.echo("Created admin admin@forum.example with password change-me-please")
        if db.session.scalar(select(Announcement.id).limit(1)) is None:
            for path in sorted(samples.glob("*.md")):
                body = path.read_text(encoding="utf-8")
                create_announcement(
                    db.session,
                    AnnouncementDraft(subject=body.partition("\n")[0].lstrip("# ").strip(), body_markdown=body),
                    admin_id=admin.id,
                    clock=clock,
                )
                click.echo(f"Created sample draft: {path.stem}")
