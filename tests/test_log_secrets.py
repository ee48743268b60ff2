"""No secret reaches the log on any output path: a crashing handler's traceback (rendered in both formats,
under a real uvicorn), the standard library's loggers (uvicorn's error logger prints exceptions too) and
exception text that names a token.

A traceback that shows local variables prints the request's scope, and with it the `Authorization` header
and a capability URL's path; the fix renders plain tracebacks as text before redaction runs.
"""

from __future__ import annotations

import io
import logging

import httpx
import pytest

from fluxstudio.log import configure_logging, get_logger
from tests.fixtures.platform import ApiUser

CRASHES = 4


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_crashing_handler_logs_no_bearer_token_or_upload_secret(
    fmt: str, start_api, api_env: dict[str, str], make_user
) -> None:
    server = start_api({**api_env, "LOG_FORMAT": fmt}, boom=True)
    user: ApiUser = await make_user("leak", server=server)
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "p"})).json()["id"]
        ticket = (await client.post(f"/api/v1/projects/{project}/uploads", json={"filename": "a.mp4"})).json()
        upload_secret = ticket["upload_url"].rsplit("/", 1)[1]
        assert upload_secret.startswith("upl_")
        for i in range(CRASHES):
            crashed = await client.get(f"/test-boom/api/v1/uploads/{upload_secret}?n={i}")
            assert crashed.status_code == 500
    # The same header and path again, from a client that keeps the secrets in other places of the scope.
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        crashed = await anonymous.put(
            f"/test-boom/{upload_secret}", headers={"authorization": f"Bearer {user.token}"}, content=b"x"
        )
        assert crashed.status_code == 500
    text = server.log_text()
    assert text.count("request_failed") >= CRASHES + 1
    assert "RuntimeError: boom" in text  # the traceback is there, as text
    assert user.token not in text
    assert upload_secret not in text
    assert upload_secret[4:20] not in text  # not even a recognisable part of it


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_stdlib_exceptions_and_messages_are_redacted_too(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("api", fmt=fmt, stream=stream)
    token = "fs_" + "A1b2C3d4" * 5
    upload = "upl_" + "Z9y8X7w6" * 5
    headers = {"authorization": f"Bearer {token}"}  # a local of the frame below
    try:
        try:
            raise ValueError(f"cannot handle {upload} with {headers}")
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
            get_logger().exception("request_failed", note=f"Bearer {token}")
    finally:
        logging.getLogger().handlers[:] = []
    text = stream.getvalue()
    assert "Exception in ASGI application" in text and "ValueError" in text
    assert text.count("Traceback (most recent call last)") == 2
    assert token not in text and upload not in text and token[3:19] not in text
    assert "[redacted]" in text
