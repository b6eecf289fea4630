#!/bin/sh
# The main job (npm run up): a real `pulumi up` of a stack (default: dev) on the local swarm, with a
# local file backend. Builds the Pulumi toolchain if it is missing (scripts/toolchain.sh), brings
# the local engines, the swarm and the PostgreSQL image up (scripts/lab.sh), and sets random
# passwords as secrets on first use.
#
#   npm run up                         pulumi up of the dev stack (asks first on a terminal)
#   npm run up -- preview              pulumi preview --diff (what `up` would change; what a pull
#                                      request's comment shows)
#   npm run up -- refresh              pulumi refresh (compare the state with the swarm)
#   npm run up -- destroy              unprotect and destroy the stack; the data and archive
#                                      volumes stay in Docker (retainOnDelete) and a later
#                                      `npm run up` adopts them with their data
#   npm run up -- destroy --volumes    the same, then also delete those volumes (their data is lost)
#   PGHA_STACK=name npm run up ...     another stack (Pulumi.<name>.yaml)
#   DOCKER_HOST=ssh://user@manager     deploy to that swarm manager; no local swarm is started
# Any further arguments go to pulumi as they are (e.g. `npm run up -- up --diff`).
set -eu
cd "$(dirname "$0")/.."
stack=${PGHA_STACK:-dev}
verb=up
case ${1:-} in up | preview | refresh | destroy) verb=$1; shift ;; esac
remove_volumes=0
if [ "$verb" = destroy ] && [ "${1:-}" = --volumes ]; then remove_volumes=1; shift; fi

[ -f Pulumi."$stack".yaml ] || echo "pgha: no Pulumi.$stack.yaml yet: set pgha:servers and pgha:primary for stack $stack (docs/configuration.md)" >&2

sh scripts/npm-install.sh
sh scripts/toolchain.sh
eval "$(sh scripts/toolchain.sh env)"
# The local swarm (scripts/lab.sh) unless DOCKER_HOST names another manager to deploy to.
[ -n "${DOCKER_HOST:-}" ] || sh scripts/lab.sh up

# A local file backend next to the project, and a passphrase for the stack's secrets kept in a
# private file there (set PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE to use your own).
mkdir -p .pulumi && chmod 700 .pulumi
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    [ -s .pulumi/passphrase ] || (umask 077 && head -c 32 /dev/urandom | base64 > .pulumi/passphrase)
    export PULUMI_CONFIG_PASSPHRASE_FILE="$PWD/.pulumi/passphrase"
fi

pulumi stack select --create --secrets-provider passphrase "$stack" >/dev/null
for key in superuserPassword replicatorPassword; do
    if ! pulumi config get --stack "$stack" "pgha:$key" >/dev/null 2>&1; then
        # the value goes on stdin: never on a command line
        head -c 24 /dev/urandom | base64 | tr -d '/+=\n' | pulumi config set --stack "$stack" --secret "pgha:$key" >/dev/null
        echo "pgha: generated pgha:$key (a secret; read it with: pulumi config get pgha:$key)"
    fi
done

# On a terminal pulumi shows the preview and asks; otherwise (CI, a pipe) it applies at once.
yes=""
[ -t 0 ] || yes="--yes --non-interactive"

case $verb in
up | refresh)
    # shellcheck disable=SC2086 # $yes: no word, or two flags
    exec pulumi "$verb" --stack "$stack" $yes "$@"
    ;;
preview)
    # what a pull request's comment shows (.github/workflows/pgha.yml), and what the end-to-end
    # suite runs for its preview proof (test/e2e/switchover.test.ts)
    exec pulumi preview --stack "$stack" --diff --non-interactive "$@"
    ;;
destroy)
    # shellcheck disable=SC2016 # a Node.js script: ${...} is its template literal, not the shell's
    volumes=$(pulumi stack output --stack "$stack" --json servers 2>/dev/null |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{for(const v of Object.values(JSON.parse(s)))console.log(`${v.dockerHost||"-"} ${v.dataVolume} ${v.archiveVolume}`)}catch{}})') || volumes=""
    pulumi state unprotect --stack "$stack" --all --yes >/dev/null
    # shellcheck disable=SC2086 # $yes: no word, or two flags
    pulumi destroy --stack "$stack" $yes "$@"
    if [ "$remove_volumes" = 1 ]; then
        echo "$volumes" | while read -r host data archive; do
            [ -n "$data" ] || continue
            # "$@" becomes -H HOST, or nothing for the local engine (pulumi's arguments are done with)
            if [ "$host" = - ]; then set --; else set -- -H "$host"; fi
            docker "$@" volume rm "$data" "$archive" && echo "pgha: removed volumes $data $archive"
        done
    elif [ -n "$volumes" ]; then
        echo "pgha: the data and archive volumes are kept (npm run up -- destroy --volumes deletes them)"
    fi
    ;;
esac
