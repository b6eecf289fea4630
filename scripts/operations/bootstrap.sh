#!/bin/sh
# Operation "bootstrap": gives a server with an empty data volume a copy of the current primary.
# A one-off container on the server's node, attached to the overlay network, with the server's
# data volume mounted, runs pg_basebackup from whichever peer is writable (WAL streamed, fast
# checkpoint, the server's own slot, progress shown) into pgdata.partial, writes standby.signal and
# renames the copy into place; the server's entrypoint, waiting for it, then starts a standby.
# Never touches a volume that holds data. Waits until the new standby streams.
#
# The container side is `entrypoint.sh bootstrap` (scripts/server/bootstrap.sh), run with the
# program's own server files; what to do with the volume is decided by plan.sh: bootstrap_plan.
#
# Environment (components/operations.ts): PGHA_SERVER, PGHA_PEERS (names), PGHA_DOCKER_HOST,
# PGHA_DATA_VOLUME, PGHA_NETWORK, PGHA_IMAGE, PGHA_SUPERUSER_PASSWORD, PGHA_REPLICATOR_PASSWORD,
# PGHA_BOOTSTRAP_TIMEOUT (s).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVER PGHA_DATA_VOLUME PGHA_NETWORK PGHA_IMAGE PGHA_SUPERUSER_PASSWORD PGHA_REPLICATOR_PASSWORD
host=${PGHA_DOCKER_HOST:-}

state=$(volume_state "$host" "$PGHA_DATA_VOLUME" "$PGHA_IMAGE")
case $(bootstrap_plan "$state" "${PGHA_PEERS:-}") in
"nothing data")
    log "$PGHA_SERVER has a data directory: nothing to bootstrap"
    exit 0
    ;;
"nothing initialize")
    log "$PGHA_SERVER is the first primary (initialized by its entrypoint): nothing to bootstrap"
    exit 0
    ;;
"refuse foreign")
    die "$PGHA_SERVER's data volume $PGHA_DATA_VOLUME holds a non-empty pgdata that is not a PostgreSQL data directory; refusing to overwrite it (move it aside and run pulumi up again)"
    ;;
"refuse no-peer")
    die "$PGHA_SERVER has no peer to copy from (a single-server cluster is initialized, not bootstrapped)"
    ;;
esac
[ "$state" != partial ] || log "$PGHA_SERVER has an interrupted copy (pgdata.partial): starting over"

log "$PGHA_SERVER: copying the current primary (one of $PGHA_PEERS) into $PGHA_DATA_VOLUME on ${host:-the local engine}"
start=$(date +%s)
container_script bootstrap | docker_at "$host" run --rm -i --label pgha.operation=bootstrap \
    --network "$PGHA_NETWORK" -v "$PGHA_DATA_VOLUME:/var/lib/pgha/data" \
    -e PGHA_SERVER="$PGHA_SERVER" -e PGHA_PEERS="$PGHA_PEERS" -e PGHA_BOOTSTRAP_TIMEOUT="${PGHA_BOOTSTRAP_TIMEOUT:-300}" \
    --entrypoint /bin/sh "$PGHA_IMAGE" -s
log "$PGHA_SERVER bootstrapped and streaming ($(($(date +%s) - start)) s)"
