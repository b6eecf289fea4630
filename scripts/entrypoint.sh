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
	[ -n "$PGHA_PEERS" ] || die "basebackup: PGHA_PEERS is empty: no peer to copy from"
	case $server in *[!a-z0-9_]* | '') die "basebackup: '$server' is not a slot name" ;; esac
	find_pg_bin
	find_pg_user
	prepare_dirs
	write_pgpass
	[ -f "$pgdata/PG_VERSION" ] && die "basebackup: $pgdata already holds a cluster; refusing to overwrite it"
	is_empty_dir "$pgdata" || die "basebackup: $pgdata is not empty; refusing to overwrite it (move it aside)"
	_timeout=${PGHA_BOOTSTRAP_TIMEOUT:-300}

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
	primary_sql "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = '$server' AND restart_lsn IS NULL AND NOT active;
SELECT pg_create_physical_replication_slot('$server', true)
WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$server');" >/dev/null ||
		die "basebackup: could not create replication slot $server on $_primary"

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
	log "copy complete and in place with standby.signal: the server's entrypoint starts it as a standby"

	_t=0
	until [ "$(primary_sql "SELECT state FROM pg_stat_replication WHERE application_name = '$server'" 2>/dev/null)" = streaming ]; do
		[ "$_t" -lt "$_timeout" ] || die "basebackup: $server did not stream from $_primary within $_timeout s (see its service logs: docker service logs $server)"
		[ $((_t % 10)) -ne 0 ] || log "waiting for $server to stream from $_primary ($_t s)"
		_t=$((_t + 1))
		sleep 1
	done
	log "$server streams from $_primary"
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
	if ! as_pg pg_ctl stop -D "$pgdata" -m fast -w -t 120 >/dev/null; then
		rm -f "$pgdata/standby.signal" "$hold"
		die "demote: pg_ctl stop failed; $server stays primary"
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

# resume: let the entrypoint start PostgreSQL again (as a standby after demote).
resume() { rm -f "$hold"; }

# undemote: abort a demote: remove standby.signal, then resume as primary.
undemote() {
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
	find_pg_bin
	find_pg_user
	local_sql "SET statement_timeout = '${2}s';
DO \$\$ BEGIN
  IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION '% is not a standby', current_setting('cluster_name'); END IF;
  WHILE coalesce(pg_last_wal_replay_lsn() <= '$1'::pg_lsn, true) LOOP PERFORM pg_sleep(0.002); END LOOP;
END \$\$;
SELECT pg_promote(true, $2);"
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
demote) demote ;;
resume) resume ;;
undemote) undemote ;;
promote) shift; promote "$@" ;;
*) die "unknown subcommand '$1'; usage: entrypoint.sh [run | health | archive <path> <file> | restore <file> <path> | basebackup | sql <statement> | demote | resume | undemote | promote <lsn> <seconds>]" ;;
esac
