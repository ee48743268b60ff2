"""Opaque, URL-safe, unguessable ids: a short type prefix, an underscore and 22 random base62 characters.

The prefix tells a human what an id names (`prj_…` in a log line is a project); the random part carries
about 131 bits from `secrets`, so an id that leaks from a URL cannot be used to guess its neighbours.
Nothing may read meaning (order, time, owner) out of the random part.

Prefixes in use: usr (users), tok (API tokens), prj (projects), ast (assets), job (jobs),
upl (upload capabilities), ren (renditions).
"""

from __future__ import annotations

import re
import secrets
import string

ALPHABET = string.digits + string.ascii_letters
RANDOM_LENGTH = 22
_PREFIX = re.compile(r"^[a-z]{2,8}$")


def new_id(prefix: str) -> str:
    """A fresh id such as `prj_4kP0q9Zr8cVb2LmXw1TsAe`."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"an id prefix is 2-8 lowercase letters, not {prefix!r}")
    return prefix + "_" + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
