# Shared helpers of the host-side operation scripts (sourced, POSIX sh). The operations run where
# Pulumi runs (Command resources) and act on the servers' nodes through Docker: PGHA_DOCKER_HOST
# names the engine of the node an operation works on ("" = the local engine or DOCKER_HOST).
#
# Their environment is declared, per operation, in components/operations.ts (one format per kind
# of value; a unit test checks every script's variables against it):
#   a name list   comma-separated names (PGHA_PEERS, PGHA_LOST)
#   a server table PGHA_SERVERS: one line per server, "name engine|- dataVolume archiveVolume"
#                  (engine "-": the local engine)
#   a flag        1 or 0

pgha_op=${pgha_op:-$(basename "$0" .sh)}
pgha_scripts=$(cd "$(dirname "$0")" && pwd)
# The container side of every operation (delivered into every server's data volume by roll.sh).
pgha_server_files=$(cd "$pgha_scripts/../server" && pwd)
# Where a server container keeps pgha's files and its passwords (components/templates.ts: PATHS).
pgha_dir=/var/lib/pgha/data/pgha
# shellcheck disable=SC2034 # used by the scripts that source this file
pgha_secrets_dir=/var/lib/pgha/data/pgha-secrets
pgha_entrypoint=$pgha_dir/entrypoint.sh
# shellcheck source=plan.sh
. "$pgha_scripts/plan.sh"

log() { printf 'pgha %s: %s\n' "$pgha_op" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# require_env NAME...: every named variable is set and non-empty.
require_env() {
    for _name in "$@"; do
        eval "_value=\${$_name:-}"
        [ -n "$_value" ] || die "$_name is not set (the operations are run by the program's Command resources with their environment)"
    done
}

# docker_at HOST ARGS...: docker against one engine ("" = the default one).
docker_at() {
    _host=$1
    shift
    if [ -n "$_host" ]; then docker -H "$_host" "$@"; else docker "$@"; fi
}

# volume_state HOST VOLUME IMAGE: what a data volume holds, read by a one-off container on the
# volume's node: data (a PostgreSQL data directory), initialize (marked for initdb), partial (an
# interrupted copy only), empty, or foreign (a non-empty pgdata that is not PostgreSQL's).
volume_state() {
    docker_at "$1" volume inspect "$2" >/dev/null 2>&1 || die "volume $2 does not exist on ${1:-the local engine}"
    # shellcheck disable=SC2016 # expanded by the one-off container's shell
    docker_at "$1" run --rm --network none --label pgha.operation="$pgha_op" -v "$2:/v" --entrypoint /bin/sh "$3" -c '
        if [ -f /v/pgdata/PG_VERSION ]; then echo data
        elif [ -e /v/pgdata ] && [ -n "$(ls -A /v/pgdata 2>/dev/null)" ]; then echo foreign
        elif [ -e /v/pgha-initialize ]; then echo initialize
        elif [ -e /v/pgdata.partial ]; then echo partial
        else echo empty; fi'
}

# server_files_script DIR: shell text that writes the program's server files (scripts/server/*.sh)
# into DIR (a container's tmpfs); base64, so that any text travels intact through `sh -s`.
server_files_script() {
    printf 'mkdir -p %s && chmod 700 %s\n' "$1" "$1"
    for _sf in "$pgha_server_files"/*.sh; do
        printf 'printf %%s %s | base64 -d > %s/%s\n' "$(base64 <"$_sf" | tr -d '\n')" "$1" "${_sf##*/}"
    done
}

# container_script SUBCOMMAND...: the text a one-off container runs with `sh -s`: the passwords as
# files in the container's tmpfs (they travel on stdin, never on a command line or in `docker
# inspect`), the program's server files, then the requested subcommand of their entrypoint.
container_script() {
    printf 'set -e\nmkdir -p /dev/shm/pgha-secrets && chmod 700 /dev/shm/pgha-secrets\n'
    printf 'printf %%s %s | base64 -d > /dev/shm/pgha-secrets/pgha-superuser-password\n' "$(printf %s "${PGHA_SUPERUSER_PASSWORD:-}" | base64 | tr -d '\n')"
    printf 'printf %%s %s | base64 -d > /dev/shm/pgha-secrets/pgha-replicator-password\n' "$(printf %s "${PGHA_REPLICATOR_PASSWORD:-}" | base64 | tr -d '\n')"
    printf 'PGHA_SECRETS_DIR=/dev/shm/pgha-secrets\nexport PGHA_SECRETS_DIR\n'
    server_files_script /dev/shm/pgha-server
    printf 'exec /bin/sh /dev/shm/pgha-server/entrypoint.sh %s\n' "$*"
}

# now_ms: milliseconds since the epoch (GNU date).
now_ms() { date +%s%3N; }

# server_field NAME COLUMN: one column of NAME's line in PGHA_SERVERS (2 engine, 3 data volume,
# 4 archive volume).
server_field() {
    _v=$(printf '%s\n' "$PGHA_SERVERS" | awk -v n="$1" -v c="$2" '$1 == n { print $c; exit }')
    [ -n "$_v" ] || die "$1 is not one of the servers ($(server_names | tr '\n' ' '))"
    printf '%s' "$_v"
}

# server_host NAME: the engine of NAME's node ("" = the local one).
server_host() {
    _h=$(server_field "$1" 2)
    [ "$_h" = "-" ] && _h=""
    printf '%s' "$_h"
}


# server_container NAME: the running container of NAME's service on its node ("" when none).
server_container() {
    docker_at "$(server_host "$1")" ps -q --filter "label=com.docker.swarm.service.name=$1" --filter status=running | head -n 1
}

# locate NAME: sets srv_host and srv_ctr to NAME's engine and running container, or fails saying so.
locate() {
    srv_host=$(server_host "$1")
    srv_ctr=$(server_container "$1")
    [ -n "$srv_ctr" ] || { log "$1 has no running container"; return 1; }
}

# in_server NAME SUBCOMMAND ARGS...: run an entrypoint subcommand in NAME's container (no stdin:
# callers may be reading their own).
in_server() {
    locate "$1" || return 1
    shift
    docker_at "$srv_host" exec "$srv_ctr" /bin/sh "$pgha_entrypoint" "$@"
}

# in_server_stdin NAME SUBCOMMAND ARGS...: like in_server, with this script's stdin attached.
in_server_stdin() {
    locate "$1" || return 1
    shift
    docker_at "$srv_host" exec -i "$srv_ctr" /bin/sh "$pgha_entrypoint" "$@"
}

# server_sql NAME SQL: rows of SQL run as postgres on NAME (statements that are no instance state;
# those are asked with `instance`, below).
server_sql() { in_server "$1" sql "$2"; }

# instance NAME FACT...: one fact of NAME's instance, from the one owner of that SQL
# (scripts/server/instance.sh): role, timeline, replica <server>, slot ensure <server>, ...
instance() {
    _in=$1
    shift
    in_server "$_in" instance "$@"
}

# role_of NAME: primary, standby or down.
# The operations check single facts quickly here (a role, one standby's streaming state); the full
# health check (one primary, every standby streaming through an active slot, slots keeping their
# WAL, archivers not failing) is components/health.ts, run by `npm run status`.
role_of() {
    case $(instance "$1" role 2>/dev/null) in
    primary) echo primary ;;
    standby) echo standby ;;
    *) echo down ;;
    esac
}

# roles NAME...: lines "name role" (the observed states the decisions in plan.sh read).
roles() {
    for _rn in "$@"; do printf '%s %s\n' "$_rn" "$(role_of "$_rn")"; done
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 100 ms until it succeeds.
wait_until() {
    _limit=$(($(now_ms) + $1 * 1000))
    _what=$2
    shift 2
    _next_log=$(($(now_ms) + 5000))
    until "$@"; do
        [ "$(now_ms)" -lt "$_limit" ] || return 1
        if [ "$(now_ms)" -ge "$_next_log" ]; then
            log "still waiting for $_what"
            _next_log=$(($(now_ms) + 5000))
        fi
        sleep 0.1
    done
}

# entrypoint_in HOST CONTAINER SUBCOMMAND ARGS...: run an entrypoint subcommand in a running server
# container with the program's own server files (scripts/server/, copied into the container's
# tmpfs), not the copies its service was started with: an operation that runs before its service
# is updated (a rejoin) or while it may be (a failover) gets the subcommands it was written for.
entrypoint_in() {
    _eh=$1 _ec=$2
    shift 2
    _od=/dev/shm/pgha-operation-$$
    server_files_script "$_od" | docker_at "$_eh" exec -i "$_ec" /bin/sh -s || return 1
    _est=0
    docker_at "$_eh" exec "$_ec" /bin/sh "$_od/entrypoint.sh" "$@" || _est=$?
    docker_at "$_eh" exec "$_ec" rm -rf "$_od" >/dev/null 2>&1 || true
    return "$_est"
}

# server_exec NAME COMMAND...: run COMMAND (not an entrypoint subcommand) in NAME's container, its
# standard input passed through (file copies between containers are pipes between two of these).
server_exec() {
    locate "$1" || return 1
    shift
    docker_at "$srv_host" exec -i "$srv_ctr" "$@"
}

# server_names: the names in PGHA_SERVERS, one a line.
server_names() { printf '%s\n' "$PGHA_SERVERS" | awk 'NF { print $1 }'; }

# settled NAME: NAME's service is not in the middle of an update (as the swarm manager, the default
# engine, sees it) and its container runs. A `pulumi up` that changes a service spec runs the
# Commands that depend on it once the update is requested, while swarm may still replace the task.
settled() {
    case $(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$1" 2>/dev/null) in
    updating | rollback_started) return 1 ;;
    esac
    [ -n "$(server_container "$1")" ]
}

# answers NAME: PostgreSQL on NAME answers on its local socket.
answers() { [ "$(role_of "$1")" != down ]; }

# wait_servers SECONDS NAME...: every NAME's service settled and its PostgreSQL answering.
wait_servers() {
    _wl=$1
    shift
    for _wn in "$@"; do
        wait_until "$_wl" "$_wn's service to settle (an update in progress)" settled "$_wn" || return 1
        wait_until "$_wl" "PostgreSQL on $_wn to answer" answers "$_wn" || return 1
    done
}

# ---------------------------------------------------------------------------
# Delivering files into a server's data volume (reload, roll, passwords)
# ---------------------------------------------------------------------------

# file_install_script DIR DIRMODE [check]: the start of a script (run by `sh -s` in the server's container
# or in a one-off container on its data volume) that installs files into DIR; add files with
# file_install, end with file_install_end. Each file is written beside its place and renamed over
# it (a running shell keeps reading the old one); unchanged files are left alone; the script
# prints "changed <file>" for each file it replaced. With check, it changes nothing and prints
# "changed <file>" for each file that differs. The contents travel base64-encoded in the
# script's text on stdin: never on a command line, intact whatever they hold.
file_install_script() {
    if [ "${3:-}" = check ]; then
        # shellcheck disable=SC2016 # expanded by the shell that runs the script
        printf 'put() { printf %%s "$3" | base64 -d | cmp -s - "$1/$2" || echo "changed $2"; }\n'
        return 0
    fi
    printf 'set -e\numask 077\nmkdir -p %s\nchmod %s %s\n' "$1" "$2" "$1"
    # shellcheck disable=SC2016 # expanded by the shell that runs the script
    printf 'put() { printf %%s "$3" | base64 -d >"$1/.$2.new"; chmod "$4" "$1/.$2.new"; if cmp -s "$1/.$2.new" "$1/$2"; then rm -f "$1/.$2.new"; else mv -f "$1/.$2.new" "$1/$2"; echo "changed $2"; fi; }\n'
}

# file_install DIR NAME MODE: one file, its content on stdin.
file_install() {
    printf "put %s %s '%s' %s\n" "$1" "$2" "$(base64 | tr -d '\n')" "$3"
}

# file_install_end DIR [check]: make the directory's entries durable.
file_install_end() { [ "${2:-}" = check ] || printf 'sync "%s" 2>/dev/null || sync\n' "$1"; }

# spec_image NAME: the image NAME's service runs (as the swarm manager has its spec).
spec_image() { docker service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$1" 2>/dev/null | sed 's/@sha256:.*//'; }

# deliver HOST VOLUME IMAGE CONTAINER: run the install script on stdin in CONTAINER (the server's
# running container) or, when CONTAINER is empty, in a one-off container of IMAGE with VOLUME (the
# server's data volume) mounted where the service mounts it. Prints what it changed.
deliver() {
    if [ -n "$4" ]; then
        docker_at "$1" exec -i "$4" /bin/sh -s
    else
        docker_at "$1" volume inspect "$2" >/dev/null 2>&1 || die "volume $2 does not exist on ${1:-the local engine}"
        docker_at "$1" run --rm -i --network none --label pgha.operation="$pgha_op" -v "$2:/var/lib/pgha/data" --entrypoint /bin/sh "$3" -s
    fi
}

# data_major HOST VOLUME IMAGE CONTAINER: the major version of the data directory in VOLUME (its
# PG_VERSION), empty when it holds none yet.
data_major() {
    printf 'cat /var/lib/pgha/data/pgdata/PG_VERSION 2>/dev/null || true\n' | deliver "$@"
}

# check_data_major HOST VOLUME IMAGE CONTAINER SERVER: refuse when SERVER's data directory is of
# another major version than pgha:postgresVersion (PGHA_PG_MAJOR): it cannot start on these binaries.
check_data_major() {
    _dm=$(data_major "$1" "$2" "$3" "$4") || die "cannot read $2 on ${1:-the local engine}"
    [ -z "$_dm" ] || [ "$_dm" = "$PGHA_PG_MAJOR" ] ||
        die "$5's data directory is PostgreSQL $_dm, but pgha:postgresVersion (or the tag of pgha:image) says $PGHA_PG_MAJOR: a data directory cannot start on another major version's binaries, and pgha does not upgrade it. Set pgha:image (and pgha:postgresVersion) back to a PostgreSQL $_dm image; to move to PostgreSQL $PGHA_PG_MAJOR, restore a dump into a new stack (docs/changes.md). Nothing was changed"
}

# server_files_digest: the digest of scripts/server/*.sh as components/changes.ts computes it
# (each file in byte order of its name: name, NUL, content, NUL; SHA-256).
server_files_digest() {
    (
        cd "$pgha_server_files" || exit 1
        LC_ALL=C
        export LC_ALL
        for _f in *.sh; do
            printf '%s\000' "$_f"
            cat "$_f"
            printf '\000'
        done
    ) | sha256sum | awk '{ print $1 }'
}
