"""Without Node.js the tests that need the JavaScript clients skip, and the skip says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_node_the_js_tests_skip_and_say_why(tmp_path: Path) -> None:
    (tmp_path / "test_needs_js.py").write_text("def test_js(js_clients):\n    pass\n")
    no_node = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # python, and no node or npm
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "tests.fixtures.js",
         str(tmp_path / "test_needs_js.py")],
        cwd=ROOT, env=no_node, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert "1 skipped" in run.stdout and "node is not installed" in run.stdout, run.stdout[-3000:]
