"""A directory with very little room, for disk-full tests: a real tmpfs mount, so writes fail with ENOSPC
exactly as on a full disk (no mocks). Mounting needs root, which CI has (.ci/run installs packages)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def small_disk(directory: Path, *, size: str = "64k") -> Iterator[Path]:
    """Mount a `size` tmpfs on `directory` (created if needed) for the duration; unmounted afterwards.

    Raises PermissionError when this machine does not allow mounting (not root, or no CAP_SYS_ADMIN)."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)],
        capture_output=True, text=True, timeout=30,
    )
    if mounted.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs on {directory}: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write a file in `directory` until the disk is full; returns it (delete it to free the room)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler
