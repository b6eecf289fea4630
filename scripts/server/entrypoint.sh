#!/bin/sh
# pgha server container entrypoint: PID 1 of every pgha server container, and the door to the
# container side of every operation. A short dispatcher: each operation lives in a file of its
# own beside this one, under the operation's name (the same name as its Pulumi Command, its
# host-side script in scripts/operations/ and its page in docs/).
#
# Contract: docs/container.md. Every file of scripts/server/ is delivered by the roll operation
# into the data volume's pgha/ directory (/var/lib/pgha/data/pgha/entrypoint.sh), where the
# service's launcher waits for it; runs as root (or as the image's user). Image-agnostic: official `postgres` images (Debian: gosu, Alpine: su-exec) and a plain
# Debian rootfs with postgresql-15 (binaries in /usr/lib/postgresql/15/bin; setpriv).
#
# Usage:
#   entrypoint.sh [run]                      the server (run.sh: PID-1 lifecycle)
#   entrypoint.sh health                     the healthcheck (health.sh)
#   entrypoint.sh wal archive|restore ...    archive_command / restore_command (wal.sh)
#   entrypoint.sh instance ...               this server's role, timeline, replicas, slots
#                                            (instance.sh: the one owner of that SQL)
#   entrypoint.sh sql <statement>            run one statement on the local socket
#   entrypoint.sh bootstrap                  copy the primary into an empty data volume
#   entrypoint.sh switchover demote|promote|resume|undemote ...
#   entrypoint.sh failover promote <seconds>
#   entrypoint.sh rejoin <seconds>
#   entrypoint.sh backup take|list|prune ...
#   entrypoint.sh restore hold|resume|recover|reclone ...
#   entrypoint.sh clone recover ...
#   entrypoint.sh reload                     re-read the configuration files (reload.sh)
#   entrypoint.sh roll key|state|restart     the rolling restart's container side (roll.sh)
#   entrypoint.sh passwords set <role>|refresh  a new password (verifier on stdin), the pgpass file
#   entrypoint.sh lease read|claim           automatic failover's lease (lease.sh)
#   entrypoint.sh version                    the major version of the PostgreSQL binaries here
# The environment is described in lib.sh.
set -eu

# The files beside this one (PGHA_SERVER_DIR overrides, for tests).
pgha_server_dir=${PGHA_SERVER_DIR:-$(cd "$(dirname "$0")" && pwd)}
# shellcheck source=lib.sh
. "$pgha_server_dir/lib.sh"
# shellcheck source=instance.sh
. "$pgha_server_dir/instance.sh"
# shellcheck source=run.sh
. "$pgha_server_dir/run.sh"
# shellcheck source=health.sh
. "$pgha_server_dir/health.sh"
# shellcheck source=wal.sh
. "$pgha_server_dir/wal.sh"
# shellcheck source=bootstrap.sh
. "$pgha_server_dir/bootstrap.sh"
# shellcheck source=switchover.sh
. "$pgha_server_dir/switchover.sh"
# shellcheck source=failover.sh
. "$pgha_server_dir/failover.sh"
# shellcheck source=rejoin.sh
. "$pgha_server_dir/rejoin.sh"
# shellcheck source=backup.sh
. "$pgha_server_dir/backup.sh"
# shellcheck source=restore.sh
. "$pgha_server_dir/restore.sh"
# shellcheck source=clone.sh
. "$pgha_server_dir/clone.sh"
# shellcheck source=reload.sh
. "$pgha_server_dir/reload.sh"
# shellcheck source=roll.sh
. "$pgha_server_dir/roll.sh"
# shellcheck source=passwords.sh
. "$pgha_server_dir/passwords.sh"
# shellcheck source=lease.sh
. "$pgha_server_dir/lease.sh"

usage="entrypoint.sh [run | health | wal archive <path> <file> | wal restore <file> <path> | instance ... | sql <statement> | bootstrap | switchover demote|promote <seconds>|resume|undemote | failover promote <seconds> | rejoin <seconds> | backup take <label>|list|prune <wal|-> [label...] | restore hold|resume|recover <ts> <key> <seconds> [setting...]|reclone <ts> <seconds> | clone recover <ts> <key> <seconds> | reload | roll key|state|restart | passwords set <role>|refresh | lease read|claim | version]"
_op=${1:-run}
[ $# -eq 0 ] || shift
case $_op in
run | postgres)
	[ $# -eq 0 ] || die "usage: $usage"
	run_server
	;;
health) health ;;
wal) wal_cmd "$@" ;;
instance) instance_cmd "$@" ;;
sql)
	[ $# -eq 1 ] || die "usage: entrypoint.sh sql <statement>"
	find_pg_bin
	find_pg_user
	local_sql "$1"
	;;
bootstrap) bootstrap "$@" ;;
switchover) switchover_cmd "$@" ;;
failover) failover_cmd "$@" ;;
rejoin) rejoin "$@" ;;
backup) backup_cmd "$@" ;;
restore) restore_cmd "$@" ;;
clone) clone_cmd "$@" ;;
reload) reload_cmd "$@" ;;
roll) roll_cmd "$@" ;;
passwords) passwords_cmd "$@" ;;
lease) lease_cmd "$@" ;;
version)
	find_pg_bin
	pg_major
	;;
*) die "unknown subcommand '$_op'; usage: $usage" ;;
esac
