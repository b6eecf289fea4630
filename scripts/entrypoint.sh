#!/bin/sh
# pgha server container entrypoint (PID 1 of every pgha server container).
#
# Contract: docs/container.md. Shipped to the service as a Docker config at
# /etc/pgha/entrypoint.sh; runs as root (or as the image's user). Image-agnostic:
# official `postgres` images (Debian: gosu, Alpine: su-exec) and a plain Debian
# rootfs with postgresql-15 (binaries in /usr/lib/postgresql/15/bin; setpriv).
#
# Usage:
#   entrypoint.sh                      run the server (also: `run`, `postgres`)
#   entrypoint.sh health               exit 0 iff PostgreSQL accepts connections
#                                      on its local socket
#   entrypoint.sh archive <path> <file>  archive_command: copy PGDATA/<path> to
#                                      $PGHA_ARCHIVE_DIR/wal/<file>, never overwrite
#   entrypoint.sh restore <file> <path>  restore_command: copy
#                                      $PGHA_ARCHIVE_DIR/wal/<file> to <path>
#
# Environment (paths default to the contract; tests override them):
#   PGHA_SERVER        this server's name, used in log lines (default: $HOSTNAME)
#   PGHA_PEERS         comma-separated names of the other servers; a physical
#                      replication slot is kept for each (may be empty)
#   PGHA_DATA_DIR      data volume (default /var/lib/pgha/data);
#                      PGDATA is $PGHA_DATA_DIR/pgdata
#   PGHA_ARCHIVE_DIR   archive volume (default /var/lib/pgha/archive); WAL in wal/,
#                      base backups in backups/
#   PGHA_CONFIG_DIR    rendered configuration (default /etc/pgha); PostgreSQL runs
#                      with config_file=$PGHA_CONFIG_DIR/postgresql.conf
#   PGHA_SECRETS_DIR   Docker secrets (default /run/secrets): pgha-superuser-password,
#                      pgha-replicator-password (raw; the first line is the password)
#   PGHA_RUNTIME_DIR   tmpfs for runtime files (default /dev/shm/pgha): pgpass, hold
#   PGHA_SOCKET_DIR    unix socket directory (default /var/run/postgresql); must be
#                      the first entry of unix_socket_directories in postgresql.conf
#   PGHA_USER          OS user that runs PostgreSQL when started as root
#                      (default postgres)
#   PGHA_PG_BIN_SEARCH where to look for PostgreSQL's binaries when `postgres` is
#                      not on PATH: whitespace-separated globs, tried in order; the
#                      newest major version among one glob's matches wins
#                      (default "/usr/lib/postgresql/*/bin /usr/local/pgsql/bin")
#   PGHA_SETUID_TOOL   how to drop root privileges: gosu, su-exec, setpriv or runuser
#                      (default: the first of these that exists)
#   PGHA_INITDB_ARGS   extra initdb arguments, word-split (e.g. "--locale=C.UTF-8");
#                      used only when initializing the first primary
#
# Logging: every line this script writes starts with "pgha: " and goes to stderr.
# Passwords are never printed, never on a command line, never in an environment
# variable (printf is a shell builtin in dash, busybox ash and bash, so its
# arguments never reach a process's argv).
set -eu

: "${PGHA_DATA_DIR:=/var/lib/pgha/data}"
: "${PGHA_ARCHIVE_DIR:=/var/lib/pgha/archive}"
: "${PGHA_CONFIG_DIR:=/etc/pgha}"
: "${PGHA_SECRETS_DIR:=/run/secrets}"
: "${PGHA_RUNTIME_DIR:=/dev/shm/pgha}"
: "${PGHA_SOCKET_DIR:=/var/run/postgresql}"
: "${PGHA_USER:=postgres}"
: "${PGHA_PG_BIN_SEARCH:=/usr/lib/postgresql/*/bin /usr/local/pgsql/bin}"
: "${PGHA_SETUID_TOOL:=}"
: "${PGHA_INITDB_ARGS:=}"
: "${PGHA_PEERS:=}"

# shellcheck disable=SC3028 # HOSTNAME: set by Docker in the environment
server=${PGHA_SERVER:-${HOSTNAME:-$(uname -n)}}
pgdata=$PGHA_DATA_DIR/pgdata
pgdata_init=$PGHA_DATA_DIR/pgdata.init
pgdata_partial=$PGHA_DATA_DIR/pgdata.partial
marker=$PGHA_DATA_DIR/pgha-initialize
config_file=$PGHA_CONFIG_DIR/postgresql.conf
superuser_secret=$PGHA_SECRETS_DIR/pgha-superuser-password
replicator_secret=$PGHA_SECRETS_DIR/pgha-replicator-password
pgpass=$PGHA_RUNTIME_DIR/pgpass
hold=$PGHA_RUNTIME_DIR/hold
state_file=$PGHA_RUNTIME_DIR/state

log() { printf 'pgha: %s: %s\n' "$server" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Sleep in the background and wait for it: `wait` is interrupted by a trapped
# signal, so SIGTERM is handled at once instead of after the sleep.
nap() { sleep "$1" & wait $! || true; }

# fsync one file or directory; `sync FILE` is coreutils (>= 8.24) and recent
# busybox; older ones fall back to a global sync.
fsync_path() { sync "$1" 2>/dev/null || sync; }

# What the entrypoint is doing, for the healthcheck: waiting (for a bootstrap),
# held (PostgreSQL stopped on purpose by an operation), initializing, running.
set_state() { printf '%s\n' "$1" >"$state_file.tmp" && mv -f "$state_file.tmp" "$state_file"; }

# ---------------------------------------------------------------------------
# PostgreSQL's binaries and the postgres OS user
# ---------------------------------------------------------------------------

# Sets pg_bin and puts it first on PATH.
find_pg_bin() {
	pg_bin=
	if _p=$(command -v postgres 2>/dev/null) && [ -n "$_p" ] && [ -x "$_p" ]; then
		# a symlink such as /usr/local/bin/postgres: use the directory it points
		# into, where the other binaries (pg_isready, psql, initdb) live too
		_p=$(readlink -f "$_p" 2>/dev/null) || _p=$(command -v postgres)
		pg_bin=${_p%/*}
	else
		set -f # split the list into globs without expanding them yet
		for _glob in $PGHA_PG_BIN_SEARCH; do
			set +f
			_best='' _best_major=-1
			for _dir in $_glob; do # unquoted: expand this glob
				[ -x "$_dir/postgres" ] || continue
				# "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> 15
				_major=$("$_dir/postgres" -V 2>/dev/null |
					sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p') || _major=
				[ -n "$_major" ] || _major=0
				if [ "$_major" -gt "$_best_major" ]; then
					_best=$_dir _best_major=$_major
				fi
			done
			if [ -n "$_best" ]; then pg_bin=$_best; break; fi
			set -f
		done
		set +f
	fi
	[ -n "$pg_bin" ] || die "cannot find the PostgreSQL server binaries: no 'postgres' on PATH ($PATH) and none in PGHA_PG_BIN_SEARCH ($PGHA_PG_BIN_SEARCH)"
	PATH=$pg_bin:$PATH
	export PATH
}

# Sets setuid_tool ("none" when not root), pg_uid, pg_gid.
find_pg_user() {
	if [ "$(id -u)" != 0 ]; then
		setuid_tool=none pg_uid=$(id -u) pg_gid=$(id -g)
		return 0
	fi
	pg_uid=$(id -u "$PGHA_USER" 2>/dev/null) ||
		die "running as root but there is no '$PGHA_USER' user to run PostgreSQL as"
	pg_gid=$(id -g "$PGHA_USER")
	setuid_tool=$PGHA_SETUID_TOOL
	if [ -z "$setuid_tool" ]; then
		for _t in gosu su-exec setpriv runuser; do
			if command -v "$_t" >/dev/null 2>&1; then setuid_tool=$_t; break; fi
		done
	fi
	case $setuid_tool in
	gosu | su-exec | setpriv | runuser) ;;
	'') die "running as root but none of gosu, su-exec, setpriv, runuser exists to drop privileges" ;;
	*) die "PGHA_SETUID_TOOL='$setuid_tool': expected gosu, su-exec, setpriv or runuser" ;;
	esac
	command -v "$setuid_tool" >/dev/null 2>&1 || die "PGHA_SETUID_TOOL=$setuid_tool: not found"
}

# Replace the current (sub)shell by "$@" running as the postgres user. gosu,
# su-exec and setpriv exec, so the pid stays the same; runuser forks and stays
# the parent (see postmaster_pid).
as_pg_exec() {
	case $setuid_tool in
	none) exec "$@" ;;
	gosu) exec gosu "$PGHA_USER" "$@" ;;
	su-exec) exec su-exec "$PGHA_USER" "$@" ;;
	setpriv) exec setpriv --reuid="$pg_uid" --regid="$pg_gid" --init-groups "$@" ;;
	runuser) exec runuser -u "$PGHA_USER" -- "$@" ;;
	esac
}
as_pg() { (as_pg_exec "$@"); }

# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------

cr=$(printf '\r')

# read_secret FILE: sets secret to the first line of FILE (without CR/LF, the
# way initdb reads --pwfile); returns 1 if FILE is missing, unreadable or empty.
read_secret() {
	secret=
	[ -r "$1" ] || return 1
	IFS= read -r secret <"$1" || [ -n "$secret" ] || return 1
	secret=${secret%"$cr"}
	[ -n "$secret" ]
}

# libpq password file field: sets escaped to VALUE with \ and : backslashed.
escape_pgpass() {
	_in=$1 escaped=
	while [ -n "$_in" ]; do
		_rest=${_in#?}
		_c=${_in%"$_rest"}
		_in=$_rest
		case $_c in
		"\\" | :) escaped="$escaped\\$_c" ;;
		*) escaped=$escaped$_c ;;
		esac
	done
}

# SQL string literal body (standard_conforming_strings = on): double quotes.
escape_sql() {
	_in=$1 escaped=
	while [ -n "$_in" ]; do
		_rest=${_in#?}
		_c=${_in%"$_rest"}
		_in=$_rest
		case $_c in
		"'") escaped=$escaped"''" ;;
		*) escaped=$escaped$_c ;;
		esac
	done
}

# $PGHA_RUNTIME_DIR/pgpass (tmpfs, 0600, postgres): read by primary_conninfo
# (passfile=...) and by operations.
write_pgpass() {
	_tmp=$pgpass.tmp
	rm -f "$_tmp"
	(umask 077 && : >"$_tmp")
	for _role in replicator postgres; do
		if [ "$_role" = replicator ]; then _f=$replicator_secret; else _f=$superuser_secret; fi
		if read_secret "$_f"; then
			escape_pgpass "$secret"
			printf '*:*:*:%s:%s\n' "$_role" "$escaped" >>"$_tmp"
		else
			log "warning: $_f is missing or empty: no '$_role' line in $pgpass"
		fi
	done
	secret='' escaped=''
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$_tmp"
	chmod 600 "$_tmp"
	mv -f "$_tmp" "$pgpass"
}

# ---------------------------------------------------------------------------
# The postgres child process
# ---------------------------------------------------------------------------

child=          # pid of the running postgres (or of runuser around it)
child_datadir=  # its data directory
child_status=   # exit status after wait_child
stopping=       # set when SIGTERM/SIGINT arrived

# read_pidfile DATADIR: sets pm_pid, pm_port, pm_sock from postmaster.pid
# (line 1: pid, 4: port, 5: first socket directory).
read_pidfile() {
	pm_pid='' pm_port='' pm_sock=''
	[ -r "$1/postmaster.pid" ] || return 1
	_n=0
	while IFS= read -r _l || [ -n "$_l" ]; do
		_n=$((_n + 1))
		case $_n in
		1) pm_pid=$_l ;;
		4) pm_port=$_l ;;
		5) pm_sock=$_l ;;
		6) break ;;
		esac
	done <"$1/postmaster.pid"
	[ -n "$pm_pid" ]
}

# Sets pm_target to the pid to signal: the child itself, or with runuser (which
# forks and, on a signal, would send SIGTERM then SIGKILL to postgres) the
# postmaster whose parent is the child, found through postmaster.pid.
postmaster_pid() {
	pm_target=$child
	[ "$setuid_tool" = runuser ] || return 0
	pm_target=
	_tries=0
	while kill -0 "$child" 2>/dev/null; do
		if read_pidfile "$child_datadir" && [ -r "/proc/$pm_pid/stat" ]; then
			# /proc/PID/stat: "pid (comm) state ppid ..."; comm is "postgres"
			read -r _ _ _ _ppid _ <"/proc/$pm_pid/stat" || _ppid=
			if [ "$_ppid" = "$child" ]; then pm_target=$pm_pid; return 0; fi
		fi
		_tries=$((_tries + 1))
		[ "$_tries" -lt 200 ] || return 1
		sleep 0.05
	done
	return 1
}

signal_postgres() {
	[ -n "$child" ] || return 0
	kill -0 "$child" 2>/dev/null || return 0
	if postmaster_pid; then
		kill "-$1" "$pm_target" 2>/dev/null || true
	else
		log "warning: cannot find the postmaster of process $child to send SIG$1"
	fi
}

on_stop_signal() {
	if [ -z "$stopping" ]; then
		log "received $1: fast shutdown"
	fi
	stopping=1
	signal_postgres INT
}

# start_postgres DATADIR [ARG...]: postgres as a child, in the background.
start_postgres() {
	child_datadir=$1
	shift
	as_pg_exec postgres -D "$child_datadir" -c "config_file=$config_file" "$@" &
	child=$!
}

# Wait until the child exits; sets child_status. `wait` returns early (> 128)
# when a trapped signal arrives: then the child is still there (or a zombie
# not yet reaped) and we wait again.
wait_child() {
	while :; do
		_st=0
		wait "$child" || _st=$?
		if kill -0 "$child" 2>/dev/null; then continue; fi
		if [ "$_st" -gt 128 ]; then
			_st2=0
			wait "$child" 2>/dev/null || _st2=$?
			[ "$_st2" -eq 127 ] || _st=$_st2
		fi
		break
	done
	child=
	child_status=$_st
}

# server_ready DATADIR [SOCKETDIR]: PostgreSQL accepts connections on its socket.
server_ready() {
	read_pidfile "$1" || return 1
	[ -n "$pm_port" ] || return 1
	as_pg pg_isready -q -h "${2:-${pm_sock:-$PGHA_SOCKET_DIR}}" -p "$pm_port" \
		-U postgres -d postgres >/dev/null 2>&1
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
	_sql="SELECT (pg_create_physical_replication_slot(n)).slot_name
FROM unnest(ARRAY[$_list]::name[]) AS n
WHERE NOT EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = n);"
	if _out=$(printf '%s\n' "$_sql" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "${pm_sock:-$PGHA_SOCKET_DIR}" -p "$pm_port" -U postgres -d postgres 2>&1); then
		for _s in $_out; do log "created replication slot $_s"; done
	else
		log "warning: could not ensure replication slots for $_names: $(printf '%s' "$_out" | tr '\n' ' ')"
	fi
}

# ---------------------------------------------------------------------------
# Data directory: start, initialize the first primary, or wait for bootstrap
# ---------------------------------------------------------------------------

is_empty_dir() { [ ! -e "$1" ] || { [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; }; }

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

	read_secret "$replicator_secret"
	escape_sql "$secret"
	secret=
	# Fed on stdin (never argv); the statement carrying the password is neither
	# logged nor, should it fail, echoed by log_min_error_statement.
	if ! printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET log_min_duration_statement = -1;" \
		"SET standard_conforming_strings = on;" \
		"SET password_encryption = 'scram-sha-256';" \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN CREATE ROLE replicator; END IF; END \$\$;" \
		"ALTER ROLE replicator WITH REPLICATION LOGIN PASSWORD '$escaped';" |
		as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$PGHA_RUNTIME_DIR" -p "$pm_port" \
			-U postgres -d postgres >/dev/null; then
		escaped=
		signal_postgres INT
		wait_child
		die "could not create role replicator"
	fi
	escaped=
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

prepare_dirs() {
	mkdir -p "$PGHA_DATA_DIR" "$PGHA_ARCHIVE_DIR/wal" "$PGHA_ARCHIVE_DIR/backups" \
		"$PGHA_SOCKET_DIR" "$PGHA_RUNTIME_DIR"
	if [ "$setuid_tool" != none ]; then
		chown "$pg_uid:$pg_gid" "$PGHA_DATA_DIR" "$PGHA_ARCHIVE_DIR" \
			"$PGHA_ARCHIVE_DIR/wal" "$PGHA_ARCHIVE_DIR/backups" \
			"$PGHA_SOCKET_DIR" "$PGHA_RUNTIME_DIR"
	fi
	chmod 700 "$PGHA_RUNTIME_DIR"
	rm -f "$PGHA_RUNTIME_DIR/initdb.log" "$PGHA_RUNTIME_DIR/initdb-pwfile"
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
	write_pgpass
	while :; do
		prepare_pgdata
		fence
		log "starting PostgreSQL on $pgdata"
		set_state running
		start_postgres "$pgdata"
		ensure_slots "$child" &
		wait_child
		if [ -n "$stopping" ]; then
			log "PostgreSQL stopped (exit status $child_status)"
			exit "$child_status"
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
		exit "$child_status"
	done
}

# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------

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

# archive_command (cwd = PGDATA). Copy to a temp file, fsync, then hard-link
# into place: link(2) fails if the name exists, so nothing is ever overwritten.
archive() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh archive <path> <file>"
	_src=$1 _name=$2
	case $_name in '' | */* | .*) die "archive: invalid WAL file name '$_name'" ;; esac
	_dir=$PGHA_ARCHIVE_DIR/wal
	_dest=$_dir/$_name
	if [ -e "$_dest" ]; then archive_exists "$_src" "$_dest"; fi
	_tmp=$_dir/.$_name.$$.tmp
	if ! cp "$_src" "$_tmp"; then rm -f "$_tmp"; die "archive: cannot copy $_src to $_tmp"; fi
	fsync_path "$_tmp"
	if ln "$_tmp" "$_dest" 2>/dev/null; then
		rm -f "$_tmp"
	elif [ -e "$_dest" ]; then
		rm -f "$_tmp"
		archive_exists "$_src" "$_dest"
	else
		# no hard links on this file system: rename (single archiver per volume)
		mv "$_tmp" "$_dest"
	fi
	fsync_path "$_dir"
	exit 0
}

archive_exists() {
	if cmp -s "$1" "$2"; then
		exit 0 # archived already (e.g. by this server while it was a standby)
	fi
	case $1 in /*) _abs=$1 ;; *) _abs=$(pwd)/$1 ;; esac
	log "ARCHIVE CONFLICT: refusing to overwrite $2: it differs from $_abs, which PostgreSQL asks to archive under the same name"
	log "ARCHIVE CONFLICT: WAL archiving is stuck until an operator compares $_abs and $2 and removes the wrong one"
	exit 1
}

# restore_command: exit 1 silently when the file is not archived (normal at
# the end of recovery and when probing for timeline history files).
restore() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh restore <file> <path>"
	_src=$PGHA_ARCHIVE_DIR/wal/$1
	# During a restore or a clone, WAL this archive lacks (copied from the
	# archive that holds the base backup) waits in the data volume.
	[ -f "$_src" ] || _src=$PGHA_DATA_DIR/pgha-restore-wal/$1
	[ -f "$_src" ] || exit 1
	cp "$_src" "$2"
}

# ---------------------------------------------------------------------------
# basebackup: the container side of the bootstrap operation (scripts/bootstrap.sh
# runs it in a one-off container on the new server's node, attached to the
# network, with the server's data volume mounted and the secrets in tmpfs).
# Copies whichever peer is writable into pgdata.partial, writes standby.signal,
# renames the copy to pgdata, then waits until the new standby streams.
# ---------------------------------------------------------------------------

# peer_conninfo USER: libpq connection string naming every peer; libpq picks
# the writable one.
peer_conninfo() {
	_hosts=$(printf '%s' "$PGHA_PEERS" | tr -d ' \t')
	_ports=$(printf '%s' "$_hosts" | sed 's/[^,][^,]*/5432/g')
	printf 'host=%s port=%s user=%s passfile=%s dbname=postgres target_session_attrs=read-write connect_timeout=3 application_name=%s-bootstrap' \
		"$_hosts" "$_ports" "$1" "$pgpass" "$server"
}

# primary_sql SQL: run SQL as postgres on the writable peer, print the rows.
primary_sql() {
	printf '%s\n' "$1" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$(peer_conninfo postgres)"
}

basebackup() {
	cd /
	find_pg_bin
	find_pg_user
	prepare_dirs
	write_pgpass
	_timeout=${PGHA_BOOTSTRAP_TIMEOUT:-300}
	copy_primary "$_timeout"
	log "copy complete and in place with standby.signal: the server's entrypoint starts it as a standby"
	wait_streaming "$_timeout" ||
		die "basebackup: $server did not stream from $_primary within $_timeout s (see its service logs: docker service logs $server)"
}

# copy_primary TIMEOUT: pg_basebackup of the writable peer into pgdata.partial,
# standby.signal, rename to pgdata (which must be empty). Sets _primary. Used
# by the bootstrap (one-off container) and by a rejoin's fresh copy (in the
# server's own container, PostgreSQL held).
copy_primary() {
	[ -n "$PGHA_PEERS" ] || die "basebackup: PGHA_PEERS is empty: no peer to copy from"
	case $server in *[!a-z0-9_]* | '') die "basebackup: '$server' is not a slot name" ;; esac
	[ -f "$pgdata/PG_VERSION" ] && die "basebackup: $pgdata already holds a cluster; refusing to overwrite it"
	is_empty_dir "$pgdata" || die "basebackup: $pgdata is not empty; refusing to overwrite it (move it aside)"
	_timeout=$1

	_t=0
	until _primary=$(primary_sql "SELECT current_setting('cluster_name')" 2>/dev/null) && [ -n "$_primary" ]; do
		[ "$_t" -lt "$_timeout" ] || die "basebackup: no writable peer among $PGHA_PEERS answered within $_timeout s"
		[ $((_t % 10)) -ne 0 ] || log "waiting for a writable peer among $PGHA_PEERS ($_t s)"
		_t=$((_t + 1))
		sleep 1
	done
	log "copying from $_primary"
	# The slot keeps the primary's WAL from the start of the copy until this
	# server streams. A slot created unreserved (by the entrypoint on the
	# primary) is replaced by a reserved one while nobody uses it.
	# (Retried: the primary's entrypoint may be creating its peers' slots at the
	# same moment, right after its first start: "slot already exists".)
	_t=0
	until primary_sql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = '$server' AND restart_lsn IS NULL AND NOT active;
SELECT pg_create_physical_replication_slot('$server', true)
WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$server');" >/dev/null; do
		_t=$((_t + 1))
		[ "$_t" -lt 10 ] || die "basebackup: could not create replication slot $server on $_primary"
		sleep 0.5
	done

	rm -rf "$pgdata_partial"
	as_pg pg_basebackup -D "$pgdata_partial" -d "$(peer_conninfo replicator)" \
		-X stream -c fast -S "$server" -P -v 2>&1 | while IFS= read -r _l; do log "pg_basebackup: $_l"; done
	if [ ! -f "$pgdata_partial/PG_VERSION" ] || [ ! -f "$pgdata_partial/backup_label" ]; then
		die "basebackup: pg_basebackup did not complete; $pgdata_partial is left for the next attempt to remove"
	fi
	as_pg touch "$pgdata_partial/standby.signal"
	chmod 700 "$pgdata_partial"
	fsync_path "$pgdata_partial"
	if [ -d "$pgdata" ]; then rmdir "$pgdata"; fi
	mv "$pgdata_partial" "$pgdata"
	fsync_path "$PGHA_DATA_DIR"
}

# streams_now: the writable peer reports this server streaming (this check needs no local
# server: the basebackup's one-off container uses it).
streams_now() {
	[ "$(primary_sql "SELECT state FROM pg_stat_replication WHERE application_name = '$server'" 2>/dev/null)" = streaming ]
}

# streams_on_timeline: streams_now, and this server (in its own container) receives on the
# primary's current timeline. The rejoin needs both: a server whose timeline diverged (it was
# primary, or ahead, when another one was promoted) still streams the primary's history up to the
# fork, reported as "streaming" for a moment, before it stops at "new timeline N forked off
# current database system timeline M before current recovery point"; it must be rewound or
# copied, and it could not even start as a standby once unfenced.
streams_on_timeline() {
	_st=$(primary_sql "SELECT state || ' ' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int FROM pg_stat_replication WHERE application_name = '$server'" 2>/dev/null) || return 1
	[ "${_st%% *}" = streaming ] || return 1
	[ "$(local_sql "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null)" = "${_st#* }" ]
}

# wait_streaming TIMEOUT: until the writable peer reports this server
# streaming (polled every 0.2 s); returns 1 after TIMEOUT seconds.
wait_streaming() {
	_t=0
	until ${streams_check:-streams_now}; do
		[ "$_t" -lt $(($1 * 5)) ] || return 1
		[ $((_t % 50)) -ne 0 ] || log "waiting for $server to stream from ${_primary:-the primary} ($((_t / 5)) s)"
		_t=$((_t + 1))
		sleep 0.2
	done
	log "$server streams from ${_primary:-the primary}"
}

# ---------------------------------------------------------------------------
# Role operations, run in a server's container by the host-side operations
# (docker exec <container> /bin/sh /etc/pgha/entrypoint.sh <subcommand>).
# ---------------------------------------------------------------------------

# local_sql SQL: run SQL as postgres on this server's socket, print the rows.
local_sql() {
	_port=5432 _sock=$PGHA_SOCKET_DIR
	if read_pidfile "$pgdata"; then _port=${pm_port:-$_port} _sock=${pm_sock:-$_sock}; fi
	printf '%s\n' "$1" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres
}

sql_cmd() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh sql <statement>"
	find_pg_bin
	find_pg_user
	local_sql "$1"
}

# demote: stop this primary cleanly so that it comes back as a standby.
# standby.signal goes in first and the hold file keeps the entrypoint from
# restarting PostgreSQL until `resume` (or `undemote`), so that the shutdown
# checkpoint can be read and compared with the new primary's position.
# Prints "checkpoint <LSN> timeline <TLI>" of the shutdown checkpoint.
demote() {
	find_pg_bin
	find_pg_user
	[ "$(local_sql 'SELECT pg_is_in_recovery()')" = f ] || die "demote: $server is not a primary"
	: >"$hold"
	as_pg touch "$pgdata/standby.signal"
	if ! fast_stop 120; then
		rm -f "$pgdata/standby.signal" "$hold"
		die "demote: PostgreSQL did not stop; $server stays primary"
	fi
	_cd=$(as_pg pg_controldata -D "$pgdata")
	_state=$(printf '%s\n' "$_cd" | sed -n 's/^Database cluster state: *//p')
	_lsn=$(printf '%s\n' "$_cd" | sed -n 's/^Latest checkpoint location: *//p')
	_tli=$(printf '%s\n' "$_cd" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
	if [ "$_state" != "shut down" ] || [ -z "$_lsn" ]; then
		log "demote: unexpected control data after the stop (state '$_state'); bringing $server back as primary"
		undemote
		die "demote: $server did not shut down cleanly"
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

# sql_stdin: a psql session as postgres on the local socket that runs what
# arrives on stdin. Operations open it ahead of time so that a statement they
# send later (the promotion) costs no process or connection start-up.
sql_stdin() {
	find_pg_bin
	find_pg_user
	_port=5432 _sock=$PGHA_SOCKET_DIR
	if read_pidfile "$pgdata"; then _port=${pm_port:-$_port} _sock=${pm_sock:-$_sock}; fi
	as_pg_exec psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres -f -
}

# resume: let the entrypoint start PostgreSQL again (as a standby after demote).
resume() { rm -f "$hold"; }

# undemote: abort a demote: remove standby.signal, then resume as primary.
undemote() {
	refuse_if_fenced undemote
	rm -f "$pgdata/standby.signal"
	rm -f "$hold"
}

# promote LSN: wait until this standby has replayed past LSN (the old primary's
# shutdown checkpoint record starts there: replay beyond it means the whole
# record, the last WAL the old primary wrote, is here), then promote. One
# session, no fixed sleep: the check polls every 2 ms.
promote() {
	[ $# -eq 2 ] || die "usage: entrypoint.sh promote <lsn> <timeout-seconds>"
	case $1 in *[!0-9A-Fa-f/]* | '') die "promote: '$1' is not an LSN" ;; esac
	case $2 in *[!0-9]* | '') die "promote: '$2' is not a number of seconds" ;; esac
	refuse_if_fenced promote
	find_pg_bin
	find_pg_user
	local_sql "SET statement_timeout = '${2}s';
DO \$\$ BEGIN
  IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION '% is not a standby', current_setting('cluster_name'); END IF;
  WHILE coalesce(pg_last_wal_replay_lsn() <= '$1'::pg_lsn, true) LOOP PERFORM pg_sleep(0.002); END LOOP;
END \$\$;
SELECT pg_promote(true, $2);"
}

# ---------------------------------------------------------------------------
# Failover and rejoin (scripts/switchover.sh, scripts/rejoin.sh)
# ---------------------------------------------------------------------------

# refuse_if_fenced WHAT: a fenced server (declared lost) never becomes writable.
refuse_if_fenced() {
	[ "${PGHA_FENCED:-}" != 1 ] || die "$1: $server is fenced (declared lost in pgha:lost); it cannot become primary before it is rejoined"
}

# promote-now SECONDS: failover: promote this standby at once, without waiting
# for any LSN (the old primary's node is gone). PostgreSQL replays what it
# has received, then becomes primary on a new timeline. Prints t when done.
promote_now() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh promote-now <timeout-seconds>"
	case $1 in *[!0-9]* | '') die "promote-now: '$1' is not a number of seconds" ;; esac
	refuse_if_fenced promote-now
	find_pg_bin
	find_pg_user
	local_sql "SET statement_timeout = '${1}s';
DO \$\$ BEGIN
  IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION '% is not a standby', current_setting('cluster_name'); END IF;
END \$\$;
SELECT pg_promote(true, $1);"
}

# hold_postgres: keep the entrypoint from restarting PostgreSQL (hold file),
# stop PostgreSQL cleanly if it runs, and wait until the entrypoint holds.
hold_postgres() {
	: >"$hold"
	if as_pg pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
		as_pg pg_ctl stop -D "$pgdata" -m fast -w -t 120 >/dev/null || return 1
		_i=0
		until [ "$(cat "$state_file" 2>/dev/null)" = held ]; do
			_i=$((_i + 1))
			[ "$_i" -lt 200 ] || return 1
			sleep 0.05
		done
	fi
}

# rewind_from PRIMARY: pg_rewind this (stopped) data directory against
# PRIMARY, then put standby.signal back (pg_rewind copies the primary's files
# and removes what the primary lacks, standby.signal included).
rewind_from() {
	_cstate=$(as_pg pg_controldata -D "$pgdata" | sed -n 's/^Database cluster state: *//p')
	case $_cstate in
	"shut down" | "shut down in recovery") ;;
	*)
		# pg_rewind first completes crash recovery in single-user mode, which
		# refuses standby.signal. Safe: PostgreSQL is held, and a container
		# restart meanwhile starts it fenced (standby.signal back first).
		log "rejoin: $pgdata was not shut down cleanly ($_cstate): pg_rewind runs crash recovery first (single-user, no connections)"
		rm -f "$pgdata/standby.signal"
		;;
	esac
	_rlog=$PGHA_RUNTIME_DIR/rewind.log
	_st=0
	as_pg pg_rewind --target-pgdata="$pgdata" --progress \
		--source-server="host=$1 port=5432 user=postgres passfile=$pgpass dbname=postgres connect_timeout=5 target_session_attrs=read-write application_name=$server-rewind" \
		>"$_rlog" 2>&1 || _st=$?
	while IFS= read -r _l || [ -n "$_l" ]; do log "pg_rewind: $_l"; done <"$_rlog"
	rm -f "$_rlog"
	as_pg touch "$pgdata/standby.signal"
	fsync_path "$pgdata"
	return "$_st"
}

# rejoin SECONDS: the container side of the rejoin operation, run in the
# server's own container (still fenced: PGHA_FENCED=1 stays in its service
# until the rejoin succeeded) when it leaves pgha:lost. Nothing to do when it
# streams from the primary already. Otherwise: hold and stop PostgreSQL,
# pg_rewind against the primary, resume as a standby and wait until it
# streams. When pg_rewind fails (or the rewound server does not stream), the
# data directory is moved aside to pgdata.before-rejoin-<UTC time> in the same
# volume (never deleted) and a fresh copy of the primary replaces it.
# Prints one line: "streaming", "rewound" or "recloned <kept directory>".
# On failure PostgreSQL stays held (stopped) and the next attempt starts over.
rejoin() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh rejoin <timeout-seconds>"
	case $1 in *[!0-9]* | '') die "rejoin: '$1' is not a number of seconds" ;; esac
	_timeout=$1
	# streaming counts only on the primary's timeline (see streams_on_timeline)
	streams_check=streams_on_timeline
	cd /
	find_pg_bin
	find_pg_user
	_role=down
	if [ -f "$pgdata/PG_VERSION" ]; then
		_role=$(local_sql 'SELECT pg_is_in_recovery()' 2>/dev/null) || _role=down
	fi
	_primary=$(primary_sql "SELECT current_setting('cluster_name')" 2>/dev/null) || _primary=
	if [ "$_role" = f ]; then
		[ -z "$_primary" ] || die "rejoin: $server is writable, and so is $_primary: two primaries. Nothing was changed; decide which one keeps its data, make it pgha:primary and declare the other lost (pgha:lost), run pulumi up, then remove it from pgha:lost"
		log "rejoin: $server is the primary: nothing to rejoin"
		echo primary
		return 0
	fi
	[ -n "$_primary" ] || die "rejoin: no writable peer among $PGHA_PEERS answers; a rejoin needs the primary; nothing was changed"

	if [ ! -f "$pgdata/PG_VERSION" ]; then
		is_empty_dir "$pgdata" || die "rejoin: $pgdata holds no cluster but is not empty; move it aside, then run pulumi up again"
		log "rejoin: $pgdata is empty (a new machine?): copying $_primary"
		copy_primary "$_timeout"
		rm -f "$hold"
		wait_streaming "$_timeout" || die "rejoin: $server did not stream from $_primary within $_timeout s after the copy (docker service logs $server)"
		echo "recloned -"
		return 0
	fi

	case $_role in
	t)
		# a standby on the primary's timeline streams (or connects within seconds)
		_i=0
		while [ "$_i" -lt 25 ]; do
			if streams_on_timeline; then
				log "rejoin: $server streams from $_primary already, on its timeline: nothing to rejoin"
				echo streaming
				return 0
			fi
			_i=$((_i + 1))
			sleep 0.2
		done
		;;
	esac
	log "rejoin: $server ($_role) does not stream from $_primary: stopping it for pg_rewind"
	hold_postgres || die "rejoin: could not stop PostgreSQL cleanly; nothing was changed (PostgreSQL may stay stopped until the next attempt: $hold)"

	if rewind_from "$_primary"; then
		log "rejoin: pg_rewind done; starting $server as a standby of $_primary"
		rm -f "$hold"
		# a rewound standby streams within seconds, or needs WAL nobody has
		_after=60
		[ "$_timeout" -ge 60 ] || _after=$_timeout
		if wait_streaming "$_after"; then
			echo rewound
			return 0
		fi
		log "rejoin: after pg_rewind $server does not stream from $_primary within $_after s: making a fresh copy instead"
		hold_postgres || die "rejoin: could not stop PostgreSQL after the rewind"
	else
		log "rejoin: pg_rewind against $_primary failed (see above): making a fresh copy instead"
	fi

	_aside=$PGHA_DATA_DIR/pgdata.before-rejoin-$(date -u +%Y%m%dT%H%M%SZ)
	[ ! -e "$_aside" ] || die "rejoin: $_aside exists already; try again in a second"
	mv "$pgdata" "$_aside"
	fsync_path "$PGHA_DATA_DIR"
	log "rejoin: KEPT the old data directory as $_aside (in this server's data volume; it is never deleted by pgha: remove it yourself once you no longer need it)"
	copy_primary "$_timeout"
	log "rejoin: fresh copy of $_primary in place with standby.signal; starting it"
	rm -f "$hold"
	wait_streaming "$_timeout" || die "rejoin: $server did not stream from $_primary within $_timeout s after the copy (docker service logs $server)"
	echo "recloned $_aside"
}

# ---------------------------------------------------------------------------
# Backups, retention, point-in-time recovery and cloning (scripts/backup.sh,
# scripts/restore.sh, scripts/clone.sh), run in a server's own container.
# A base backup is a directory of this server's archive volume:
#   backups/<label>/base.tar.gz, pg_wal.tar.gz, backup_manifest (pg_basebackup
#   -F t -z -X stream) and backup.json (one line: label, server, backupFrom,
#   timeline, startLsn, stopLsn, stopTimeline, startWal, startTime, stopTime,
#   bytes).
# A restore or a clone builds the new data directory in pgdata.restore (the
# entrypoint never starts PostgreSQL on it) and puts WAL from another archive
# in pgha-restore-wal (the restore subcommand falls back to it).
# ---------------------------------------------------------------------------

backups_dir=$PGHA_ARCHIVE_DIR/backups
restore_dir=$PGHA_DATA_DIR/pgdata.restore
restore_wal=$PGHA_DATA_DIR/pgha-restore-wal
restored_marker=$PGHA_DATA_DIR/pgha-restored

# A backup label: a directory name and pg_basebackup's label.
valid_label() {
	case $1 in '' | .* | -* | *[!A-Za-z0-9._-]*) return 1 ;; esac
	[ "${#1}" -le 63 ]
}

# json_field NAME JSON: the value of a string or number field of one line of
# JSON written by backup() (no nesting, no escaped quotes).
json_field() {
	printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# utc_iso TIMESTAMPTZ-TEXT: the same instant as YYYY-MM-DDTHH:MM:SS.mmmZ,
# converted by PostgreSQL (the text may name any time zone it knows).
utc_iso() {
	local_sql "SELECT to_char(('$1')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
}

# backup LABEL: a base backup of this server (primary or standby) over its
# local socket (peer authentication: no password involved): tar + gzip, WAL
# streamed alongside, fast checkpoint, into backups/.LABEL.partial, then its
# backup.json, then renamed to backups/LABEL. An existing backups/LABEL is
# never overwritten. Prints backup.json.
backup() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh backup <label>"
	_label=$1
	valid_label "$_label" || die "backup: '$_label' is not a backup label (letters, digits, '.', '_', '-', at most 63, not starting with '.' or '-')"
	cd /
	find_pg_bin
	find_pg_user
	_dest=$backups_dir/$_label
	_part=$backups_dir/.$_label.partial
	[ ! -e "$_dest" ] || die "backup: a backup labelled $_label exists already on $server ($_dest); refusing to overwrite it: choose another id (pulumi config set --path backup.id <new label>)"
	_from=$(local_sql "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END") ||
		die "backup: PostgreSQL on $server does not answer on its local socket"
	mkdir -p "$backups_dir"
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$backups_dir"
	rm -rf "$_part"
	as_pg mkdir "$_part"
	_port=5432 _sock=$PGHA_SOCKET_DIR
	if read_pidfile "$pgdata"; then _port=${pm_port:-$_port} _sock=${pm_sock:-$_sock}; fi
	_blog=$PGHA_RUNTIME_DIR/backup-$_label.log
	_st=0
	as_pg pg_basebackup -h "$_sock" -p "$_port" -U postgres -D "$_part" \
		-F t -z -X stream -c fast -l "$_label" -v >"$_blog" 2>&1 || _st=$?
	while IFS= read -r _l || [ -n "$_l" ]; do log "pg_basebackup: $_l"; done <"$_blog"
	rm -f "$_blog"
	if [ "$_st" -ne 0 ] || [ ! -f "$_part/base.tar.gz" ] || [ ! -f "$_part/backup_manifest" ]; then
		rm -rf "$_part"
		die "backup: pg_basebackup on $server failed (exit status $_st); nothing was kept"
	fi
	_stop_time=$(local_sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
	# backup_label inside base.tar.gz: where and when the backup started.
	_bl=$(tar -xzOf "$_part/base.tar.gz" backup_label) || die "backup: no backup_label in $_part/base.tar.gz"
	_start_lsn=$(printf '%s\n' "$_bl" | sed -n 's/^START WAL LOCATION: *\([0-9A-Fa-f]*\/[0-9A-Fa-f]*\).*/\1/p')
	_start_wal=$(printf '%s\n' "$_bl" | sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\)).*/\1/p')
	_tli=$(printf '%s\n' "$_bl" | sed -n 's/^START TIMELINE: *\([0-9]*\).*/\1/p')
	_start_time=$(utc_iso "$(printf '%s\n' "$_bl" | sed -n 's/^START TIME: *//p')")
	# backup_manifest: the WAL ranges the backup needs, newest timeline first (a standby's
	# backup may start on the timeline before a swap): the first one ends it.
	_stop_lsn=$(sed -n 's/.*"End-LSN": *"\([0-9A-Fa-f]*\/[0-9A-Fa-f]*\)".*/\1/p' "$_part/backup_manifest" | head -n 1)
	_stop_tli=$(sed -n 's/.*"Timeline": *\([0-9]*\).*"End-LSN".*/\1/p' "$_part/backup_manifest" | head -n 1)
	if [ -z "$_start_lsn" ] || [ -z "$_start_wal" ] || [ -z "$_tli" ] || [ -z "$_stop_lsn" ]; then
		rm -rf "$_part"
		die "backup: could not read the start and stop of the backup from backup_label and backup_manifest; nothing was kept"
	fi
	_bytes=0
	for _f in "$_part"/*.tar.gz; do _bytes=$((_bytes + $(wc -c <"$_f"))); done
	printf '{"label":"%s","server":"%s","backupFrom":"%s","timeline":%s,"startLsn":"%s","stopLsn":"%s","stopTimeline":%s,"startWal":"%s","startTime":"%s","stopTime":"%s","bytes":%s}\n' \
		"$_label" "$server" "$_from" "$_tli" "$_start_lsn" "$_stop_lsn" "${_stop_tli:-$_tli}" "$_start_wal" "$_start_time" "$_stop_time" "$_bytes" >"$_part/backup.json"
	[ "$setuid_tool" = none ] || chown -R "$pg_uid:$pg_gid" "$_part"
	for _f in "$_part"/*; do fsync_path "$_f"; done
	fsync_path "$_part"
	mv "$_part" "$_dest"
	fsync_path "$backups_dir"
	log "backup $_label of $server ($_from) complete: timeline $_tli, $_start_lsn .. $_stop_lsn, $_bytes bytes in $_dest"
	cat "$_dest/backup.json"
}

# backups: one tab-separated line per complete backup in this archive:
# stopTime, label, startWal, backup.json.
backups() {
	for _d in "$backups_dir"/*/; do
		[ -f "$_d/backup.json" ] || continue
		_j=$(cat "$_d/backup.json")
		printf '%s\t%s\t%s\t%s\n' "$(json_field stopTime "$_j")" "$(json_field label "$_j")" "$(json_field startWal "$_j")" "$_j"
	done
}

# prune OLDEST-WAL [LABEL...]: delete the named backups from this archive,
# then the archived WAL before OLDEST-WAL with pg_archivecleanup (it compares
# segment numbers whatever the timeline, and leaves timeline history files and
# backup history files alone). OLDEST-WAL "-": no WAL is removed.
prune() {
	[ $# -ge 1 ] || die "usage: entrypoint.sh prune <oldest WAL file to keep | -> [label...]"
	_oldest=$1
	shift
	case $_oldest in
	-) ;;
	*)
		printf '%s' "$_oldest" | grep -qx '[0-9A-F]\{24\}' || die "prune: '$_oldest' is not a WAL file name"
		;;
	esac
	for _l in "$@"; do
		valid_label "$_l" || die "prune: '$_l' is not a backup label"
		if [ -d "$backups_dir/$_l" ]; then
			rm -rf "${backups_dir:?}/$_l"
			log "prune: deleted backup $_l (retention)"
		fi
	done
	fsync_path "$backups_dir"
	[ "$_oldest" != - ] || return 0
	cd /
	find_pg_bin
	find_pg_user
	_wal=$PGHA_ARCHIVE_DIR/wal
	_before=$(find "$_wal" -maxdepth 1 -type f | wc -l)
	as_pg pg_archivecleanup "$_wal" "$_oldest"
	fsync_path "$_wal"
	log "prune: removed $((_before - $(find "$_wal" -maxdepth 1 -type f | wc -l))) archived WAL files older than $_oldest (the oldest kept backup's first)"
}

# hold: stop PostgreSQL cleanly and keep the entrypoint from starting it again
# until `resume`.
hold() {
	find_pg_bin
	find_pg_user
	hold_postgres || die "hold: could not stop PostgreSQL on $server cleanly"
}

# set_role_passwords SOCKETDIR PORT: the postgres and replicator roles get this
# stack's passwords (the secrets), the replicator role its attributes. The
# statements are neither logged nor echoed on error.
set_role_passwords() {
	read_secret "$superuser_secret" || { log "warning: $superuser_secret is missing: passwords not set"; return 1; }
	escape_sql "$secret"
	_su=$escaped
	read_secret "$replicator_secret" || { _su=; log "warning: $replicator_secret is missing: passwords not set"; return 1; }
	escape_sql "$secret"
	_repl=$escaped
	secret='' escaped=''
	_st=0
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET log_min_duration_statement = -1;" \
		"SET standard_conforming_strings = on;" \
		"SET password_encryption = 'scram-sha-256';" \
		"ALTER ROLE postgres WITH PASSWORD '$_su';" \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN CREATE ROLE replicator; END IF; END \$\$;" \
		"ALTER ROLE replicator WITH REPLICATION LOGIN PASSWORD '$_repl';" |
		as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d postgres >/dev/null || _st=$?
	_su='' _repl=''
	return "$_st"
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
	[ $# -ge 3 ] || die "usage: entrypoint.sh recover <timestamp> <key> <timeout-seconds> [recovery_target_...=<value>...]"
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
			[ "$(printf 'SELECT pg_is_in_recovery();\n' | as_pg psql -X -q -A -t -h "$PGHA_RUNTIME_DIR" -p "$pm_port" -U postgres -d postgres 2>/dev/null)" = f ]; then
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
	_pos=$(_psql "CHECKPOINT; SELECT timeline_id || ' ' || pg_current_wal_lsn() FROM pg_control_checkpoint();") || _pos=
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
	[ $# -eq 2 ] || die "usage: entrypoint.sh reclone <timestamp> <timeout-seconds>"
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

case ${1:-} in
'' | run | postgres)
	[ $# -le 1 ] || die "usage: entrypoint.sh [run | health | archive <path> <file> | restore <file> <path>]"
	run_server
	;;
health) health ;;
archive) shift; archive "$@" ;;
restore) shift; restore "$@" ;;
basebackup) basebackup ;;
sql) shift; sql_cmd "$@" ;;
sql-stdin) sql_stdin ;;
demote) demote ;;
resume) resume ;;
undemote) undemote ;;
promote) shift; promote "$@" ;;
promote-now) shift; promote_now "$@" ;;
rejoin) shift; rejoin "$@" ;;
backup) shift; backup "$@" ;;
backups) backups ;;
prune) shift; prune "$@" ;;
hold) hold ;;
recover) shift; recover "$@" ;;
reclone) shift; reclone "$@" ;;
*) die "unknown subcommand '$1'; usage: entrypoint.sh [run | health | archive <path> <file> | restore <file> <path> | basebackup | sql <statement> | demote | resume | undemote | promote <lsn> <seconds> | promote-now <seconds> | rejoin <seconds> | backup <label> | backups | prune <wal|-> [label...] | hold | recover <ts> <key> <seconds> [setting...] | reclone <ts> <seconds>]" ;;
esac
