"""gunicorn reads ./gunicorn.conf.py from its working directory (deploy/mailer-web.service names it too).

The configuration is checked once, in the master, before it listens or starts a worker: a refused start
(a weak key in production) is one line naming the key and exit code 3, which systemd's
RestartPreventExitStatus=3 leaves stopped. Left to the workers, two failing together can make gunicorn
27's master exit 1 with a traceback instead (a second HaltServer raised while it halts)."""

from typing import Any


def on_starting(server: Any) -> None:
    from mailer import create_app_or_exit

    create_app_or_exit()
