"""Settings: read once at an entrypoint from the environment (and `.env`) into a frozen object.

Every component declares the variables it needs. `load_settings` checks all of them before anything
connects and reports every problem at once, one line each, naming the variable, the component, what is
wrong and an example of a good value. A value is never echoed: URLs carry passwords, and a message that
quotes a malformed secret leaks it. Library modules take a `Settings` and never read the environment.

Layers, highest first: flags that stand for a variable (`upload --server`), the environment, `.env`, and
the record of a `fluxstudio up` running on this machine (`up_record.py`), which supplies only what a
command needs and was not given.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from dotenv import dotenv_values

from fluxstudio.up_record import UpRecord, read_record

#: What each component cannot start without. Everything else has a default.
REQUIRED: dict[str, tuple[str, ...]] = {
    "api": ("DATABASE_URL", "REDIS_URL"),
    "worker": ("DATABASE_URL", "REDIS_URL"),
    "migrate": ("DATABASE_URL",),
    "tokens": ("DATABASE_URL",),
    "doctor": ("DATABASE_URL", "REDIS_URL"),
    "transcode": (),
    "up": (),
    "upload": ("FLUXSTUDIO_SERVER", "FLUXSTUDIO_TOKEN"),
}

#: Flags that stand for a variable, so a problem with the value names what the user typed.
FLAGS = {"FLUXSTUDIO_SERVER": "--server", "FLUXSTUDIO_TOKEN": "--token"}

#: Where an unset variable usually comes from, said in the "is not set" line.
UNSET_HINTS = {
    "FLUXSTUDIO_SERVER": "pass --server URL --token T, or start `fluxstudio up` on this machine",
    "FLUXSTUDIO_TOKEN": "pass --token T, or start `fluxstudio up` on this machine",
}

#: A token belongs to its server: its absence is worth a line only once the server is set (the server's
#: hint covers both), and a running `up`'s token is used only with that `up`'s own URL, never sent elsewhere.
PAIRED = {"FLUXSTUDIO_TOKEN": "FLUXSTUDIO_SERVER"}

#: Components that read or write media objects, so S3 credentials matter to them.
USES_STORAGE = {"api", "worker", "doctor"}

EXAMPLES = {
    "DATABASE_URL": "postgresql://fluxstudio:password@db.example.com:5432/fluxstudio?sslmode=require",
    "REDIS_URL": "redis://default:password@redis.example.com:6379/0",
    "STORAGE_URL": "s3://my-bucket/media or file:///var/lib/fluxstudio/media",
    "S3_ENDPOINT_URL": "https://nyc3.digitaloceanspaces.com",
    "S3_REGION": "nyc3",
    "S3_ADDRESSING_STYLE": "auto, path or virtual",
    "PUBLIC_MEDIA_URL": "https://media.example.com",
    "PUBLIC_URL": "https://studio.example.com",
    "ALLOWED_HOSTS": "studio.example.com,*.studio.example.com",
    "MAX_RUNNING_JOBS_PER_USER": "2 (0: no cap)",
    "MAX_UPLOAD_BYTES": "5368709120 or 5GiB",
    "WORKER_CONCURRENCY": "1",
    "WORKER_POLL_DELAY_SECONDS": "1.0",
    "DB_POOL_SIZE": "10",
    "FFMPEG_THREADS": "0 (ffmpeg decides)",
    "FFMPEG_PRESET": "veryfast",
    "JOB_TIMEOUT_SECONDS": "7200",
    "JOB_MAX_ATTEMPTS": "3",
    "LOG_FORMAT": "json or console",
    "LOG_LEVEL": "info",
    "FFMPEG_PATH": "/usr/bin/ffmpeg",
    "FFPROBE_PATH": "/usr/bin/ffprobe",
    "SPACES_ACCESS_KEY": "the access key id of a Spaces key",
    "SPACES_SECRET_KEY": "the secret of the same Spaces key",
    "FLUXSTUDIO_SERVER": "http://127.0.0.1:8000",
    "CORS_ORIGINS": "https://app.example.com,http://localhost:5173 (or * without cookies)",
    "PLAYBACK_SIGNING_KEY": "32 or more random characters, e.g. from `openssl rand -hex 32`",
    "IMPORT_ALLOWED_NETWORKS": "10.20.0.0/16,fd00::/8",
    "WEBHOOK_RETRY_SCHEDULE": "5s,5m,30m,2h,5h,10h,10h",
}

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class Secret:
    """A value that must never reach a log line, an error message or a traceback's locals repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Problem:
    variable: str
    component: str
    message: str
    #: The flag the value came from (`--server`), when it did not come from the variable.
    flag: str | None = None

    def __str__(self) -> str:
        example = EXAMPLES.get(self.variable)
        if self.flag:
            hint = f"; for example {self.flag} {example}" if example else ""
            return f"{self.flag} (needed by {self.component}): {self.message}{hint}"
        hint = f"; for example {self.variable}={example}" if example else ""
        return f"{self.variable} (needed by {self.component}): {self.message}{hint}"


class SettingsError(Exception):
    """Every problem found in the settings, so one failed start shows them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: 5s,5m,30m,2h,5h,10h,10h: about 28 hours of retries, Standard Webhooks' usual schedule.
DEFAULT_WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    access_key: Secret | None
    secret_key: Secret | None
    addressing_style: Literal["auto", "path", "virtual"]


@dataclass(frozen=True)
class Settings:
    component: str
    database_url: Secret | None
    redis_url: Secret | None
    storage_url: str
    s3: S3Settings | None
    public_media_url: str | None
    mcp_auth_token: Secret | None
    max_upload_bytes: int
    worker_concurrency: int
    #: A worker's backstop poll of the queue; new jobs wake workers at once over pub/sub regardless.
    worker_poll_delay_seconds: float
    #: Connections at most in each process's PostgreSQL pool (API replica or worker process).
    db_pool_size: int
    ffmpeg_threads: int
    ffmpeg_preset: str
    job_timeout_seconds: int
    job_max_attempts: int
    ffmpeg_path: str | None
    ffprobe_path: str | None
    log_format: Literal["json", "console"]
    log_level: str
    home: Path
    #: The API a client command (`upload`) talks to, and its bearer token.
    server_url: str | None = None
    server_token: Secret | None = None
    #: The API's public base URL; upload and playback URLs are built on it, not on the Host header.
    public_url: str | None = None
    #: Host names the API answers (TrustedHostMiddleware); ("*",) answers any.
    allowed_hosts: tuple[str, ...] = ("*",)
    #: Jobs of one user running at once across the fleet; 0 means no cap.
    max_running_jobs_per_user: int = 2
    #: Browser origins allowed to call /api/v1 (CORS); ("*",) allows any origin, without credentials.
    cors_origins: tuple[str, ...] = ()
    #: HMAC key of signed playback tokens; None: no asset may be `signed`.
    playback_signing_key: Secret | None = None
    #: Variables that were set, by name only; `doctor` reports on them without values.
    present: frozenset[str] = field(default_factory=frozenset)
    #: Private networks that URL imports and webhooks may reach all the same (API.md §2, §9).
    import_allowed_networks: tuple[IpNetwork, ...] = ()
    #: Seconds to wait before each retry of a webhook delivery; its length is the number of retries.
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE

    @property
    def media_dir(self) -> Path | None:
        """The local storage folder, or None when storage is S3."""
        if self.storage_url.startswith("file://"):
            return Path(urlsplit(self.storage_url).path)
        return None


def read_environment(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over the `.env` file: a variable set in the environment always wins."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


class Environment(dict[str, str]):
    """Variables from every layer, and the `up` record the lowest layer was read from (if any)."""

    up: UpRecord | None = None


def environment(
    component: str, env_file: Path | None = Path(".env"), *, given: Collection[str] = ()
) -> Environment:
    """The environment over `.env` over a running `up`'s record, for what `component` needs and lacks.

    `given` names variables that flags supply. `up` itself never reads a record. A stale record supplies
    nothing; `load_settings` then says why.
    """
    env = Environment(read_environment(env_file))
    missing = [name for name in REQUIRED[component] if name not in env and name not in given]
    if component == "up" or not missing:
        return env
    env.up = read_record(_home(env))
    if env.up is not None and env.up.stale is None:
        supplied = env.up.settings
        env.update(
            {
                name: supplied[name]
                for name in missing
                if name in supplied and (name not in PAIRED or PAIRED[name] in missing)
            }
        )
    return env


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("FLUXSTUDIO_HOME") or ".fluxstudio").expanduser().resolve()


def load_settings(
    component: str, environ: Mapping[str, str] | None = None, *, flags: Mapping[str, str | None] | None = None
) -> Settings:
    """Validate every variable `component` uses and return them frozen, or raise SettingsError.

    Without `environ`, the layers of `environment(component)` are read; `flags` maps a variable to the
    value of the flag that stands for it (None when the flag was not given) and wins over everything.
    """
    given = {name: value for name, value in (flags or {}).items() if value is not None}
    environ = environment(component, given=given) if environ is None else environ
    env = dict(environ)
    env.update(given)
    reader = _Reader(env, component, flags=frozenset(given))
    record: UpRecord | None = getattr(environ, "up", None)
    stale = [
        name
        for name in REQUIRED[component]
        if name not in env
        and (name not in PAIRED or PAIRED[name] not in env)
        and record is not None
        and name in record.settings
        and record.stale
    ]
    for name in REQUIRED[component]:
        if name not in stale and (name not in PAIRED or PAIRED[name] in env):
            reader.require(name)
    if stale and record is not None:
        verb = "is" if len(stale) == 1 else "are"
        names = " and ".join(stale)
        reader.problem(
            names,
            f"{verb} not set, and the `fluxstudio up` recorded in {record.path} {record.stale}: "
            f"start it again, or set {names}",
        )

    home = _home(env)
    storage_url = reader.get("STORAGE_URL", _check_storage_url) or (home / "media").as_uri()
    settings = Settings(
        component=component,
        database_url=reader.secret("DATABASE_URL", _check_database_url),
        redis_url=reader.secret("REDIS_URL", _check_redis_url),
        storage_url=storage_url,
        s3=_s3_settings(reader, storage_url),
        public_media_url=reader.get("PUBLIC_MEDIA_URL", _check_http_url),
        mcp_auth_token=reader.secret("MCP_AUTH_TOKEN", _check_token),
        max_upload_bytes=reader.number("MAX_UPLOAD_BYTES", 5 * 1024**3, 1, 2**50, parse=_parse_size),
        worker_concurrency=reader.number("WORKER_CONCURRENCY", 1, 1, 64),
        worker_poll_delay_seconds=reader.decimal("WORKER_POLL_DELAY_SECONDS", 1.0, 0.05, 60.0),
        db_pool_size=reader.number("DB_POOL_SIZE", 10, 1, 1000),
        ffmpeg_threads=reader.number("FFMPEG_THREADS", 0, 0, 64),
        ffmpeg_preset=reader.choice("FFMPEG_PRESET", X264_PRESETS, "veryfast"),
        job_timeout_seconds=reader.number("JOB_TIMEOUT_SECONDS", 7200, 10, 7 * 86400),
        job_max_attempts=reader.number("JOB_MAX_ATTEMPTS", 3, 1, 100),
        ffmpeg_path=reader.get("FFMPEG_PATH", _check_executable),
        ffprobe_path=reader.get("FFPROBE_PATH", _check_executable),
        log_format=reader.choice("LOG_FORMAT", ("json", "console"), "console"),  # type: ignore[arg-type]
        log_level=reader.choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
        home=home,
        server_url=reader.get("FLUXSTUDIO_SERVER", _check_http_url),
        server_token=reader.secret("FLUXSTUDIO_TOKEN", _check_nothing),
        public_url=_rstrip_slash(reader.get("PUBLIC_URL", _check_base_url)),
        allowed_hosts=_hosts(reader),
        max_running_jobs_per_user=reader.number("MAX_RUNNING_JOBS_PER_USER", 2, 0, 10_000),
        cors_origins=_cors_origins(reader),
        playback_signing_key=reader.secret("PLAYBACK_SIGNING_KEY", _check_signing_key),
        present=frozenset(k for k in _KNOWN if env.get(k)),
        import_allowed_networks=_networks(reader, "IMPORT_ALLOWED_NETWORKS"),
        webhook_retry_schedule=_schedule(reader, "WEBHOOK_RETRY_SCHEDULE"),
    )
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


_KNOWN = (
    *EXAMPLES,
    "MCP_AUTH_TOKEN",
    "FLUXSTUDIO_HOME",
    "FLUXSTUDIO_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


class _Reader:
    """Collects problems instead of raising, so that one start reports all of them."""

    def __init__(self, env: Mapping[str, str], component: str, flags: frozenset[str] = frozenset()) -> None:
        self.env = env
        self.component = component
        self.flags = flags
        self.problems: list[Problem] = []

    def problem(self, variable: str, message: str) -> None:
        flag = FLAGS.get(variable) if variable in self.flags else None
        self.problems.append(Problem(variable, self.component, message, flag))

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def require(self, name: str) -> None:
        if name not in self.env:
            hint = UNSET_HINTS.get(name)
            self.problem(name, f"is not set: {hint}" if hint else "is not set")
        elif not self.env[name].strip():
            self.problem(name, "is set but empty (a deploy tool may have replaced an unset ${VAR} with '')")

    def get(self, name: str, check: Callable[[str], str | None]) -> str | None:
        value = self.raw(name)
        if value is not None and (error := check(value)):
            self.problem(name, error)
        return value

    def secret(self, name: str, check: Callable[[str], str | None]) -> Secret | None:
        value = self.get(name, check)
        return None if value is None else Secret(value)

    def number(self, name: str, default: int, low: int, high: int, parse: Callable[[str], int] = int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = parse(value)
        except ValueError:
            self.problem(name, "is not a whole number")
            return default
        if not low <= number <= high:
            self.problem(name, f"must be between {low} and {high}")
            return default
        return number

    def decimal(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problem(name, "is not a number")
            return default
        if not low <= number <= high:  # also refuses nan and inf
            self.problem(name, f"must be between {low:g} and {high:g}")
            return default
        return number

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            self.problem(name, f"must be one of {', '.join(allowed)}")
            return default
        return value.lower()


def _s3_settings(reader: _Reader, storage_url: str) -> S3Settings | None:
    endpoint_url = reader.get("S3_ENDPOINT_URL", _check_http_url)
    addressing_style = reader.choice("S3_ADDRESSING_STYLE", ("auto", "path", "virtual"), "auto")
    if not storage_url.startswith("s3://"):
        return None
    parts = urlsplit(storage_url)
    access = reader.raw("SPACES_ACCESS_KEY") or reader.raw("AWS_ACCESS_KEY_ID")
    secret = reader.raw("SPACES_SECRET_KEY") or reader.raw("AWS_SECRET_ACCESS_KEY")
    if reader.component in USES_STORAGE and bool(access) != bool(secret):
        missing = "SPACES_SECRET_KEY" if access else "SPACES_ACCESS_KEY"
        reader.problem(missing, "is not set, but its pair is: S3 needs both the access key and the secret")
    return S3Settings(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint_url=endpoint_url,
        region=reader.raw("S3_REGION"),
        access_key=Secret(access) if access else None,
        secret_key=Secret(secret) if secret else None,
        addressing_style=addressing_style,  # type: ignore[arg-type]
    )


def _cors_origins(reader: _Reader) -> tuple[str, ...]:
    value = reader.raw("CORS_ORIGINS")
    if value is None:
        return ()
    origins = tuple(dict.fromkeys(part.strip().rstrip("/") for part in value.split(",") if part.strip()))
    if "*" in origins and len(origins) > 1:
        reader.problem("CORS_ORIGINS", "is either * alone or a list of origins, not both")
        return ()
    for origin in origins:
        if origin != "*" and (error := _check_origin(origin)):
            reader.problem("CORS_ORIGINS", error)
            return ()
    return origins


def _check_origin(origin: str) -> str | None:
    error, parts = _url_problem(origin, ("https", "http"))
    if error:
        return "has an entry that " + error
    if not parts.hostname or parts.path or parts.query or parts.fragment:  # type: ignore[attr-defined]
        return "has an entry that is not an origin (scheme://host[:port], no path)"
    return None


def _check_signing_key(value: str) -> str | None:
    return None if len(value) >= 32 else "is too short: use at least 32 random characters"


def _networks(reader: _Reader, name: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); one problem names the variable only."""
    value = reader.raw(name)
    if value is None:
        return ()
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
        )
    except ValueError:
        reader.problem(name, "must be comma-separated networks in CIDR notation")
        return ()


def _schedule(reader: _Reader, name: str) -> tuple[float, ...]:
    """Comma-separated durations such as `5s,5m,2h` (units ms, s, m, h, d), at most 20 of them."""
    value = reader.raw(name)
    if value is None:
        return DEFAULT_WEBHOOK_RETRY_SCHEDULE
    delays = []
    for part in value.split(","):
        match = _DURATION.match(part)
        if not match:
            reader.problem(name, "must be comma-separated durations with a unit (ms, s, m, h or d)")
            return DEFAULT_WEBHOOK_RETRY_SCHEDULE
        delays.append(float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])
    if len(delays) > 20 or max(delays) > 7 * 86400:
        reader.problem(name, "allows at most 20 retries, each at most 7 days after the previous one")
        return DEFAULT_WEBHOOK_RETRY_SCHEDULE
    return tuple(delays)


def _parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(text)
    unit = match.group(2).lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def _url_problem(value: str, schemes: tuple[str, ...]) -> tuple[str | None, object]:
    """Split a URL, returning (problem, parts). Messages never quote the value."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "is not a valid URL (bad port or brackets)", None
    if parts.scheme not in schemes:
        shown = parts.scheme + "://" if parts.scheme else "no scheme"
        if len(parts.scheme) > 20 or not parts.scheme.isascii():
            shown = "an unknown scheme"
        return f"must start with {' or '.join(s + '://' for s in schemes)} (found {shown})", None
    return None, parts


def _check_database_url(value: str) -> str | None:
    error, parts = _url_problem(value, ("postgresql", "postgres"))
    if error:
        return error
    query = parse_qs(parts.query)  # type: ignore[attr-defined]
    if not parts.hostname and "host" not in query:  # type: ignore[attr-defined]
        return "has no host"
    if not parts.path.strip("/"):  # type: ignore[attr-defined]
        return "has no database name after the host"
    sslmode = query.get("sslmode", [None])[0]
    if sslmode is not None and sslmode not in SSL_MODES:
        return f"has an unknown sslmode (use one of {', '.join(SSL_MODES)})"
    return None


def _check_redis_url(value: str) -> str | None:
    error, parts = _url_problem(value, ("redis", "rediss", "unix"))
    if error:
        return error
    if parts.scheme == "unix":  # type: ignore[attr-defined]
        return None if parts.path.startswith("/") else "unix:// needs an absolute socket path"  # type: ignore[attr-defined]
    if not parts.hostname:  # type: ignore[attr-defined]
        return "has no host"
    db = parts.path.strip("/")  # type: ignore[attr-defined]
    if db and not db.isdigit():
        return "has a database number that is not a number (the path must be /0, /1, ...)"
    return None


def _check_storage_url(value: str) -> str | None:
    error, parts = _url_problem(value, ("file", "s3"))
    if error:
        return error
    if parts.scheme == "file":  # type: ignore[attr-defined]
        if parts.netloc not in ("", "localhost"):  # type: ignore[attr-defined]
            return "file:// takes an absolute path and no host: file:///abs/path (three slashes)"
        return None if parts.path.startswith("/") else "file:// needs an absolute path"  # type: ignore[attr-defined]
    if not _BUCKET.match(parts.netloc):  # type: ignore[attr-defined]
        return "s3:// needs a bucket name of 3-63 lowercase letters, digits, dots or hyphens"
    return None


def _check_http_url(value: str) -> str | None:
    error, parts = _url_problem(value, ("https", "http"))
    if error:
        return error
    return None if parts.hostname else "has no host"  # type: ignore[attr-defined]


def _check_base_url(value: str) -> str | None:
    error = _check_http_url(value)
    if error:
        return error
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must be a plain base URL: no credentials, query or fragment"
    return None


def _rstrip_slash(value: str | None) -> str | None:
    return value.rstrip("/") if value else None


#: What TrustedHostMiddleware compares: the Host header without its port.
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$", re.I)


def _hosts(reader: _Reader) -> tuple[str, ...]:
    """ALLOWED_HOSTS: host names (no port), `*.domain` wildcards or `*`, separated by commas."""
    value = reader.raw("ALLOWED_HOSTS")
    if value is None:
        return ("*",)
    hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    if not hosts or not all(_HOST.match(h) for h in hosts):
        reader.problem("ALLOWED_HOSTS", "must be host names (no port), *.domain wildcards or *, by commas")
        return ("*",)
    return hosts


def _check_token(value: str) -> str | None:
    return None if len(value) >= 16 else "is too short: use at least 16 random characters"


def _check_nothing(value: str) -> str | None:
    return None


def _check_executable(value: str) -> str | None:
    path = Path(value)
    if not path.is_file():
        return "names no file"
    return None if os.access(path, os.X_OK) else "names a file that is not executable"
