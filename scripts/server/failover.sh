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
	local_sql "$(sql_promote_now "$1")"
}

failover_cmd() {
	case ${1:-} in
	promote) shift; failover_promote "$@" ;;
	*) die "usage: entrypoint.sh failover promote <seconds>" ;;
	esac
}
