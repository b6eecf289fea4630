# pgha server: the PID-1 lifecycle of every server container (sourced by entrypoint.sh; run by
# `entrypoint.sh` / `entrypoint.sh run`). Finds PostgreSQL's binaries, writes the password file,
# then loops: make sure the data directory holds a cluster (initialize the first primary, or wait
# for the bootstrap to fill it), put the fence in place when the server is declared lost, start
# PostgreSQL as a child, keep a replication slot for every peer, pass signals on, and, when an
# operation holds PostgreSQL (the hold file), wait until it lets go and start it again.

on_stop_signal() {
	if [ -z "$stopping" ]; then
		log "received $1: fast shutdown"
	fi
	stopping=1
	lease_agent_stop
	signal_postgres INT
}

# ---------------------------------------------------------------------------
# Replication slots for the peers (background job after every start)
# ---------------------------------------------------------------------------

ensure_slots() {
	_pm=$1 _names='' _list=''
	_oldifs=$IFS
	IFS=,
	for _n in $PGHA_PEERS; do
		IFS=$_oldifs
		_n=$(printf '%s' "$_n" | tr -d ' \t')
		if [ -z "$_n" ] || [ "$_n" = "${PGHA_SERVER:-}" ]; then continue; fi
		case $_n in
		*[!a-z0-9_]*)
			log "warning: cannot keep a replication slot for peer '$_n': slot names may contain only lower case letters, digits and underscores"
			continue
			;;
		esac
		if [ "${#_n}" -gt 63 ]; then
			log "warning: cannot keep a replication slot for peer '$_n': longer than 63 characters"
			continue
		fi
		_names=${_names:+$_names,}$_n
		_list=${_list:+$_list,}"'$_n'"
	done
	IFS=$_oldifs
	[ -n "$_list" ] || return 0
	_i=0
	until server_ready "$pgdata"; do
		kill -0 "$_pm" 2>/dev/null || return 0
		_i=$((_i + 1))
		if [ "$_i" -lt 300 ]; then sleep 0.1; else sleep 1; fi
	done
	if _out=$(sql_slots_ensure "$_list" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "${pm_sock:-$PGHA_SOCKET_DIR}" -p "$pm_port" -U postgres -d postgres 2>&1); then
		for _s in $_out; do log "created replication slot $_s"; done
	else
		log "warning: could not ensure replication slots for $_names: $(printf '%s' "$_out" | tr '\n' ' ')"
	fi
}

# ---------------------------------------------------------------------------
# Data directory: start, initialize the first primary, or wait for bootstrap
# ---------------------------------------------------------------------------

check_stopping() {
	[ -n "$stopping" ] || return 0
	if [ -n "$child" ]; then
		signal_postgres INT
		wait_child
	fi
	log "stopped"
	exit 0
}

# initialize_primary: first start of the designated primary.
#
# Retry safety: the new cluster is built in pgdata.init and renamed to pgdata
# only once it is complete (initdb done, replicator role created, server
# stopped cleanly). pgdata therefore never holds half a cluster, and a
# pgdata.init found on entry is always the leftover of an attempt that died:
# it never served a client (its temporary server listens on no TCP address,
# only on a socket in the private runtime directory), never archived a WAL
# file (archive_mode is off for that server) and no standby can have copied
# it, so it is deleted and initialization starts over. If the container dies
# after the rename but before the marker is removed, the next start finds a
# cluster in pgdata and only removes the stale marker.
initialize_primary() {
	log "$marker exists and $pgdata is empty: initializing a new cluster"
	read_secret "$superuser_secret" || die "cannot initialize: $superuser_secret is missing or empty"
	read_secret "$replicator_secret" || die "cannot initialize: $replicator_secret is missing or empty"
	secret=
	if [ -e "$pgdata_init" ]; then
		log "removing $pgdata_init left by an interrupted initialization"
		rm -rf "$pgdata_init"
	fi
	# initdb runs as postgres and cannot read the root-owned 0400 secret: give it
	# a copy in the runtime directory (tmpfs in the container), 0600, removed
	# right after. (A pipe on /dev/stdin does not work: reopening it through
	# /proc/self/fd checks the pipe's owner, root.)
	_pwfile=$PGHA_RUNTIME_DIR/initdb-pwfile
	_initdb_log=$PGHA_RUNTIME_DIR/initdb.log
	rm -f "$_pwfile"
	(umask 077 && cat "$superuser_secret" >"$_pwfile")
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$_pwfile"
	# shellcheck disable=SC2086 # PGHA_INITDB_ARGS is word-split on purpose
	if as_pg initdb -D "$pgdata_init" -U postgres --pwfile="$_pwfile" \
		--auth-local=peer --auth-host=scram-sha-256 --data-checksums \
		--encoding=UTF8 --no-instructions $PGHA_INITDB_ARGS >"$_initdb_log" 2>&1; then
		_ok=1
	else
		_ok=
	fi
	rm -f "$_pwfile"
	while IFS= read -r _l || [ -n "$_l" ]; do log "initdb: $_l"; done <"$_initdb_log"
	rm -f "$_initdb_log"
	[ -n "$_ok" ] || die "initdb failed"
	check_stopping

	log "starting a temporary server (socket in $PGHA_RUNTIME_DIR only) to create role replicator"
	start_postgres "$pgdata_init" -c listen_addresses= \
		-c "unix_socket_directories=$PGHA_RUNTIME_DIR" -c archive_mode=off \
		-c log_statement=none -c log_min_error_statement=panic -c log_min_duration_statement=-1
	_i=0
	until server_ready "$pgdata_init" "$PGHA_RUNTIME_DIR"; do
		check_stopping
		kill -0 "$child" 2>/dev/null || { wait_child; die "the temporary server exited with status $child_status"; }
		_i=$((_i + 1))
		[ "$_i" -lt 1200 ] || die "the temporary server did not accept connections within 120 s"
		sleep 0.1
	done

	# The passwords go in on stdin (never argv), unlogged (instance.sh: set_role_passwords).
	if ! set_role_passwords "$PGHA_RUNTIME_DIR" "$pm_port"; then
		signal_postgres INT
		wait_child
		die "could not create role replicator"
	fi
	log "created role replicator (REPLICATION LOGIN)"
	signal_postgres INT
	wait_child
	[ "$child_status" -eq 0 ] || die "the temporary server stopped with status $child_status"
	check_stopping

	if [ -d "$pgdata" ]; then rmdir "$pgdata"; fi
	mv "$pgdata_init" "$pgdata"
	fsync_path "$PGHA_DATA_DIR"
	rm -f "$marker"
	fsync_path "$PGHA_DATA_DIR"
	log "initialized a new cluster in $pgdata; removed $marker"
}

# Returns once $pgdata holds a cluster (PG_VERSION), after initializing it
# (marker) or waiting for the bootstrap operation to rename pgdata.partial.
prepare_pgdata() {
	_waited=0
	while :; do
		if [ -f "$pgdata/PG_VERSION" ]; then
			if [ -e "$marker" ]; then
				log "$pgdata already holds a cluster: removing stale $marker"
				rm -f "$marker"
			fi
			if [ "$setuid_tool" != none ]; then
				find "$pgdata" ! -user "$PGHA_USER" -exec chown "$pg_uid:$pg_gid" {} +
			fi
			chmod 700 "$pgdata"
			return 0
		fi
		if is_empty_dir "$pgdata"; then
			if [ -e "$marker" ]; then
				set_state initializing
				initialize_primary
				continue
			fi
			_msg="data directory $pgdata is empty; waiting for the bootstrap operation (pg_basebackup) to fill it"
			[ ! -e "$pgdata_partial" ] || _msg="$_msg ($pgdata_partial exists: a copy is in progress)"
		else
			_msg="data directory $pgdata is not empty but holds no cluster (no PG_VERSION); not starting PostgreSQL on it; waiting for $pgdata/PG_VERSION"
		fi
		[ "$_waited" -ne 0 ] || set_state waiting
		[ $((_waited % 30)) -ne 0 ] || log "$_msg"
		_waited=$((_waited + 1))
		nap 1
		check_stopping
	done
}

# fence: PGHA_FENCED=1 is in the service of a server the operator declared lost
# (pgha:lost: its node was gone and another server was promoted without it).
# Before every start, standby.signal goes in if it is missing: the server comes
# back read-only, never as a second primary. Its timeline may have diverged
# from the new primary's (it may hold commits nobody else has): then it cannot
# stream and stays read-only until it is rejoined.
fence() {
	[ "${PGHA_FENCED:-}" = 1 ] || return 0
	if [ ! -e "$pgdata/standby.signal" ]; then
		as_pg touch "$pgdata/standby.signal"
		fsync_path "$pgdata"
		log "FENCED: wrote $pgdata/standby.signal: this server is declared lost (pgha:lost) and must not come back writable"
	fi
	log "FENCED: starting read-only as a standby. Another server was promoted while this one was lost; its timeline may have diverged (then it cannot stream and says so below). To rejoin it, remove it from pgha:lost and run pulumi up (pg_rewind, or a fresh copy with this data directory kept aside)"
}

run_server() {
	cd /
	find_pg_bin
	find_pg_user
	if [ "$setuid_tool" = none ]; then
		log "PostgreSQL binaries in $pg_bin; running as $(id -un 2>/dev/null || id -u)"
	else
		log "PostgreSQL binaries in $pg_bin; running them as $PGHA_USER via $setuid_tool"
	fi
	[ -r "$config_file" ] || die "cannot read $config_file"
	trap 'on_stop_signal SIGTERM' TERM
	trap 'on_stop_signal SIGINT' INT
	trap 'signal_postgres HUP' HUP
	prepare_dirs
	volume_lock
	write_pgpass
	if [ -r "$restart_key" ]; then cp "$restart_key" "$started_key"; else rm -f "$started_key"; fi
	rm -f "$lease_fenced" "$lease_busy"
	# automatic failover's agent (lease.sh): idle while PostgreSQL does not run or the feature is off
	lease_agent_start
	while :; do
		prepare_pgdata
		fence
		# with automatic failover, writable only with the current term (lease.sh)
		lease_gate
		log "starting PostgreSQL on $pgdata"
		set_state running
		start_postgres "$pgdata"
		ensure_slots "$child" &
		wait_child
		if [ -n "$stopping" ]; then
			log "PostgreSQL stopped (exit status $child_status)"
			exit "$child_status"
		fi
		if [ -e "$lease_fenced" ]; then
			rm -f "$lease_fenced"
			log "PostgreSQL stopped by the agent's fence (exit status $child_status): starting it again as a standby"
			continue
		fi
		# automatic failover: an old primary that cannot start as a standby because its timeline
		# diverged is rewound here (lease.sh), then started again
		if [ ! -e "$hold" ] && lease_rewind_diverged "$child_status"; then
			continue
		fi
		if [ -e "$hold" ]; then
			set_state held
			log "PostgreSQL stopped (exit status $child_status); $hold exists: not restarting it until that file is removed"
			while [ -e "$hold" ]; do
				[ -z "$stopping" ] || { log "stopped while held"; exit "$child_status"; }
				nap 0.05
			done
			log "$hold removed: starting PostgreSQL again"
			continue
		fi
		log "PostgreSQL exited with status $child_status; exiting"
		lease_agent_stop
		exit "$child_status"
	done
}

