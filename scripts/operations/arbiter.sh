#!/bin/sh
# Operation "arbiter": automatic failover's topology, checked and made ready. Two Commands run it:
#   arbiter.sh check   before the arbiter service is declared or changed: refuse automatic
#                      failover on a swarm with fewer than three managers, and say why;
#   arbiter.sh ready   after it: wait until the arbiter runs on a majority of the managers (the
#                      servers' agents and their start gate need one to answer);
#   arbiter.sh lease   on every preview and update (the program's invoke): print the lease's
#                      labels as JSON, or nothing when there is no lease or the swarm does not
#                      answer (never fails: the program only warns when it names another primary);
#   arbiter.sh forget  when the stack is destroyed, after the arbiter service: remove the lease's
#                      config (a new cluster of the same name must not inherit an old holder).
# The arbiter (scripts/arbiter/) is the only component with the Docker socket; it keeps the lease
# in a swarm config's labels, which the swarm's Raft store on the managers replicates. Why three:
# the store answers only while a majority of the managers is up. With two managers the loss of
# either loses the majority, and with it every lease renewal: the primary would fence itself
# (stop) although nothing happened to it. With one, the loss of that node does the same. Three
# managers (two database servers and a small witness node) survive the loss of any one node.
#
# Environment (components/operations.ts): PGHA_ARBITER_SERVICE, PGHA_FAILOVER_AUTOMATIC (flag),
# PGHA_ARBITER_TIMEOUT (s), PGHA_LEASE_CONFIG.
set -eu
. "$(dirname "$0")/lib.sh"
require_env PGHA_ARBITER_SERVICE PGHA_FAILOVER_AUTOMATIC
svc=$PGHA_ARBITER_SERVICE
timeout=${PGHA_ARBITER_TIMEOUT:-120}

if [ "${1:-}" = lease ]; then
    require_env PGHA_LEASE_CONFIG
    docker config inspect --format '{{json .Spec.Labels}}' "$PGHA_LEASE_CONFIG" 2>/dev/null || true
    exit 0
fi
if [ "${1:-}" = forget ]; then
    require_env PGHA_LEASE_CONFIG
    if docker config inspect "$PGHA_LEASE_CONFIG" >/dev/null 2>&1; then
        docker config rm "$PGHA_LEASE_CONFIG" >/dev/null || die "could not remove the lease ($PGHA_LEASE_CONFIG): docker config rm $PGHA_LEASE_CONFIG"
        log "removed the lease ($PGHA_LEASE_CONFIG)"
    else
        log "no lease to remove ($PGHA_LEASE_CONFIG)"
    fi
    exit 0
fi
[ "$PGHA_FAILOVER_AUTOMATIC" = 1 ] || { log "automatic failover is off (pgha:failover.automatic): nothing to check"; exit 0; }

managers=$(docker node ls --filter role=manager --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}' 2>&1) ||
    die "cannot list the swarm's nodes ($managers): the Docker engine this runs against must be a swarm manager"
count=$(printf '%s\n' "$managers" | awk 'NF { n++ } END { print n + 0 }')

case ${1:-} in
check)
    verdict=$(manager_verdict "$count")
    case $verdict in
    ok) log "$count managers ($(printf '%s\n' "$managers" | awk 'NF { printf "%s%s %s", sep, $1, $3; sep = ", " }')): automatic failover survives the loss of any $(((count - 1) / 2)) of them" ;;
    *) die "automatic failover needs at least three swarm managers; this swarm has $count. ${verdict#refuse }. Add managers (docker swarm join-token manager; a small witness node with no database is enough) or set pgha:failover.automatic false; nothing was changed" ;;
    esac
    ;;
ready)
    need=$((count / 2 + 1))
    running() {
        n=$(docker service ps "$svc" --filter desired-state=running --format '{{.CurrentState}}' 2>/dev/null | grep -c '^Running' || true)
        [ "$n" -ge "$need" ]
    }
    wait_until "$timeout" "the arbiter ($svc) to run on $need of $count managers" running ||
        die "the arbiter ($svc) runs on fewer than $need of the $count managers after $timeout s: docker service ps $svc"
    log "the arbiter runs on $(docker service ps "$svc" --filter desired-state=running --format '{{.Node}}' | sort | tr '\n' ' ')"
    ;;
*) die "usage: arbiter.sh check|ready|lease|forget" ;;
esac
