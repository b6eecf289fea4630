#!/bin/sh
# Operation "reload": one server's configuration files into its data volume, then a reload. Run by
# the server's reload Command whenever a rendered file changes (postgresql.conf, pg_hba.conf, its
# server.conf, its peers, automatic failover's failover.conf), or the server leaves pgha:lost. No restart and no dropped session: what
# PostgreSQL cannot apply without a restart waits (pending_restart) for the roll operation, which
# runs next when such a parameter changed (components/changes.ts).
#
#  1. a lost server is not contacted (it gets its files when it leaves pgha:lost);
#  2. refuse a data directory of another major version than pgha:postgresVersion;
#  3. install the files that changed (each renamed over the old one), in the running container,
#     or in a one-off container on the data volume when none runs;
#  4. if PostgreSQL runs and a file changed: reload (`entrypoint.sh reload`: waits until it re-read
#     them, fails on a problem it reports in them); on the primary, a replication slot for every
#     peer.
#
# Environment (components/operations.ts): PGHA_SERVER, PGHA_DOCKER_HOST, PGHA_DATA_VOLUME,
# PGHA_IMAGE, PGHA_SERVER_LOST (flag), PGHA_PG_MAJOR, PGHA_POSTGRESQL_CONF, PGHA_HBA_CONF,
# PGHA_SERVER_CONF, PGHA_PEERS (names), PGHA_FAILOVER_CONF (the agent's settings: read by it on
# every round, so a change needs no reload of PostgreSQL).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVER PGHA_DATA_VOLUME PGHA_IMAGE PGHA_SERVER_LOST PGHA_PG_MAJOR PGHA_POSTGRESQL_CONF PGHA_HBA_CONF PGHA_SERVER_CONF PGHA_FAILOVER_CONF
# shellcheck disable=SC2153 # set by the Command (components/operations.ts)
name=$PGHA_SERVER
host=${PGHA_DOCKER_HOST:-}
peers=${PGHA_PEERS:-}

if [ "$PGHA_SERVER_LOST" = 1 ]; then
    log "$name is lost (pgha:lost): not contacted; its files are delivered when it leaves pgha:lost"
    exit 0
fi

# PGHA_SERVERS is what lib.sh's helpers read to find a server's engine.
PGHA_SERVERS="$name ${host:--} $PGHA_DATA_VOLUME -"
ctr=$(server_container "$name")
# a one-off container (when none runs, or the service does not exist yet) uses pgha:image
image=$PGHA_IMAGE
check_data_major "$host" "$PGHA_DATA_VOLUME" "$image" "$ctr" "$name"

out=$( (
    file_install_script "$pgha_dir" 755
    printf '%s' "$PGHA_POSTGRESQL_CONF" | file_install "$pgha_dir" postgresql.conf 444
    printf '%s' "$PGHA_HBA_CONF" | file_install "$pgha_dir" pg_hba.conf 444
    printf '%s' "$PGHA_SERVER_CONF" | file_install "$pgha_dir" server.conf 444
    printf '%s\n' "$peers" | file_install "$pgha_dir" peers 444
    printf '%s' "$PGHA_FAILOVER_CONF" | file_install "$pgha_dir" failover.conf 444
    file_install_end "$pgha_dir"
) | deliver "$host" "$PGHA_DATA_VOLUME" "$image" "$ctr") || die "could not deliver the configuration files to $name"
changed=$(printf '%s\n' "$out" | awk '$1 == "changed" { printf "%s%s", sep, $2; sep = " " }')
if [ -z "$changed" ]; then
    log "$name: configuration files up to date: nothing to reload"
    exit 0
fi
log "$name: delivered $changed"

if [ -z "$ctr" ] || ! answers "$name"; then
    log "$name: PostgreSQL is not running: it reads the new files when it starts"
    exit 0
fi
result=$(in_server "$name" reload) || die "$name: the reload failed (see above); the new files are in place and PostgreSQL keeps its old values where it could not read them"
pending=$(printf '%s\n' "$result" | awk '$1 == "pending-restart" { print $2 }')
if [ -n "$pending" ]; then
    log "$name: reloaded; waiting for a restart (the roll operation): $pending"
else
    log "$name: reloaded"
fi
if [ "$(role_of "$name")" = primary ]; then
    for p in $(names "$peers"); do instance "$name" slot ensure "$p" || log "warning: could not make sure $name keeps a replication slot for $p"; done
fi
