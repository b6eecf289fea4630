#!/bin/sh
# Operation "switchover": makes PGHA_PRIMARY the primary, with no committed transaction lost and
# never two writable servers. Run by the switchover Command whenever pgha:primary changes (its
# trigger), and harmless when PGHA_PRIMARY already is the primary.
#
#  1. find the current primary (the one server not in recovery) and check the target streams
#     from it;
#  2. demote the old primary: standby.signal in place, clean fast shutdown, its entrypoint holds
#     PostgreSQL stopped; read the shutdown checkpoint's LSN from pg_controldata;
#  3. on the target: wait until it has replayed past that LSN (it has everything the old primary
#     wrote), then pg_promote() — one session, polling every 2 ms;
#  4. make sure the new primary keeps a slot for the old one; release the old primary, which
#     starts as a standby and follows the new timeline (recovery_target_timeline = latest);
#  5. wait until it streams from the new primary.
# A failure before step 3 brings the old primary back as primary; after it, the target is the
# one primary. Either way the message says which server is primary and what to do.
#
# Environment: PGHA_PRIMARY, PGHA_SERVERS (lines "name host|-"), PGHA_SWITCHOVER_TIMEOUT (s).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_PRIMARY PGHA_SERVERS
timeout=${PGHA_SWITCHOVER_TIMEOUT:-60}
target=$PGHA_PRIMARY
server_host "$target" >/dev/null

is_primary() { [ "$(role_of "$1")" = primary ]; }

# 1. Who is primary now?
primaries=""
for name in $(printf '%s\n' "$PGHA_SERVERS" | awk 'NF { print $1 }'); do
    role=$(role_of "$name")
    log "$name: $role"
    [ "$role" = primary ] && primaries="$primaries $name"
done
# shellcheck disable=SC2086 # split the list of names
set -- $primaries
if [ $# -gt 1 ]; then
    die "more than one server is writable:$primaries. Stop all but one by hand (docker exec <container> /etc/pgha/entrypoint.sh demote), then run pulumi up again"
fi
if [ $# -eq 0 ]; then
    die "no server is primary. If the primary's node is lost, declare a failover (README: Failover); otherwise start the primary's service and run pulumi up again"
fi
old=$1
if [ "$old" = "$target" ]; then
    log "$target is the primary already: nothing to do"
    exit 0
fi

state=$(server_sql "$old" "SELECT state || ' ' || coalesce(pg_wal_lsn_diff(sent_lsn, replay_lsn), -1)::bigint FROM pg_stat_replication WHERE application_name = '$target'")
case $state in
streaming*) log "$target streams from $old; replay lag ${state#streaming } bytes" ;;
*) die "$target does not stream from $old (state: '${state:-not connected}'); nothing was changed. Check its logs: docker service logs $target" ;;
esac

# 2. Demote the old primary.
t_start=$(now_ms)
if ! out=$(in_server "$old" demote); then
    die "could not stop $old cleanly; it stays primary and nothing else changed"
fi
t_stopped=$(now_ms)
lsn=$(printf '%s\n' "$out" | awk '$1 == "checkpoint" { print $2 }')
log "$old stopped cleanly as a standby-to-be; shutdown checkpoint at $lsn ($((t_stopped - t_start)) ms)"

# 3. Promote the target once it has the shutdown checkpoint.
if ! promoted=$(in_server "$target" promote "$lsn" "$timeout") || [ "$(printf '%s' "$promoted" | tail -n 1)" != t ]; then
    log "$target did not confirm it replayed $lsn and was promoted; bringing $old back as primary"
    in_server "$old" undemote || true
    wait_until 60 "$old to accept writes again" is_primary "$old" 2>/dev/null || true
    die "switchover to $target aborted: $old is primary again (role now: $(role_of "$old")); pgha:primary still says $target, so set it back (pulumi config set pgha:primary $old) or fix $target and run pulumi up again"
fi
t_promoted=$(now_ms)
log "$target promoted: writes were unavailable for $((t_promoted - t_start)) ms (stop $((t_stopped - t_start)) ms, catch-up and promote $((t_promoted - t_stopped)) ms)"

# 4. The new primary keeps a slot for the old one; release the old one as a standby.
server_sql "$target" "SELECT pg_create_physical_replication_slot('$old') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$old')" >/dev/null ||
    log "warning: could not make sure $target has a replication slot for $old"
in_server "$old" resume

# 5. The old primary follows the new timeline.
streams() { [ "$(server_sql "$target" "SELECT state FROM pg_stat_replication WHERE application_name = '$old'" 2>/dev/null)" = streaming ]; }
if ! wait_until "$timeout" "$old to stream from $target" streams; then
    die "$target is the primary, but $old does not stream from it after ${timeout} s; see docker service logs $old (if its timeline diverged it needs a rejoin: README, Failover)"
fi
timeline=$(server_sql "$target" "SELECT timeline_id FROM pg_control_checkpoint()" 2>/dev/null || echo "?")
log "switchover done: $target is primary (timeline $timeline), $old streams from it"
echo "{\"primary\":\"$target\",\"previous\":\"$old\",\"unavailableMs\":$((t_promoted - t_start))}"
