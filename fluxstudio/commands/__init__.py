"""The bodies of the CLI's subcommands, one module each; `fluxstudio/cli.py` only parses and dispatches."""
