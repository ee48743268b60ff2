"""`python -m workers [--burst] [--concurrency N] [--grace S] [--lease S] ...`: one worker process.

The very command `fluxstudio worker` is (same flags, settings, logging and exit statuses), for places
where only the module path is at hand; the tuning flags (`--lease`, `--reconcile-every`, `--retry-base`,
`--queue`) are tests' and operators' way to shorten times without a new environment variable.
"""

from __future__ import annotations

import sys

from fluxstudio.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
