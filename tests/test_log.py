"""Logging: one chain for our lines and the libraries', `component` on every line, secrets redacted."""

from __future__ import annotations

import io
import json
import logging

import pytest

from fluxstudio.log import configure_logging, get_logger, redact_text


@pytest.fixture
def json_lines() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("worker", fmt="json", level="info", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_is_json_with_component_including_library_loggers(json_lines: io.StringIO) -> None:
    get_logger().info("job_claimed", job_id="job_1", attempt=1)
    get_logger("collab").info("room_loaded", room="asset:x")
    for name in ("uvicorn.error", "arq.worker", "asyncpg", "botocore.hooks", "alembic.runtime.migration"):
        logging.getLogger(name).warning("library says %s", "hello")
    records = lines(json_lines)
    assert [r["component"] for r in records] == ["worker", "collab", *["worker"] * 5]
    assert records[0]["event"] == "job_claimed" and records[0]["attempt"] == 1
    assert {r.get("logger") for r in records[2:]} == {
        "uvicorn.error",
        "arq.worker",
        "asyncpg",
        "botocore.hooks",
        "alembic.runtime.migration",
    }
    assert all(r["timestamp"].endswith("Z") for r in records)  # type: ignore[union-attr]


def test_library_debug_noise_stays_out_at_info(json_lines: io.StringIO) -> None:
    logging.getLogger("botocore.endpoint").info("sending request")
    logging.getLogger("asyncpg.pool").info("connection opened")
    assert json_lines.getvalue() == ""


def test_secrets_are_redacted_wherever_they_appear(json_lines: io.StringIO) -> None:
    get_logger().info(
        "connecting",
        dsn="postgresql://flux:pw-db-1234@db:5432/flux",
        password="pw-plain",
        headers={"Authorization": "Bearer fs_tokentoken"},
        url="https://cdn.example.com/a.m3u8?X-Amz-Signature=abcdef123&x=1",
    )
    logging.getLogger("arq.worker").error("redis://:pw-redis-5678@redis:6379 unreachable")
    text = json_lines.getvalue()
    for secret in ("pw-db-1234", "pw-plain", "fs_tokentoken", "abcdef123", "pw-redis-5678"):
        assert secret not in text
    first = lines(json_lines)[0]
    assert first["dsn"] == "postgresql://flux:[redacted]@db:5432/flux"
    assert first["url"] == "https://cdn.example.com/a.m3u8?X-Amz-Signature=[redacted]&x=1"


def test_console_format_also_carries_component() -> None:
    stream = io.StringIO()
    configure_logging("api", fmt="console", stream=stream)
    try:
        logging.getLogger("uvicorn.error").info("Started server process")
        get_logger().info("request_done", status=200)
    finally:
        logging.getLogger().handlers[:] = []
    out = stream.getvalue().splitlines()
    assert len(out) == 2 and all("component=api" in line for line in out)


def test_redact_text_keeps_the_user_and_host_readable() -> None:
    assert redact_text("rediss://default:s3cr3t@host:25061") == "rediss://default:[redacted]@host:25061"
    assert redact_text("ws://h/collab/room?token=fs_abc") == "ws://h/collab/room?token=[redacted]"
    assert redact_text("no secrets here") == "no secrets here"


def test_a_logger_taken_at_import_follows_the_later_configuration() -> None:
    early = get_logger("collab")  # as a module does at import, before the entrypoint configures logging
    stream = io.StringIO()
    configure_logging("api", fmt="json", stream=stream)
    try:
        early.info("room_loaded", room="asset:x")
    finally:
        logging.getLogger().handlers[:] = []
    assert json.loads(stream.getvalue()) | {"timestamp": "t"} == {
        "component": "collab", "room": "asset:x", "event": "room_loaded", "level": "info", "timestamp": "t"
    }
