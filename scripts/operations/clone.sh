#!/bin/sh
# Operation "clone": the first primary of a new stack starts from a copy of another cluster's data
# instead of initdb (pgha:cloneFrom). Run by the initialize Command (scripts/operations/initialize.sh, once,
# when the stack is created and the primary's data volume is empty).
#
#  1. the source: a base backup in another stack's archive volume (pgha:cloneFrom.archiveVolume,
#     .dockerHost, .backup), read by one-off containers on that volume's engine that mount it
#     READ-ONLY (nothing is ever written to it), or a backup directory on this machine
#     (pgha:cloneFrom.path: base.tar.gz, pg_wal.tar.gz, optional wal/ of archived WAL);
#  2. in the new primary's container (its entrypoint waits, its data directory empty): the backup
#     is unpacked into pgdata.restore, the source's archived WAL from the backup's start on (and
#     every timeline history file) into pgha-restore-wal;
#  3. `entrypoint.sh clone recover`: a temporary server (no TCP) replays all of that WAL, promotes to a
#     new timeline of its own, gets this stack's passwords, stops cleanly; the copy becomes pgdata
#     and the entrypoint starts it as the primary. Standbys are then bootstrapped as usual.
#
# Environment (components/operations.ts, the initialize Command's): PGHA_SERVER (the primary),
# PGHA_IMAGE, PGHA_SERVERS, and either PGHA_CLONE_VOLUME + PGHA_CLONE_BACKUP
# (+ PGHA_CLONE_DOCKER_HOST) or PGHA_CLONE_PATH; PGHA_CLONE_TIMEOUT (s, default 1800).
# shellcheck disable=SC2016 # the src scripts are expanded by the shell that reads them
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVER PGHA_IMAGE PGHA_SERVERS
timeout=${PGHA_CLONE_TIMEOUT:-1800}
data=/var/lib/pgha/data
ts=$(date -u +%Y%m%dT%H%M%SZ)

# src SCRIPT [ARG...]: runs SCRIPT with $1 = the source's backup directory, $2 = its archived WAL
# directory, $3... = ARG...; its stdout is what was read.
if [ -n "${PGHA_CLONE_VOLUME:-}" ]; then
    require_env PGHA_CLONE_BACKUP
    src_host=${PGHA_CLONE_DOCKER_HOST:-}
    from="backup $PGHA_CLONE_BACKUP of archive volume $PGHA_CLONE_VOLUME on ${src_host:-the local engine}"
    # `docker run -v` would create a missing volume: check first, never create anything there.
    docker_at "$src_host" volume inspect "$PGHA_CLONE_VOLUME" >/dev/null 2>&1 ||
        die "the source archive volume $PGHA_CLONE_VOLUME does not exist on ${src_host:-the local engine} (pgha:cloneFrom.archiveVolume and .dockerHost); nothing was changed"
    src() {
        _script=$1
        shift
        docker_at "$src_host" run --rm --network none --label pgha.operation=clone \
            -v "$PGHA_CLONE_VOLUME:/src:ro" --entrypoint /bin/sh "$PGHA_IMAGE" \
            -c "$_script" sh "/src/backups/$PGHA_CLONE_BACKUP" /src/wal "$@"
    }
elif [ -n "${PGHA_CLONE_PATH:-}" ]; then
    from="backup directory $PGHA_CLONE_PATH"
    src() {
        _script=$1
        shift
        sh -c "$_script" sh "$PGHA_CLONE_PATH" "$PGHA_CLONE_PATH/wal" "$@"
    }
else
    die "neither PGHA_CLONE_VOLUME nor PGHA_CLONE_PATH is set (pgha:cloneFrom)"
fi

src 'test -f "$1/base.tar.gz"' || die "no base.tar.gz in the $from; nothing was changed"
meta=$(src 'cat "$1/backup.json" 2>/dev/null || true')
start_wal=$(printf '%s\n' "$meta" | sed -n 's/.*"startWal":"\([0-9A-F]*\)".*/\1/p')
if [ -z "$start_wal" ]; then
    start_wal=$(src 'tar -xzOf "$1/base.tar.gz" backup_label' | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]*\)).*/\1/p')
fi
[ -n "$start_wal" ] || die "cannot tell where the $from starts (no backup.json, no backup_label); nothing was changed"
log "cloning the $from (first WAL file $start_wal) into $PGHA_SERVER"

wait_until 300 "$PGHA_SERVER's container to run" settled "$PGHA_SERVER" || die "$PGHA_SERVER has no running container after 300 s (docker service ps $PGHA_SERVER)"

t0=$(now_ms)
server_exec "$PGHA_SERVER" sh -c "rm -rf $data/pgdata.restore $data/pgha-restore-wal && mkdir -p $data/pgdata.restore/pg_wal $data/pgha-restore-wal"
src 'cat "$1/base.tar.gz"' | server_exec "$PGHA_SERVER" tar -xzf - -C "$data/pgdata.restore"
# The backup's own WAL goes to the staging directory, never into pg_wal (its last segment is partial:
# archived under its name it would clash with the complete one), and the archived WAL after it, so
# that a complete segment replaces the backup's partial copy.
if src 'test -f "$1/pg_wal.tar.gz"'; then
    src 'cat "$1/pg_wal.tar.gz"' | server_exec "$PGHA_SERVER" tar -xzf - -C "$data/pgha-restore-wal" --exclude archive_status
fi
server_exec "$PGHA_SERVER" test -f "$data/pgdata.restore/PG_VERSION" || die "unpacking the $from failed"
# The source's archived WAL from the backup's first file on (any timeline), and every history file.
src 'if cd "$2" 2>/dev/null; then
        ls | awk -v start="$3" '\''$0 ~ /^[0-9A-F]+\.history$/ || (length($0) == 24 && $0 ~ /^[0-9A-F]+$/ && substr($0, 9) >= substr(start, 9))'\'' | tar -cf - -T -
    else
        tar -cf - -T /dev/null
    fi' "$start_wal" | server_exec "$PGHA_SERVER" tar -xf - -C "$data/pgha-restore-wal"
count=$(server_exec "$PGHA_SERVER" sh -c "ls $data/pgha-restore-wal | wc -l")
log "unpacked the base backup and $count archived WAL file(s) in $(($(now_ms) - t0)) ms"

t0=$(now_ms)
pos=$(in_server "$PGHA_SERVER" clone recover "$ts" "clone $from" "$timeout") || die "the recovery of the clone failed (see above); run pulumi up again to retry"
is_primary() { [ "$(role_of "$PGHA_SERVER")" = primary ]; }
wait_until 120 "$PGHA_SERVER to accept writes" is_primary || die "the clone was recovered ($pos) but $PGHA_SERVER does not accept writes within 120 s: docker service logs $PGHA_SERVER"
log "$PGHA_SERVER is a new primary ($pos), a copy of the $from, in $(($(now_ms) - t0)) ms"
