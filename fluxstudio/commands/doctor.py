"""`fluxstudio doctor [--json] [--component api|worker]`: print the checks, exit 1 if any FAILed.

Unlike the other commands it does not stop at a bad setting (reporting those is its job), so it reads the
environment itself instead of going through the CLI's settings gate. The whole output is scrubbed of every
secret value in the environment before it is printed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping

from fluxstudio.config import environment
from fluxstudio.doctor import diagnose, failed, render_json, render_text, scrub
from fluxstudio.log import configure_logging


def doctor(*, component: str | None, as_json: bool, environ: Mapping[str, str] | None = None) -> int:
    name = component or "doctor"
    # Beside a running `up`, its record supplies what is unset (kept on the mapping for the stale case).
    env = environment(name) if environ is None else environ
    # Library warnings (a driver retrying) would only repeat what a check line says, and less clearly.
    configure_logging("cli", level="error")
    checks = asyncio.run(diagnose(env, name))
    shown = name if component else "api+worker"
    text = render_json(checks, shown) if as_json else render_text(checks, shown)
    sys.stdout.write(scrub(text, env))
    return 1 if failed(checks) else 0
