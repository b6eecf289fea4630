#!/bin/sh
# Operation "switchover": makes PGHA_PRIMARY the primary, with no committed transaction lost and
# never two writable servers. Run by the switchover Command whenever pgha:primary changes (its
# trigger), and harmless when PGHA_PRIMARY already is the primary.
#
#  1. observe every server's role (the lost ones are not contacted) and decide (plan.sh:
#     switchover_plan): nothing, a switchover from the current primary, a failover
#     (failover.sh), or a refusal; check the target streams from the old primary
#     (switchover_ready);
#  2. open the promoting session on the target (`entrypoint.sh switchover promote`);
#  3. demote the old primary (`switchover demote`): standby.signal in place, clean fast shutdown,
#     its entrypoint holds PostgreSQL stopped; it prints the shutdown checkpoint's LSN;
#  4. the LSN goes to the target's session: it waits until it has replayed past it (it has
#     everything the old primary wrote), then promotes — one statement, polling every 2 ms;
#  5. make sure the new primary keeps a slot for the old one; release the old primary
#     (`switchover resume`), which starts as a standby and follows the new timeline
#     (recovery_target_timeline = latest);
#  6. wait until it streams from the new primary.
# A failure before step 4 brings the old primary back as primary (`switchover undemote`); after
# it, the target is the one primary. Either way the message says which server is primary and
# what to do.
#
# `switchover.sh update` (the Command's update: another input than pgha:primary changed) with
# automatic failover never moves the primary back to pgha:primary (plan.sh: switchover_keep).
#
# Environment (components/operations.ts): PGHA_PRIMARY, PGHA_SERVERS, PGHA_LOST (names),
# PGHA_SWITCHOVER_TIMEOUT (s), PGHA_FAILOVER_AUTOMATIC (flag).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_PRIMARY PGHA_SERVERS
timeout=${PGHA_SWITCHOVER_TIMEOUT:-60}
target=$PGHA_PRIMARY
lost=${PGHA_LOST:-}
server_host "$target" >/dev/null

is_primary() { [ "$(role_of "$1")" = primary ]; }

# 1. Who is primary now? (A `pulumi up` that also updates the services, e.g. a new pgha, runs
#    this while they restart: wait until the reachable ones answer.)
observed=""
for name in $(server_names); do
    if in_list "$name" "$lost"; then
        log "$name: lost (pgha:lost), not contacted"
        observed="$observed$name lost
"
        continue
    fi
    wait_servers 120 "$name" || true
    role=$(role_of "$name")
    log "$name: $role"
    observed="$observed$name $role
"
done
plan=$(switchover_keep "${1:-create}" "${PGHA_FAILOVER_AUTOMATIC:-0}" "$(switchover_plan "$target" "$lost" "$observed")")
case $plan in
"keep "*)
    log "pgha:primary says $target, but ${plan#keep } is the primary (moved by automatic failover since pgha:primary was set): not switching back on its own. To make config and cluster agree: pulumi config set pgha:primary ${plan#keep } (nothing then happens); to move the primary: set pgha:primary to another server and run pulumi up"
    exit 0
    ;;
"refuse target-lost") die "$target is declared lost (pgha:lost) and cannot become primary; nothing was changed" ;;
"refuse many "*) die "more than one server is writable: ${plan#refuse many }. Stop all but one by hand (docker exec <container> /var/lib/pgha/data/pgha/entrypoint.sh switchover demote), then run pulumi up again" ;;
"refuse no-primary") die "no server is primary. If the primary's node is lost, declare a failover (docs/failover.md); otherwise start the primary's service and run pulumi up again" ;;
failover) exec sh "$pgha_scripts/failover.sh" ;;
nothing)
    log "$target is the primary already: nothing to do"
    exit 0
    ;;
esac
old=${plan#switchover }

state=$(instance "$old" replica-lag "$target")
ready=$(switchover_ready "$state")
case $ready in
go*) log "$target streams from $old; replay lag ${ready#go } bytes" ;;
*) die "$target does not stream from $old (state: '${state:-not connected}'); nothing was changed. Check its logs: docker service logs $target" ;;
esac

# 2. Open the promoting session on the target first (fed through a FIFO), so that once the old
#    primary is down the promotion costs no process or connection start-up.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/promote.in"
in_server_stdin "$target" switchover promote "$timeout" <"$work/promote.in" >"$work/promote.out" 2>&1 &
session=$!
exec 3>"$work/promote.in"

# 3. Demote the old primary.
t_start=$(now_ms)
if ! out=$(in_server "$old" switchover demote); then
    exec 3>&-
    wait "$session" || true
    die "could not stop $old cleanly; it stays primary and nothing else changed"
fi
t_stopped=$(now_ms)
lsn=$(printf '%s\n' "$out" | awk '$1 == "checkpoint" { print $2 }')

# 4. The target promotes once it has replayed past the old primary's shutdown checkpoint (its
#    record starts at $lsn: replay beyond it means the last WAL the old primary wrote is here).
printf '%s\n' "$lsn" >&3
exec 3>&-
if ! wait "$session" || [ "$(tail -n 1 "$work/promote.out")" != promoted ]; then
    log "$target did not confirm it replayed $lsn and was promoted: $(tr '\n' ' ' <"$work/promote.out")"
    if [ "$(role_of "$target")" = primary ]; then
        die "$target was promoted after all (the confirmation was lost); $old is stopped as a standby-to-be: run pulumi up again to finish"
    fi
    log "bringing $old back as primary"
    in_server "$old" switchover undemote || true
    wait_until 60 "$old to accept writes again" is_primary "$old" 2>/dev/null || true
    die "switchover to $target aborted: $old is primary again (role now: $(role_of "$old")); pgha:primary still says $target, so set it back (pulumi config set pgha:primary $old) or fix $target and run pulumi up again"
fi
t_promoted=$(now_ms)
log "$old stopped cleanly (shutdown checkpoint at $lsn) in $((t_stopped - t_start)) ms; $target promoted $((t_promoted - t_stopped)) ms later"
log "writes were unavailable for at most $((t_promoted - t_start)) ms (as seen from this script, docker exec included)"

# 5. The new primary keeps a usable slot for the old one; release the old one.
instance "$target" slot renew "$old" || log "warning: could not make sure $target has a replication slot for $old"
in_server "$old" switchover resume

# 6. The old primary follows the new timeline.
streams() { [ "$(instance "$target" replica "$old" 2>/dev/null)" = streaming ]; }
if ! wait_until "$timeout" "$old to stream from $target" streams; then
    die "$target is the primary, but $old does not stream from it after ${timeout} s; see docker service logs $old (if its timeline diverged it needs a rejoin: docs/failover.md)"
fi
# As a standby, the old primary must not keep WAL for the slot it held for the new primary
# (restartpoints honour slots: WAL would pile up until max_slot_wal_keep_size and the slot would
# be lost by the next swap back). Keep the slot, unreserved, as on any standby.
instance "$old" slot unreserve "$target" || log "warning: could not reset $old's replication slot for $target"
timeline=$(instance "$target" timeline 2>/dev/null || echo "?")
log "switchover done: $target is primary (timeline $timeline), $old streams from it"
echo "{\"primary\":\"$target\",\"previous\":\"$old\",\"unavailableMs\":$((t_promoted - t_start))}"
