# pgha server: `entrypoint.sh health`, the service's healthcheck (sourced by entrypoint.sh).

# Healthcheck. Healthy while PostgreSQL answers on its socket, also while it
# still rejects connections (pg_isready 1: starting up, crash recovery), and
# while the entrypoint waits on purpose (for a bootstrap, or held by an
# operation): the orchestrator replaces unhealthy tasks, and replacing a server
# in recovery or waiting for its copy would only make things worse.
health() {
	if [ -r "$state_file" ]; then
		read -r _state <"$state_file" || _state=
		case $_state in waiting | held | initializing) exit 0 ;; esac
	fi
	find_pg_bin
	find_pg_user
	_port=${PGPORT:-5432} _sock=$PGHA_SOCKET_DIR
	if read_pidfile "$pgdata"; then
		_port=${pm_port:-$_port} _sock=${pm_sock:-$_sock}
	fi
	# As postgres, as the postgres role: peer authentication succeeds, so a
	# healthcheck leaves no "role does not exist" lines in the server log.
	_st=0
	as_pg pg_isready -q -h "$_sock" -p "$_port" -U postgres -d postgres || _st=$?
	[ "$_st" -eq 1 ] && exit 0
	exit "$_st"
}
