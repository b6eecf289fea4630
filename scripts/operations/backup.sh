#!/bin/sh
# Operation "backup": a base backup of the cluster, then retention. Run by the backup Command:
#   backup.sh take    (its create: when pgha:backup.id is new or changed)
#   backup.sh retain  (its update: keep or server changed, a server added; no new backup)
#
#  1. the label (pgha:backup.id) must be new in every server's archive;
#  2. the server (plan.sh: backup_source): pgha:backup.server, else a standby (found now, so it
#     follows every swap), else the primary; in its container, `entrypoint.sh backup take`, pg_basebackup over the local socket (peer authentication, no
#     password anywhere) writes tar + gzip with its WAL into backups/<label>/ of its archive
#     volume, with backup.json (label, LSNs, timeline, times);
#  3. retention over the whole cluster (plan.sh: retention_plan; `entrypoint.sh backup prune`): the newest `keep` backups (by stop time) are kept, older
#     ones deleted from whichever archive holds them; then every archive drops the WAL that
#     precedes the first WAL file of the oldest kept backup (pg_archivecleanup; timeline history
#     files stay). Every archive holds the full WAL stream, so each kept backup keeps its WAL in
#     every archive that had it.
#  4. stdout: the kept backups as a JSON list, oldest first (the stack output `backups`).
#
# Environment (components/operations.ts): PGHA_SERVERS, PGHA_BACKUP_LABEL, PGHA_BACKUP_KEEP,
# PGHA_BACKUP_SERVER (optional).
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_SERVERS PGHA_BACKUP_LABEL PGHA_BACKUP_KEEP
mode=${1:-take}
label=$PGHA_BACKUP_LABEL
keep=$PGHA_BACKUP_KEEP
case $keep in '' | *[!0-9]* | 0) die "PGHA_BACKUP_KEEP must be a number >= 1 (pgha:backup.keep)" ;; esac
tab=$(printf '\t')
list=$(mktemp)
trap 'rm -f "$list"' EXIT

# Every running server's backups: lines "server stopTime label startWal json" (tab-separated).
collect() {
    : >"$list"
    for n in $(server_names); do
        if lines=$(in_server "$n" backup list 2>/dev/null); then
            [ -z "$lines" ] || printf '%s\n' "$lines" | awk -v s="$n" 'NF { print s "\t" $0 }' >>"$list"
        else
            log "warning: $n does not answer: its backups are neither listed nor pruned this time"
        fi
    done
}

for n in $(server_names); do
    wait_servers 120 "$n" || log "warning: $n does not answer (docker service ps $n)"
done
collect
if [ "$mode" = take ]; then
    where=$(awk -F "$tab" -v l="$label" '$3 == l { print $1; exit }' "$list")
    [ -z "$where" ] || die "a backup labelled $label exists already (on $where); refusing to overwrite it. Choose a new id: pulumi config set --path backup.id <new label>, then pulumi up"
    # shellcheck disable=SC2046 # one argument per server name
    source=$(backup_source "${PGHA_BACKUP_SERVER:-}" "$(roles $(server_names))")
    case $source in
    "refuse down "*) die "${source#refuse down } (pgha:backup.server) does not answer; start it or choose another server (nothing was changed)" ;;
    "refuse none") die "no server answers; nothing was backed up" ;;
    esac
    # shellcheck disable=SC2086 # "take NAME ROLE"
    set -- $source
    server=$2 role=$3
    log "base backup $label of $server ($role)"
    start=$(now_ms)
    in_server "$server" backup take "$label" >/dev/null
    log "base backup $label done in $(($(now_ms) - start)) ms"
    collect
else
    log "no new backup (pgha:backup.id unchanged): applying retention (keep $keep)"
fi

# Retention: the newest `keep` are kept (plan.sh: retention_plan).
plan=$(retention_plan "$keep" "$(cat "$list")")
oldest=$(printf '%s\n' "$plan" | head -n 1)
for n in $(server_names); do
    drop=$(printf '%s\n' "$plan" | awk -v s="$n" '$1 == "drop" && $2 == s { print $3 }')
    [ -n "$drop" ] || [ "$oldest" != - ] || continue
    # shellcheck disable=SC2086 # one argument per label
    in_server "$n" backup prune "$oldest" $drop >/dev/null || log "warning: retention on $n failed (see above); the next backup tries again"
done
[ "$oldest" = - ] || log "retention: kept the newest $keep backup(s); archived WAL before $oldest removed from every archive"

# The listing: kept backups, oldest first, each with the archive volume that holds it.
sort -t "$tab" -k2,2r "$list" | awk -F "$tab" -v k="$keep" -v servers="$PGHA_SERVERS" '
    BEGIN { n = split(servers, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); vol[f[1]] = f[4] } }
    NF && NR <= k { j = $5; sub(/^\{/, "{\"archiveVolume\":\"" vol[$1] "\",", j); kept[++c] = j }
    END { printf "["; for (i = c; i >= 1; i--) printf "%s%s", kept[i], (i > 1 ? "," : ""); print "]" }'
