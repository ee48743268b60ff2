"""What `doctor` answers: one `Check` per line, rendered for a terminal or as JSON, with secrets scrubbed.

Every check builds its own text from names, counts and our own error messages (which never quote a
value), so no secret should reach a line. `scrub` is the last guard anyway: before anything is printed,
every secret value found in the environment (passwords inside URLs, keys, tokens) is masked in the whole
output, whichever check or library put it there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

Status = Literal["ok", "warn", "FAIL"]
OK: Status = "ok"
WARN: Status = "warn"
FAIL: Status = "FAIL"

#: Variables whose whole value is a secret.
SECRET_VARIABLES = (
    "MCP_AUTH_TOKEN",
    "SPACES_ACCESS_KEY",
    "SPACES_SECRET_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
#: Variables that are URLs which may carry a password (and are secret as a whole, to be safe).
URL_VARIABLES = ("DATABASE_URL", "REDIS_URL")
MASK = "**********"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f"  -> fix: {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<4}  {self.name:<10}  {self.detail}{fix}"


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def render_text(checks: list[Check], component: str) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in (OK, WARN, FAIL)}
    summary = (
        f"doctor ({component}): {counts[FAIL]} FAIL, {counts[WARN]} warn, {counts[OK]} ok"
        + (" - fix the FAIL lines first" if counts[FAIL] else "")
    )
    return "\n".join([*(c.line() for c in checks), summary]) + "\n"


def render_json(checks: list[Check], component: str) -> str:
    return json.dumps(
        {"ok": not failed(checks), "component": component, "checks": [asdict(c) for c in checks]}, indent=2
    ) + "\n"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Every value in `environ` that must not be printed, longest first (so a whole URL goes before its
    password)."""
    values: set[str] = set()
    for name in SECRET_VARIABLES:
        if value := (environ.get(name) or "").strip():
            values.add(value)
    for name in URL_VARIABLES:
        raw = (environ.get(name) or "").strip()
        if not raw:
            continue
        values.add(raw)
        try:
            password = urlsplit(raw).password
        except ValueError:
            password = None
        if password:
            values |= {password, unquote(password)}
    # Very short values would mask ordinary words; our checks refuse such secrets anyway.
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def scrub(text: str, environ: Mapping[str, str]) -> str:
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    return text
