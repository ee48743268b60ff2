"""The `fluxstudio` command: a thin layer that reads settings once, sets up logging and calls the product.

Each subcommand names the component whose settings it validates; a missing or malformed setting stops the
command with exit status 2 before anything connects. Only a command's result goes to stdout (so
`TOKEN=$(fluxstudio tokens create ci)` works); logs, progress bars and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any

from fluxstudio import __version__
from fluxstudio.config import Settings, SettingsError, load_settings
from fluxstudio.errors import FluxError, Invalid, MediaError, NotFound
from fluxstudio.log import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_SETTINGS = 0, 1, 2


def _settings_for(command: str, component: str, flags: dict[str, str | None] | None = None) -> Settings:
    """Load settings or stop the process with one line per problem and exit status 2.

    `flags` are the values of flags that stand for a variable (`upload --server`); they win.
    """
    try:
        settings = load_settings(component, flags=flags)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"fluxstudio {command}: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_SETTINGS) from None
    # Lines carry the process's role: `up` hosts the API (its workers are processes of their own);
    # one-shot commands are "cli".
    configure_logging(
        {"api": "api", "worker": "worker", "up": "api"}.get(component, "cli"),
        fmt=settings.log_format,
        level=settings.log_level,
    )
    return settings


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_transcode(args: argparse.Namespace) -> int:
    settings = _settings_for("transcode", "transcode")
    from fluxstudio.commands.transcode import transcode_file

    return _run(
        transcode_file(
            settings,
            args.input,
            args.output,
            renditions=args.renditions,
            segment_seconds=args.segment_seconds,
            segment_format=args.segment_format,
        )
    )


def cmd_sample(args: argparse.Namespace) -> int:
    settings = _settings_for("sample", "transcode")
    from fluxstudio.commands.sample import make_sample

    return _run(make_sample(settings, args.output, seconds=args.seconds, size=args.size, fps=args.fps))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings_for("migrate", "migrate")
    from fluxstudio.db.migrations import upgrade

    assert settings.database_url is not None
    revision = upgrade(settings.database_url.get())
    print(f"database at revision {revision}", file=sys.stderr)
    return EXIT_OK


def cmd_tokens(args: argparse.Namespace) -> int:
    settings = _settings_for(f"tokens {args.tokens_command}", "tokens")
    from fluxstudio.commands import tokens

    handler = {"create": tokens.create, "list": tokens.list_, "revoke": tokens.revoke}[args.tokens_command]
    return _run(handler(settings, args))


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings_for("up", "up")
    from fluxstudio.commands.up import UpOptions, run_up

    port = args.port or int(os.environ.get("PORT") or 8000)
    return run_up(settings, UpOptions(host=args.host, port=port, workers=args.workers, demo=args.demo))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_for("serve", "api")
    from fluxstudio.commands.serve import serve

    return serve(settings, host=args.host, port=args.port or int(os.environ.get("PORT") or 8000))


def cmd_worker(args: argparse.Namespace) -> int:
    if args.check:
        # A liveness probe: only FLUXSTUDIO_HOME matters, nothing connects, nothing but the answer prints.
        from fluxstudio.heartbeat import check_local

        alive, line = check_local(_settings_for("worker --check", "transcode").home)
        print(line, file=sys.stdout if alive else sys.stderr)
        return EXIT_OK if alive else EXIT_FAILED
    settings = _settings_for("worker", "worker")
    # The CLI is an entrypoint like workers/ itself; library code never imports workers/.
    from workers import run_worker

    # Tuning left unset keeps WorkerOptions' own defaults, so they are written down in one place.
    tuning = {
        name: value
        for name, value in (
            ("lease_s", args.lease),
            ("reconcile_every_s", args.reconcile_every),
            ("retry_base_s", args.retry_base),
            ("queue_name", args.queue),
        )
        if value is not None
    }
    run_worker(
        settings,
        burst=args.burst,
        concurrency=args.concurrency,
        grace_s=args.grace,
        health_port=args.health_port,
        **tuning,
    )
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from fluxstudio.commands.doctor import doctor

    return doctor(component=args.component, as_json=args.json)


def cmd_upload(args: argparse.Namespace) -> int:
    flags = {"FLUXSTUDIO_SERVER": args.server, "FLUXSTUDIO_TOKEN": args.token}
    settings = _settings_for("upload", "upload", flags)
    from fluxstudio.commands.upload import upload_file

    return _run(
        upload_file(settings, args.file, project=args.project, wait=args.wait, resume=args.resume)
    )


def cmd_import(args: argparse.Namespace) -> int:
    flags = {"FLUXSTUDIO_SERVER": args.server, "FLUXSTUDIO_TOKEN": args.token}
    settings = _settings_for("import", "upload", flags)
    from fluxstudio.commands.importing import import_url

    return _run(
        import_url(
            settings,
            args.url,
            project=args.project,
            filename=args.filename,
            transcode=args.transcode,
            wait=args.wait,
        )
    )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with every option's default, except where there is none to show (flags, "decided elsewhere",
    which the help text explains)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _command(sub: Any, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose `--help` starts with what it does and lists every option with its default."""
    return sub.add_parser(  # type: ignore[no-any-return]
        name, help=summary, description=description or summary, formatter_class=_HelpFormatter
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxstudio",
        description="Uploads to adaptive HLS, for people and agents. `fluxstudio COMMAND --help` for more.",
        epilog="Exit status: 0 done, 1 failed (the message says why), 2 bad settings or arguments.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fluxstudio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "transcode", "turn one local file into an HLS ladder (no services needed)")
    p.add_argument("input", metavar="INPUT", help="a media file ffmpeg can read")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="a new or empty folder")
    p.add_argument(
        "--renditions",
        help="comma-separated, e.g. 720p,480p (default: 1080p,720p,480p,360p, up to the source)",
    )
    p.add_argument("--segment-seconds", type=int, default=4, help="segment length, 2 to 10 seconds")
    p.add_argument("--segment-format", choices=("fmp4", "ts"), default="fmp4", help="HLS segment container")
    p.set_defaults(handler=cmd_transcode)

    p = _command(sub, "sample", "generate a test clip (test pattern and a tone) to try the pipeline on")
    p.add_argument("output", metavar="FILE", help="where to write it, e.g. sample.mp4")
    p.add_argument("--seconds", type=float, default=10.0, help="duration")
    p.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    p.add_argument("--fps", type=int, default=30, help="frames per second")
    p.set_defaults(handler=cmd_sample)

    p = _command(
        sub,
        "migrate",
        "upgrade the database schema to head (safe to run concurrently)",
        "Upgrade the schema at DATABASE_URL to head, under an advisory lock so replicas may run it at once.",
    )
    p.set_defaults(handler=cmd_migrate)

    p = _command(sub, "tokens", "create, list and revoke API tokens (needs DATABASE_URL, or a running up)")
    tokens_sub = p.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    t = _command(
        tokens_sub,
        "create",
        "print a new token on stdout, alone (shown once; only its hash is stored)",
        "Print a new API token on stdout, alone: TOKEN=$(fluxstudio tokens create ci). Shown once.",
    )
    t.add_argument("name", help="what the token is for, e.g. ci or agent")
    t.add_argument("--user", metavar="EMAIL", help="owner, created on first use (default: the local user)")
    t = _command(tokens_sub, "list", "list tokens (never their values)")
    t.add_argument("--user", metavar="EMAIL", help="only this user's tokens (default: everyone's)")
    t.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    t = _command(tokens_sub, "revoke", "revoke a token by id (exit 1 if it is unknown or already revoked)")
    t.add_argument("id", help="the token's id (tok_…), from `tokens list`")
    p.set_defaults(handler=cmd_tokens)

    p = _command(
        sub,
        "up",
        "the whole platform on one machine, embedded services where none are set",
        "The whole platform on one machine: embedded PostgreSQL and Redis for whichever of DATABASE_URL and "
        "REDIS_URL is unset, migrations, the API and supervised workers. Other commands on this machine "
        "find it (FLUXSTUDIO_HOME/up.json). Ctrl-C stops everything it started.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the API listens on")
    p.add_argument("--port", type=int, default=None, help="the API's port (default: $PORT or 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--demo", action="store_true", help="also upload and transcode a generated sample clip")
    p.set_defaults(handler=cmd_up)

    p = _command(sub, "serve", "the API process (REST, /collab, /mcp, /media)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=int, default=None, help="port (default: $PORT or 8000)")
    p.set_defaults(handler=cmd_serve)

    p = _command(sub, "worker", "one transcode worker process")
    p.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default: $WORKER_CONCURRENCY or 1)"
    )
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running jobs may finish after SIGTERM before they are handed back",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="liveness probe: exit 0 if a worker on this machine beat its heartbeat in the last 60 s",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve GET /healthz (the --check answer) and /metrics on this port (default: none)",
    )
    # Tuning for tests and operators, without a new environment variable; unset keeps the defaults.
    p.add_argument("--lease", type=float, default=None, metavar="S", help="job lease (default: 30 s)")
    p.add_argument(
        "--reconcile-every", type=float, default=None, metavar="S", help="reconciler period (default: 10 s)"
    )
    p.add_argument(
        "--retry-base", type=float, default=None, metavar="S", help="first retry back-off (default: 10 s)"
    )
    p.add_argument("--queue", default=None, help="arq queue name (default: fluxstudio:queue)")
    p.set_defaults(handler=cmd_worker)

    p = _command(
        sub,
        "upload",
        "upload a file to a running server and start a transcode",
        "Stream FILE to a running server and start a transcode. Beside a running `fluxstudio up` no flags "
        "are needed; elsewhere pass --server and --token (or set FLUXSTUDIO_SERVER, FLUXSTUDIO_TOKEN).",
    )
    p.add_argument("file", metavar="FILE", help="the media file to upload")
    p.add_argument("--project", default="uploads", help="project name; created if missing")
    p.add_argument("--wait", action="store_true", help="follow the transcode and print the playback URL")
    p.add_argument(
        "--server", help="API base URL, e.g. http://127.0.0.1:8000 (default: $FLUXSTUDIO_SERVER, or `up`'s)"
    )
    p.add_argument("--token", help="API token (default: $FLUXSTUDIO_TOKEN, or `up`'s development token)")
    p.add_argument("--resume", action="store_true", help="continue this file's interrupted upload (tus)")
    p.set_defaults(handler=cmd_upload)

    p = _command(
        sub,
        "import",
        "have a running server fetch a file from an http(s) URL",
        "Have a running server fetch URL into a new asset (http and https only; private addresses are "
        "refused unless IMPORT_ALLOWED_NETWORKS allows them). Prints the asset id.",
    )
    p.add_argument("url", metavar="URL", help="the http(s) URL of the media file")
    p.add_argument("--project", default="uploads", help="project name; created if missing")
    p.add_argument("--filename", help="the asset's name (default: from the URL)")
    p.add_argument("--transcode", action="store_true", help="start an HLS transcode once it has landed")
    p.add_argument("--wait", action="store_true", help="wait until the import has landed (or failed)")
    p.add_argument(
        "--server", help="API base URL, e.g. http://127.0.0.1:8000 (default: $FLUXSTUDIO_SERVER, or `up`'s)"
    )
    p.add_argument("--token", help="API token (default: $FLUXSTUDIO_TOKEN, or `up`'s development token)")
    p.set_defaults(handler=cmd_import)

    p = _command(sub, "doctor", "check a deployment end to end, one line per check (exit 1 on FAIL)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    p.add_argument(
        "--component",
        choices=("api", "worker"),
        default=None,
        help="check the settings of this component only (default: what both need)",
    )
    p.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Invalid as exc:
        print(f"fluxstudio {args.command}: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    except (NotFound, MediaError, FluxError) as exc:
        print(f"fluxstudio {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
