#!/bin/sh
# The main job (npm run up): `pulumi up` of a stack (default: dev) on the local swarm, with a local
# file backend. Brings the local engines, the swarm and the PostgreSQL image up first
# (scripts/lab.sh), and sets random passwords as secrets on first use.
#   scripts/up.sh [stack] [pulumi up flags...]
set -eu
cd "$(dirname "$0")/.."
stack=${1:-dev}
[ $# -gt 0 ] && shift

if ! command -v pulumi >/dev/null 2>&1; then
    cat >&2 <<'MSG'
pgha: the Pulumi CLI is not installed ('pulumi' is not on PATH), so the stack cannot be deployed here.
  Install it from https://www.pulumi.com/docs/iac/download-install/ (the npm package 'pulumi' is
  only a downloader and needs the internet), then run 'npm run up' again.
  Without the CLI you can still run the tests ('npm test'): they apply the same program to a real
  two-node swarm through a test engine (test/engine/README.md).
MSG
    exit 127
fi
[ -f Pulumi."$stack".yaml ] || echo "pgha: no Pulumi.$stack.yaml yet: 'pulumi stack init $stack' and set pgha:servers and pgha:primary (README)" >&2

# (npm install, not npm ci: see scripts/test.sh)
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm install --no-audit --no-fund; fi
sh scripts/lab.sh up

# A local file backend next to the project, and a passphrase for the stack's secrets kept in a
# private file there (set PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE to use your own).
mkdir -p .pulumi && chmod 700 .pulumi
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    [ -s .pulumi/passphrase ] || (umask 077 && head -c 32 /dev/urandom | base64 > .pulumi/passphrase)
    export PULUMI_CONFIG_PASSPHRASE_FILE="$PWD/.pulumi/passphrase"
fi

pulumi stack select --create "$stack"
for key in superuserPassword replicatorPassword; do
    if ! pulumi config get "pgha:$key" >/dev/null 2>&1; then
        head -c 24 /dev/urandom | base64 | tr -d '/+=\n' | pulumi config set --secret "pgha:$key" >/dev/null
        echo "pgha: generated pgha:$key (a secret; read it with: pulumi config get pgha:$key)"
    fi
done
exec pulumi up "$@"
