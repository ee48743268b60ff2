"""The settings check: every problem `load_settings` finds, one line each, by name and never by value.

Unlike a command, doctor does not stop at a bad setting: it reports it, drops it, and checks everything
else with what is left, so one run shows the whole picture. It also recognises the old deploy failures by
their shape: a value that is empty (a deploy tool replaced an unset `${VAR}` with ''), and a value that
still holds a `${...}` placeholder (a spec variable that was never bound).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fluxstudio.config import EXAMPLES, REQUIRED, Settings, SettingsError, load_settings
from fluxstudio.doctor.report import FAIL, OK, WARN, Check

#: Every variable FluxStudio reads (a placeholder in any of them is a deploy mistake).
VARIABLES = (*EXAMPLES, "MCP_AUTH_TOKEN", "FLUXSTUDIO_HOME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
PLACEHOLDER_FIX = (
    "the deploy spec passed a ${...} reference through unresolved: bind it to a component "
    "(e.g. ${db.DATABASE_URL}) or set the value in the platform; deploy/digitalocean/check-env.sh "
    "catches this in CI"
)


def check_settings(environ: Mapping[str, str], component: str) -> tuple[Settings, list[Check]]:
    """The settings doctor can work with (bad variables left out) and the lines about them."""
    checks: list[Check] = []
    placeholders = {
        name for name in (*VARIABLES, *REQUIRED[component]) if "${" in (environ.get(name) or "")
    }
    try:
        settings = load_settings(component, environ)
        problems = []
    except SettingsError as exc:
        problems = exc.problems
        bad = {p.variable for p in problems}
        # "up" requires nothing, so what remains still loads and the other checks can run.
        settings = load_settings("up", {k: v for k, v in environ.items() if k not in bad})
        settings = replace(settings, component=component)
    for problem in problems:
        name = problem.variable
        example = EXAMPLES.get(name)
        fix = f"set {name}" + (f", for example {name}={example}" if example else "")
        if name in placeholders:
            fix = PLACEHOLDER_FIX
        detail = f"{name} (needed by {problem.component}) {problem.message}"
        checks.append(Check("settings", FAIL, detail, fix))
    for name in sorted(placeholders - {p.variable for p in problems}):
        detail = f"{name} holds an unresolved ${{...}} placeholder"
        checks.append(Check("settings", FAIL, detail, PLACEHOLDER_FIX))
    if not checks:
        shown = ", ".join(sorted(settings.present)) or "none"
        checks.append(Check("settings", OK, f"valid for {component}; set: {shown} (names only)"))
    if "STORAGE_URL" not in settings.present:
        checks.append(
            Check(
                "settings",
                WARN,
                f"STORAGE_URL is not set: media goes to the local folder {settings.media_dir}",
                "with more than one machine (or a platform whose disk is wiped on deploy) use "
                "STORAGE_URL=s3://bucket/prefix",
            )
        )
    return settings, checks

