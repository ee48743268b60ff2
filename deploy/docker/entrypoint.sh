#!/bin/sh
# Platforms differ on what a "run command" replaces: some only CMD (`worker`), some the whole command
# (`fluxstudio worker`). Accept both, so the same spec line works everywhere.
set -e
if [ "${1:-}" = "fluxstudio" ]; then
  shift
fi
exec fluxstudio "$@"
