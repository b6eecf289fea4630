#!/bin/sh
# Operation "initialize": marks the designated primary's empty data volume so that its entrypoint
# runs initdb on first start (docs/container.md). Run once, when the stack is created; a later
# change of pgha:primary is a role swap, never a new cluster.
# Refuses when another server already holds a data directory: initializing beside it would
# create a second, unrelated cluster.
#
# What to do is decided by plan.sh: initialize_plan.
#
# Environment (components/operations.ts): PGHA_SERVER (the primary), PGHA_IMAGE, PGHA_SERVERS;
# with pgha:cloneFrom also PGHA_CLONE_* (then clone.sh fills the volume instead).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVER PGHA_IMAGE PGHA_SERVERS

target_state=""
target_host=""
target_volume=""
with_data=""
while read -r name host volume _archive; do
    [ -n "$name" ] || continue
    [ "$host" = "-" ] && host=""
    state=$(volume_state "$host" "$volume" "$PGHA_IMAGE")
    log "$name: data volume $volume on ${host:-the local engine}: $state"
    if [ "$name" = "$PGHA_SERVER" ]; then
        target_state=$state
        target_host=$host
        target_volume=$volume
    elif [ "$state" = data ]; then
        with_data="${with_data:+$with_data,}$name"
    fi
done <<LIST
$PGHA_SERVERS
LIST

[ -n "$target_volume" ] || die "$PGHA_SERVER is not in PGHA_SERVERS"
clone=0
[ -z "${PGHA_CLONE_VOLUME:-}${PGHA_CLONE_PATH:-}" ] || clone=1
case $(initialize_plan "$target_state" "$with_data" "$clone") in
"nothing data")
    log "$PGHA_SERVER already holds a data directory: the cluster exists, nothing to initialize"
    exit 0
    ;;
"nothing marked")
    log "$PGHA_SERVER is already marked for initialization"
    exit 0
    ;;
"refuse foreign")
    die "$PGHA_SERVER's data volume $target_volume holds a non-empty pgdata that is not a PostgreSQL data directory; move it aside (nothing was changed)"
    ;;
"refuse other-data "*)
    die "refusing to initialize a new cluster on $PGHA_SERVER: $(printf '%s' "$with_data" | tr ',' ' ') already hold(s) a data directory. Set pgha:primary to the server that was primary (pulumi config set pgha:primary <name>) and run pulumi up again; nothing was changed"
    ;;
clone)
    # pgha:cloneFrom: the first primary starts from a copy of another cluster instead of initdb.
    exec sh "$pgha_scripts/clone.sh"
    ;;
esac
# shellcheck disable=SC2016 # expanded by the one-off container's shell
docker_at "$target_host" run --rm --network none --label pgha.operation=initialize -v "$target_volume:/v" --entrypoint /bin/sh "$PGHA_IMAGE" -c \
    'rm -rf /v/pgdata.partial && printf "server=%s\n" "$1" > /v/pgha-initialize.tmp && mv /v/pgha-initialize.tmp /v/pgha-initialize' sh "$PGHA_SERVER"
log "$PGHA_SERVER marked: its entrypoint runs initdb on first start"
