"""`fluxstudio doctor`: a deployment checked end to end, one line per check, secrets never shown.

    checks = await diagnose(environ, component="api")     # list[Check]
    print(render_text(checks, "api"))

Built for the failures that sank the old deploys: a missing or empty variable, a malformed URL, a
placeholder that was never bound, an unmigrated database, a worker nobody can see. Each FAIL says how to
fix it. Reads the environment it is given; `fluxstudio/commands/doctor.py` passes the process's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from fluxstudio.doctor.checks import run_checks
from fluxstudio.doctor.report import FAIL, OK, WARN, Check, failed, render_json, render_text, scrub
from fluxstudio.doctor.settings import check_settings

__all__ = ["FAIL", "OK", "WARN", "Check", "diagnose", "failed", "render_json", "render_text", "scrub"]


async def diagnose(environ: Mapping[str, str], component: str = "doctor") -> list[Check]:
    """Every check for `component` ("api", "worker", or "doctor" for what both need)."""
    settings, checks = check_settings(environ, component)
    return [*checks, *await run_checks(settings, component)]
