#!/usr/bin/env bash
# Fail a CI job when the app spec uses a ${VAR} that is unset or empty in this environment.
#
#   deploy/digitalocean/check-env.sh [deploy/digitalocean/app.yaml]
#
# DigitalOcean's deploy action replaces an unset ${VAR} with '' and then replaces the whole app spec, so a
# forgotten CI secret becomes an empty setting in production (the old "DATABASE_URL missing" and "Invalid
# URL" failures). References the platform resolves itself are skipped: bindable variables of components
# (${db.DATABASE_URL}, ${_self.URL}) and the app-wide ones (${APP_URL}, ${APP_DOMAIN}, ${APP_ID}).
# Prints variable names only, never values.
set -euo pipefail

spec="${1:-$(dirname "$0")/app.yaml}"
if [[ ! -r "$spec" ]]; then
  echo "check-env: cannot read the app spec $spec" >&2
  exit 2
fi

# Comments are skipped: a ${VAR} mentioned in a comment is not substituted into anything that matters.
mapfile -t names < <(
  sed -e 's/[[:space:]]#.*$//' -e 's/^[[:space:]]*#.*$//' "$spec" \
    | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*\}' | sed -E 's/^\$\{(.*)\}$/\1/' | sort -u
)

missing=0
for name in "${names[@]}"; do
  case "$name" in
    APP_URL | APP_DOMAIN | APP_ID) continue ;;
  esac
  if [[ -z "${!name+set}" ]]; then
    echo "check-env: $name is used in $spec but is not set (the deploy would replace it with '')" >&2
    missing=1
  elif [[ -z "${!name}" ]]; then
    echo "check-env: $name is used in $spec but is empty" >&2
    missing=1
  fi
done

if [[ "$missing" -ne 0 ]]; then
  echo "check-env: set the variables above as CI secrets before deploying; nothing was deployed" >&2
  exit 1
fi
echo "check-env: all ${#names[@]} variable(s) used in $spec are set"
