# pgha server: the helpers every container-side file uses (sourced by entrypoint.sh, POSIX sh).
#
# Environment (paths default to the container contract, docs/container.md; tests override them):
#   PGHA_SERVER        this server's name, used in log lines (default: $HOSTNAME)
#   PGHA_PEERS         comma-separated names of the other servers; a physical
#                      replication slot is kept for each (may be empty; default: the
#                      peers file in PGHA_CONFIG_DIR, delivered by the reload operation)
#   PGHA_DATA_DIR      data volume (default /var/lib/pgha/data);
#                      PGDATA is $PGHA_DATA_DIR/pgdata
#   PGHA_ARCHIVE_DIR   archive volume (default /var/lib/pgha/archive); WAL in wal/,
#                      base backups in backups/
#   PGHA_CONFIG_DIR    pgha's files: these scripts and the rendered configuration
#                      (default $PGHA_DATA_DIR/pgha, delivered by the reload and roll
#                      operations); PostgreSQL runs with
#                      config_file=$PGHA_CONFIG_DIR/postgresql.conf
#   PGHA_SECRETS_DIR   the passwords (default $PGHA_DATA_DIR/pgha-secrets, root 0700,
#                      delivered by the passwords operation): pgha-superuser-password,
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
# Logging: every line these files write starts with "pgha: " and goes to stderr.
# Passwords are never printed, never on a command line, never in an environment
# variable (printf is a shell builtin in dash, busybox ash and bash, so its
# arguments never reach a process's argv).

: "${PGHA_DATA_DIR:=/var/lib/pgha/data}"
: "${PGHA_ARCHIVE_DIR:=/var/lib/pgha/archive}"
: "${PGHA_CONFIG_DIR:=$PGHA_DATA_DIR/pgha}"
: "${PGHA_SECRETS_DIR:=$PGHA_DATA_DIR/pgha-secrets}"
: "${PGHA_RUNTIME_DIR:=/dev/shm/pgha}"
: "${PGHA_SOCKET_DIR:=/var/run/postgresql}"
: "${PGHA_USER:=postgres}"
: "${PGHA_PG_BIN_SEARCH:=/usr/lib/postgresql/*/bin /usr/local/pgsql/bin}"
: "${PGHA_SETUID_TOOL:=}"
: "${PGHA_INITDB_ARGS:=}"
if [ -z "${PGHA_PEERS+set}" ] && [ -r "$PGHA_CONFIG_DIR/peers" ]; then
	IFS= read -r PGHA_PEERS <"$PGHA_CONFIG_DIR/peers" || true
fi
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
# The restart key this container started with (the roll operation restarts a server whose key
# differs from the delivered one: components/changes.ts).
restart_key=$PGHA_CONFIG_DIR/restart-key
started_key=$PGHA_RUNTIME_DIR/started-key

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

# pg_major: the major version of the binaries find_pg_bin found ("15" for 15.18).
pg_major() { postgres -V | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p'; }

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
# Directories
# ---------------------------------------------------------------------------

is_empty_dir() { [ ! -e "$1" ] || { [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; }; }

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

# volume_lock: one server container per data volume. When the swarm marks a node down, it
# replaces the tasks there; when the node comes back, the old task is shut down and the new one
# starts on the same node and volume, and nothing orders the two. PID 1 holds an exclusive
# flock on pgha-run.lock in the volume for the container's life (PostgreSQL inherits it); a
# second container waits here until the first one's processes are gone.
volume_lock() {
	if ! command -v flock >/dev/null 2>&1; then
		log "warning: no flock in this image: nothing keeps a second container of $server off this data volume"
		return 0
	fi
	# (opened for reading: flock needs no write access, and the file may be root's from an
	# earlier start while this one runs as the image's user)
	_lock=$PGHA_DATA_DIR/pgha-run.lock
	[ -e "$_lock" ] || : >>"$_lock"
	exec 8<"$_lock"
	flock -n 8 && return 0
	set_state waiting
	log "another container of $server still runs on this data volume (the swarm replaced its task): waiting until it has stopped"
	_waited=0
	until flock -w 5 8; do
		[ -z "${stopping:-}" ] || { log "stopped while waiting for the data volume"; exit 0; }
		_waited=$((_waited + 5))
		[ $((_waited % 30)) -ne 0 ] || log "still waiting for the other container on this data volume to stop ($_waited s)"
	done
	log "the other container has stopped: starting"
}

# ---------------------------------------------------------------------------
# SQL sessions (the statements themselves are owned by instance.sh and by the
# operation files)
# ---------------------------------------------------------------------------

# local_socket: sets _sock and _port to where this server's PostgreSQL listens
# (postmaster.pid, else the contract's defaults).
local_socket() {
	_port=5432 _sock=$PGHA_SOCKET_DIR
	if read_pidfile "$pgdata"; then _port=${pm_port:-$_port} _sock=${pm_sock:-$_sock}; fi
}

# local_sql SQL: run SQL as postgres on this server's socket, print the rows.
local_sql() {
	local_socket
	printf '%s\n' "$1" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres
}

# local_sql_stdin: run the statements on stdin as postgres on this server's socket.
local_sql_stdin() {
	local_socket
	as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$_sock" -p "$_port" -U postgres -d postgres
}

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

# ---------------------------------------------------------------------------
# Holding PostgreSQL: an operation stops it and keeps the PID-1 loop (run.sh)
# from starting it again until the hold file goes
# ---------------------------------------------------------------------------

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

# resume: let the entrypoint start PostgreSQL again.
resume() { rm -f "$hold"; }

# refuse_if_fenced WHAT: a fenced server (declared lost) never becomes writable.
refuse_if_fenced() {
	[ "${PGHA_FENCED:-}" != 1 ] || die "$1: $server is fenced (declared lost in pgha:lost); it cannot become primary before it is rejoined"
}

