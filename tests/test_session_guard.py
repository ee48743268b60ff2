"""A failing test that leaks asyncio subprocess transports past their event loop (what a failed JavaScript
client test used to do) fails alone: the session goes on, with no INTERNALERROR (pytest#10763)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LEAKY = """
import asyncio
import gc
import sys

gc.set_threshold(1)  # collect on almost every allocation, so also while pytest parses source


async def run_one() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stderr.write('x' * 5000); sys.exit(1)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]


async def both() -> None:
    await asyncio.gather(run_one(), run_one())


def test_leaks_transports() -> None:
    asyncio.run(both())


def test_after_it() -> None:
    pass
"""


def test_a_leaky_failure_does_not_end_the_session(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.fixtures.reports",
         str(tmp_path / "test_leaky.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "INTERNALERROR" not in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    assert run.returncode == 1 and "1 failed, 1 passed" in run.stdout, run.stdout[-3000:]
