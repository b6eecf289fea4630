#!/bin/sh
# The test command (npm test): installs what the tests need, then runs them.
#   scripts/test.sh          unit suite, then the end-to-end suite on the two-node lab swarm
#   scripts/test.sh unit     unit suite only (no Docker): the linters first (scripts/lint.sh:
#                            ShellCheck, ESLint, Prettier), then config, templates, graph,
#                            entrypoint; a lint finding fails it (the tests still run)
#   scripts/test.sh e2e      end-to-end suite only: builds the Pulumi toolchain if it is missing
#                            (scripts/toolchain.sh), brings the lab up (scripts/lab.sh up), runs
#                            the real `pulumi` on the program against it, tears the lab down
#                            (PGHA_KEEP_LAB=1 keeps it)
set -eu
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in all | unit | e2e) ;; *)
    echo "usage: scripts/test.sh [unit|e2e]" >&2
    exit 2
    ;;
esac

t0=$(date +%s)
phase() { echo "[test] $1 ($(($(date +%s) - t0)) s since start)"; }

# PostgreSQL server binaries (the unit suite runs real servers: templates, entrypoint) and
# libpq's headers (pg-native, the tests' libpq client, builds against them during npm install).
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_config >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "PostgreSQL server binaries or libpq-dev are missing: run as root, or apt-get install postgresql-15 libpq-dev" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 libpq-dev >/dev/null
    phase "PostgreSQL and libpq-dev installed"
fi

# npm packages, as pinned in package-lock.json (scripts/npm-install.sh says how and why).
sh scripts/npm-install.sh
phase "npm packages ready"


status=0
if [ "$what" != e2e ]; then
    # ShellCheck, ESLint and Prettier (ShellCheck is installed from Debian's packages when it
    # is missing); the unit suite runs after a finding too, and the exit status stays non-zero
    sh scripts/lint.sh || status=$?
    phase "lint done (exit $status)"
    unit=0
    npx vitest run --config vitest.config.ts || unit=$?
    phase "unit suite done (exit $unit)"
    [ "$unit" = 0 ] || status=$unit
fi
if [ "$what" != unit ] && [ "$status" = 0 ]; then
    # strace: the suite checks that the Pulumi CLI and its plugins connect to nothing but loopback
    if ! command -v strace >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || { echo "strace is missing: run as root, or apt-get install strace" >&2; exit 1; }
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
        phase "strace installed"
    fi
    # The real Pulumi CLI, language host and plugins (built from Go modules when missing).
    sh scripts/toolchain.sh || { echo "[test] the Pulumi toolchain could not be built (scripts/toolchain.sh, see above)" >&2; exit 1; }
    eval "$(sh scripts/toolchain.sh env)"
    phase "Pulumi toolchain ready ($(pulumi version))"
    if [ "${PGHA_KEEP_LAB:-}" != 1 ]; then trap 'sh scripts/lab.sh down >/dev/null 2>&1 || true' EXIT; fi
    sh scripts/lab.sh up || { echo "[test] the lab swarm could not be brought up (Docker Engine must be able to start here; see above)" >&2; exit 1; }
    phase "lab up"
    npx vitest run --config vitest.e2e.config.ts || status=$?
    phase "end-to-end suite done (exit $status)"
fi
exit "$status"
