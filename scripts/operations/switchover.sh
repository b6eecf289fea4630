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
# Failover: servers in PGHA_LOST (pgha:lost: their node is gone) are never contacted, not even to
# find roles. When no reachable server is writable and some server is lost (the primary among
# them), the target is promoted at once without waiting for anything (`promote-now`): it replays
# what it received and becomes primary on a new timeline; commits the lost primary acknowledged
# but had not yet sent are not on it (asynchronous replication). Refused when another reachable
# server is writable, or when a lost server's node still runs it unfenced. The lost servers'
# services carry PGHA_FENCED (they come back read-only); removing them from pgha:lost rejoins
# them (rejoin.sh).
#
# Environment: PGHA_PRIMARY, PGHA_SERVERS (lines "name host|-"), PGHA_LOST (names, space
# separated), PGHA_SWITCHOVER_TIMEOUT (s).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_PRIMARY PGHA_SERVERS
timeout=${PGHA_SWITCHOVER_TIMEOUT:-60}
target=$PGHA_PRIMARY
server_host "$target" >/dev/null
lost=" $(printf '%s' "${PGHA_LOST:-}" | tr ',' ' ') "

is_primary() { [ "$(role_of "$1")" = primary ]; }
is_lost() { case $lost in *" $1 "*) return 0 ;; esac; return 1; }
others() { printf '%s\n' "$PGHA_SERVERS" | awk -v t="$target" 'NF && $1 != t { print $1 }'; }
is_lost "$target" && die "$target is declared lost (pgha:lost) and cannot become primary; nothing was changed"

# failover: the target becomes primary without the lost servers (see the header).
failover() {
    role=$(role_of "$target")
    [ "$role" = standby ] || die "failover: $target is not a running standby (role: $role), so it cannot be promoted; nothing was changed. Start its service (docker service ps $target) and run pulumi up again"
    for name in $(others); do
        is_lost "$name" || continue
        # Not the server itself, only its node's engine, with a time limit: a lost server must not
        # still run from its old spec (unfenced: it may be a primary nobody sees from here).
        h=$(server_host "$name")
        if ids=$(if [ -n "$h" ]; then timeout 10 docker -H "$h" ps -q --filter "label=com.docker.swarm.service.name=$name" --filter status=running; else timeout 10 docker ps -q --filter "label=com.docker.swarm.service.name=$name" --filter status=running; fi 2>/dev/null); then
            for c in $ids; do
                docker_at "$h" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$c" 2>/dev/null | grep -qx 'PGHA_FENCED=1' ||
                    die "failover: $name is declared lost, but its node answers and runs its container $c without the fence; it may still be primary. Nothing was changed. If its node is back, remove $name from pgha:lost and switch over (pgha:primary); otherwise stop it first"
            done
        fi
    done
    # Never two writable servers: right before the promotion, no reachable server is writable.
    for name in $(others); do
        is_lost "$name" && continue
        [ "$(role_of "$name")" != primary ] || die "failover: $name is writable; refusing to promote $target beside it. Nothing was changed; set pgha:primary to $name, or make sure it is stopped"
    done
    t_start=$(now_ms)
    # (the program's entrypoint: the target's service may be being updated in this same run)
    if ! promoted=$(entrypoint_in "$(server_host "$target")" "$(server_container "$target")" promote-now "$timeout") ||
        [ "$(printf '%s' "$promoted" | tail -n 1)" != t ]; then
        die "failover: $target did not confirm its promotion within ${timeout} s (role now: $(role_of "$target")); run pulumi up again"
    fi
    log "failover: $target promoted in $(($(now_ms) - t_start)) ms, without:$lost"
    # Slots for every other server (the lost ones' keep the WAL their rejoin may need, up to
    # pgha:replication.maxSlotWalKeepSize).
    for name in $(others); do
        server_sql "$target" "SELECT pg_create_physical_replication_slot('$name') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$name')" >/dev/null ||
            log "warning: could not make sure $target has a replication slot for $name"
    done
    # (the current WAL file's timeline: pg_control_checkpoint() lags until the next checkpoint)
    timeline=$(server_sql "$target" "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int" 2>/dev/null || echo "?")
    log "failover done: $target is primary (timeline $timeline); lost, fenced until rejoined:$lost"
    echo "{\"primary\":\"$target\",\"failover\":true}"
    exit 0
}

# 1. Who is primary now?
primaries=""
for name in $(server_names); do
    if is_lost "$name"; then
        log "$name: lost (pgha:lost), not contacted"
        continue
    fi
    role=$(role_of "$name")
    log "$name: $role"
    [ "$role" = primary ] && primaries="$primaries $name"
done
# shellcheck disable=SC2086 # split the list of names
set -- $primaries
if [ $# -gt 1 ]; then
    die "more than one server is writable:$primaries. Stop all but one by hand (docker exec <container> /etc/pgha/entrypoint.sh demote), then run pulumi up again"
fi
if [ $# -eq 0 ] && [ -n "$(printf '%s' "$lost" | tr -d ' ')" ]; then
    failover
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

# 2. Open the promoting session on the target first (a psql session fed through a FIFO), so
#    that once the old primary is down the promotion costs no process or connection start-up.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/promote.sql"
in_server_stdin "$target" sql-stdin <"$work/promote.sql" >"$work/promote.out" 2>&1 &
session=$!
exec 3>"$work/promote.sql"

# 3. Demote the old primary.
t_start=$(now_ms)
if ! out=$(in_server "$old" demote); then
    exec 3>&-
    wait "$session" || true
    die "could not stop $old cleanly; it stays primary and nothing else changed"
fi
t_stopped=$(now_ms)
lsn=$(printf '%s\n' "$out" | awk '$1 == "checkpoint" { print $2 }')

# 4. Promote the target once it has replayed past the old primary's shutdown checkpoint (its
#    record starts at $lsn: replay beyond it means the last WAL the old primary wrote is here).
#    Polls every 2 ms, in one statement; pg_promote(false) and a 2 ms poll instead of
#    pg_promote(true), which looks only every 100 ms.
printf '%s\n' "SET statement_timeout = '${timeout}s';
DO \$\$ BEGIN
  IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION '% is not a standby', current_setting('cluster_name'); END IF;
  WHILE coalesce(pg_last_wal_replay_lsn() <= '$lsn'::pg_lsn, true) LOOP PERFORM pg_sleep(0.002); END LOOP;
  PERFORM pg_promote(false);
  WHILE pg_is_in_recovery() LOOP PERFORM pg_sleep(0.002); END LOOP;
END \$\$;
SELECT 'promoted';" >&3
exec 3>&-
if ! wait "$session" || [ "$(tail -n 1 "$work/promote.out")" != promoted ]; then
    log "$target did not confirm it replayed $lsn and was promoted: $(tr '\n' ' ' <"$work/promote.out")"
    if [ "$(role_of "$target")" = primary ]; then
        die "$target was promoted after all (the confirmation was lost); $old is stopped as a standby-to-be: run pulumi up again to finish"
    fi
    log "bringing $old back as primary"
    in_server "$old" undemote || true
    wait_until 60 "$old to accept writes again" is_primary "$old" 2>/dev/null || true
    die "switchover to $target aborted: $old is primary again (role now: $(role_of "$old")); pgha:primary still says $target, so set it back (pulumi config set pgha:primary $old) or fix $target and run pulumi up again"
fi
t_promoted=$(now_ms)
log "$old stopped cleanly (shutdown checkpoint at $lsn) in $((t_stopped - t_start)) ms; $target promoted $((t_promoted - t_stopped)) ms later"
log "writes were unavailable for at most $((t_promoted - t_start)) ms (as seen from this script, docker exec included)"

# 5. The new primary keeps a usable slot for the old one (a slot whose WAL is gone is useless:
#    made anew, unreserved, it takes up from where the old primary asks); release the old one.
server_sql "$target" "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$old' AND NOT active AND wal_status = 'lost';
SELECT pg_create_physical_replication_slot('$old') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$old')" >/dev/null ||
    log "warning: could not make sure $target has a replication slot for $old"
in_server "$old" resume

# 6. The old primary follows the new timeline.
streams() { [ "$(server_sql "$target" "SELECT state FROM pg_stat_replication WHERE application_name = '$old'" 2>/dev/null)" = streaming ]; }
if ! wait_until "$timeout" "$old to stream from $target" streams; then
    die "$target is the primary, but $old does not stream from it after ${timeout} s; see docker service logs $old (if its timeline diverged it needs a rejoin: README, Failover)"
fi
# As a standby, the old primary must not keep WAL for the slot it held for the new primary
# (restartpoints honour slots: WAL would pile up until max_slot_wal_keep_size and the slot would
# be lost by the next swap back). Keep the slot, unreserved, as on any standby.
server_sql "$old" "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$target' AND NOT active AND restart_lsn IS NOT NULL;
SELECT pg_create_physical_replication_slot('$target') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$target')" >/dev/null ||
    log "warning: could not reset $old's replication slot for $target"
timeline=$(server_sql "$target" "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int" 2>/dev/null || echo "?")
log "switchover done: $target is primary (timeline $timeline), $old streams from it"
echo "{\"primary\":\"$target\",\"previous\":\"$old\",\"unavailableMs\":$((t_promoted - t_start))}"
