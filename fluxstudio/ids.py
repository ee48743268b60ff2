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


_ID = re.compile(rf"(?P<prefix>[a-z]{{2,8}})_[0-9A-Za-z]{{{RANDOM_LENGTH}}}")

#: The prefix an id must have where a parameter name says what it names (`asset_id` is an `ast_…`).
PREFIX_OF_PARAM = {
    "user_id": "usr",
    "token_id": "tok",
    "project_id": "prj",
    "asset_id": "ast",
    "job_id": "job",
    "upload_id": "upl",
    "tus_id": "tus",  # a resumable upload (/api/v1/tus/{tus_id}); `upload_id` is a presigned upload's
    "rendition_id": "ren",
    "comment_id": "cmt",
    "webhook_id": "whk",
}


def is_id(value: object, prefix: str | None = None) -> bool:
    """Whether `value` has the shape of an id we issue (with `prefix`, if given).

    Checked at the edges (REST routing, MCP arguments, token parsing) so that a malformed id, a NUL byte
    or 60 KB of junk, is "not found" without a database round trip, never a driver error.
    """
    if not isinstance(value, str) or len(value) > 64:
        return False
    match = _ID.fullmatch(value)
    return match is not None and (prefix is None or match["prefix"] == prefix)


def is_id_param(name: str, value: object) -> bool:
    """`is_id` for a parameter named `name`: `asset_id` must be an `ast_…`, any `*_id` some id."""
    return is_id(value, PREFIX_OF_PARAM.get(name))
