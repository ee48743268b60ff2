"""Fixtures shared by every test live in `tests/fixtures/`; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.media",
    "tests.fixtures.s3",
    "tests.fixtures.jobs",
    "tests.fixtures.platform",
    "tests.fixtures.js",
    "tests.fixtures.homes",
    "tests.fixtures.reports",
    "tests.fixtures.receiver",
]
