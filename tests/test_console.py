"""What `up`, `upload --wait` and `transcode` show on a terminal: log lines print above a live rich
progress bar instead of tearing through it, and uvicorn's escape-coded `color_message` copy is dropped."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from rich.console import Console

from fluxstudio.commands.bars import transcode_bar
from fluxstudio.log import configure_logging, get_logger


@pytest.fixture
def plain_logging() -> Iterator[None]:
    configure_logging("cli", fmt="console", level="info")  # to sys.stderr, as the commands do
    yield
    logging.getLogger().handlers[:] = []


@pytest.mark.usefixtures("plain_logging")
def test_log_lines_print_above_a_live_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with transcode_bar(console) as bar:
        task = bar.add_task("transcode", total=1.0, speed="")
        bar.update(task, completed=0.5)
        get_logger().info("while_the_bar_is_live", job_id="job_1")
        logging.getLogger("uvicorn.error").info("a library speaks too")
        bar.update(task, completed=1.0)
    drawn = screen.getvalue()
    # Both lines went through rich's console (which clears the bar, prints the line, redraws the bar),
    # not straight to the terminal's stderr, where they would land in the middle of the bar.
    assert "while_the_bar_is_live" in drawn and "a library speaks too" in drawn
    assert "while_the_bar_is_live" not in capsys.readouterr().err
    line = next(text for text in drawn.splitlines() if "while_the_bar_is_live" in text)
    assert "job_id=job_1" in line and "transcoding" not in line


@pytest.mark.usefixtures("plain_logging")
def test_uvicorns_color_message_is_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    err = capsys.readouterr().err
    assert "Started server process [42]" in err
    assert "color_message" not in err and "\x1b" not in err and "\\x1b" not in err
