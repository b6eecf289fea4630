# pgha server: `entrypoint.sh bootstrap`, the container side of the bootstrap operation (sourced
# by entrypoint.sh). scripts/operations/bootstrap.sh runs it in a one-off container on the new
# server's node, attached to the network, with the server's data volume mounted and the secrets
# in tmpfs. Copies whichever peer is writable into pgdata.partial, writes standby.signal, renames
# the copy to pgdata, then waits until the new standby streams. copy_primary is also the fresh
# copy of a rejoin (rejoin.sh) and of a restore's standbys (restore.sh).

bootstrap() {
	[ $# -eq 0 ] || die "usage: entrypoint.sh bootstrap"
	cd /
	find_pg_bin
	find_pg_user
	prepare_dirs
	write_pgpass
	_timeout=${PGHA_BOOTSTRAP_TIMEOUT:-300}
	copy_primary "$_timeout"
	log "copy complete and in place with standby.signal: the server's entrypoint starts it as a standby"
	wait_streaming "$_timeout" ||
		die "bootstrap: $server did not stream from $_primary within $_timeout s (see its service logs: docker service logs $server)"
}

# copy_primary TIMEOUT: pg_basebackup of the writable peer into pgdata.partial,
# standby.signal, rename to pgdata (which must be empty). Sets _primary. Used
# by the bootstrap (one-off container) and by a rejoin's or a restore's fresh
# copy (in the server's own container, PostgreSQL held).
copy_primary() {
	[ -n "$PGHA_PEERS" ] || die "bootstrap: PGHA_PEERS is empty: no peer to copy from"
	case $server in *[!a-z0-9_]* | '') die "bootstrap: '$server' is not a slot name" ;; esac
	[ -f "$pgdata/PG_VERSION" ] && die "bootstrap: $pgdata already holds a cluster; refusing to overwrite it"
	is_empty_dir "$pgdata" || die "bootstrap: $pgdata is not empty; refusing to overwrite it (move it aside)"
	_timeout=$1

	_t=0
	until _primary=$(primary_sql "$(sql_name)" 2>/dev/null) && [ -n "$_primary" ]; do
		[ "$_t" -lt "$_timeout" ] || die "bootstrap: no writable peer among $PGHA_PEERS answered within $_timeout s"
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
	until primary_sql "$(sql_slot_reserve "$server")" >/dev/null; do
		_t=$((_t + 1))
		[ "$_t" -lt 10 ] || die "bootstrap: could not create replication slot $server on $_primary"
		sleep 0.5
	done

	rm -rf "$pgdata_partial"
	as_pg pg_basebackup -D "$pgdata_partial" -d "$(peer_conninfo replicator)" \
		-X stream -c fast -S "$server" -P -v 2>&1 | while IFS= read -r _l; do log "pg_basebackup: $_l"; done
	if [ ! -f "$pgdata_partial/PG_VERSION" ] || [ ! -f "$pgdata_partial/backup_label" ]; then
		die "bootstrap: pg_basebackup did not complete; $pgdata_partial is left for the next attempt to remove"
	fi
	as_pg touch "$pgdata_partial/standby.signal"
	chmod 700 "$pgdata_partial"
	fsync_path "$pgdata_partial"
	if [ -d "$pgdata" ]; then rmdir "$pgdata"; fi
	mv "$pgdata_partial" "$pgdata"
	fsync_path "$PGHA_DATA_DIR"
}
