#!/bin/sh
# Operation "restore": point-in-time recovery of the whole cluster from one of its base backups.
# Run by the restore Command when pgha:restore (backup, target, id) is set or changed; the config
# requires restore.confirm = restore.backup. No service is re-created: PostgreSQL is stopped and
# started inside the running containers.
#
#  1. checks: every server runs, exactly one is primary (plan.sh: restore_primary) (it stays the primary: the backup is
#     restored into its data volume), some archive holds the backup, the target is not before the
#     backup's end; then the primary switches to a new WAL file and waits until it is archived, so
#     that everything committed so far is in its archive;
#  2. PostgreSQL is held (`entrypoint.sh restore hold`: stopped cleanly, not restarted) on every
#     server, the primary first;
#  3. in the primary's container: the backup (base.tar.gz, pg_wal.tar.gz) is unpacked into
#     pgdata.restore; the backup's WAL and the WAL its own archive lacks (from the archive holding
#     the backup) go to pgha-restore-wal: the restore_command reads it after the archive, so a
#     complete archived segment wins over the backup's partial last one. No file is copied into
#     any archive, and the current data directory is not touched yet;
#  4. `entrypoint.sh restore recover`: a temporary server (no TCP) replays the archive up to the target,
#     promotes to a new timeline, gets this stack's passwords, stops cleanly; then the previous
#     data directory becomes pgdata.before-restore-<UTC time> (never deleted) and the restored one
#     takes its place. The primary resumes and accepts writes.
#     A failure before this point resumes every server with its data as it was;
#  5. every other server (`restore reclone`): held, its data directory moved to pgdata.before-restore-<UTC time>,
#     a fresh copy of the restored primary (pg_basebackup), resumed as a standby, streaming.
# A retry (the Command failed after step 4) finds the restore in place (data volume marker
# pgha-restored) and redoes step 5 only.
#
# Environment (components/operations.ts): PGHA_SERVERS, PGHA_RESTORE_BACKUP,
# PGHA_RESTORE_TARGET (time=<timestamp> | lsn=<LSN> | name=<restore point>), PGHA_RESTORE_ID,
# PGHA_RESTORE_TIMEOUT (s, default 1800).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVERS PGHA_RESTORE_BACKUP PGHA_RESTORE_TARGET
label=$PGHA_RESTORE_BACKUP
target=$PGHA_RESTORE_TARGET
timeout=${PGHA_RESTORE_TIMEOUT:-1800}
key="backup=$label $target id=${PGHA_RESTORE_ID:-}"
data=/var/lib/pgha/data
archive=/var/lib/pgha/archive
case $target in
time=?*) setting="recovery_target_time=${target#time=}" ;;
lsn=?*) setting="recovery_target_lsn=${target#lsn=}" ;;
name=?*) setting="recovery_target_name=${target#name=}" ;;
*) die "PGHA_RESTORE_TARGET must be time=<timestamp>, lsn=<LSN> or name=<restore point> (pgha:restore.target)" ;;
esac
ts=$(date -u +%Y%m%dT%H%M%SZ)

# 1. Checks.
for n in $(server_names); do
    wait_servers 120 "$n" || die "$n does not run or does not answer; a restore stops and restarts PostgreSQL on every server, so every service must run (docker service ps $n); nothing was changed"
done
# shellcheck disable=SC2046 # one argument per server name
observed=$(roles $(server_names))
printf '%s\n' "$observed" | while read -r n role; do log "$n: $role"; done
plan=$(restore_primary "$observed")
case $plan in
"refuse many "*) die "a restore needs exactly one primary (found: ${plan#refuse many }); fix the cluster first (docs/failover.md); nothing was changed" ;;
refuse*) die "a restore needs exactly one primary (found: none); fix the cluster first (docs/failover.md); nothing was changed" ;;
esac
primary=${plan#restore }
others=$(server_names | grep -vx "$primary" || true)

restored=$(server_exec "$primary" cat "$data/pgha-restored" 2>/dev/null || true)
if [ "$restored" = "$key" ]; then
    log "$primary holds this restore already ($key): only the standbys are copied again where needed"
else
    source=""
    for n in $(server_names); do
        if server_exec "$n" test -f "$archive/backups/$label/backup.json"; then
            source=$n
            break
        fi
    done
    if [ -z "$source" ]; then
        have=$(for n in $(server_names); do in_server "$n" backup list 2>/dev/null | cut -f2; done | sort -u | tr '\n' ' ')
        die "no server's archive holds a backup labelled $label (there are: ${have:-none}); set pgha:restore.backup (and restore.confirm) to one of them; nothing was changed"
    fi
    meta=$(server_exec "$source" cat "$archive/backups/$label/backup.json")
    field() { printf '%s\n' "$meta" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
    start_wal=$(field startWal)
    stop_lsn=$(field stopLsn)
    stop_time=$(field stopTime)
    log "backup $label: on $source, timeline $(field timeline), $(field startLsn) .. $stop_lsn, taken $(field startTime) .. $stop_time"
    case $target in
    lsn=*) check="SELECT '${target#lsn=}'::pg_lsn >= '$stop_lsn'::pg_lsn" ;;
    time=*) check="SELECT '${target#time=}'::timestamptz >= '$stop_time'::timestamptz" ;;
    *) check="SELECT true" ;;
    esac
    ok=$(server_sql "$primary" "$check") || die "could not check the target $target (is it well-formed?); nothing was changed"
    [ "$ok" = t ] || die "the target $target is before the end of backup $label ($stop_lsn, $stop_time): choose a later target or an earlier backup; nothing was changed"
    case $target in
    time=*)
        # A numeric UTC offset: the server checks its command line before it knows time zone
        # abbreviations such as Z.
        utc=$(server_sql "$primary" "SELECT to_char('${target#time=}'::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        setting="recovery_target_time=$utc"
        ;;
    esac

    # Recover along the cluster's current history (not the highest timeline in the archive, which
    # may be a branch a failed or earlier restore abandoned).
    timeline_now=$(instance "$primary" checkpoint-timeline)
    seg=$(instance "$primary" switch-wal)
    archived() { server_exec "$primary" test -f "$archive/wal/$seg"; }
    wait_until 60 "$seg in $primary's archive" archived ||
        die "$primary did not archive $seg within 60 s (SELECT * FROM pg_stat_archiver); nothing was changed"
    log "everything committed so far is archived on $primary (up to $seg)"

    # 2. Hold PostgreSQL everywhere; undo on failure until the restored primary is in place.
    held=""
    resume_all() {
        st=$?
        [ "$st" -ne 0 ] || return 0
        server_exec "$primary" rm -rf "$data/pgdata.restore" "$data/pgha-restore-wal" || true
        for n in $held; do in_server "$n" restore resume || log "warning: could not resume $n (docker exec <container> /var/lib/pgha/data/pgha/entrypoint.sh restore resume)"; done
        log "the restore failed before $primary's data directory was replaced: every server was resumed with its data as it was"
    }
    trap resume_all EXIT
    for n in $primary $others; do
        in_server "$n" restore hold || die "could not stop PostgreSQL on $n cleanly"
        held="$held $n"
        log "$n: PostgreSQL stopped and held"
    done

    # 3. Unpack the backup and the WAL the primary's archive lacks.
    t0=$(now_ms)
    server_exec "$primary" sh -c "rm -rf $data/pgdata.restore $data/pgha-restore-wal && mkdir -p $data/pgdata.restore/pg_wal $data/pgha-restore-wal"
    server_exec "$source" cat "$archive/backups/$label/base.tar.gz" | server_exec "$primary" tar -xzf - -C "$data/pgdata.restore"
    # The backup's own WAL goes to the staging directory too, never into pg_wal: its last segment
    # is partial, and a server archiving everything it replays (archive_mode = always) must never
    # archive that copy under the name of the complete segment the archive holds.
    if server_exec "$source" test -f "$archive/backups/$label/pg_wal.tar.gz"; then
        server_exec "$source" cat "$archive/backups/$label/pg_wal.tar.gz" | server_exec "$primary" tar -xzf - -C "$data/pgha-restore-wal" --exclude archive_status
    fi
    server_exec "$primary" test -f "$data/pgdata.restore/PG_VERSION" || die "unpacking backup $label into $primary's data volume failed"
    if [ "$source" != "$primary" ]; then
        lists=$(mktemp -d)
        server_exec "$primary" ls "$archive/wal" >"$lists/have"
        server_exec "$source" ls "$archive/wal" | awk -v start="$start_wal" '
            NR == FNR { have[$0] = 1; next }
            ($0 ~ /^[0-9A-F]+\.history$/ || (length($0) == 24 && $0 ~ /^[0-9A-F]+$/ && substr($0, 9) >= substr(start, 9))) && !($0 in have)' "$lists/have" - >"$lists/copy"
        count=$(wc -l <"$lists/copy")
        if [ "$count" -gt 0 ]; then
            server_exec "$source" tar -C "$archive/wal" -cf - -T - <"$lists/copy" | server_exec "$primary" tar -xf - -C "$data/pgha-restore-wal"
        fi
        rm -rf "$lists"
        log "$count archived WAL file(s) $primary lacks copied from $source's archive (into $primary's data volume, for this recovery only)"
    fi
    log "backup $label unpacked on $primary in $(($(now_ms) - t0)) ms"

    # 4. Recover to the target, promote, swap the data directories, resume.
    t0=$(now_ms)
    pos=$(in_server "$primary" restore recover "$ts" "$key" "$timeout" "$setting" "recovery_target_timeline=$timeline_now") ||
        die "recovery of $primary to $target along timeline $timeline_now failed (see PostgreSQL's messages above; a backup taken on a branch that a later restore abandoned is not in the current history and cannot be restored)"
    trap - EXIT
    in_server "$primary" restore resume
    is_primary() { [ "$(role_of "$primary")" = primary ]; }
    wait_until 120 "$primary to accept writes" is_primary || die "$primary was restored ($pos) but does not accept writes within 120 s: docker service logs $primary"
    log "$primary restored to $target and promoted ($pos) in $(($(now_ms) - t0)) ms; its previous data directory is kept as pgdata.before-restore-$ts"
fi

# 5. Every other server becomes a fresh standby of the restored primary.
for n in $others; do
    streaming=$(instance "$primary" replica "$n" 2>/dev/null || true)
    if [ "$streaming" = streaming ]; then
        log "$n streams from $primary already"
        continue
    fi
    t0=$(now_ms)
    out=$(in_server "$n" restore reclone "$ts" "$timeout") || die "$primary is restored, but $n could not be copied from it (see above); run pulumi up again to retry"
    log "$n: ${out#recloned } kept; fresh standby of $primary, streaming ($(($(now_ms) - t0)) ms)"
done
timeline=$(instance "$primary" checkpoint-timeline 2>/dev/null || echo 0)
log "restore done: $primary is primary on timeline $timeline, restored from $label to $target"
printf '{"primary":"%s","backup":"%s","target":"%s","timeline":%s,"keptAs":"pgdata.before-restore-%s"}\n' "$primary" "$label" "$target" "$timeline" "$ts"
