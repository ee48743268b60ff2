"""The record a running `fluxstudio up` keeps in FLUXSTUDIO_HOME, so that commands beside it find it.

`up` writes FLUXSTUDIO_HOME/up.json (mode 0600) once its API answers: its pid, its API URL and the URLs of
the embedded services it started. Settings use the record as their lowest layer, below the environment and
`.env`, and only while that `up` is alive: its pid exists and its API port accepts a connection (checked in
well under a second, so a stale record never hangs a command). The development token comes from the
`dev.json` beside it. `up` removes the record when it stops; one left by a killed `up` is reported as stale.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RECORD_FILE = "up.json"
DEV_FILE = "dev.json"
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class UpRecord:
    path: Path
    pid: int
    api_url: str
    #: What the record supplies, by variable: the embedded services' URLs, the API URL and the dev token.
    settings: dict[str, str]

    @functools.cached_property
    def stale(self) -> str | None:
        """Why this record cannot be used ("is not running any more (pid 12)"), or None while `up` runs."""
        if not _pid_alive(self.pid):
            return f"is not running any more (pid {self.pid})"
        if not _answers(self.api_url):
            return f"does not answer at {self.api_url} (pid {self.pid})"
        return None


def read_record(home: Path) -> UpRecord | None:
    """The record in `home`, or None when there is none (or it is unreadable, which `up` never leaves)."""
    path = home / RECORD_FILE
    try:
        data = json.loads(path.read_text())
        pid, api_url, services = int(data["pid"]), str(data["api_url"]), dict(data["services"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    settings = {str(k): str(v) for k, v in services.items()}
    settings["FLUXSTUDIO_SERVER"] = api_url
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        settings["FLUXSTUDIO_TOKEN"] = str(json.loads((home / DEV_FILE).read_text())["token"])
    return UpRecord(path=path, pid=pid, api_url=api_url, settings=settings)


def write_record(home: Path, *, api_url: str, services: dict[str, str]) -> Path:
    """Record this process as the running `up`; created 0600, replaced atomically."""
    path = home / RECORD_FILE
    temp = path.with_name(f".{RECORD_FILE}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": os.getpid(), "api_url": api_url, "services": services}, out)
    temp.replace(path)
    return path


def remove_record(home: Path) -> None:
    """Remove the record if it is this process's (a later `up` on the same home may have replaced it)."""
    record = read_record(home)
    if record is not None and record.pid == os.getpid():
        record.path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=PROBE_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False
