# pgha server: the container side of the failover (sourced by entrypoint.sh), run in the target's
# own container by scripts/operations/failover.sh:
#   entrypoint.sh failover promote <seconds>   promote this standby at once, without waiting for
#                                              any LSN (the old primary's node is gone)

# failover_promote SECONDS: PostgreSQL replays what it has received, then becomes primary on a
# new timeline. Prints t when done. A fenced server (declared lost) refuses.
failover_promote() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh failover promote <timeout-seconds>"
	case $1 in *[!0-9]* | '') die "failover promote: '$1' is not a number of seconds" ;; esac
	refuse_if_fenced "failover promote"
	find_pg_bin
	find_pg_user
	# With automatic failover the declared failover takes the next term first (unconditionally:
	# the operator declared the old primary lost); the old primary can then never come back
	# writable, and the agents do not fight this promotion.
	if lease_settings; then
		lease_busy_set
		_a=$(lease_call "claim $server") || { lease_busy_clear; die "failover promote: no arbiter answers, so $server cannot take the lease; nothing was changed"; }
		case $_a in "ok "*) lease_record "$(lease_field "$_a" 3)" ;; *) lease_busy_clear; die "failover promote: the arbiter refused the claim: $_a" ;; esac
		log "failover promote: $server holds the lease, term $(lease_field "$_a" 3)"
	fi
	_st=0
	local_sql "$(sql_promote_now "$1")" || _st=$?
	[ "$_st" != 0 ] || checkpoint_soon
	lease_busy_clear
	return "$_st"
}

failover_cmd() {
	case ${1:-} in
	promote) shift; failover_promote "$@" ;;
	*) die "usage: entrypoint.sh failover promote <seconds>" ;;
	esac
}
