"""`fluxstudio doctor` on healthy and broken deployments: real PostgreSQL, Redis, local storage and moto S3.

Every run carries distinctive secrets (a database password, a Redis password, an S3 secret key, an MCP
token) and every test asserts that none of them appears anywhere in what doctor printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio

from fluxstudio.doctor import FAIL, OK, WARN, Check, diagnose, render_text, scrub
from fluxstudio.doctor.checks import DatabaseFacts, RedisFacts, check_workers
from fluxstudio.heartbeat import read_fleet
from tests.fixtures.jobs import PrivateRedis
from tests.fixtures.platform import free_port, wait_for
from tests.fixtures.s3 import SECRET_KEY, S3Server

REPO = Path(__file__).resolve().parents[1]
DB_PASSWORD = "pg-Secret-7hQx2"
REDIS_PASSWORD = "redis-Secret-K9vw4"
MCP_TOKEN = "mcp-Secret-token-Lr8nPq3Zt"
SECRETS = (DB_PASSWORD, REDIS_PASSWORD, SECRET_KEY, MCP_TOKEN)


def with_password(url: str, password: str) -> str:
    """The same URL with a password: a distinctive secret that must never be printed."""
    parts = urlsplit(url)
    user = parts.username or ("postgres" if parts.scheme.startswith("postgres") else "")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def run_doctor(env: Mapping[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and not k.startswith("S3_")}
    base["PYTHONPATH"] = str(REPO)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "fluxstudio", "doctor", *args],
        env={**base, **env}, cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    return result, time.monotonic() - started


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "doctor printed a secret"


def status_of(lines: list[str] | str, name: str) -> list[str]:
    text = lines if isinstance(lines, str) else "\n".join(lines)
    return [line.split()[0] for line in text.splitlines() if line.split()[1:2] == [name]]


@pytest.fixture
async def protected_redis(private_redis: PrivateRedis) -> str:
    """A Redis that requires a password, so a healthy run has a Redis secret to keep."""
    client = redis.asyncio.Redis.from_url(private_redis.url)
    await client.config_set("requirepass", REDIS_PASSWORD)
    await client.aclose()
    return with_password(private_redis.url, REDIS_PASSWORD)


@pytest.fixture
def healthy_env(tmp_path: Path, migrated_database_url: str, protected_redis: str) -> dict[str, str]:
    return {
        "DATABASE_URL": with_password(migrated_database_url, DB_PASSWORD),
        "REDIS_URL": protected_redis,
        "STORAGE_URL": (tmp_path / "media").as_uri(),
        "FLUXSTUDIO_HOME": str(tmp_path / "home"),
        "MCP_AUTH_TOKEN": MCP_TOKEN,
        "FFMPEG_PATH": "/usr/bin/ffmpeg",
        "FFPROBE_PATH": "/usr/bin/ffprobe",
    }


async def test_healthy_deployment_with_a_live_worker_passes(
    healthy_env: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    worker = start_worker(healthy_env)
    client = redis.asyncio.Redis.from_url(healthy_env["REDIS_URL"])
    try:
        await wait_for(lambda: read_fleet(client), 30, f"the worker's heartbeat\n{worker.log()}")
    finally:
        await client.aclose()
    result, took = run_doctor(healthy_env)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for name in ("settings", "postgresql", "migrations", "redis", "storage", "ffmpeg", "workers", "queue"):
        assert status_of(out, name) and set(status_of(out, name)) == {OK}, out
    assert f":{worker.process.pid} (" in out and "MCP_AUTH_TOKEN is set" in out
    assert "libx264 and aac" in out and "write, read, delete" in out
    assert took < 15, f"doctor took {took:.1f} s"
    assert_no_secret(out + result.stderr)


async def test_healthy_s3_storage_reports_addressing_style_and_clock(
    healthy_env: dict[str, str], s3_server: S3Server, s3_bucket: str
) -> None:
    env = {**healthy_env, **s3_server.environ(s3_bucket)}
    checks = await diagnose(env, "api")
    storage = next(c for c in checks if c.name == "storage")
    assert storage.status == OK and "path-style" in storage.detail and s3_bucket in storage.detail
    clock = next(c for c in checks if c.name == "clock")
    assert clock.status == OK and "s" in clock.detail
    assert_no_secret(scrub(render_text(checks, "api"), env))
    assert_no_secret(render_text(checks, "api"))  # even before the last scrub


async def test_wrong_s3_key_fails_storage_without_showing_it(
    healthy_env: dict[str, str], s3_server: S3Server
) -> None:
    env = {**healthy_env, **s3_server.environ("no-such-bucket-here")}
    checks = await diagnose(env, "worker")
    storage = next(c for c in checks if c.name == "storage")
    assert storage.status == FAIL and "no-such-bucket-here" in storage.detail and storage.fix
    assert_no_secret(render_text(checks, "worker"))


def test_missing_and_malformed_settings_fail_by_name_only(tmp_path: Path) -> None:
    env = {
        # the first old failure: DATABASE_URL missing altogether
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:notaport/0",  # the second: "Invalid URL"
        "MCP_AUTH_TOKEN": MCP_TOKEN,
        "FLUXSTUDIO_HOME": str(tmp_path),
    }
    result, took = run_doctor(env, "--component", "api")
    out = result.stdout
    assert result.returncode == 1
    assert "FAIL  settings    DATABASE_URL (needed by api) is not set" in out
    assert "for example DATABASE_URL=postgresql://" in out
    assert "FAIL  settings    REDIS_URL (needed by api) is not a valid URL" in out
    assert status_of(out, "postgresql") == [FAIL] and status_of(out, "redis") == [FAIL]
    assert "storage" in out and "ffmpeg" in out, "the rest is still checked"
    assert out.rstrip().splitlines()[-1].startswith("doctor (api): ")
    assert took < 15
    assert_no_secret(out + result.stderr)


def test_empty_and_unbound_placeholder_variables_are_explained(tmp_path: Path) -> None:
    # What DigitalOcean's deploy action leaves behind: '' for an unset ${VAR}, or a ${...} never bound.
    env = {"DATABASE_URL": "", "REDIS_URL": "${redis.REDIS_URL}", "FLUXSTUDIO_HOME": str(tmp_path)}
    result, _ = run_doctor(env, "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False
    settings = [c for c in report["checks"] if c["name"] == "settings" and c["status"] == FAIL]
    by_variable = {c["detail"].split()[0]: c for c in settings}
    assert "set but empty" in by_variable["DATABASE_URL"]["detail"]
    redis_fix = by_variable["REDIS_URL"]["fix"]
    assert "unresolved" in redis_fix and "${db.DATABASE_URL}" in redis_fix


def test_closed_ports_fail_fast_and_keep_passwords(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"postgresql://flux:{DB_PASSWORD}@127.0.0.1:{free_port()}/flux",
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",
        "STORAGE_URL": (tmp_path / "media").as_uri(),
        "FLUXSTUDIO_HOME": str(tmp_path),
    }
    result, took = run_doctor(env)
    out = result.stdout
    assert result.returncode == 1
    (postgres,) = [line for line in out.splitlines() if line.split()[1] == "postgresql"]
    assert postgres.startswith("FAIL") and "127.0.0.1" in postgres and "-> fix:" in postgres
    assert status_of(out, "redis") == [FAIL] and status_of(out, "storage") == [OK]
    assert status_of(out, "workers") == [WARN]  # cannot know: heartbeats live in Redis
    assert took < 12, f"doctor took {took:.1f} s with closed ports"
    assert_no_secret(out + result.stderr)


async def test_unmigrated_database_fails_with_the_command_to_run(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STORAGE_URL": (tmp_path / "m").as_uri()}
    checks = await diagnose(env, "api")
    migrations = next(c for c in checks if c.name == "migrations")
    assert migrations.status == FAIL and "never migrated" in migrations.detail
    assert "fluxstudio migrate" in migrations.fix
    assert next(c for c in checks if c.name == "postgresql").status == OK


async def test_unwritable_storage_fails(tmp_path: Path, migrated_database_url: str, redis_url: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # we run as root in CI, so permissions cannot block us: a file can
    env = {
        "DATABASE_URL": migrated_database_url,
        "REDIS_URL": redis_url,
        "STORAGE_URL": (blocker / "media").as_uri(),
    }
    checks = await diagnose(env, "worker")
    storage = next(c for c in checks if c.name == "storage")
    assert storage.status == FAIL and str(blocker / "media") in storage.detail
    assert "writable" in storage.fix
    assert all(c.name != "mcp" for c in checks), "the worker has no /mcp to report on"


def test_no_worker_heartbeat_fails_only_when_jobs_wait() -> None:
    from fluxstudio.runtime.metrics import JobStats

    redis_up = RedisFacts(reachable=True)
    idle = DatabaseFacts(reachable=True, jobs=JobStats({}, 0, 0.0))
    waiting = DatabaseFacts(reachable=True, jobs=JobStats({"queued": 2}, 2, 40.0))
    assert check_workers(redis_up, idle).status == WARN  # workers may scale to zero when idle
    stuck = check_workers(redis_up, waiting)
    assert stuck.status == FAIL and "2 job(s) wait" in stuck.detail and "fluxstudio worker" in stuck.fix


def test_scrub_masks_every_secret_form() -> None:
    env = {
        "DATABASE_URL": f"postgresql://u:{DB_PASSWORD}@h/db",
        "SPACES_SECRET_KEY": SECRET_KEY,
        "MCP_AUTH_TOKEN": MCP_TOKEN,
    }
    text = f"x {DB_PASSWORD} y {env['DATABASE_URL']} {SECRET_KEY} {MCP_TOKEN}"
    assert_no_secret(scrub(text, env))
    assert Check("x", FAIL, "d", "f").line().endswith("-> fix: f")
