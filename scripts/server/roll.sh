# pgha server: `entrypoint.sh roll key|state|restart` (sourced by entrypoint.sh), the container
# side of the roll operation (scripts/operations/roll.sh: the rolling restart).
#   roll key       the restart key this container started with (empty: none; components/changes.ts)
#   roll state     what the entrypoint is doing: running, waiting (for a bootstrap), held,
#                  initializing (empty: it has not started yet)
#   roll restart   stop PostgreSQL (fast shutdown, a clean checkpoint) and end the container, so
#                  the swarm starts a new one from the same service spec (restart policy "any"),
#                  with the files now in the data volume. Only ever asked of a standby, or of the
#                  last server of a cluster that has no other.

roll_cmd() {
	case ${1:-} in
	key)
		[ $# -eq 1 ] || die "usage: entrypoint.sh roll key"
		cat "$started_key" 2>/dev/null || true
		;;
	state)
		[ $# -eq 1 ] || die "usage: entrypoint.sh roll state"
		cat "$state_file" 2>/dev/null || true
		;;
	restart)
		[ $# -eq 1 ] || die "usage: entrypoint.sh roll restart"
		# PID 1 is run.sh's loop: on SIGTERM it stops PostgreSQL (fast) and exits.
		log "roll: restarting this server (fast shutdown; the swarm starts a new container)"
		kill -TERM 1
		;;
	*) die "usage: entrypoint.sh roll key|state|restart" ;;
	esac
}
