# pgha server: `entrypoint.sh reload` (sourced by entrypoint.sh), the container side of the
# reload operation: once the operation has put new configuration files in place
# (postgresql.conf, pg_hba.conf, server.conf), PostgreSQL re-reads them. No restart, no session is
# dropped. Waits until the postmaster has loaded them, refuses to call it done when PostgreSQL
# reports a problem in them (it then keeps the old value of what it could not read), and prints
# what it could not apply without a restart (the roll operation restarts for those).
#
# Prints "reloaded" and, when some parameters wait for a restart, "pending-restart a,b,...";
# "not-running" when PostgreSQL does not run here (it reads the files when it starts).

reload_cmd() {
	[ $# -eq 0 ] || die "usage: entrypoint.sh reload"
	find_pg_bin
	find_pg_user
	if ! server_ready "$pgdata"; then
		log "reload: PostgreSQL is not running here: it reads the new files when it starts"
		echo not-running
		return 0
	fi
	_before=$(local_sql "$(sql_conf_load_time)") || die "reload: PostgreSQL does not answer on its socket"
	local_sql "$(sql_reload)" >/dev/null || die "reload: pg_reload_conf() failed"
	# A new session sees the time the postmaster re-read the files: poll until it moved.
	_i=0
	while [ "$(local_sql "$(sql_conf_load_time)" 2>/dev/null)" = "$_before" ]; do
		_i=$((_i + 1))
		[ "$_i" -lt 200 ] || die "reload: PostgreSQL did not re-read its configuration files within 10 s"
		sleep 0.05
	done
	_errors=$(local_sql "$(sql_conf_errors)") || die "reload: cannot read pg_file_settings / pg_hba_file_rules"
	if [ -n "$_errors" ]; then
		die "reload: PostgreSQL found problems in the new files and keeps the old values where it could not read them: $(printf '%s' "$_errors" | tr '\n' ';'). Fix pgha:postgresql / pgha:clients and run pulumi up again"
	fi
	_pending=$(local_sql "$(sql_pending_restart)")
	log "reload: configuration re-read${_pending:+; waiting for a restart: $_pending}"
	echo reloaded
	[ -z "$_pending" ] || echo "pending-restart $_pending"
}
