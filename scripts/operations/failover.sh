#!/bin/sh
# Operation "failover": the switchover Command's path when the primary is gone. switchover.sh
# runs it (same environment) when no reachable server is writable and some server is declared
# lost (pgha:lost: its node is gone). Servers in PGHA_LOST are never contacted, not even to find
# roles.
#
#  1. observe: the target's role, every reachable server's role, and what the engines of the lost
#     servers' nodes run, if they answer at all (never the servers themselves, with a time limit);
#  2. decide (plan.sh: failover_plan): refused when the target is not a running standby, when a
#     lost server's node still runs it unfenced (it may be a primary nobody sees from here), or
#     when another reachable server is writable (never two);
#  3. promote the target at once, without waiting for anything (`entrypoint.sh failover promote`,
#     with the program's own server files: its service may be being updated in this same run): it
#     replays what it received and becomes primary on a new timeline. Commits the lost primary
#     acknowledged but had not yet sent are not on it (asynchronous replication);
#  4. slots on the new primary for every other server (the lost ones' keep the WAL their rejoin
#     may need, up to pgha:replication.maxSlotWalKeepSize).
# The lost servers' services carry PGHA_FENCED (they come back read-only); removing them from
# pgha:lost rejoins them (rejoin.sh).
#
# Environment (components/operations.ts, the switchover's): PGHA_PRIMARY, PGHA_SERVERS,
# PGHA_LOST (names), PGHA_SWITCHOVER_TIMEOUT (s).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_PRIMARY PGHA_SERVERS PGHA_LOST
timeout=${PGHA_SWITCHOVER_TIMEOUT:-60}
target=$PGHA_PRIMARY
lost=$PGHA_LOST

# 1. Observe.
observed="$target $(role_of "$target")
"
fences=""
for name in $(server_names); do
    [ "$name" != "$target" ] || continue
    if ! in_list "$name" "$lost"; then
        observed="$observed$name $(role_of "$name")
"
        continue
    fi
    # Not the server itself, only its node's engine, with a time limit.
    h=$(server_host "$name")
    if ids=$(if [ -n "$h" ]; then timeout 10 docker -H "$h" ps -q --filter "label=com.docker.swarm.service.name=$name" --filter status=running; else timeout 10 docker ps -q --filter "label=com.docker.swarm.service.name=$name" --filter status=running; fi 2>/dev/null); then
        for c in $ids; do
            if docker_at "$h" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$c" 2>/dev/null | grep -qx 'PGHA_FENCED=1'; then
                fences="$fences$name $c fenced
"
            else
                fences="$fences$name $c unfenced
"
            fi
        done
    fi
done

# 2. Decide.
plan=$(failover_plan "$target" "$lost" "$observed" "$fences")
case $plan in
"refuse target "*) die "failover: $target is not a running standby (role: ${plan#refuse target }), so it cannot be promoted; nothing was changed. Start its service (docker service ps $target) and run pulumi up again" ;;
"refuse unfenced "*)
    # shellcheck disable=SC2086 # split the plan into its words
    set -- $plan
    die "failover: $3 is declared lost, but its node answers and runs its container $4 without the fence; it may still be primary. Nothing was changed. If its node is back, remove $3 from pgha:lost and switch over (pgha:primary); otherwise stop it first"
    ;;
"refuse writable "*) die "failover: ${plan#refuse writable } is writable; refusing to promote $target beside it. Nothing was changed; set pgha:primary to ${plan#refuse writable }, or make sure it is stopped" ;;
esac

# 3. Promote.
t_start=$(now_ms)
if ! promoted=$(entrypoint_in "$(server_host "$target")" "$(server_container "$target")" failover promote "$timeout") ||
    [ "$(printf '%s' "$promoted" | tail -n 1)" != t ]; then
    die "failover: $target did not confirm its promotion within ${timeout} s (role now: $(role_of "$target")); run pulumi up again"
fi
lost_names=$(names "$lost" | tr '\n' ' ')
log "failover: $target promoted in $(($(now_ms) - t_start)) ms, without: $lost_names"

# 4. Slots for every other server.
for name in $(server_names); do
    [ "$name" != "$target" ] || continue
    instance "$target" slot ensure "$name" ||
        log "warning: could not make sure $target has a replication slot for $name"
done
timeline=$(instance "$target" timeline 2>/dev/null || echo "?")
log "failover done: $target is primary (timeline $timeline); lost, fenced until rejoined: $lost_names"
echo "{\"primary\":\"$target\",\"failover\":true}"
