"""The playback settings (API.md section 2): CORS_ORIGINS and PLAYBACK_SIGNING_KEY, validated by name,
never echoing a value."""

from __future__ import annotations

import pytest

from fluxstudio.config import Secret, SettingsError, load_settings
from tests.test_config import GOOD


def test_cors_origins_and_signing_key_are_read() -> None:
    key = "s" * 40
    settings = load_settings(
        "api",
        {
            **GOOD,
            "CORS_ORIGINS": " https://app.example , http://localhost:5173/ ",
            "PLAYBACK_SIGNING_KEY": key,
        },
    )
    assert settings.cors_origins == ("https://app.example", "http://localhost:5173")
    assert settings.playback_signing_key == Secret(key) and key not in repr(settings)
    assert load_settings("api", {**GOOD, "CORS_ORIGINS": "*"}).cors_origins == ("*",)
    defaults = load_settings("api", GOOD)
    assert defaults.cors_origins == () and defaults.playback_signing_key is None


@pytest.mark.parametrize(
    ("variable", "value", "wrong"),
    [
        ("CORS_ORIGINS", "*,https://app.example", "either * alone"),
        ("CORS_ORIGINS", "https://app.example/path-secret", "not an origin"),
        ("CORS_ORIGINS", "ftp://files.example", "must start with"),
        ("PLAYBACK_SIGNING_KEY", "short-secret-value", "at least 32"),
    ],
)
def test_bad_values_are_named_and_never_echoed(variable: str, value: str, wrong: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings("api", {**GOOD, variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable} (needed by api): ") and wrong in message
    assert value not in message
