#!/bin/sh
# Operation "roll": pgha's container files into every server, and a rolling restart of the
# servers that must restart to apply a change: restart-only parameters (already delivered by the
# reload operation, pending there), a new pgha (its container files), a new image of the same
# major version. Run by the roll Command whenever its restart key changes (components/changes.ts),
# and harmless when nothing needs a restart.
#
#  1. refuse before anything changes: the files in scripts/server differ from the previewed ones,
#     the image's binaries or a data directory are of another major version than
#     pgha:postgresVersion;
#  2. deliver scripts/server/*.sh and the restart key into each reachable server's data volume
#     (entrypoint.sh last: a waiting service starts on a complete set);
#  3. observe each server's role and whether it runs with the new key and image, and decide
#     (plan.sh: roll_plan); a server with no service yet (the first `pulumi up`: the services are
#     declared after this) or one started by an older pgha is left to start with the new files;
#  4. each standby: restart (its PID 1 stops PostgreSQL and exits; the swarm starts a new container
#     from the unchanged spec) or a new image in its spec (service-image.mjs), then wait until it
#     answers with the new key and streams from the primary;
#  5. a planned switchover (switchover.sh) to a restarted standby, restart the old primary the same
#     way, and with pgha:rollingRestart.primary = return, a switchover back.
# If a server does not come back, the roll stops there, the primary still serving, and says which
# server and what to do; `pulumi up` again continues where it stopped (the servers already on the
# new key are left alone). Prints a JSON summary: the servers restarted and each switchover's
# write gap.
#
# Environment (components/operations.ts): PGHA_SERVERS, PGHA_LOST (names), PGHA_IMAGE,
# PGHA_PG_MAJOR, PGHA_RESTART_KEY, PGHA_SERVER_FILES, PGHA_ROLL_PRIMARY, PGHA_ROLL_TIMEOUT (s).
set -eu
. "$(dirname "$0")/lib.sh"
lost=${PGHA_LOST:-}
require_env PGHA_SERVERS PGHA_IMAGE PGHA_PG_MAJOR PGHA_RESTART_KEY PGHA_SERVER_FILES PGHA_ROLL_PRIMARY
timeout=${PGHA_ROLL_TIMEOUT:-300}
case $PGHA_ROLL_PRIMARY in return | stay) ;; *) die "PGHA_ROLL_PRIMARY='$PGHA_ROLL_PRIMARY': expected return or stay" ;; esac

# 1. Refusals, before anything changes.
digest=$(server_files_digest)
# shellcheck disable=SC2153 # set by the Command (components/operations.ts)
expected=$PGHA_SERVER_FILES
[ "$digest" = "$expected" ] ||
    die "the files in scripts/server/ are not the ones this program was run with (digest $digest, expected $expected): run pulumi up again from an unchanged checkout; nothing was changed"
reachable=""
for name in $(server_names); do
    if in_list "$name" "$lost"; then
        log "$name: lost (pgha:lost), not contacted; it gets the new files when it rejoins"
        continue
    fi
    reachable="$reachable $name"
done
for name in $reachable; do
    host=$(server_host "$name")
    ctr=$(server_container "$name")
    check_data_major "$host" "$(server_field "$name" 3)" "$PGHA_IMAGE" "$ctr" "$name"
done
checked=" "
for name in $reachable; do
    host=$(server_host "$name")
    case $checked in *" ${host:--} "*) continue ;; esac
    checked="$checked${host:--} "
    # The image's binaries, found the way the entrypoint finds them.
    major=$( (
        server_files_script /tmp/pgha-version
        printf 'exec /bin/sh /tmp/pgha-version/entrypoint.sh version\n'
    ) | docker_at "$host" run --rm -i --network none --label pgha.operation=roll --entrypoint /bin/sh "$PGHA_IMAGE" -s 2>/dev/null) ||
        die "cannot run pgha:image $PGHA_IMAGE on ${host:-the local engine} (is it there, or can that engine pull it?); nothing was changed"
    [ "$major" = "$PGHA_PG_MAJOR" ] ||
        die "pgha:image $PGHA_IMAGE holds PostgreSQL $major binaries, but pgha:postgresVersion (or the image's tag) says $PGHA_PG_MAJOR. A data directory cannot start on another major version's binaries, and pgha does not upgrade one: set pgha:image back to a PostgreSQL $PGHA_PG_MAJOR image (docs/changes.md). Nothing was changed"
done

# 2. The container files, then the key, entrypoint.sh last.
key_file=$(mktemp)
trap 'rm -f "$key_file"' EXIT
printf '%s\n' "$PGHA_RESTART_KEY" >"$key_file"
for name in $reachable; do
    out=$( (
        file_install_script "$pgha_dir" 755
        for f in "$pgha_server_files"/*.sh; do
            [ "${f##*/}" != entrypoint.sh ] || continue
            file_install "$pgha_dir" "${f##*/}" 444 <"$f"
        done
        file_install "$pgha_dir" restart-key 444 <"$key_file"
        file_install "$pgha_dir" entrypoint.sh 555 <"$pgha_server_files/entrypoint.sh"
        file_install_end "$pgha_dir"
    ) | deliver "$(server_host "$name")" "$(server_field "$name" 3)" "$PGHA_IMAGE" "$(server_container "$name")") ||
        die "could not deliver pgha's files to $name"
    changed=$(printf '%s\n' "$out" | awk '$1 == "changed" { printf "%s%s", sep, $2; sep = " " }')
    log "$name: ${changed:+delivered $changed}${changed:-files up to date}"
done

# 3. Who must restart?
# need_of NAME: image (its service runs another image), restart (it started with another key),
# ok, or - (it started with no key: an older pgha, whose service spec Pulumi updates after this,
# which restarts it with the new files).
need_of() {
    [ "$(spec_image "$1")" = "$PGHA_IMAGE" ] || { echo image; return 0; }
    _k=$(in_server "$1" roll key 2>/dev/null) || _k=
    if [ -z "$_k" ]; then echo -; elif [ "$_k" = "$PGHA_RESTART_KEY" ]; then echo ok; else echo restart; fi
}
known() {
    settled "$1" || return 1
    answers "$1" && return 0
    case $(in_server "$1" roll state 2>/dev/null) in waiting | held | initializing) return 0 ;; esac
    return 1
}
states=""
for name in $(server_names); do
    if in_list "$name" "$lost"; then
        states="$states$name lost -
"
        continue
    fi
    if ! docker service inspect "$name" >/dev/null 2>&1; then
        log "$name: no service yet (it starts with these files)"
        states="$states$name down -
"
        continue
    fi
    # A server that restarts on its own just now: wait until it answers, or its entrypoint says
    # why it does not (waiting for a copy).
    wait_until 120 "$name to answer or to say what it waits for" known "$name" || true
    role=$(role_of "$name")
    need=-
    [ "$role" = down ] || need=$(need_of "$name")
    log "$name: $role, ${need}"
    states="$states$name $role $need
"
done
plan=$(roll_plan "$PGHA_ROLL_PRIMARY" "$states")
case $plan in
"refuse many "*) die "more than one server is writable: ${plan#refuse many }; nothing was restarted (docs/failover.md)" ;;
"refuse no-primary") die "no server is writable, so no standby can be restarted and checked; nothing was restarted. Start the primary (or declare a failover: docs/failover.md) and run pulumi up again" ;;
nothing)
    log "every running server runs the current files and image: nothing to restart"
    echo '{"restarted":[],"switchovers":[]}'
    exit 0
    ;;
esac
log "plan: $(printf '%s\n' "$plan" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"

primary=$(printf '%s' "$states" | awk '$2 == "primary" { print $1; exit }')
restarted=""
switchovers=""

# back NAME OLDCONTAINER: NAME runs a new container, started with the new key, and answers.
back() {
    _c=$(server_container "$1")
    [ -n "$_c" ] && [ "$_c" != "$2" ] && settled "$1" && answers "$1" &&
        [ "$(in_server "$1" roll key 2>/dev/null)" = "$PGHA_RESTART_KEY" ]
}
streams_from() { [ "$(instance "$2" replica "$1" 2>/dev/null)" = streaming ]; }

# restart KIND NAME WAIT: restart NAME (KIND restart or image) and wait until it is back, and with
# WAIT stream, until it streams from the primary (every restarted server is a standby by then,
# apart from the last server of a cluster that has no other: WAIT alone).
restart() {
    _old=$(server_container "$2")
    _t0=$(now_ms)
    if [ "$1" = image ]; then
        # Not `docker service update --image`: it also reorders the spec's mounts, and Pulumi's
        # update of the spec afterwards would then restart the server a second time.
        log "$2: moving its service to the image $PGHA_IMAGE"
        node "$pgha_scripts/service-image.mjs" "$2" "$PGHA_IMAGE" </dev/null ||
            die "could not update $2's service to $PGHA_IMAGE; the roll stopped here, $primary is primary. See docker service ps $2, then run pulumi up again"
    else
        log "$2: restarting"
        in_server "$2" roll restart </dev/null || die "could not restart $2; the roll stopped here, $primary is primary. See docker service logs $2, then run pulumi up again"
    fi
    wait_until "$timeout" "$2 to come back" back "$2" "$_old" ||
        die "$2 did not come back within $timeout s after its restart; the roll stopped here and $primary is still the primary, serving writes. See docker service ps $2 and docker service logs $2; fix it, then run pulumi up again (the roll continues with the servers not restarted yet)"
    if [ "$3" = stream ]; then
        wait_until "$timeout" "$2 to stream from $primary" streams_from "$2" "$primary" ||
            die "$2 restarted but does not stream from $primary after $timeout s; the roll stopped here and $primary is still the primary. See docker service logs $2, then run pulumi up again"
        log "$2: back and streaming from $primary after $(($(now_ms) - _t0)) ms"
    else
        log "$2: back after $(($(now_ms) - _t0)) ms"
    fi
    restarted="$restarted${restarted:+,}\"$2\""
}

# switch_to NAME: the planned switchover to NAME (switchover.sh, with this roll's servers).
switch_to() {
    log "switchover to $1"
    _out=$(PGHA_PRIMARY=$1 sh "$pgha_scripts/switchover.sh" </dev/null) ||
        die "the switchover to $1 failed (see above); the roll stopped here. Run pulumi up again to continue"
    _json=$(printf '%s\n' "$_out" | tail -n 1)
    case $_json in "{"*) switchovers="$switchovers${switchovers:+,}$_json" ;; esac
    primary=$1
}

# 4, 5. Carry the plan out.
old_ifs=$IFS
IFS='
'
for line in $plan; do
    IFS=$old_ifs
    # shellcheck disable=SC2086 # a step is words: split on purpose
    set -- $line
    case $1 in
    restart | image) restart "$1" "$2" stream ;;
    switchover) switch_to "$2" ;;
    alone)
        log "warning: $3 is the only server: restarting it in place, writes are unavailable until it is back"
        restart "$2" "$3" alone
        ;;
    *) die "unknown step '$line' in the plan" ;;
    esac
done
IFS=$old_ifs
gaps=$(printf '%s' "$switchovers" | grep -o '"unavailableMs":[0-9]*' | awk -F: '{ t += $2 } END { print t + 0 }')
log "roll done: restarted $(printf '%s' "${restarted:-nothing}" | tr -d '"'); $primary is primary; writes were unavailable for $gaps ms in total (the switchovers, as seen from this script)"
echo "{\"restarted\":[$restarted],\"switchovers\":[$switchovers],\"primary\":\"$primary\"}"
