"""SMTP sinks for the benchmarks: Postfix's smtp-sink when it can be had, else aiosmtpd.

aiosmtpd uses about a core and caps near 1,500 messages/s here, which hides the engine's own
cost; Postfix's smtp-sink (C) does not. It comes from Debian's postfix package, unpacked into
bench/.cache with `apt-get download` + `dpkg-deb -x`: no mail service is installed or started."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from common import CountingSink, free_port

CACHE = Path(__file__).resolve().parent / ".cache" / "postfix"


def smtp_sink_binary() -> Path | None:
    """Path to smtp-sink, fetched into the cache on first use; None when it cannot be had."""
    binary = CACHE / "usr" / "sbin" / "smtp-sink"
    if binary.exists():
        return binary
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    download = CACHE.parent / "download"
    download.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "postfix"], cwd=download, check=True, capture_output=True, timeout=120)
        deb = next(download.glob("postfix_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, StopIteration, OSError):
        return None
    return binary if binary.exists() else None


class PostfixSink:
    """smtp-sink on 127.0.0.1: accepts everything, stores nothing. Counts come from the senders."""

    name = "postfix smtp-sink"

    def __init__(self, binary: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PostfixSink:
        env = {**os.environ, "LD_LIBRARY_PATH": str(CACHE / "usr" / "lib" / "postfix")}
        self._process = subprocess.Popen(
            [str(self._binary), "-u", "nobody", f"{self.host}:{self.port}", "256"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(10)


class AiosmtpdSink(CountingSink):
    name = "aiosmtpd"


def best_sink(prefer_aiosmtpd: bool = False):  # type: ignore[no-untyped-def]
    if prefer_aiosmtpd:
        return AiosmtpdSink()
    binary = smtp_sink_binary()
    if binary:
        return PostfixSink(binary)
    sink = AiosmtpdSink()
    sink.name = "aiosmtpd (fallback: postfix smtp-sink could not be fetched)"
    return sink
