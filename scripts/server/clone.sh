# pgha server: the container side of the clone operation (sourced by entrypoint.sh), run in the
# new stack's first primary by scripts/operations/clone.sh:
#   entrypoint.sh clone recover <ts> <key> <seconds>   replay the source's WAL unpacked into
#                                                      pgdata.restore to its end, promote to a
#                                                      timeline of its own, make it pgdata
# The same recovery as a point-in-time restore's (restore.sh: recover), without a target.

clone_cmd() {
	case ${1:-} in
	recover)
		shift
		[ $# -eq 3 ] || die "usage: entrypoint.sh clone recover <timestamp> <key> <timeout-seconds>"
		recover "$@"
		;;
	*) die "usage: entrypoint.sh clone recover <timestamp> <key> <seconds>" ;;
	esac
}
