#!/bin/sh
# Operation "passwords": the passwords of the postgres and replicator roles, changed without a
# restart and without a standby losing its stream. Run by the passwords Command when
# pgha:superuserPassword or pgha:replicatorPassword changes (and when the server list or pgha:lost
# does). Order matters:
#  0. nothing, when every reachable server's password files hold these passwords already (a
#     failover changes the lost list with no primary running yet: nothing to do then);
#  1. on the primary, each role's new password, as a SCRAM-SHA-256 verifier computed here
#     (scram.mjs; the password itself never reaches PostgreSQL, a log or a command line). Streaming
#     standbys keep their sessions: a password is checked only when a session starts;
#  2. then the password files into every reachable server's data volume (pgha-secrets/, root 0400),
#     and each running container writes its libpq password file again (`passwords refresh`): a
#     standby's next connection uses the new password.
# With no primary running (the first `pulumi up`, before initdb), only step 2: the first primary's
# initdb sets them. A lost server gets its files when it leaves pgha:lost.
#
# Environment (components/operations.ts): PGHA_SERVERS, PGHA_LOST (names), PGHA_IMAGE,
# PGHA_SUPERUSER_PASSWORD, PGHA_REPLICATOR_PASSWORD, PGHA_ARBITER_TOKEN (automatic failover's
# token: a file beside the passwords; changing only it changes no role).
set -eu
. "$(dirname "$0")/lib.sh"
lost=${PGHA_LOST:-}
require_env PGHA_SERVERS PGHA_IMAGE PGHA_SUPERUSER_PASSWORD PGHA_REPLICATOR_PASSWORD

reachable=""
for name in $(server_names); do
    if in_list "$name" "$lost"; then log "$name: lost (pgha:lost), not contacted"; else reachable="$reachable $name"; fi
done

# password_files NAME [check]: deliver the password files to NAME (with check: only say which
# differ); prints the files that changed (or differ).
password_files() {
    _pctr=$(server_container "$1")
    _pout=$( (
        file_install_script "$pgha_secrets_dir" 700 "${2:-}"
        printf '%s' "$PGHA_SUPERUSER_PASSWORD" | file_install "$pgha_secrets_dir" pgha-superuser-password 400
        printf '%s' "$PGHA_REPLICATOR_PASSWORD" | file_install "$pgha_secrets_dir" pgha-replicator-password 400
        # automatic failover: the token the agent authenticates to the arbiters with
        [ -z "${PGHA_ARBITER_TOKEN:-}" ] || printf '%s' "$PGHA_ARBITER_TOKEN" | file_install "$pgha_secrets_dir" pgha-arbiter-token 400
        file_install_end "$pgha_secrets_dir" "${2:-}"
    ) | deliver "$(server_host "$1")" "$(server_field "$1" 3)" "$PGHA_IMAGE" "$_pctr") || return 1
    printf '%s\n' "$_pout" | awk '$1 == "changed" { printf "%s%s", sep, $2; sep = " " }'
}

# 0. Nothing to do when every reachable server holds these passwords already (this Command also
#    runs when the server list or pgha:lost changes, e.g. in a failover, with no primary yet).
differ=""
for name in $reachable; do
    d=$(password_files "$name" check) || die "could not read $name's password files"
    [ -z "$d" ] || differ="$differ $name"
done
if [ -z "$differ" ]; then
    log "every reachable server has these passwords already: nothing to change"
    exit 0
fi

# 1. The roles, on the primary.
primary=""
running=""
for name in $reachable; do
    case $(role_of "$name") in
    primary) primary="$primary $name" running="$running $name" ;;
    standby) running="$running $name" ;;
    esac
done
# shellcheck disable=SC2086 # a list of names: split on purpose
set -- $primary
if [ $# -gt 1 ]; then die "more than one server is writable:$primary; the passwords were not changed (docs/failover.md)"; fi
if [ $# -eq 1 ]; then
    for role in postgres replicator; do
        if [ "$role" = postgres ]; then pw=$PGHA_SUPERUSER_PASSWORD; else pw=$PGHA_REPLICATOR_PASSWORD; fi
        verifier=$(printf '%s' "$pw" | node "$pgha_scripts/scram.mjs") || die "could not compute the SCRAM verifier of $role's password"
        printf '%s\n' "$verifier" | in_server_stdin "$1" passwords set "$role" ||
            die "could not set $role's password on $1; nothing else was changed"
    done
    pw='' verifier=''
    log "$1: the postgres and replicator roles have their new passwords"
elif [ -n "$running" ]; then
    die "no server is writable (running:$running): a password can only be changed on the primary; nothing was changed. Start the primary (or declare a failover: docs/failover.md) and run pulumi up again"
else
    log "no server runs PostgreSQL yet: the first primary's initdb sets the passwords"
fi

# 2. The password files, then each running container's password file.
for name in $reachable; do
    changed=$(password_files "$name") || die "could not deliver the password files to $name"
    log "$name: ${changed:+delivered $changed}${changed:-password files up to date}"
    ctr=$(server_container "$name")
    if [ -n "$ctr" ] && case "$running " in *" $name "*) true ;; *) false ;; esac then
        in_server "$name" passwords refresh || die "could not rewrite $name's password file"
    fi
done
log "passwords delivered"
