# pgha server: the container side of the switchover operation (sourced by entrypoint.sh), run in
# the servers' own containers by scripts/operations/switchover.sh:
#   entrypoint.sh switchover demote              on the old primary: stop it so that it comes
#                                                back as a standby; prints its shutdown checkpoint
#   entrypoint.sh switchover promote <seconds>   on the target, opened BEFORE the demote: a
#                                                session that waits for that checkpoint's LSN on
#                                                stdin, then promotes once it has replayed past it
#   entrypoint.sh switchover resume              on the old primary: start it again (a standby)
#   entrypoint.sh switchover undemote            on the old primary: abort, back as primary

# demote: stop this primary cleanly so that it comes back as a standby.
# standby.signal goes in first and the hold file keeps the entrypoint from
# restarting PostgreSQL until `resume` (or `undemote`), so that the shutdown
# checkpoint can be read and compared with the new primary's position.
# Prints "checkpoint <LSN> timeline <TLI>" of the shutdown checkpoint.
demote() {
	[ "$(role)" = primary ] || die "switchover demote: $server is not a primary"
	: >"$hold"
	as_pg touch "$pgdata/standby.signal"
	if ! fast_stop 120; then
		rm -f "$pgdata/standby.signal" "$hold"
		die "switchover demote: PostgreSQL did not stop; $server stays primary"
	fi
	_cd=$(as_pg pg_controldata -D "$pgdata")
	_state=$(printf '%s\n' "$_cd" | sed -n 's/^Database cluster state: *//p')
	_lsn=$(printf '%s\n' "$_cd" | sed -n 's/^Latest checkpoint location: *//p')
	_tli=$(printf '%s\n' "$_cd" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
	if [ "$_state" != "shut down" ] || [ -z "$_lsn" ]; then
		log "switchover demote: unexpected control data after the stop (state '$_state'); bringing $server back as primary"
		undemote
		die "switchover demote: $server did not shut down cleanly"
	fi
	printf 'checkpoint %s timeline %s\n' "$_lsn" "$_tli"
}

# fast_stop SECONDS: fast shutdown of this server's postmaster, returning as
# soon as it is gone (pg_ctl stop -w only looks every 100 ms: write downtime).
fast_stop() {
	read_pidfile "$pgdata" || return 1
	_pid=$pm_pid
	kill -INT "$_pid" 2>/dev/null || return 1
	_limit=$(($1 * 200))
	_i=0
	while kill -0 "$_pid" 2>/dev/null || [ -e "$pgdata/postmaster.pid" ]; do
		_i=$((_i + 1))
		[ "$_i" -lt "$_limit" ] || return 1
		sleep 0.005
	done
}

# promote SECONDS: the promoting session. psql connects at once and waits for its statement; the
# statement (instance.sh: sql_promote_after) is written as soon as the old primary's shutdown
# checkpoint LSN arrives as the first line on stdin, so the promotion costs no process or
# connection start-up after the old primary is down. Prints "promoted" when done.
promote() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh switchover promote <timeout-seconds> (the LSN on stdin)"
	case $1 in *[!0-9]* | '') die "switchover promote: '$1' is not a number of seconds" ;; esac
	refuse_if_fenced "switchover promote"
	_timeout=$1
	local_socket
	{
		IFS= read -r _lsn || _lsn=
		case $_lsn in
		*[!0-9A-Fa-f/]* | '') log "switchover promote: '$_lsn' is not an LSN: not promoting" ;;
		*) sql_promote_after "$_lsn" "$_timeout" ;;
		esac
	} | as_pg_exec psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres -f -
}

# undemote: abort a demote: remove standby.signal, then resume as primary.
undemote() {
	refuse_if_fenced "switchover undemote"
	rm -f "$pgdata/standby.signal"
	rm -f "$hold"
}

switchover_cmd() {
	find_pg_bin
	find_pg_user
	case ${1:-} in
	demote) [ $# -eq 1 ] || die "usage: entrypoint.sh switchover demote"; demote ;;
	promote) shift; promote "$@" ;;
	resume) [ $# -eq 1 ] || die "usage: entrypoint.sh switchover resume"; resume ;;
	undemote) [ $# -eq 1 ] || die "usage: entrypoint.sh switchover undemote"; undemote ;;
	*) die "usage: entrypoint.sh switchover demote | promote <seconds> | resume | undemote" ;;
	esac
}
