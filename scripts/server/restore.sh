# pgha server: the container side of point-in-time recovery (sourced by entrypoint.sh), run in
# the servers' own containers by scripts/operations/restore.sh (and `recover` by the clone,
# clone.sh):
#   entrypoint.sh restore hold                    stop PostgreSQL cleanly, keep it stopped
#   entrypoint.sh restore resume                  let the entrypoint start it again
#   entrypoint.sh restore recover <ts> <key> <seconds> [recovery_target_...=<value>...]
#                                                 recover pgdata.restore to the target, promote,
#                                                 swap it in (the old data kept aside)
#   entrypoint.sh restore reclone <ts> <seconds>  a standby: its data kept aside, a fresh copy
# A restore or a clone builds the new data directory in pgdata.restore (the
# entrypoint never starts PostgreSQL on it) and puts WAL from another archive
# in pgha-restore-wal (`wal restore` falls back to it).

restore_dir=$PGHA_DATA_DIR/pgdata.restore
restore_wal=$PGHA_DATA_DIR/pgha-restore-wal
restored_marker=$PGHA_DATA_DIR/pgha-restored

# hold: stop PostgreSQL cleanly and keep the entrypoint from starting it again
# until `resume`.
hold() {
	find_pg_bin
	find_pg_user
	hold_postgres || die "restore hold: could not stop PostgreSQL on $server cleanly"
}

# recover TIMESTAMP KEY TIMEOUT [recovery_target_...=VALUE...]: the container
# side of a point-in-time recovery or a clone. pgdata.restore holds a restored
# base backup. A temporary server runs on it (recovery.signal; no TCP, its
# socket in the runtime directory only; the recovery targets given and
# recovery_target_action=promote only on its command line), replays archived
# WAL to the target (to the end of the WAL when none is given) and promotes
# to a new timeline; then the roles get this stack's passwords, a checkpoint
# is taken and the temporary server stops cleanly. Only then the current
# pgdata (if any; PostgreSQL must be held) is moved to
# pgdata.before-restore-TIMESTAMP (never deleted) and pgdata.restore takes its
# place; KEY goes to pgha-restored. A failure, or a container restart, before
# that rename leaves pgdata as it was. Prints "timeline <TLI> lsn <LSN>".
recover() {
	[ $# -ge 3 ] || die "usage: entrypoint.sh restore recover <timestamp> <key> <timeout-seconds> [recovery_target_...=<value>...]"
	_ts=$1 _key=$2 _timeout=$3
	shift 3
	case $_ts in '' | *[!0-9A-Za-z]*) die "recover: '$_ts' is not a timestamp such as 20250101T000000Z" ;; esac
	case $_timeout in '' | *[!0-9]*) die "recover: '$_timeout' is not a number of seconds" ;; esac
	_n=$#
	while [ "$_n" -gt 0 ]; do
		case $1 in
		recovery_target_time=?* | recovery_target_lsn=?* | recovery_target_name=?* | recovery_target_inclusive=?* | recovery_target_timeline=?*)
			set -- "$@" -c "$1"
			;;
		*) die "recover: '$1' is not a recovery target setting (recovery_target_time|lsn|name|inclusive|timeline=<value>)" ;;
		esac
		shift
		_n=$((_n - 1))
	done
	cd /
	find_pg_bin
	find_pg_user
	[ -f "$restore_dir/PG_VERSION" ] || die "recover: $restore_dir holds no data directory"
	_aside=$PGHA_DATA_DIR/pgdata.before-restore-$_ts
	[ ! -e "$_aside" ] || die "recover: $_aside exists already"
	if read_pidfile "$pgdata" && kill -0 "$pm_pid" 2>/dev/null; then
		die "recover: PostgreSQL runs on $pgdata (pid $pm_pid); hold it first"
	fi
	rm -f "$restore_dir/standby.signal" "$restore_dir/postmaster.pid" "$restore_dir/postmaster.opts"
	: >"$restore_dir/recovery.signal"
	if [ "$setuid_tool" != none ]; then
		find "$restore_dir" ! -user "$PGHA_USER" -exec chown "$pg_uid:$pg_gid" {} +
		[ ! -d "$restore_wal" ] || chown -R "$pg_uid:$pg_gid" "$restore_wal"
	fi
	chmod 700 "$restore_dir"
	_targets=$(printf '%s ' "$@" | sed 's/-c //g')
	log "recover: starting a temporary server on $restore_dir (no TCP) to replay the archived WAL up to ${_targets:-the end of the WAL }and promote"
	start_postgres "$restore_dir" -c listen_addresses= -c "unix_socket_directories=$PGHA_RUNTIME_DIR" \
		-c recovery_target_action=promote "$@"
	_i=0
	while :; do
		if ! kill -0 "$child" 2>/dev/null; then
			wait_child
			die "recover: the temporary server stopped (exit status $child_status) before it promoted: the recovery failed (see PostgreSQL's messages above); $pgdata was not touched"
		fi
		if read_pidfile "$restore_dir" && [ -n "$pm_port" ] &&
			[ "$(sql_role | as_pg psql -X -q -A -t -h "$PGHA_RUNTIME_DIR" -p "$pm_port" -U postgres -d postgres 2>/dev/null)" = primary ]; then
			break
		fi
		_i=$((_i + 1))
		if [ "$_i" -ge $((_timeout * 10)) ]; then
			signal_postgres INT
			wait_child
			die "recover: no promotion within $_timeout s; stopped the temporary server; $pgdata was not touched"
		fi
		[ $((_i % 100)) -ne 0 ] || log "recover: still replaying archived WAL ($((_i / 10)) s)"
		sleep 0.1
	done
	_psql() { printf '%s\n' "$1" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGHA_RUNTIME_DIR" -p "$pm_port" -U postgres -d postgres; }
	if ! set_role_passwords "$PGHA_RUNTIME_DIR" "$pm_port"; then
		signal_postgres INT
		wait_child
		die "recover: could not set the roles' passwords; $pgdata was not touched"
	fi
	_pos=$(_psql "$(sql_checkpoint_position)") || _pos=
	signal_postgres INT
	wait_child
	[ "$child_status" -eq 0 ] || die "recover: the temporary server stopped with status $child_status; $pgdata was not touched"
	log "recover: promoted and stopped cleanly (timeline ${_pos% *}, at ${_pos#* })"

	if [ -f "$pgdata/PG_VERSION" ] || ! is_empty_dir "$pgdata"; then
		mv "$pgdata" "$_aside"
		log "recover: KEPT the previous data directory as $_aside (in this server's data volume; pgha never deletes it: remove it yourself once you no longer need it)"
	elif [ -d "$pgdata" ]; then
		rmdir "$pgdata"
	fi
	mv "$restore_dir" "$pgdata"
	rm -rf "$restore_wal"
	printf '%s\n' "$_key" >"$restored_marker.tmp"
	mv -f "$restored_marker.tmp" "$restored_marker"
	fsync_path "$PGHA_DATA_DIR"
	printf 'timeline %s lsn %s\n' "${_pos% *}" "${_pos#* }"
}

# reclone TIMESTAMP TIMEOUT: after a point-in-time recovery of the primary,
# this server's data is from the abandoned history: hold PostgreSQL, move the
# data directory to pgdata.before-restore-TIMESTAMP (never deleted), copy the
# primary, resume as a standby and wait until it streams.
reclone() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh restore reclone <timestamp> <timeout-seconds>"
	_ts=$1 _timeout=$2
	case $_ts in '' | *[!0-9A-Za-z]*) die "reclone: '$_ts' is not a timestamp" ;; esac
	case $_timeout in '' | *[!0-9]*) die "reclone: '$_timeout' is not a number of seconds" ;; esac
	cd /
	find_pg_bin
	find_pg_user
	hold_postgres || die "reclone: could not stop PostgreSQL on $server cleanly"
	_aside=-
	if [ -e "$pgdata" ] && ! is_empty_dir "$pgdata"; then
		_aside=$PGHA_DATA_DIR/pgdata.before-restore-$_ts
		[ ! -e "$_aside" ] || die "reclone: $_aside exists already"
		mv "$pgdata" "$_aside"
		fsync_path "$PGHA_DATA_DIR"
		log "reclone: KEPT the previous data directory as $_aside (never deleted by pgha)"
	fi
	copy_primary "$_timeout"
	rm -f "$hold"
	wait_streaming "$_timeout" || die "reclone: $server did not stream from $_primary within $_timeout s after the copy (docker service logs $server)"
	echo "recloned $_aside"
}

restore_cmd() {
	case ${1:-} in
	hold) [ $# -eq 1 ] || die "usage: entrypoint.sh restore hold"; hold ;;
	resume) [ $# -eq 1 ] || die "usage: entrypoint.sh restore resume"; resume ;;
	recover) shift; recover "$@" ;;
	reclone) shift; reclone "$@" ;;
	*) die "usage: entrypoint.sh restore hold | resume | recover <ts> <key> <seconds> [setting...] | reclone <ts> <seconds>" ;;
	esac
}
