"""Settings: every problem reported at once, by name and component, with an example, and no value echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fluxstudio.config import Secret, SettingsError, load_settings

GOOD = {
    "DATABASE_URL": "postgresql://flux:pw-db-1234@db.example.com:5432/flux?sslmode=require",
    "REDIS_URL": "rediss://default:pw-redis-5678@redis.example.com:25061/0",
}
SECRETS = ("pw-db-1234", "pw-redis-5678", "spaces-secret-abcdef")


def problems(component: str, env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(component, env)
    return [str(p) for p in caught.value.problems]


def test_good_settings_load_into_a_frozen_object_with_secrets_wrapped() -> None:
    settings = load_settings("worker", {**GOOD, "WORKER_CONCURRENCY": "2", "MAX_UPLOAD_BYTES": "2GiB"})
    assert settings.database_url == Secret(GOOD["DATABASE_URL"])
    assert settings.worker_concurrency == 2
    assert settings.max_upload_bytes == 2 * 1024**3
    assert settings.storage_url.startswith("file:///")
    assert "pw-db-1234" not in repr(settings)
    with pytest.raises(AttributeError):
        settings.worker_concurrency = 3  # type: ignore[misc]


def test_fleet_settings_have_documented_defaults_and_can_be_set() -> None:
    defaults = load_settings("worker", GOOD)
    fleet = (defaults.worker_concurrency, defaults.worker_poll_delay_seconds, defaults.db_pool_size)
    assert fleet == (1, 1.0, 10)
    tuned = load_settings("worker", {**GOOD, "WORKER_POLL_DELAY_SECONDS": "2.5", "DB_POOL_SIZE": "4"})
    assert (tuned.worker_poll_delay_seconds, tuned.db_pool_size) == (2.5, 4)


def test_postgres_scheme_and_unix_redis_are_accepted() -> None:
    settings = load_settings(
        "api", {"DATABASE_URL": "postgres://u@localhost/db", "REDIS_URL": "unix:///run/redis/redis.sock"}
    )
    assert settings.redis_url is not None and settings.redis_url.get().startswith("unix://")


def test_missing_variables_are_all_reported_with_component_and_example() -> None:
    lines = problems("worker", {})
    assert len(lines) == 2
    assert lines[0].startswith(
        "DATABASE_URL (needed by worker): is not set; for example DATABASE_URL=postgresql://"
    )
    assert lines[1].startswith("REDIS_URL (needed by worker): is not set; for example REDIS_URL=redis://")


def test_an_empty_variable_is_called_out_as_an_unapplied_deploy_variable() -> None:
    lines = problems("api", {**GOOD, "DATABASE_URL": ""})
    assert lines == [lines[0]] and "set but empty" in lines[0] and "${VAR}" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://u:pw-db-1234@h/db", "must start with postgresql:// or postgres://"),
        ("DATABASE_URL", "postgresql://u:pw-db-1234@db.example.com:99999/db", "not a valid URL"),
        ("DATABASE_URL", "postgresql://u:pw-db-1234@db.example.com:port/db", "not a valid URL"),
        ("DATABASE_URL", "postgresql://u:pw-db-1234@/db", "has no host"),
        ("DATABASE_URL", "postgresql://u:pw-db-1234@db.example.com:5432", "no database name"),
        ("DATABASE_URL", "postgresql://u:pw-db-1234@h/db?sslmode=always", "unknown sslmode"),
        ("DATABASE_URL", "pw-db-1234", "found no scheme"),
        ("REDIS_URL", "http://h:6379", "must start with redis://"),
        ("REDIS_URL", "redis://:pw-redis-5678@:6379", "has no host"),
        ("REDIS_URL", "redis://h:6379/zero", "not a number"),
        ("REDIS_URL", "unix://relative.sock", "absolute socket path"),
        ("STORAGE_URL", "file://relative/media", "no host"),
        ("STORAGE_URL", "s3://UPPER_case", "bucket name"),
        ("STORAGE_URL", "gs://bucket", "must start with file:// or s3://"),
        ("S3_ENDPOINT_URL", "nyc3.digitaloceanspaces.com", "must start with https://"),
        ("PUBLIC_MEDIA_URL", "https://", "has no host"),
        ("MAX_UPLOAD_BYTES", "lots", "not a whole number"),
        ("MAX_UPLOAD_BYTES", "0", "between"),
        ("WORKER_CONCURRENCY", "2.5", "not a whole number"),
        ("WORKER_POLL_DELAY_SECONDS", "soon", "not a number"),
        ("WORKER_POLL_DELAY_SECONDS", "nan", "between 0.05 and 60"),
        ("DB_POOL_SIZE", "0", "between 1 and 1000"),
        ("JOB_MAX_ATTEMPTS", "-1", "between"),
        ("LOG_FORMAT", "xml", "one of json, console"),
        ("FFMPEG_PRESET", "warp", "one of ultrafast"),
        ("FFMPEG_PATH", "/nonexistent/ffmpeg", "names no file"),
        ("MCP_AUTH_TOKEN", "short", "too short"),
        ("IMPORT_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-net", "CIDR notation"),
        ("WEBHOOK_RETRY_SCHEDULE", "5s,soon", "durations with a unit"),
        ("WEBHOOK_RETRY_SCHEDULE", "5s,30d", "at most 7 days"),
    ],
)
def test_malformed_values_name_the_problem_and_never_echo_the_value(
    variable: str, value: str, expected: str
) -> None:
    lines = problems("api", {**GOOD, variable: value})
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{variable} (needed by api): ")
    assert expected in lines[0]
    said = lines[0].split("; for example")[0].removeprefix(f"{variable} (needed by api): ")
    assert value not in said or value in ("0", "-1", "short")
    assert not any(secret in lines[0] for secret in SECRETS)


def test_ingest_settings_parse_networks_and_a_retry_schedule() -> None:
    default = load_settings("worker", GOOD)
    assert default.import_allowed_networks == ()
    assert default.webhook_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    settings = load_settings(
        "worker", {**GOOD, "IMPORT_ALLOWED_NETWORKS": "10.20.0.0/16, fd00::/8,192.168.1.7",
                   "WEBHOOK_RETRY_SCHEDULE": "250ms, 2s,1m,1h,1d"},
    )  # fmt: skip
    networks = [str(n) for n in settings.import_allowed_networks]
    assert networks == ["10.20.0.0/16", "fd00::/8", "192.168.1.7/32"]
    assert settings.webhook_retry_schedule == (0.25, 2, 60, 3600, 86400)


def test_every_problem_is_reported_at_once() -> None:
    env = {"DATABASE_URL": "mysql://x", "REDIS_URL": "", "LOG_LEVEL": "loud", "JOB_TIMEOUT_SECONDS": "soon"}
    variables = [line.split(" ")[0] for line in problems("worker", env)]
    assert variables == ["REDIS_URL", "DATABASE_URL", "JOB_TIMEOUT_SECONDS", "LOG_LEVEL"]


def test_s3_storage_needs_both_keys_and_accepts_aws_names() -> None:
    env = {
        **GOOD,
        "STORAGE_URL": "s3://media-bucket/prod",
        "S3_ENDPOINT_URL": "https://nyc3.digitaloceanspaces.com",
    }
    lines = problems("worker", {**env, "SPACES_ACCESS_KEY": "AKIAEXAMPLE"})
    assert lines == [lines[0]] and lines[0].startswith("SPACES_SECRET_KEY (needed by worker)")
    aws = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "spaces-secret-abcdef"}
    settings = load_settings("worker", {**env, **aws})
    assert settings.s3 is not None
    assert (settings.s3.bucket, settings.s3.prefix) == ("media-bucket", "prod")
    assert settings.s3.secret_key == Secret("spaces-secret-abcdef")
    assert "spaces-secret-abcdef" not in repr(settings)


def test_commands_without_services_need_nothing() -> None:
    settings = load_settings("transcode", {})
    assert settings.database_url is None and settings.redis_url is None


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=debug\nWORKER_CONCURRENCY=7\n")
    code = (
        "from fluxstudio.config import load_settings as l; s = l('transcode'); "
        "print(s.log_level, s.worker_concurrency)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "WORKER_CONCURRENCY")}
    env["WORKER_CONCURRENCY"] = "3"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["debug", "3"]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and "FLUXSTUDIO" not in k}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "fluxstudio", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exits_2_with_one_line_per_problem_and_no_secret(tmp_path: Path) -> None:
    result = run_cli(
        "tokens",
        "list",
        cwd=tmp_path,
        env={"DATABASE_URL": "postgresql://u:pw-db-1234@db.example.com:notaport/db", "LOG_FORMAT": "yaml"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fluxstudio tokens list: DATABASE_URL (needed by tokens): is not a valid URL")
    assert lines[1].startswith("fluxstudio tokens list: LOG_FORMAT (needed by tokens)")
    assert result.stdout == ""
    assert "pw-db-1234" not in result.stderr


def test_cli_migrate_without_database_url_stops_before_connecting(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env={})
    assert result.returncode == 2
    assert result.stderr.startswith("fluxstudio migrate: DATABASE_URL (needed by migrate): is not set")
