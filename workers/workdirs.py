"""A job's private work folder (`fluxstudio-work-*`: the source's copy, ffmpeg's output), and the sweep of
folders whose owner is gone.

A worker killed with SIGKILL runs no `finally`, so its folder, holding a private copy of a user's source,
would stay in the temporary folder for good. Every folder therefore holds `.owner`, locked (`flock`) by
the process that made it for as long as it exists. The kernel drops the lock when that process dies, by
whatever signal, so a folder whose lock can be taken belongs to nobody and is removed. Several workers
(and other programs) share one machine and one temporary folder: a folder whose lock is held, or that
has no `.owner` at all (made by something else), is never touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from fluxstudio.log import get_logger

PREFIX = "fluxstudio-work-"
OWNER = ".owner"

log = get_logger()


class WorkDir:
    """`with WorkDir(parent) as path:` a private folder, locked by this process until it is removed."""

    def __init__(self, parent: Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        self._fd = os.open(self.path / OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # new and private: never contended, never blocks
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)  # after the removal, so a sweeper never sees it unlocked while it exists

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_orphans(parent: Path | None = None) -> int:
    """Remove work folders under `parent` (the system's temporary folder) whose owner is gone."""
    folder = Path(parent or tempfile.gettempdir())
    removed = 0
    for candidate in folder.glob(PREFIX + "*"):
        if _orphaned(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed += 1
    if removed:
        log.info("work_folders_swept", count=removed, folder=str(folder))
    return removed


def _orphaned(candidate: Path) -> bool:
    try:
        fd = os.open(candidate / OWNER, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # not ours (no .owner), not a folder, or already gone
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its owner is alive and holds the lock
    finally:
        os.close(fd)  # we hold the lock only to know; the folder is removed right after
    return True
