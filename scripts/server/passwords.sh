# pgha server: `entrypoint.sh passwords set <role> | refresh` (sourced by entrypoint.sh), the
# container side of the passwords operation.
#   passwords set <role>   the role's new password, given on stdin as its SCRAM-SHA-256 verifier
#                          (scripts/operations/scram.mjs computes it; the password itself never
#                          reaches PostgreSQL); on the primary
#   passwords refresh      the libpq password file of this container, written again from the
#                          password files the operation delivered: the next connection of this
#                          server's WAL receiver (and of its operations) uses the new passwords

passwords_cmd() {
	find_pg_bin
	find_pg_user
	case ${1:-} in
	set)
		[ $# -eq 2 ] || die "usage: entrypoint.sh passwords set postgres|replicator (the verifier on stdin)"
		case $2 in postgres | replicator) ;; *) die "passwords: '$2' is not a role pgha keeps a password for" ;; esac
		IFS= read -r _verifier || [ -n "$_verifier" ] || die "passwords: no verifier on stdin"
		case $_verifier in 'SCRAM-SHA-256$'*) ;; *) die "passwords: stdin is not a SCRAM-SHA-256 verifier" ;; esac
		[ "$(role)" = primary ] || die "passwords: $server is not the primary"
		sql_role_verifier "$2" "$_verifier" | local_sql_stdin >/dev/null || die "passwords: ALTER ROLE $2 failed"
		log "passwords: role $2 has its new password"
		;;
	refresh)
		[ $# -eq 1 ] || die "usage: entrypoint.sh passwords refresh"
		write_pgpass
		log "passwords: $pgpass written from $PGHA_SECRETS_DIR"
		;;
	*) die "usage: entrypoint.sh passwords set <role> | refresh" ;;
	esac
}
