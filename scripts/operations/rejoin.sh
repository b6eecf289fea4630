#!/bin/sh
# Operation "rejoin": brings a server that was declared lost (pgha:lost) back into the cluster
# once the operator removes it from the list. Run by the server's rejoin Command, whose trigger is
# whether the server is in pgha:lost:
#  - entering pgha:lost (PGHA_SERVER_LOST=1): nothing. A lost server is never contacted; its service is
#    fenced (PGHA_FENCED=1: it comes back read-only if its node returns, components/server.ts);
#  - leaving it (PGHA_SERVER_LOST=0): in the server's own container, still fenced (its service spec waits
#    for this Command, so the fence is lifted only after a successful rejoin), `entrypoint.sh
#    rejoin` (scripts/server/rejoin.sh, which decides with its pure steps rejoin_plan,
#    rewind_start and rejoin_after_rewind): nothing when it streams from the primary already;
#    otherwise hold and stop PostgreSQL, pg_rewind against the primary, standby.signal, resume,
#    wait until it streams; when pg_rewind is impossible, the data directory is moved aside to
#    pgdata.before-rejoin-<UTC time> in the same volume (never deleted) and the primary is copied
#    afresh (pg_basebackup, as the bootstrap does);
#  - no data volume or no container of the server on its node at all (the stack's first
#    `pulumi up`, a new server), or a container running unfenced (the server was never lost: the
#    Command is new on an existing stack): nothing.
# Fails, and `pulumi up` stops with the server still fenced, when its node's engine does not
# answer (the node is still gone: keep it in pgha:lost) or its container does not come up.
#
# Environment (components/operations.ts): PGHA_SERVER, PGHA_DOCKER_HOST, PGHA_DATA_VOLUME,
# PGHA_SERVER_LOST (flag: the server is in pgha:lost), PGHA_REJOIN_TIMEOUT (s, default 300),
# PGHA_REJOIN_START_TIMEOUT (s to wait for its container, default 120).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVER PGHA_SERVER_LOST
name=$PGHA_SERVER
host=${PGHA_DOCKER_HOST:-}
timeout=${PGHA_REJOIN_TIMEOUT:-300}

if [ "$PGHA_SERVER_LOST" = 1 ]; then
    log "$name is declared lost (pgha:lost): not contacted. Its service is fenced: if its node returns it starts read-only. To rejoin it, remove it from pgha:lost and run pulumi up"
    exit 0
fi

# The node's engine, with a time limit (an ssh:// engine of a dead node may hang).
engine() {
    if [ -n "$host" ]; then timeout 30 docker -H "$host" "$@"; else timeout 30 docker "$@"; fi
}
engine version >/dev/null 2>&1 ||
    die "the engine of $name's node (${host:-the local engine}) does not answer: is its node back? $name stays fenced; bring the node back, or keep $name in pgha:lost (pulumi config set --path 'lost[0]' $name), and run pulumi up again"

volume=${PGHA_DATA_VOLUME:-$name-data}
if ! engine volume inspect "$volume" >/dev/null 2>&1; then
    log "$name has no data volume ($volume) on its node yet (new server or new stack): nothing to rejoin"
    exit 0
fi
filter="label=com.docker.swarm.service.name=$name"
if [ -z "$(engine ps -aq --filter "$filter")" ]; then
    log "$name has no container on its node (new server, or its service is not created yet): nothing to rejoin"
    exit 0
fi
# Its node may just be back: swarm starts its task within seconds. (Containers that all go away
# meanwhile were those of a service just removed, e.g. by a destroy before this up: nothing to
# rejoin, the service is created after this Command.)
running_or_gone() {
    container=$(engine ps -q --filter "$filter" --filter status=running | head -n 1)
    [ -n "$container" ] || [ -z "$(engine ps -aq --filter "$filter")" ]
}
start_timeout=${PGHA_REJOIN_START_TIMEOUT:-120}
wait_until "$start_timeout" "$name's container to run on its node" running_or_gone ||
    die "$name's container does not run on its node after ${start_timeout} s; it stays fenced. See docker service ps $name: if its task stays Pending with 'no suitable node' although its node is back (swarm may leave a task created while the node was down), docker service update --force $name schedules it again; then run pulumi up again"
if [ -z "$container" ]; then
    log "$name's containers on its node went away (its service was removed): nothing to rejoin"
    exit 0
fi
# A server that leaves pgha:lost runs fenced: the fence stays in its spec until this Command
# succeeded. One that runs unfenced was never lost (this Command is new, e.g. on an existing stack),
# or its service is being replaced: nothing to rejoin, and nothing to touch.
if ! engine inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$container" | grep -qx 'PGHA_FENCED=1'; then
    log "$name runs unfenced (it was not lost): nothing to rejoin. (If it does not stream from the primary, declare it lost, apply, and remove it from pgha:lost once it runs fenced)"
    exit 0
fi

start=$(now_ms)
# With the program's entrypoint (lib.sh entrypoint_in): the container still runs the one of its
# current spec, which is updated only after this Command.
result=$(entrypoint_in "$host" "$container" rejoin "$timeout") ||
    die "the rejoin of $name failed (see above); it stays fenced (read-only). Fix the cause and run pulumi up again; any data directory it moved aside is kept in its data volume (volume $name-data, pgdata.before-rejoin-*)"
case $result in
streaming) log "$name streams from the primary already: nothing was changed" ;;
rewound) log "$name rewound with pg_rewind and streaming from the primary ($(($(now_ms) - start)) ms)" ;;
recloned*) log "$name copied afresh from the primary and streaming ($(($(now_ms) - start)) ms); its old data directory is kept: ${result#recloned }" ;;
*) log "rejoin of $name: $result" ;;
esac
log "$name rejoined; pulumi up now lifts its fence (its service restarts once, as a standby)"
