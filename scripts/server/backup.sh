# pgha server: the container side of the backup operation (sourced by entrypoint.sh), run in a
# server's own container by scripts/operations/backup.sh:
#   entrypoint.sh backup take <label>               a base backup of this server
#   entrypoint.sh backup list                       the complete backups in this archive
#   entrypoint.sh backup prune <wal|-> [label...]   retention: delete backups, then old WAL
# A base backup is a directory of this server's archive volume:
#   backups/<label>/base.tar.gz, pg_wal.tar.gz, backup_manifest (pg_basebackup
#   -F t -z -X stream) and backup.json (one line: label, server, backupFrom,
#   timeline, startLsn, stopLsn, stopTimeline, startWal, startTime, stopTime,
#   bytes).

backups_dir=$PGHA_ARCHIVE_DIR/backups

# A backup label: a directory name and pg_basebackup's label.
valid_label() {
	case $1 in '' | .* | -* | *[!A-Za-z0-9._-]*) return 1 ;; esac
	[ "${#1}" -le 63 ]
}

# json_field NAME JSON: the value of a string or number field of one line of
# JSON written by backup_take() (no nesting, no escaped quotes).
json_field() {
	printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# utc_iso TIMESTAMPTZ-TEXT: the same instant as YYYY-MM-DDTHH:MM:SS.mmmZ,
# converted by PostgreSQL (the text may name any time zone it knows).
utc_iso() {
	local_sql "SELECT to_char(('$1')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
}

# backup_take LABEL: a base backup of this server (primary or standby) over its
# local socket (peer authentication: no password involved): tar + gzip, WAL
# streamed alongside, fast checkpoint, into backups/.LABEL.partial, then its
# backup.json, then renamed to backups/LABEL. An existing backups/LABEL is
# never overwritten. Prints backup.json.
backup_take() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh backup take <label>"
	_label=$1
	valid_label "$_label" || die "backup take: '$_label' is not a backup label (letters, digits, '.', '_', '-', at most 63, not starting with '.' or '-')"
	cd /
	find_pg_bin
	find_pg_user
	_dest=$backups_dir/$_label
	_part=$backups_dir/.$_label.partial
	[ ! -e "$_dest" ] || die "backup take: a backup labelled $_label exists already on $server ($_dest); refusing to overwrite it: choose another id (pulumi config set --path backup.id <new label>)"
	_from=$(local_sql "$(sql_role)") ||
		die "backup take: PostgreSQL on $server does not answer on its local socket"
	mkdir -p "$backups_dir"
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$backups_dir"
	rm -rf "$_part"
	as_pg mkdir "$_part"
	local_socket
	_blog=$PGHA_RUNTIME_DIR/backup-$_label.log
	_st=0
	as_pg pg_basebackup -h "$_sock" -p "$_port" -U postgres -D "$_part" \
		-F t -z -X stream -c fast -l "$_label" -v >"$_blog" 2>&1 || _st=$?
	while IFS= read -r _l || [ -n "$_l" ]; do log "pg_basebackup: $_l"; done <"$_blog"
	rm -f "$_blog"
	if [ "$_st" -ne 0 ] || [ ! -f "$_part/base.tar.gz" ] || [ ! -f "$_part/backup_manifest" ]; then
		rm -rf "$_part"
		die "backup take: pg_basebackup on $server failed (exit status $_st); nothing was kept"
	fi
	_stop_time=$(local_sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
	# backup_label inside base.tar.gz: where and when the backup started.
	_bl=$(tar -xzOf "$_part/base.tar.gz" backup_label) || die "backup take: no backup_label in $_part/base.tar.gz"
	_start_lsn=$(printf '%s\n' "$_bl" | sed -n 's/^START WAL LOCATION: *\([0-9A-Fa-f]*\/[0-9A-Fa-f]*\).*/\1/p')
	_start_wal=$(printf '%s\n' "$_bl" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p')
	_tli=$(printf '%s\n' "$_bl" | sed -n 's/^START TIMELINE: *\([0-9]*\).*/\1/p')
	_start_time=$(utc_iso "$(printf '%s\n' "$_bl" | sed -n 's/^START TIME: *//p')")
	# backup_manifest: the WAL ranges the backup needs, newest timeline first (a standby's
	# backup may start on the timeline before a swap): the first one ends it.
	_stop_lsn=$(sed -n 's/.*"End-LSN": *"\([0-9A-Fa-f]*\/[0-9A-Fa-f]*\)".*/\1/p' "$_part/backup_manifest" | head -n 1)
	_stop_tli=$(sed -n 's/.*"Timeline": *\([0-9]*\).*"End-LSN".*/\1/p' "$_part/backup_manifest" | head -n 1)
	if [ -z "$_start_lsn" ] || [ -z "$_start_wal" ] || [ -z "$_tli" ] || [ -z "$_stop_lsn" ]; then
		rm -rf "$_part"
		die "backup take: could not read the start and stop of the backup from backup_label and backup_manifest; nothing was kept"
	fi
	_bytes=0
	for _f in "$_part"/*.tar.gz; do _bytes=$((_bytes + $(wc -c <"$_f"))); done
	printf '{"label":"%s","server":"%s","backupFrom":"%s","timeline":%s,"startLsn":"%s","stopLsn":"%s","stopTimeline":%s,"startWal":"%s","startTime":"%s","stopTime":"%s","bytes":%s}\n' \
		"$_label" "$server" "$_from" "$_tli" "$_start_lsn" "$_stop_lsn" "${_stop_tli:-$_tli}" "$_start_wal" "$_start_time" "$_stop_time" "$_bytes" >"$_part/backup.json"
	[ "$setuid_tool" = none ] || chown -R "$pg_uid:$pg_gid" "$_part"
	for _f in "$_part"/*; do fsync_path "$_f"; done
	fsync_path "$_part"
	mv "$_part" "$_dest"
	fsync_path "$backups_dir"
	log "backup $_label of $server ($_from) complete: timeline $_tli, $_start_lsn .. $_stop_lsn, $_bytes bytes in $_dest"
	cat "$_dest/backup.json"
}

# backup_list: one tab-separated line per complete backup in this archive:
# stopTime, label, startWal, backup.json.
backup_list() {
	for _d in "$backups_dir"/*/; do
		[ -f "$_d/backup.json" ] || continue
		_j=$(cat "$_d/backup.json")
		printf '%s\t%s\t%s\t%s\n' "$(json_field stopTime "$_j")" "$(json_field label "$_j")" "$(json_field startWal "$_j")" "$_j"
	done
}

# backup_prune OLDEST-WAL [LABEL...]: delete the named backups from this archive,
# then the archived WAL before OLDEST-WAL with pg_archivecleanup (it compares
# segment numbers whatever the timeline, and leaves timeline history files and
# backup history files alone). OLDEST-WAL "-": no WAL is removed.
backup_prune() {
	[ $# -ge 1 ] || die "usage: entrypoint.sh backup prune <oldest WAL file to keep | -> [label...]"
	_oldest=$1
	shift
	case $_oldest in
	-) ;;
	*)
		printf '%s' "$_oldest" | grep -qx '[0-9A-F]\{24\}' || die "backup prune: '$_oldest' is not a WAL file name"
		;;
	esac
	for _l in "$@"; do
		valid_label "$_l" || die "backup prune: '$_l' is not a backup label"
		if [ -d "$backups_dir/$_l" ]; then
			rm -rf "${backups_dir:?}/$_l"
			log "prune: deleted backup $_l (retention)"
		fi
	done
	fsync_path "$backups_dir"
	[ "$_oldest" != - ] || return 0
	cd /
	find_pg_bin
	find_pg_user
	_wal=$PGHA_ARCHIVE_DIR/wal
	_before=$(find "$_wal" -maxdepth 1 -type f | wc -l)
	as_pg pg_archivecleanup "$_wal" "$_oldest"
	fsync_path "$_wal"
	log "prune: removed $((_before - $(find "$_wal" -maxdepth 1 -type f | wc -l))) archived WAL files older than $_oldest (the oldest kept backup's first)"
}

# hold: stop PostgreSQL cleanly and keep the entrypoint from starting it again

backup_cmd() {
	case ${1:-} in
	take) shift; backup_take "$@" ;;
	list) [ $# -eq 1 ] || die "usage: entrypoint.sh backup list"; backup_list ;;
	prune) shift; backup_prune "$@" ;;
	*) die "usage: entrypoint.sh backup take <label> | list | prune <oldest WAL file to keep | -> [label...]" ;;
	esac
}
