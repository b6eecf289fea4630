# pgha server: the one owner of the SQL about an instance's replication state (sourced by
# entrypoint.sh). Its role (primary or standby), its timeline, a standby's streaming state as
# the primary reports it, the replication slots, and the passwords of the postgres and
# replicator roles: each is one statement here, and everything that needs the fact calls it —
# the PID-1 loop (run.sh), the operations in this container (bootstrap, switchover, failover,
# rejoin, backup, restore) and the host-side operations through `entrypoint.sh instance ...`
# (scripts/operations/lib.sh). `npm run status` reads the same facts in TypeScript
# (components/health.ts); docs/status.md says which query there corresponds to which here.
#
# sql_* functions are pure: they print a statement. The others run one.

# ---------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------

# The server's role: primary or standby.
sql_role() { echo "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END"; }

# The server's name (its cluster_name): asked of the writable peer, it names the primary.
sql_name() { echo "SELECT current_setting('cluster_name')"; }

# A PL/pgSQL statement for a DO block: raise unless this server is a standby.
sql_assert_standby() { echo "IF NOT pg_is_in_recovery() THEN RAISE EXCEPTION '% is not a standby', current_setting('cluster_name'); END IF;"; }

# The primary's current timeline: the one of its current WAL file (pg_control_checkpoint()
# lags until the next checkpoint after a promotion).
sql_timeline() { echo "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"; }

# The timeline of the latest checkpoint (what a restore recovers along).
sql_checkpoint_timeline() { echo "SELECT timeline_id FROM pg_control_checkpoint()"; }

# A checkpoint, then "<its timeline> <the current WAL position>" (after a recovery promoted).
sql_checkpoint_position() { echo "CHECKPOINT; SELECT timeline_id || ' ' || pg_current_wal_lsn() FROM pg_control_checkpoint();"; }

# sql_replica_state NAME: NAME's state in the primary's pg_stat_replication (empty: not connected).
sql_replica_state() { echo "SELECT state FROM pg_stat_replication WHERE application_name = '$1'"; }

# sql_replica_lag NAME: "<state> <sent - replayed bytes>" of NAME (-1 when unknown).
sql_replica_lag() { echo "SELECT state || ' ' || coalesce(pg_wal_lsn_diff(sent_lsn, replay_lsn), -1)::bigint FROM pg_stat_replication WHERE application_name = '$1'"; }

# sql_replica_timeline NAME: "<state> <the primary's current timeline>" for NAME.
sql_replica_timeline() { echo "SELECT state || ' ' || ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int FROM pg_stat_replication WHERE application_name = '$1'"; }

# The timeline this standby's WAL receiver streams on (empty: not streaming).
sql_received_timeline() { echo "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'"; }

# This standby's WAL receiver: status|flushed LSN|the sender's last reported end of WAL
# (automatic failover's lag bound: lease.sh).
sql_receiver_sample() { echo "SELECT status, coalesce(flushed_lsn::text, '0/0'), coalesce(latest_end_lsn::text, '0/0') FROM pg_stat_wal_receiver"; }

# The WAL this server received so far (0/0 when none).
sql_received_lsn() { echo "SELECT coalesce(pg_last_wal_receive_lsn()::text, '0/0')"; }

# A peer's position: in recovery (t/f)|received LSN (lease.sh: who is writable, who is ahead).
sql_peer_position() { echo "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_receive_lsn()::text, '0/0')"; }

# Close the current WAL file (it is archived next); prints its name.
sql_switch_wal() { echo "SELECT pg_walfile_name(pg_switch_wal())"; }

# sql_slots_ensure 'a','b',...: an unreserved physical slot for each name that has none; prints
# the slots created.
sql_slots_ensure() {
	echo "SELECT (pg_create_physical_replication_slot(n)).slot_name
FROM unnest(ARRAY[$1]::name[]) AS n
WHERE NOT EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = n);"
}

# sql_slot_ensure NAME: an unreserved slot for NAME if it has none.
sql_slot_ensure() { echo "SELECT pg_create_physical_replication_slot('$1') WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$1')"; }

# sql_slot_renew NAME: a slot for NAME that can still serve it: one whose WAL is gone (lost) is
# useless, so it is made anew, unreserved (it takes up from where NAME asks).
sql_slot_renew() {
	echo "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$1' AND NOT active AND wal_status = 'lost';
$(sql_slot_ensure "$1")"
}

# sql_slot_unreserve NAME: NAME's slot, unreserved (a standby must not keep WAL for a slot it held
# while it was primary: restartpoints honour slots).
sql_slot_unreserve() {
	echo "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$1' AND NOT active AND restart_lsn IS NOT NULL;
$(sql_slot_ensure "$1")"
}

# sql_slot_reserve NAME: NAME's slot, reserving WAL from now on (a copy of this server is about
# to start): an unused unreserved one is replaced.
sql_slot_reserve() {
	echo "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = '$1' AND restart_lsn IS NULL AND NOT active;
SELECT pg_create_physical_replication_slot('$1', true)
WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$1');"
}

# sql_promote_after LSN TIMEOUT: wait until this standby has replayed past LSN (the old primary's
# shutdown checkpoint record starts there: replay beyond it means the whole record, the last WAL
# the old primary wrote, is here), then promote, and return once it accepts writes; prints
# "promoted". One statement polling every 2 ms: pg_promote(false) and a 2 ms poll instead of
# pg_promote(true), which looks only every 100 ms.
sql_promote_after() {
	echo "SET statement_timeout = '${2}s';
DO \$\$ BEGIN
  $(sql_assert_standby)
  WHILE coalesce(pg_last_wal_replay_lsn() <= '$1'::pg_lsn, true) LOOP PERFORM pg_sleep(0.002); END LOOP;
  PERFORM pg_promote(false);
  WHILE pg_is_in_recovery() LOOP PERFORM pg_sleep(0.002); END LOOP;
END \$\$;
SELECT 'promoted';"
}

# checkpoint_soon: after a promotion, in the background (the promotion's caller does not wait):
# an immediate checkpoint puts the new timeline into pg_control at once. The end-of-recovery
# checkpoint is spread over checkpoint_timeout; until it ends, pg_rewind of a server that diverged
# from this one takes this server's previous timeline for its current one and needs WAL that
# exists only as a .partial file: it fails, and the rejoin must copy afresh instead.
checkpoint_soon() {
	(local_sql "CHECKPOINT" >/dev/null 2>&1 </dev/null &)
}

# sql_promote_now TIMEOUT: promote this standby at once (it replays what it has received first);
# prints t once it is primary.
sql_promote_now() {
	echo "SET statement_timeout = '${1}s';
DO \$\$ BEGIN
  $(sql_assert_standby)
END \$\$;
SELECT pg_promote(true, $1);"
}

# sql_role_passwords SUPERUSER REPLICATOR (SQL-escaped): the postgres and replicator roles get
# these passwords (SCRAM), the replicator role its attributes. The statements carrying a password
# are neither logged nor, should they fail, echoed by log_min_error_statement.
sql_role_passwords() {
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET log_min_duration_statement = -1;" \
		"SET standard_conforming_strings = on;" \
		"SET password_encryption = 'scram-sha-256';" \
		"ALTER ROLE postgres WITH PASSWORD '$1';" \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN CREATE ROLE replicator; END IF; END \$\$;" \
		"ALTER ROLE replicator WITH REPLICATION LOGIN PASSWORD '$2';"
}

# sql_role_verifier ROLE VERIFIER: ROLE's password, given as its SCRAM-SHA-256 verifier (never
# the password itself); the statement is not logged.
sql_role_verifier() {
	printf '%s\n' \
		"SET log_statement = 'none';" \
		"SET log_min_error_statement = 'panic';" \
		"SET log_min_duration_statement = -1;" \
		"ALTER ROLE $1 WITH PASSWORD '$2';"
}

# When the configuration files were last loaded (a new session sees the postmaster's reload).
sql_conf_load_time() { echo "SELECT pg_conf_load_time()"; }

# Ask the postmaster to re-read the configuration files (SIGHUP).
sql_reload() { echo "SELECT pg_reload_conf()"; }

# The problems PostgreSQL found in postgresql.conf and pg_hba.conf at the last load, one a line
# (a restart-only parameter changed in the file is no problem: it waits for the restart).
sql_conf_errors() {
	echo "SELECT sourcefile || ':' || sourceline || ': ' || coalesce(name || ': ', '') || error FROM pg_file_settings f
WHERE error IS NOT NULL AND NOT EXISTS (SELECT FROM pg_settings s WHERE s.name = f.name AND s.pending_restart)
UNION ALL SELECT 'pg_hba.conf:' || line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL"
}

# The parameters changed in the files that apply only after a restart, comma-separated.
sql_pending_restart() { echo "SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart"; }

# ---------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------

# role: primary, standby, or down (PostgreSQL does not answer on its local socket).
role() { local_sql "$(sql_role)" 2>/dev/null || echo down; }

# streams_now: the writable peer reports this server streaming (needs no local server: the
# bootstrap's one-off container uses it).
streams_now() {
	[ "$(primary_sql "$(sql_replica_state "$server")" 2>/dev/null)" = streaming ]
}

# streams_on_timeline: streams_now, and this server (in its own container) receives on the
# primary's current timeline. The rejoin needs both: a server whose timeline diverged (it was
# primary, or ahead, when another one was promoted) still streams the primary's history up to the
# fork, reported as "streaming" for a moment, before it stops at "new timeline N forked off
# current database system timeline M before current recovery point"; it must be rewound or
# copied, and it could not even start as a standby once unfenced.
streams_on_timeline() {
	_st=$(primary_sql "$(sql_replica_timeline "$server")" 2>/dev/null) || return 1
	[ "${_st%% *}" = streaming ] || return 1
	[ "$(local_sql "$(sql_received_timeline)" 2>/dev/null)" = "${_st#* }" ]
}

# wait_streaming TIMEOUT: until the writable peer reports this server streaming (polled every
# 0.2 s; $streams_check, default streams_now); returns 1 after TIMEOUT seconds.
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

# set_role_passwords SOCKETDIR PORT: this stack's passwords (the secrets) for the postgres and
# replicator roles (sql_role_passwords), on the server listening there.
set_role_passwords() {
	read_secret "$superuser_secret" || { log "warning: $superuser_secret is missing: passwords not set"; return 1; }
	escape_sql "$secret"
	_su=$escaped
	read_secret "$replicator_secret" || { _su=; log "warning: $replicator_secret is missing: passwords not set"; return 1; }
	escape_sql "$secret"
	_repl=$escaped
	secret='' escaped=''
	_st=0
	sql_role_passwords "$_su" "$_repl" |
		as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d postgres >/dev/null || _st=$?
	_su='' _repl=''
	return "$_st"
}

# ---------------------------------------------------------------------------
# `entrypoint.sh instance ...`: the facts for the host-side operations
# ---------------------------------------------------------------------------

# slot_name NAME: NAME is a replication slot name pgha uses (a server name).
slot_name() {
	case $1 in '' | *[!a-z0-9_]*) die "instance: '$1' is not a server name (slot name)" ;; esac
}

instance_cmd() {
	find_pg_bin
	find_pg_user
	case ${1:-} in
	role) [ $# -eq 1 ] || die "usage: entrypoint.sh instance role"; role ;;
	timeline) local_sql "$(sql_timeline)" ;;
	checkpoint-timeline) local_sql "$(sql_checkpoint_timeline)" ;;
	replica)
		[ $# -eq 2 ] || die "usage: entrypoint.sh instance replica <server>"
		slot_name "$2"
		local_sql "$(sql_replica_state "$2")"
		;;
	replica-lag)
		[ $# -eq 2 ] || die "usage: entrypoint.sh instance replica-lag <server>"
		slot_name "$2"
		local_sql "$(sql_replica_lag "$2")"
		;;
	slot)
		[ $# -eq 3 ] || die "usage: entrypoint.sh instance slot ensure|renew|unreserve <server>"
		slot_name "$3"
		case $2 in
		ensure) local_sql "$(sql_slot_ensure "$3")" >/dev/null ;;
		renew) local_sql "$(sql_slot_renew "$3")" >/dev/null ;;
		unreserve) local_sql "$(sql_slot_unreserve "$3")" >/dev/null ;;
		*) die "usage: entrypoint.sh instance slot ensure|renew|unreserve <server>" ;;
		esac
		;;
	switch-wal) local_sql "$(sql_switch_wal)" ;;
	*) die "usage: entrypoint.sh instance role | timeline | checkpoint-timeline | replica <server> | replica-lag <server> | slot ensure|renew|unreserve <server> | switch-wal" ;;
	esac
}
