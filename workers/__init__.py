"""Worker processes: arq workers that run transcode jobs (`python -m workers` or `fluxstudio worker`).

An entry point, layer 4: nothing imports this package. `run_worker(settings, ...)` runs one process.
"""

from workers.context import WorkerOptions
from workers.runner import run_worker, serve

__all__ = ["WorkerOptions", "run_worker", "serve"]
