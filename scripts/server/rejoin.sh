# pgha server: `entrypoint.sh rejoin <seconds>`, the container side of the rejoin operation
# (sourced by entrypoint.sh). scripts/operations/rejoin.sh runs it in the server's own container
# (still fenced: PGHA_FENCED=1 stays in its service until the rejoin succeeded) when the server
# leaves pgha:lost. What to do is decided by pure steps from what was observed (rejoin_plan,
# rewind_start, rejoin_after_rewind; unit-tested with fabricated states), then carried out:
# nothing when it streams from the primary already on its timeline; otherwise hold and stop
# PostgreSQL, pg_rewind against the primary, resume as a standby and wait until it streams. When
# pg_rewind fails (or the rewound server does not stream), the data directory is moved aside to
# pgdata.before-rejoin-<UTC time> in the same volume (never deleted) and a fresh copy of the
# primary replaces it. Prints one line: "primary", "streaming", "rewound" or
# "recloned <kept directory>". On failure PostgreSQL stays held (stopped) and the next attempt
# starts over.

# ---------------------------------------------------------------------------
# Decisions (pure: arguments in, one word out)
# ---------------------------------------------------------------------------

# rejoin_plan ROLE PRIMARY DATA: the first decision.
#   ROLE     this server: primary, standby, or down (PostgreSQL does not answer)
#   PRIMARY  the writable peer's name, empty when none answers
#   DATA     this data directory: cluster (PG_VERSION), empty, or foreign (neither)
# Prints:
#   primary              this server is the primary and no other is: nothing to rejoin
#   refuse two-primaries this server and PRIMARY are both writable
#   refuse no-primary    no writable peer: a rejoin needs the primary
#   refuse foreign       the data directory holds something that is not a cluster
#   copy                 the data directory is empty: a fresh copy
#   check                a standby: nothing to do if it streams on the primary's timeline,
#                        otherwise rewind
#   rewind               stop it and pg_rewind it against PRIMARY
rejoin_plan() {
	if [ "$1" = primary ]; then
		if [ -n "$2" ]; then echo "refuse two-primaries"; else echo primary; fi
		return 0
	fi
	if [ -z "$2" ]; then echo "refuse no-primary"; return 0; fi
	case $3 in
	empty) echo copy ;;
	foreign) echo "refuse foreign" ;;
	*) if [ "$1" = standby ]; then echo check; else echo rewind; fi ;;
	esac
}

# rewind_start CLUSTER-STATE: how pg_rewind can start on a data directory whose pg_controldata
# reports CLUSTER-STATE: as-is after a clean shutdown; otherwise crash-recovery (pg_rewind first
# completes crash recovery in single-user mode, which refuses standby.signal).
rewind_start() {
	case $1 in
	"shut down" | "shut down in recovery") echo as-is ;;
	*) echo crash-recovery ;;
	esac
}

# rejoin_after_rewind REWIND-STATUS STREAMS: after pg_rewind exited with REWIND-STATUS and the
# rewound server did (yes) or did not (no) stream in time: rewound (done), or copy (a fresh copy,
# the rewound data directory kept aside).
rejoin_after_rewind() {
	if [ "$1" = 0 ] && [ "$2" = yes ]; then echo rewound; else echo copy; fi
}

# data_state: cluster, empty or foreign (see rejoin_plan).
data_state() {
	if [ -f "$pgdata/PG_VERSION" ]; then
		echo cluster
	elif is_empty_dir "$pgdata"; then
		echo empty
	else
		echo foreign
	fi
}

# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

# pg_rewind_to PRIMARY [OPTION...]: pg_rewind of this data directory against PRIMARY (writable
# only). --restore-target-wal: WAL the target needs from before the fork but no longer has in
# pg_wal comes from its archive (restore_command of the server's own configuration file).
pg_rewind_to() {
	_src=$1
	shift
	as_pg pg_rewind --target-pgdata="$pgdata" --restore-target-wal --config-file="$config_file" \
		--source-server="host=$_src port=5432 user=postgres passfile=$pgpass dbname=postgres connect_timeout=5 target_session_attrs=read-write application_name=$server-rewind" "$@"
}

# rewind_from PRIMARY: pg_rewind this (stopped) data directory against
# PRIMARY, then put standby.signal back (pg_rewind copies the primary's files
# and removes what the primary lacks, standby.signal included).
rewind_from() {
	_cstate=$(as_pg pg_controldata -D "$pgdata" | sed -n 's/^Database cluster state: *//p')
	if [ "$(rewind_start "$_cstate")" = crash-recovery ]; then
		# Safe: PostgreSQL is held, and a container restart meanwhile starts it fenced
		# (standby.signal back first).
		log "rejoin: $pgdata was not shut down cleanly ($_cstate): pg_rewind runs crash recovery first (single-user, no connections)"
		rm -f "$pgdata/standby.signal"
	fi
	_rlog=$PGHA_RUNTIME_DIR/rewind.log
	_st=0
	pg_rewind_to "$1" --progress >"$_rlog" 2>&1 || _st=$?
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

# copy_aside: move the data directory aside (never deleted), then a fresh copy of
# the primary (bootstrap.sh: copy_primary), started as a standby; waits until it streams.
copy_aside() {
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

rejoin() {
	[ $# -eq 1 ] || die "usage: entrypoint.sh rejoin <timeout-seconds>"
	case $1 in *[!0-9]* | '') die "rejoin: '$1' is not a number of seconds" ;; esac
	_timeout=$1
	# streaming counts only on the primary's timeline (see streams_on_timeline)
	streams_check=streams_on_timeline
	cd /
	find_pg_bin
	find_pg_user
	_data=$(data_state)
	_role=down
	[ "$_data" != cluster ] || _role=$(role)
	_primary=$(primary_sql "$(sql_name)" 2>/dev/null) || _primary=
	_plan=$(rejoin_plan "$_role" "$_primary" "$_data")
	case $_plan in
	primary)
		log "rejoin: $server is the primary: nothing to rejoin"
		echo primary
		return 0
		;;
	"refuse two-primaries") die "rejoin: $server is writable, and so is $_primary: two primaries. Nothing was changed; decide which one keeps its data, make it pgha:primary and declare the other lost (pgha:lost), run pulumi up, then remove it from pgha:lost" ;;
	"refuse no-primary") die "rejoin: no writable peer among $PGHA_PEERS answers; a rejoin needs the primary; nothing was changed" ;;
	"refuse foreign") die "rejoin: $pgdata holds no cluster but is not empty; move it aside, then run pulumi up again" ;;
	copy)
		log "rejoin: $pgdata is empty (a new machine?): copying $_primary"
		copy_primary "$_timeout"
		rm -f "$hold"
		wait_streaming "$_timeout" || die "rejoin: $server did not stream from $_primary within $_timeout s after the copy (docker service logs $server)"
		echo "recloned -"
		return 0
		;;
	check)
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

	_rst=0
	rewind_from "$_primary" || _rst=$?
	_streamed=no
	if [ "$_rst" -eq 0 ]; then
		log "rejoin: pg_rewind done; starting $server as a standby of $_primary"
		rm -f "$hold"
		# a rewound standby streams within seconds, or needs WAL nobody has
		_after=60
		[ "$_timeout" -ge 60 ] || _after=$_timeout
		if wait_streaming "$_after"; then _streamed=yes; fi
	fi
	if [ "$(rejoin_after_rewind "$_rst" "$_streamed")" = rewound ]; then
		echo rewound
		return 0
	fi
	if [ "$_rst" -eq 0 ]; then
		log "rejoin: after pg_rewind $server does not stream from $_primary within $_after s: making a fresh copy instead"
		hold_postgres || die "rejoin: could not stop PostgreSQL after the rewind"
	else
		log "rejoin: pg_rewind against $_primary failed (see above): making a fresh copy instead"
	fi
	copy_aside
}
