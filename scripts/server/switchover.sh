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
	# With automatic failover the lease moves with the primary: read now (the old primary holds
	# it), handed over once the old primary is down, before the promotion. The agent here does
	# not act meanwhile (lease_busy).
	_lease=''
	if lease_settings; then
		lease_busy_set
		_lease=$(lease_call read) || { lease_busy_clear; die "switchover promote: no arbiter answers, so the lease cannot be handed over; not promoting"; }
	fi
	_st=0
	{
		IFS= read -r _lsn || _lsn=
		case $_lsn in
		*[!0-9A-Fa-f/]* | '') log "switchover promote: '$_lsn' is not an LSN: not promoting" ;;
		*) if [ -z "$_lease" ] || lease_take_over "$_lease"; then sql_promote_after "$_lsn" "$_timeout"; fi ;;
		esac
	} | as_pg_exec psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres -f - || _st=$?
	[ "$_st" != 0 ] || checkpoint_soon
	[ -z "$_lease" ] || lease_busy_clear
	return "$_st"
}

# lease_take_over ANSWER: the lease becomes this server's for the next term: handed over by its
# holder (the old primary, down by now), taken if free; refused if a third server holds it.
# Prints nothing on stdout (that goes to the promoting session).
lease_take_over() {
	_h=$(lease_field "$1" 2) _t=$(lease_field "$1" 3)
	if [ "$_h" = "$server" ]; then
		_r=$(lease_call "renew $server $_t") || _r=
	elif [ "$_h" = - ]; then
		_r=$(lease_call "acquire $server $_t") || _r=
	else
		_r=$(lease_call "handover $_h $_t $server") || _r=
	fi
	case $_r in
	"ok "*)
		lease_record "$(lease_field "$_r" 3)"
		log "switchover promote: $server holds the lease, term $(lease_field "$_r" 3)"
		;;
	*)
		log "switchover promote: the lease (holder $_h, term $_t) could not be taken over: ${_r:-no arbiter answered}; not promoting"
		return 1
		;;
	esac
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
