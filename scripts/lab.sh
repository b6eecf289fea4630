#!/bin/sh
# scripts/lab.sh — the three-node Docker swarm that pgha is tested on, on one machine.
#
#   scripts/lab.sh up       bring everything up (idempotent; repairs what a crash left behind,
#                           heals a partition, migrates the two-node lab of earlier versions)
#   scripts/lab.sh down     tear everything down and leave the host as it was found
#   scripts/lab.sh status   say what is up; exit 0 only when everything is
#   scripts/lab.sh image    only (re)build and load the PostgreSQL image (engines must be up)
#   scripts/lab.sh purge    down, then also delete the engines' data, the image cache and the logs
#   scripts/lab.sh stop-node b|c   the node is gone: SIGKILL to its engine, containerd, shims and
#                           containers at once (a power cut; nothing shuts down cleanly), until the
#                           other managers report it Down, or, when it led, until a new leader
#                           sees it unknown (idempotent; node-a, the host's engine, cannot be stopped)
#   scripts/lab.sh start-node b|c  the node is back: its engine starts again and the node is Ready
#                           in the swarm as a manager (rejoins it if needed; idempotent)
#   scripts/lab.sh partition b|c   the node is cut off from the other nodes and keeps running:
#                           everything on its veth is dropped in its namespace's INPUT and OUTPUT
#                           (chain PGHA-PARTITION); the host still reaches the ports the node
#                           publishes (DNAT-ed, they go through FORWARD) (idempotent)
#   scripts/lab.sh heal [b|c]      remove the partition (no argument: every partition) and wait
#                           until the managers see the node Ready again (none partitioned: at once)
#   scripts/lab.sh leader [a|b|c]  make the node the swarm's Raft leader (demote the other managers,
#                           promote them back; idempotent); without a node, say who leads
#
# The lab (three swarm managers: the swarm keeps its quorum when any one node is lost):
#   bridge  pgha-br0 on the host, 192.168.77.1/24 (the host's, that is node-a's, address);
#           node-b's and node-c's veth pairs are its ports
#   node-a  swarm manager with the PostgreSQL servers, in the host's network namespace, engine on
#           unix:///var/run/docker.sock, 192.168.77.1
#   node-b  swarm manager with the PostgreSQL servers, in network namespace pgha-nodeb, engine on
#           unix:///var/run/docker-b.sock, 192.168.77.2 (veth veth-pgha-b, host end veth-pgha-bh)
#   node-c  swarm manager without a database (the witness), in network namespace pgha-nodec,
#           engine on unix:///var/run/docker-c.sock, 192.168.77.3 (veth veth-pgha-c, host end
#           veth-pgha-ch); a fresh swarm is initialised on node-c, so the Raft leader starts there
#   image   pgha-postgres:$PGHA_PG_VERSION-lab (default 15; 17 and 18 too) on node-a and node-b,
#           built with debootstrap from Debian's mirror (there is no container registry here) and
#           cached by recipe hash. `PGHA_PG_VERSION=17 scripts/lab.sh image` adds another
#           version's. pgha-arbiter:0.1.0 on all three nodes, from scripts/arbiter/build.sh.
#
# Network rule: the lab only ever talks between the host, its namespaces and its containers. So:
#   - the namespaces have no default route;
#   - all engines run with --ip-forward=false: the host routes nothing for containers (docker
#     run prints "IPv4 forwarding is disabled": that is intended), containers reach each other
#     over their networks and the overlay, and nothing beyond the host;
#   - the bridge joins the namespaces to the host and to each other, and is no one's gateway;
#     the host's FORWARD chain gets one rule that accepts frames bridged between its own ports
#     (-i pgha-br0 -o pgha-br0; br_netfilter hands bridged frames to iptables), whatever the
#     chain's policy;
#   - each engine sees a resolv.conf naming only 127.0.0.1 (bind-mounted in its own mount
#     namespace) and gives its containers --dns 127.0.0.1, so no name lookup leaves the machine;
#     --dns-opt ndots:1 makes Docker's embedded DNS answer a lookup of an unknown single-label
#     name (a server whose service has no running task) at once with "no address" instead of
#     forwarding it to a name server that is not there (20 s of timeouts in libpq);
#   - DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: a swarm task never pulls its image from a registry,
#     and a proxy on a closed loopback port stops anything else that reaches for one. Create
#     services with `docker service create --no-resolve-image` (or the API without a registry
#     lookup) to spare the manager a failed look-up.
set -eu

PG_VERSION=${PGHA_PG_VERSION:-15}
IMAGE="pgha-postgres:$PG_VERSION-lab"
ARBITER_IMAGE=pgha-arbiter:0.1.0

LAB_RUN=/run/pgha-lab                  # pid files, exec roots, lock (/var/run is /run)
LAB_LOG=/var/log/pgha-lab              # engine logs, debootstrap log
LAB_LIB=/var/lib/pgha-lab              # engine data roots, saved host settings
LAB_CACHE=/var/cache/pgha-lab          # image rootfs tarballs, keyed by recipe hash

BRIDGE=pgha-br0                        # on the host; node-a's address, the namespaces' veths
BRIDGE_MAC=02:70:67:68:61:0a           # fixed: a bridge takes its lowest port's otherwise, and a
                                       # recreated port would change it under the neighbours
PREFIX=24
LEGACY_VETH=veth-pgha-a                # the two-node lab's host end, which held 192.168.77.1
PARTITION=PGHA-PARTITION               # iptables chain in a node's namespace: the partition

# the nodes' settings, NAME_A, NAME_B, NAME_C; functions that take a node read them with
# `v NAME NODE` (v SOCK b is $SOCK_B)
# shellcheck disable=SC2034 # some are only read through v
{
	ADDR_A=192.168.77.1
	ADDR_B=192.168.77.2
	ADDR_C=192.168.77.3
	NETNS_B=pgha-nodeb
	NETNS_C=pgha-nodec
	VETH_B=veth-pgha-b             # namespace end of node-b's pair
	VETH_C=veth-pgha-c
	VETHH_B=veth-pgha-bh           # host end, a port of the bridge
	VETHH_C=veth-pgha-ch
	MAC_B=02:70:67:68:61:0b        # the namespace ends' (fixed, as the bridge's)
	MAC_C=02:70:67:68:61:0c
	SOCK_A=/var/run/docker.sock
	SOCK_B=/var/run/docker-b.sock
	SOCK_C=/var/run/docker-c.sock
	DATA_A=$LAB_LIB/docker-a
	DATA_B=$LAB_LIB/docker-b
	DATA_C=$LAB_LIB/docker-c
	EXEC_A=$LAB_RUN/docker-a
	EXEC_B=$LAB_RUN/docker-b
	EXEC_C=$LAB_RUN/docker-c
	PID_A=$LAB_RUN/dockerd-a.pid
	PID_B=$LAB_RUN/dockerd-b.pid
	PID_C=$LAB_RUN/dockerd-c.pid
	LOG_A=$LAB_LOG/dockerd-a.log
	LOG_B=$LAB_LOG/dockerd-b.log
	LOG_C=$LAB_LOG/dockerd-c.log
}
SYSCTL_SAVE=$LAB_LIB/host-sysctl.orig

SELF=$0
ARBITER_BUILD=$(dirname "$SELF")/arbiter/build.sh
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------------------------
# small helpers

say() { printf '[lab] %s\n' "$*"; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
clock() { date -u +%H:%M:%S.%3N; }

# v NAME NODE: the setting NAME of node a, b or c (v SOCK b is $SOCK_B)
v() { eval "printf '%s' \"\${${1}_$(printf %s "$2" | tr abc ABC)}\""; }

# dn NODE ARGS...: the docker CLI on that node's engine
dn() { _dn_sock=$(v SOCK "$1"); shift; timeout 60 docker -H "unix://$_dn_sock" "$@"; }
dA() { dn a "$@"; }
dB() { dn b "$@"; }

# answers SOCK: the engine on SOCK answers the API
answers() { timeout 10 docker -H "unix://$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# ours SOCK DATA: the engine on SOCK answers and is the lab's (its data root is DATA)
ours() {
	[ "$(timeout 10 docker -H "unix://$1" info --format '{{.DockerRootDir}}' 2>/dev/null)" = "$2" ]
}
# node_ours a|b|c: the node's engine answers and is the lab's; quick when the lab's pid file names
# a live engine (`docker info` takes 20 s on a manager whose swarm has lost its quorum)
node_ours() {
	if pid_alive "$(v PID "$1")" "$(v EXEC "$1")"; then
		answers "$(v SOCK "$1")"
	else
		ours "$(v SOCK "$1")" "$(v DATA "$1")"
	fi
}

# wait_until SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds; fail after SECONDS
wait_until() {
	_deadline=$(awk -v t="$1" -v n="$(now)" 'BEGIN { printf "%d", n + t }')
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.2
	done
}

# retry COMMAND...: run COMMAND up to 10 times, 1 s apart, until it succeeds (a swarm's node update
# fails with "update out of sequence" while the node's status changes under it)
retry() {
	_try=1
	until "$@"; do
		[ "$_try" -lt 10 ] || return 1
		_try=$((_try + 1))
		sleep 1
	done
}

# pid_alive PIDFILE EXEC_ROOT: the pid file names a live dockerd that runs with EXEC_ROOT
pid_alive() {
	[ -s "$1" ] || return 1
	_pid=$(cat "$1")
	case $(tr '\0' ' ' 2>/dev/null <"/proc/$_pid/cmdline") in
	*dockerd*"$2"*) return 0 ;;
	*) return 1 ;;
	esac
}

# procs_of EXEC_ROOT: pids of every process started for the engine with EXEC_ROOT (dockerd, its
# containerd, the shims) and of all their descendants (the containers)
procs_of() {
	_roots=""
	for _p in /proc/[0-9]*; do
		case $(tr '\0' ' ' 2>/dev/null <"$_p/cmdline") in
		*"$1"*) _roots="$_roots ${_p#/proc/}" ;;
		esac
	done
	[ -n "$_roots" ] || return 0
	ps -e -o pid=,ppid= | awk -v roots="$_roots" -v self="$$" '
		{ parent[$1] = $2 }
		END {
			n = split(roots, r, " ")
			for (i = 1; i <= n; i++) if (r[i] != self) keep[r[i]] = 1
			do {
				grew = 0
				for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
			} while (grew)
			for (p in keep) print p
		}'
}

# gone PID: the process has exited (a zombie nobody reaps counts as gone)
gone() {
	[ -e "/proc/$1/stat" ] || return 0
	[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]
}

# kill_all PID...: SIGKILL, then wait until they are gone
kill_all() {
	[ $# -gt 0 ] || return 0
	kill -9 "$@" 2>/dev/null || true
	for _p in "$@"; do
		wait_until 10 gone "$_p" || true
	done
}

# unmount_under DIR: unmount every mount point at or below DIR, deepest first
unmount_under() {
	[ -e "$1" ] || return 0
	_dir=$(realpath "$1")
	awk -v d="$_dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r _m; do
		umount "$_m" 2>/dev/null || umount -l "$_m" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------------------------------------
# phase 1: packages

ensure_packages() {
	_missing=""
	command -v dockerd >/dev/null 2>&1 || _missing="$_missing docker.io"
	command -v debootstrap >/dev/null 2>&1 || _missing="$_missing debootstrap"
	command -v ip >/dev/null 2>&1 || _missing="$_missing iproute2"
	command -v iptables >/dev/null 2>&1 || _missing="$_missing iptables"
	command -v ps >/dev/null 2>&1 || _missing="$_missing procps"
	if [ -z "$_missing" ]; then
		say "packages present ($(dockerd --version 2>/dev/null | sed 's/,.*//'))"
		return 0
	fi
	say "installing:$_missing (apt-get, non-interactive)"
	# No service may start from a package's postinst: the lab starts its engines itself.
	_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		_policy=/usr/sbin/policy-rc.d
	fi
	_rc=0
	# shellcheck disable=SC2086 # $_missing: a list of package names, split on purpose
	{ apt-get update -q && apt-get install -y -q --no-install-recommends $_missing; } \
		</dev/null >"$LAB_LOG/apt.log" 2>&1 || _rc=$?
	[ -z "$_policy" ] || rm -f "$_policy"
	if [ "$_rc" -ne 0 ]; then
		tail -n 30 "$LAB_LOG/apt.log" >&2
		die "apt-get failed (log: $LAB_LOG/apt.log)"
	fi
	say "installed $(dockerd --version | sed 's/,.*//')"
}

# ---------------------------------------------------------------------------------------------
# host settings that dockerd changes; saved before the lab first starts an engine, restored by down

save_host_settings() {
	[ -e "$SYSCTL_SAVE" ] && return 0
	for _k in net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables \
		net/ipv4/neigh/default/gc_thresh1 net/ipv4/neigh/default/gc_thresh2 \
		net/ipv4/neigh/default/gc_thresh3; do
		[ -e "/proc/sys/$_k" ] && printf '%s %s\n' "$_k" "$(cat "/proc/sys/$_k")"
	done >"$SYSCTL_SAVE.tmp"
	mv "$SYSCTL_SAVE.tmp" "$SYSCTL_SAVE"
}

restore_host_settings() {
	[ -e "$SYSCTL_SAVE" ] || return 0
	while read -r _k _v; do
		if [ -e "/proc/sys/$_k" ]; then echo "$_v" >"/proc/sys/$_k" 2>/dev/null || true; fi
	done <"$SYSCTL_SAVE"
	rm -f "$SYSCTL_SAVE"
}

# remove what dockerd put into the host's iptables (its chains and the rules that jump to them or
# name its bridges)
iptables_cleanup() {
	command -v iptables >/dev/null 2>&1 || return 0
	for _tbl in filter nat; do
		iptables -t "$_tbl" -S 2>/dev/null |
			grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' |
			grep -E 'DOCKER|docker0|docker_gwbridge' | sed 's/^-A/-D/' |
			while read -r _rule; do
				eval "iptables -t $_tbl $_rule" 2>/dev/null || true
			done
		_chains=$(iptables -t "$_tbl" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }')
		for _c in $_chains; do iptables -t "$_tbl" -F "$_c" 2>/dev/null || true; done
		for _c in $_chains; do iptables -t "$_tbl" -X "$_c" 2>/dev/null || true; done
	done
}

# remove the (empty) cgroups the lab's containers lived in: --cgroup-parent pgha-lab-a, -b, -c
cgroup_cleanup() {
	for _g in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
		[ -d "$_g" ] || continue
		find "$_g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

# ---------------------------------------------------------------------------------------------
# the one rule the lab adds to the host's FORWARD chain: frames bridged between two ports of the
# lab's bridge (node-b <-> node-c) pass br_netfilter's call into iptables whatever the policy
FORWARD_RULE="-i $BRIDGE -o $BRIDGE -m comment --comment pgha-lab -j ACCEPT"

forward_rule_add() {
	# shellcheck disable=SC2086 # FORWARD_RULE: iptables arguments, split on purpose
	iptables -C FORWARD $FORWARD_RULE 2>/dev/null || iptables -I FORWARD 1 $FORWARD_RULE
}

forward_rule_remove() {
	command -v iptables >/dev/null 2>&1 || return 0
	# shellcheck disable=SC2086 # FORWARD_RULE: iptables arguments, split on purpose
	while iptables -D FORWARD $FORWARD_RULE 2>/dev/null; do :; done
}

# ---------------------------------------------------------------------------------------------
# engines

# dockerd_cmd NODE: the dockerd command line of node a, b or c (network settings as in the header)
dockerd_cmd() {
	echo env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
		HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
		NO_PROXY=localhost,127.0.0.0/8,192.168.77.0/24 \
		dockerd -H "unix://$(v SOCK "$1")" --data-root "$(v DATA "$1")" --exec-root "$(v EXEC "$1")" \
		--pidfile "$(v PID "$1")" --cgroup-parent "/pgha-lab-$1" --ip-forward=false \
		--dns 127.0.0.1 --dns-opt ndots:1
}

# the resolv.conf the engines see: no name server but loopback
write_resolv_conf() {
	printf '# pgha lab (scripts/lab.sh): the engines resolve no name outside the machine\nnameserver 127.0.0.1\n' \
		>"$LAB_RUN/resolv.conf"
}

# stop_engine NODE: stop the engine, then anything it left behind (containerd, shims, containers,
# mounts); works on a healthy, a hung and an already dead engine
stop_engine() {
	_pidf=$(v PID "$1") _exec=$(v EXEC "$1") _data=$(v DATA "$1") _sock=$(v SOCK "$1")
	if pid_alive "$_pidf" "$_exec"; then
		_pid=$(cat "$_pidf")
		kill -TERM "$_pid" 2>/dev/null || true
		wait_until 30 gone "$_pid" || true
	fi
	# shellcheck disable=SC2046 # one argument per process id
	kill_all $(procs_of "$_exec")
	unmount_under "$_exec"
	unmount_under "$_data"
	rm -f "$_pidf"
	answers "$_sock" || rm -f "$_sock"
	cgroup_cleanup "pgha-lab-$1"
}

start_engine_a() {
	_t=$(now)
	if answers "$SOCK_A"; then
		node_ours a || die "a Docker engine that the lab did not start answers on $SOCK_A" \
			"(data root: $(dA info --format '{{.DockerRootDir}}' 2>/dev/null)); stop it first, the lab will not touch it"
		say "engine A (node-a) already running on unix://$SOCK_A"
		return 0
	fi
	if pid_alive "$PID_A" "$EXEC_A" && wait_until 30 answers "$SOCK_A"; then
		say "engine A ready, it was still starting ($(since "$_t"))"
		return 0
	fi
	stop_engine a # whatever a crashed engine A left behind
	save_host_settings
	mkdir -p "$DATA_A" "$EXEC_A"
	rm -f "$DATA_A/.lab-clean"
	say "starting engine A (node-a) on unix://$SOCK_A, log $LOG_A"
	write_resolv_conf
	# own UTS namespace for the hostname, own mount namespace (a slave of the host's) for resolv.conf
	# shellcheck disable=SC2016,SC2046 # $0 and $@ are the inner sh's; dockerd_cmd's words are split on purpose
	setsid unshare --uts --mount --propagation slave sh -c \
		'hostname node-a && mount --bind "$0" /etc/resolv.conf && exec "$@"' \
		"$LAB_RUN/resolv.conf" $(dockerd_cmd a) </dev/null >>"$LOG_A" 2>&1 9>&- &
	if ! wait_until 60 answers "$SOCK_A"; then
		tail -n 20 "$LOG_A" >&2
		die "engine A did not come up (log: $LOG_A)"
	fi
	node_ours a || die "unexpected engine on $SOCK_A"
	say "engine A ready ($(since "$_t"))"
}

# start_engine_ns b|c: the engine of node-b or node-c, in its network namespace
start_engine_ns() {
	_t=$(now)
	_N=$(printf %s "$1" | tr bc BC) _sock=$(v SOCK "$1") _data=$(v DATA "$1") _log=$(v LOG "$1")
	if answers "$_sock"; then
		node_ours "$1" || die "a Docker engine that the lab did not start answers on $_sock; stop it first"
		own_socket "$1"
		say "engine $_N (node-$1) already running on unix://$_sock"
		return 0
	fi
	save_host_settings
	mkdir -p "$_data" "$(v EXEC "$1")"
	rm -f "$_sock" "$(v PID "$1")" "$_data/.lab-clean"
	say "starting engine $_N (node-$1) in namespace $(v NETNS "$1") on unix://$_sock, log $_log"
	write_resolv_conf
	# `ip netns exec` gives it a mount namespace with the namespace's own /sys; cgroup2 goes there
	# shellcheck disable=SC2016,SC2046 # $0 and $@ are the inner sh's; dockerd_cmd's words are split on purpose
	setsid ip netns exec "$(v NETNS "$1")" unshare --uts sh -c \
		'hostname "$1" && mount -t cgroup2 none /sys/fs/cgroup &&
		 mount --bind "$0" /etc/resolv.conf && shift && exec "$@"' \
		"$LAB_RUN/resolv.conf" "node-$1" $(dockerd_cmd "$1") </dev/null >>"$_log" 2>&1 9>&- &
	if ! wait_until 60 answers "$_sock"; then
		tail -n 20 "$_log" >&2
		die "engine $_N did not come up (log: $_log)"
	fi
	node_ours "$1" || die "unexpected engine on $_sock"
	own_socket "$1"
	say "engine $_N ready ($(since "$_t"))"
}

# own_socket b|c: inside the engine's own mount namespace, /var/run/docker.sock is that engine's
# socket (bind-mounted over the host's, which is node-a's). A container of that node that mounts
# the Docker socket (the arbiter of automatic failover) then reaches its own node's engine, as on
# a machine of its own, not node-a's through the shared file system (which would also be a way
# around a partition). Repaired by every `up` and `start-node`.
own_socket() {
	_os_pid=$(cat "$(v PID "$1")" 2>/dev/null) || die "engine of node-$1: no pid file"
	# shellcheck disable=SC2016 # $0 is the inner sh's
	nsenter -t "$_os_pid" -m sh -c \
		'same() { [ "$(stat -c %d:%i /run/docker.sock 2>/dev/null)" = "$(stat -c %d:%i "$0")" ]; }
		 same || { mount --bind "$0" /run/docker.sock && same; }' \
		"$(v SOCK "$1")" || die "could not give node-$1's engine its own /var/run/docker.sock"
}

# ---------------------------------------------------------------------------------------------
# network: the bridge on the host, a namespace and a veth pair for node-b and for node-c

# bridge_ok: the bridge is there, up, with node-a's address
bridge_ok() {
	ip -o link show dev "$BRIDGE" 2>/dev/null | grep -q '[<,]UP[,>]' || return 1
	ip -o addr show dev "$BRIDGE" 2>/dev/null | grep -q " $ADDR_A/$PREFIX "
}

# netns_exists b|c
netns_exists() { ip netns list 2>/dev/null | grep -qw "^$(v NETNS "$1")"; }

# node_net_ok b|c: the node's namespace and both ends of its veth pair are there and up, the host
# end on the bridge, the namespace end with the node's address
node_net_ok() {
	netns_exists "$1" || return 1
	ip -o link show dev "$(v VETHH "$1")" 2>/dev/null | grep -q "master $BRIDGE state UP" || return 1
	ip -n "$(v NETNS "$1")" -o addr show dev "$(v VETH "$1")" 2>/dev/null |
		grep -q " $(v ADDR "$1")/$PREFIX " || return 1
	ip -n "$(v NETNS "$1")" -o link show dev "$(v VETH "$1")" 2>/dev/null | grep -q 'state UP'
}

network_ok() { bridge_ok && node_net_ok b && node_net_ok c; }

# remove_node b|c: the node's engine and everything in or around its namespace
remove_node() {
	stop_engine "$1"
	if netns_exists "$1"; then
		# shellcheck disable=SC2046 # one argument per process id
		kill_all $(ip netns pids "$(v NETNS "$1")" 2>/dev/null)
		ip netns delete "$(v NETNS "$1")" 2>/dev/null || true
	fi
	ip link delete "$(v VETHH "$1")" 2>/dev/null || true
}

ensure_bridge() {
	if bridge_ok; then
		say "bridge $BRIDGE ($ADDR_A/$PREFIX) up"
	else
		say "creating bridge $BRIDGE ($ADDR_A/$PREFIX)"
		ip link show dev "$BRIDGE" >/dev/null 2>&1 ||
			ip link add "$BRIDGE" address "$BRIDGE_MAC" type bridge stp_state 0 forward_delay 0
		ip -o addr show dev "$BRIDGE" | grep -q " $ADDR_A/$PREFIX " || ip addr add "$ADDR_A/$PREFIX" dev "$BRIDGE"
		ip link set "$BRIDGE" up
		wait_until 10 bridge_ok || die "bridge $BRIDGE did not come up"
	fi
	forward_rule_add
}

# ensure_node_net b|c: the node's namespace and veth pair; recreated (the node's engine stopped
# first) unless the engine runs in an intact one
ensure_node_net() {
	_ns=$(v NETNS "$1") _vh=$(v VETHH "$1") _vn=$(v VETH "$1") _addr=$(v ADDR "$1")
	# a bridge that was recreated has lost its ports: put the host end back
	if ip link show dev "$_vh" >/dev/null 2>&1 && ! ip -o link show dev "$_vh" | grep -q "master $BRIDGE "; then
		say "putting $_vh back on $BRIDGE"
		ip link set "$_vh" master "$BRIDGE" && ip link set "$_vh" up
		wait_until 5 node_net_ok "$1" || true
	fi
	if answers "$(v SOCK "$1")" && node_ours "$1" && node_net_ok "$1"; then
		ip netns exec "$_ns" sysctl -qw net.ipv4.ip_forward=1 # see below
		say "namespace $_ns and veth up, engine $(printf %s "$1" | tr bc BC) running"
		return 0
	fi
	if node_net_ok "$1" && ! pid_alive "$(v PID "$1")" "$(v EXEC "$1")"; then
		# an engine that died may have left containers and mounts; start from a clean namespace
		say "engine $(printf %s "$1" | tr bc BC) is not running: recreating namespace $_ns"
	elif node_net_ok "$1"; then
		say "engine $(printf %s "$1" | tr bc BC) does not answer: stopping it and recreating namespace $_ns"
	fi
	remove_node "$1"
	say "creating namespace $_ns and veth $_vh (on $BRIDGE) <-> $_vn ($_addr/$PREFIX)"
	ip netns add "$_ns"
	ip -n "$_ns" link set lo up
	ip link add "$_vh" type veth peer name "$_vn" netns "$_ns"
	ip link set "$_vh" master "$BRIDGE"
	ip link set "$_vh" up
	ip -n "$_ns" link set "$_vn" address "$(v MAC "$1")"
	ip -n "$_ns" addr add "$_addr/$PREFIX" dev "$_vn"
	ip -n "$_ns" link set "$_vn" up
	# no default route in the namespace: the node reaches the host and the other node, nothing else.
	# Forwarding inside the namespace only (not the host): a port a service publishes on the node
	# (host mode) is DNAT-ed from the veth to its container's bridge, which needs forwarding
	# between the namespace's own links; with no default route nothing goes further.
	ip netns exec "$_ns" sysctl -qw net.ipv4.ip_forward=1
	wait_until 10 node_net_ok "$1" || die "veth pair of node-$1 did not come up"
}

ensure_network() {
	_t=$(now)
	# the two-node lab had node-a's address on the host end of node-b's pair, no bridge
	if ip link show dev "$LEGACY_VETH" >/dev/null 2>&1; then
		say "found the two-node lab's veth $LEGACY_VETH: node-b's engine and namespace go, $BRIDGE takes $ADDR_A"
		remove_node b
		ip link delete "$LEGACY_VETH" 2>/dev/null || true
	fi
	ensure_bridge
	ensure_node_net b
	ensure_node_net c
	say "network ready ($(since "$_t"))"
}

# remove_network: both nodes' namespaces and engines, the bridge and its FORWARD rule
remove_network() {
	remove_node b
	remove_node c
	ip link delete "$LEGACY_VETH" 2>/dev/null || true
	ip link delete "$BRIDGE" 2>/dev/null || true
	forward_rule_remove
}

# ---------------------------------------------------------------------------------------------
# partitions: chain PGHA-PARTITION in a node's namespace, jumped to, first, from INPUT (-i veth)
# and OUTPUT (-o veth), where swarm (2377), gossip (7946) and VXLAN (4789) end (the VXLAN socket
# belongs to the namespace the engine runs in), and from FORWARD (-i veth, -o veth), the way of
# the node's containers to the other nodes' addresses (through docker_gwbridge, masqueraded) and
# of the other nodes to the ports it publishes. It drops all that, but for connections from the
# host (192.168.77.1) to a port the node publishes: those are DNAT-ed in PREROUTING to a
# container and go through FORWARD (conntrack state DNAT, both directions). (Traffic from node-a
# never takes that way: node-a's containers cannot leave the host, which forwards nothing.)

ipt_ns() { _ipt_ns=$(v NETNS "$1"); shift; ip netns exec "$_ipt_ns" iptables "$@"; }

# partition_jumps b|c: the chain and match of each jump to PGHA-PARTITION, one a line
partition_jumps() {
	printf '%s\n' "INPUT -i $(v VETH "$1")" "OUTPUT -o $(v VETH "$1")" "FORWARD -i $(v VETH "$1")" "FORWARD -o $(v VETH "$1")"
}

# partitioned b|c: any of the partition's jumps is in place
partitioned() {
	netns_exists "$1" || return 1
	partition_jumps "$1" | while read -r _chain _dir _dev; do
		if ipt_ns "$1" -C "$_chain" "$_dir" "$_dev" -j "$PARTITION" 2>/dev/null; then echo jump; fi
	done | grep -q jump
}

# partition_whole b|c: all of them are, and the chain
partition_whole() {
	ipt_ns "$1" -S "$PARTITION" >/dev/null 2>&1 || return 1
	partition_jumps "$1" | while read -r _chain _dir _dev; do
		ipt_ns "$1" -C "$_chain" "$_dir" "$_dev" -j "$PARTITION" 2>/dev/null || exit 1
	done
}

# partitioned_since b|c: when the partition was made (the comment on its rule)
partitioned_since() {
	ipt_ns "$1" -S "$PARTITION" 2>/dev/null | sed -n 's/.*--comment "pgha-lab partition since \([^"]*\)".*/\1/p'
}

# partition_add b|c: the chain, and its jumps first in their chains (an engine that starts puts
# its own rules first in FORWARD: so a partition is put back on top after that)
partition_add() {
	_vn=$(v VETH "$1") _since=$(partitioned_since "$1")
	ipt_ns "$1" -N "$PARTITION" 2>/dev/null || ipt_ns "$1" -F "$PARTITION"
	ipt_ns "$1" -A "$PARTITION" -i "$_vn" -s "$ADDR_A" -m conntrack --ctstate DNAT \
		-m comment --comment "pgha-lab: the host reaches the ports node-$1 publishes" -j RETURN
	ipt_ns "$1" -A "$PARTITION" -o "$_vn" -d "$ADDR_A" -m conntrack --ctstate DNAT \
		-m comment --comment "pgha-lab: their answers" -j RETURN
	ipt_ns "$1" -A "$PARTITION" -m comment --comment "pgha-lab partition since ${_since:-$(clock)}" -j DROP
	partition_jumps "$1" | while read -r _chain _dir _dev; do
		while ipt_ns "$1" -D "$_chain" "$_dir" "$_dev" -j "$PARTITION" 2>/dev/null; do :; done
		ipt_ns "$1" -I "$_chain" 1 "$_dir" "$_dev" -j "$PARTITION"
	done
}

partition_remove() { # partition_remove b|c
	netns_exists "$1" || return 0
	partition_jumps "$1" | while read -r _chain _dir _dev; do
		while ipt_ns "$1" -D "$_chain" "$_dir" "$_dev" -j "$PARTITION" 2>/dev/null; do :; done
	done
	ipt_ns "$1" -F "$PARTITION" 2>/dev/null || true
	ipt_ns "$1" -X "$PARTITION" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# swarm: three managers; a fresh swarm is initialised on node-c, node-a and node-b join it

swarm_field() { # swarm_field a|b|c FIELD
	dn "$1" info --format "{{.Swarm.$2}}" 2>/dev/null || true
}

# node_field MANAGER NODE FORMAT: `docker node inspect` of NODE (an ID or a hostname) on MANAGER
node_field() { dn "$1" node inspect --format "$3" "$2" 2>/dev/null || true; }

# has_quorum a|b|c: the node is a manager of a swarm that has a leader
has_quorum() { dn "$1" node ls -q >/dev/null 2>&1; }

# node_ok MANAGER NODE: MANAGER sees NODE Ready and a reachable manager
node_ok() { [ "$(node_field "$1" "$2" '{{.Status.State}} {{.ManagerStatus.Reachability}}')" = "ready reachable" ]; }
# manager_ready MANAGER a|b|c: MANAGER sees the node as a Ready, reachable manager, and the node's
# own engine serves the swarm's API (a promoted manager takes a moment more)
manager_ready() {
	_mr_id=$(swarm_field "$2" NodeID)
	[ -n "$_mr_id" ] && node_ok "$1" "$_mr_id" && has_quorum "$2"
}
node_ready() { [ "$(node_field "$1" "$2" '{{.Status.State}}')" = ready ]; } # node_ready MANAGER NODE
node_is_worker() { [ "$(node_field "$1" "$2" '{{.Spec.Role}}')" = worker ] && [ -z "$(node_field "$1" "$2" '{{if .ManagerStatus}}m{{end}}')" ]; }

# cert_role a|b|c: the role in the node's swarm certificate (swarm-manager, swarm-worker). A demoted
# manager stops, then waits for a certificate with the worker role; promoted again before that
# one arrives, it gets a manager's instead and spends 32 s timing out before it rejoins the Raft
# cluster, so a promotion waits for the worker's certificate
cert_role() {
	sed '/-----/d' "$(v DATA "$1")/swarm/certificates/swarm-node.crt" 2>/dev/null | base64 -d 2>/dev/null |
		grep -ao 'swarm-\(manager\|worker\)' | head -n 1
}
demoted() { node_is_worker "$1" "node-$2" && [ "$(cert_role "$2")" = swarm-worker ]; } # demoted MANAGER a|b|c

# leader_of MANAGER: the hostname of the leader, as MANAGER sees it
leader_of() {
	dn "$1" node ls --format '{{.Hostname}} {{.ManagerStatus}}' 2>/dev/null | awk '$2 == "Leader" { print $1 }'
}
leads() { [ "$(node_field "$1" self '{{.ManagerStatus.Leader}}')" = true ]; } # leads a|b|c

# find_ref: _ref becomes a node whose engine is a manager of a swarm with a leader (node-c first)
find_ref() {
	for _fr in c a b; do
		if [ "$(swarm_field "$_fr" ControlAvailable)" = true ] && has_quorum "$_fr"; then
			_ref=$_fr
			return 0
		fi
	done
	return 1
}

# manager_list: the managers' state, one word a node (node-a=Ready/Leader ...)
manager_list() {
	dn "$1" node ls --format '{{.Hostname}}={{.Status}}/{{if .ManagerStatus}}{{.ManagerStatus}}{{else}}worker{{end}}' 2>/dev/null |
		sort | tr '\n' ' '
}

# ensure_swarm [keep]: all three nodes managers of one swarm, Ready; stale nodes removed. With no
# manager that has a quorum, the swarm is made anew on node-c (its services are lost), unless
# `keep` is given (then it fails)
ensure_swarm() {
	_t=$(now)
	_ref="" _fresh="" _joined=""
	_managers=""
	for _sn in c a b; do [ "$(swarm_field "$_sn" ControlAvailable)" != true ] || _managers="$_managers node-$_sn"; done
	# managers that just started need a moment to elect a leader
	if [ -n "$_managers" ] && ! wait_until 90 find_ref; then
		[ "${1:-}" != keep ] || die "no manager (${_managers# }) has a quorum: run scripts/lab.sh up (it makes the swarm anew)"
		say "no manager (${_managers# }) has a quorum after 90 s: the swarm is made anew (its services are lost)"
	fi
	if [ -z "$_ref" ]; then
		[ "${1:-}" != keep ] || die "the lab has no swarm: run scripts/lab.sh up"
		for _sn in a b c; do
			if node_ours "$_sn" && [ "$(swarm_field "$_sn" LocalNodeState)" != inactive ]; then
				say "node-$_sn leaves its stale swarm ($(swarm_field "$_sn" LocalNodeState))"
				dn "$_sn" swarm leave --force >/dev/null 2>&1 || true
			fi
		done
		say "initialising the swarm on node-c ($ADDR_C), the witness"
		dn c swarm init --advertise-addr "$ADDR_C" --listen-addr "$ADDR_C:2377" >/dev/null
		_ref=c _fresh=1
	fi

	# which nodes are members: their engine's node ID is known to the swarm and becomes Ready. A
	# node whose engine is stopped (start-node of the other one) is left as the swarm has it.
	_ids=$(swarm_field "$_ref" NodeID) _join="" _running="" _stopped=""
	for _sn in a b c; do
		if node_ours "$_sn"; then _running="$_running $_sn"; else _stopped="$_stopped node-$_sn"; fi
	done
	for _sn in $_running; do
		[ "$_sn" != "$_ref" ] || continue
		_id=$(swarm_field "$_sn" NodeID)
		if [ -n "$_id" ] && [ "$(swarm_field "$_sn" LocalNodeState)" != inactive ] &&
			dn "$_ref" node inspect "$_id" >/dev/null 2>&1 && wait_until 30 node_ready "$_ref" "$_id"; then
			_ids="$_ids $_id"
		else
			_join="$_join $_sn"
		fi
	done
	# forget nodes that are none of the three (earlier incarnations, a node about to rejoin)
	for _n in $(dn "$_ref" node ls -q); do
		case " $_ids " in *" $_n "*) continue ;; esac
		case "$_stopped " in *" $(node_field "$_ref" "$_n" '{{.Description.Hostname}}') "*) continue ;; esac
		say "removing stale node $(node_field "$_ref" "$_n" '{{.Description.Hostname}}') ($_n)"
		node_is_worker "$_ref" "$_n" || retry dn "$_ref" node demote "$_n" >/dev/null 2>&1 || true
		retry dn "$_ref" node rm --force "$_n" >/dev/null || die "could not remove node $_n: $(manager_list "$_ref")"
	done
	for _sn in $_join; do
		if [ "$(swarm_field "$_sn" LocalNodeState)" != inactive ]; then
			say "node-$_sn has stale swarm state ($(swarm_field "$_sn" LocalNodeState)): leaving it"
			dn "$_sn" swarm leave --force >/dev/null 2>&1 || true
		fi
		say "node-$_sn joins as a manager"
		dn "$_sn" swarm join --token "$(dn "$_ref" swarm join-token -q manager)" \
			--advertise-addr "$(v ADDR "$_sn")" --listen-addr "$(v ADDR "$_sn"):2377" "$(v ADDR "$_ref"):2377" >/dev/null
		_ids="$_ids $(swarm_field "$_sn" NodeID)"
		_joined="$_joined $_sn"
	done
	# members that are workers (node-b of the two-node lab, a node a leader move left demoted)
	# are promoted, once their own engine is a worker too. A demotion that has not finished there
	# (its Raft member not yet removed) must not be promoted: the engine then panics at every
	# start ("tocommit(N) is out of range [lastIndex(0)]"). Such a node leaves and joins afresh.
	for _n in $_ids; do
		if [ "$(node_field "$_ref" "$_n" '{{.Spec.Role}}')" = worker ]; then
			_h=$(node_field "$_ref" "$_n" '{{.Description.Hostname}}')
			_sn=${_h#node-}
			if ! wait_until 60 demoted "$_ref" "$_sn"; then
				say "$_h's demotion has not finished ($(manager_list "$_ref")): it leaves the swarm and joins again as a manager"
				dn "$_sn" swarm leave --force >/dev/null 2>&1 || true
				retry dn "$_ref" node rm --force "$_n" >/dev/null || die "could not remove node $_n: $(manager_list "$_ref")"
				dn "$_sn" swarm join --token "$(dn "$_ref" swarm join-token -q manager)" \
					--advertise-addr "$(v ADDR "$_sn")" --listen-addr "$(v ADDR "$_sn"):2377" "$(v ADDR "$_ref"):2377" >/dev/null
				continue
			fi
			say "promoting $_h to manager"
			retry dn "$_ref" node promote "$_n" >/dev/null || die "could not promote node $_n: $(manager_list "$_ref")"
		fi
	done
	for _sn in $_running; do
		wait_until 90 manager_ready "$_ref" "$_sn" || die "node-$_sn is not a Ready manager: $(manager_list "$_ref")"
	done
	[ -z "$_stopped" ] || say "engine stopped, left as it is:$_stopped"
	# node-c (the witness) that joined a swarm made elsewhere (the two-node lab's) takes the
	# leadership, as on a swarm made fresh
	case "$_joined" in *c*) [ -n "$_fresh" ] || move_leader c ;; esac
	say "swarm ready: $(manager_list "$_ref")($(since "$_t"))"
}

# move_leader a|b|c: make the node the Raft leader, moving the leadership one manager at a time
move_leader() {
	_tl=$(now)
	for _sn in a b c; do
		manager_ready "$1" "$_sn" || die "node-$_sn is not a Ready manager ($(manager_list "$1")): start-node or heal it first"
	done
	# One manager at a time: the leader steps down when it is demoted, one of the two others
	# takes over (the swarm keeps two managers, and with them every lease renewal); it comes back
	# as a manager at once. Again until NODE leads.
	_tries=0
	while :; do
		_cur=$(leader_of "$1")
		[ "$_cur" != "node-$1" ] || break
		_tries=$((_tries + 1))
		[ "$_tries" -le 6 ] || die "node-$1 did not become the leader: $(manager_list "$1")"
		_sn=${_cur#node-}
		case $_sn in a | b | c) ;; *) die "no leader to move away from: $(manager_list "$1")" ;; esac
		say "the leader is $_cur: demoting it (the leadership moves to another manager), then promoting it back"
		retry dn "$1" node demote "$_cur" >/dev/null || die "could not demote $_cur: $(manager_list "$1")"
		# (after an election every node is "unknown" to the new leader for a while: the demoted
		# node's certificate turns worker only once it reached the new leader)
		wait_until 150 demoted "$1" "$_sn" || die "$_cur was not demoted: $(manager_list "$1")"
		wait_until 60 has_leader "$1" || die "no leader after demoting $_cur: $(manager_list "$1")"
		retry dn "$1" node promote "$_cur" >/dev/null || die "could not promote $_cur: $(manager_list "$1")"
		wait_until 90 manager_ready "$1" "$_sn" || die "$_cur is not a Ready manager again: $(manager_list "$1")"
	done
	say "node-$1 leads ($(since "$_tl")): $(manager_list "$1")"
}

# has_leader MANAGER: MANAGER's engine sees a leader
has_leader() { [ -n "$(leader_of "$1")" ]; }

# ---------------------------------------------------------------------------------------------
# the PostgreSQL image
#
# >>> image recipe: this block and PG_VERSION are hashed; change either and the image is rebuilt.
# A plain Debian with PostgreSQL and nothing pgha-specific (pgha's operations put the entrypoint,
# the configuration and the passwords into the data volumes), from the Debian release that ships
# that major version: bookworm 15, trixie 17, testing 18.
recipe_suite() {
	case $PG_VERSION in
	15) echo bookworm ;;
	17) echo trixie ;;
	18) echo testing ;;
	*) return 1 ;;
	esac
}
recipe_rootfs() { # recipe_rootfs DIR MIRROR
	debootstrap --variant=minbase \
		--include="postgresql-$PG_VERSION,postgresql-client-$PG_VERSION,procps" \
		"$(recipe_suite)" "$1" "$2"
	# Debian creates a cluster "main" on install; pgha's entrypoint makes its own
	rm -rf "$1/var/lib/postgresql/$PG_VERSION/main" "$1/etc/postgresql/$PG_VERSION/main"
	# keep it small: no package caches, lists, docs, man pages, logs; no trace of the build host
	rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
		"$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/cache/debconf/*-old
	find "$1/var/log" -type f -delete
	: >"$1/etc/resolv.conf"
	echo localhost >"$1/etc/hostname"
}
recipe_changes() { # docker import --change arguments, one a line
	echo "ENV PATH=/usr/lib/postgresql/$PG_VERSION/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	echo "ENV LANG=C.UTF-8"
	echo "CMD [\"/bin/bash\"]"
}
# <<< image recipe

recipe_hash() {
	{
		sed -n '/^# >>> image recipe/,/^# <<< image recipe/p' "$SELF"
		echo "PG_VERSION=$PG_VERSION"
	} | sha256sum | cut -c1-16
}

# the Debian mirror apt already uses here (deb822 or one-line sources); empty when there is none
# (the lab names no mirror of its own: PGHA_LAB_MIRROR sets one explicitly)
debian_mirror() {
	[ -z "${PGHA_LAB_MIRROR:-}" ] || { echo "$PGHA_LAB_MIRROR"; return; }
	_m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u != "" { print u; exit }')
	[ -n "$_m" ] || _m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' | sed 's/^\[.*\] *//')
	echo "$_m"
}

image_recipe_of() { # image_recipe_of a|b: the recipe label of IMAGE on that engine
	dn "$1" image inspect --format '{{index .Config.Labels "pgha.recipe"}}' "$IMAGE" 2>/dev/null || true
}

build_rootfs() { # build_rootfs TARBALL
	_t=$(now)
	_dir=$LAB_CACHE/build.$$
	_mirror=$(debian_mirror)
	[ -n "$_mirror" ] || die "no Debian mirror for bookworm in this machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/): add one there, or set PGHA_LAB_MIRROR=<mirror URL>"
	say "building the rootfs with debootstrap from $_mirror, Debian $(recipe_suite) (log $LAB_LOG/debootstrap.log)"
	unmount_under "$_dir"
	rm -rf --one-file-system "$_dir"
	mkdir -p "$_dir"
	# in the background so that `set -e` holds inside the recipe (it would not on the left of ||)
	_rc=0
	(recipe_rootfs "$_dir" "$_mirror") </dev/null >"$LAB_LOG/debootstrap.log" 2>&1 &
	wait $! || _rc=$?
	unmount_under "$_dir" # debootstrap leaves /proc, /sys mounted when it fails
	[ "$_rc" -ne 0 ] || [ -x "$_dir/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] || _rc=1
	if [ "$_rc" -eq 0 ]; then
		tar -C "$_dir" --numeric-owner -cf "$1.tmp" . && mv "$1.tmp" "$1" || _rc=$?
	fi
	rm -rf --one-file-system "$_dir" "$1.tmp"
	if [ "$_rc" -ne 0 ]; then
		tail -n 20 "$LAB_LOG/debootstrap.log" >&2
		die "image build failed (log: $LAB_LOG/debootstrap.log)"
	fi
	say "rootfs built: $(du -h "$1" | cut -f1) ($(since "$_t"))"
}

ensure_image() {
	_t=$(now)
	recipe_suite >/dev/null || die "PGHA_PG_VERSION=$PG_VERSION: the lab builds PostgreSQL 15 (Debian bookworm), 17 (trixie) or 18 (testing)"
	if ! answers "$SOCK_A" || ! answers "$SOCK_B"; then die "the engines are not up: run scripts/lab.sh up"; fi
	_hash=$(recipe_hash)
	_tar=$LAB_CACHE/rootfs-pg$PG_VERSION-$_hash.tar
	if [ "$(image_recipe_of a)" = "$_hash" ] && [ "$(image_recipe_of b)" = "$_hash" ]; then
		say "image $IMAGE (recipe $_hash) already on node-a and node-b"
		return 0
	fi
	if [ "$(image_recipe_of a)" != "$_hash" ]; then
		if [ -s "$_tar" ]; then
			say "rootfs for recipe $_hash is cached: $_tar"
		else
			build_rootfs "$_tar"
		fi
		say "importing $IMAGE into engine A"
		_changes=$(recipe_changes)
		set -- --change "LABEL pgha.recipe=$_hash" --change "LABEL pgha.postgresql=$PG_VERSION"
		while IFS= read -r _c; do set -- "$@" --change "$_c"; done <<-EOF
			$_changes
		EOF
		dA import "$@" "$_tar" "$IMAGE" >/dev/null
	fi
	if [ "$(image_recipe_of b)" != "$_hash" ]; then
		say "loading $IMAGE into engine B"
		timeout 300 docker -H "unix://$SOCK_A" save "$IMAGE" |
			timeout 300 docker -H "unix://$SOCK_B" load >/dev/null
	fi
	# images replaced by this one are left untagged; drop them
	dA image prune -f >/dev/null 2>&1 || true
	dB image prune -f >/dev/null 2>&1 || true
	# rootfs tarballs of other recipes of this version are stale
	for _old in "$LAB_CACHE"/rootfs-pg"$PG_VERSION"-*.tar; do
		[ "$_old" = "$_tar" ] || rm -f "$_old"
	done
	if [ "$(image_recipe_of a)" != "$_hash" ] || [ "$(image_recipe_of b)" != "$_hash" ]; then
		die "image $IMAGE is not on engines A and B"
	fi
	say "image $IMAGE (recipe $_hash) on node-a and node-b ($(since "$_t"))"
}

# the arbiter's image, on all three nodes: scripts/arbiter/build.sh builds it and imports it into
# each engine that lacks it
arbiter_on() { dn "$1" image inspect "$ARBITER_IMAGE" >/dev/null 2>&1; } # arbiter_on a|b|c

ensure_arbiter_image() {
	_t=$(now)
	if [ ! -f "$ARBITER_BUILD" ]; then
		say "image $ARBITER_IMAGE: $ARBITER_BUILD is not there yet, skipped"
		return 0
	fi
	say "image $ARBITER_IMAGE: sh $ARBITER_BUILD image (log $LAB_LOG/arbiter.log)"
	if ! sh "$ARBITER_BUILD" image "$ARBITER_IMAGE" "$SOCK_A" "$SOCK_B" "$SOCK_C" \
		</dev/null >"$LAB_LOG/arbiter.log" 2>&1 9>&-; then
		tail -n 20 "$LAB_LOG/arbiter.log" >&2
		die "$ARBITER_BUILD failed (log: $LAB_LOG/arbiter.log)"
	fi
	for _an in a b c; do
		arbiter_on "$_an" || die "image $ARBITER_IMAGE is not on node-$_an after $ARBITER_BUILD"
		dn "$_an" image prune -f >/dev/null 2>&1 || true # the builds it replaced, left untagged
	done
	say "image $ARBITER_IMAGE on node-a, node-b and node-c ($(since "$_t"))"
}

# ---------------------------------------------------------------------------------------------
# subcommands

lock() {
	mkdir -p "$LAB_RUN" "$LAB_LOG" "$LAB_LIB" "$LAB_CACHE"
	exec 9>"$LAB_RUN/lock"
	flock -w 900 9 || die "another scripts/lab.sh is running"
}

# heal_all: every partition goes (up brings everything up); then, as in heal, the swarm settles
heal_all() {
	_healed=""
	for _hn in b c; do
		if partitioned "$_hn"; then
			_since=$(partitioned_since "$_hn")
			partition_remove "$_hn"
			say "node-$_hn was partitioned (since $_since): healed"
			_healed=1
		fi
	done
	[ -n "$_healed" ] || return 0
	_t=$(now)
	if [ "$(swarm_field a ControlAvailable)" = true ] && wait_until 300 settled; then
		say "swarm settled after the heal ($(since "$_t"))"
	fi
}

cmd_up() {
	_t0=$(now)
	lock
	_t=$(now); ensure_packages; say "phase packages done ($(since "$_t"))"
	# change nothing while an engine the lab did not start holds one of the sockets
	for _un in a b c; do
		_s=$(v SOCK "$_un")
		! answers "$_s" || node_ours "$_un" ||
			die "a Docker engine that the lab did not start answers on $_s (data root:" \
				"$(timeout 10 docker -H "unix://$_s" info --format '{{.DockerRootDir}}' 2>/dev/null));" \
				"stop it first, the lab will not touch it"
	done
	ensure_network
	start_engine_a
	start_engine_ns b
	start_engine_ns c
	heal_all
	ensure_swarm
	ensure_image
	ensure_arbiter_image
	say "up: node-a (manager, unix://$SOCK_A, $ADDR_A) + node-b (manager, unix://$SOCK_B, $ADDR_B)" \
		"+ node-c (manager, witness, unix://$SOCK_C, $ADDR_C), leader $(leader_of a)," \
		"image $IMAGE ($(since "$_t0"))"
}

cmd_image() {
	lock
	ensure_image
}

# clean_engine a|b|c: remove the lab's containers, volumes and networks and leave the swarm
clean_engine() {
	_ids=$(dn "$1" ps -aq 2>/dev/null || true)
	# shellcheck disable=SC2086 # one argument per container id
	[ -z "$_ids" ] || dn "$1" rm -f -v $_ids >/dev/null 2>&1 || true
	[ "$(swarm_field "$1" LocalNodeState)" = inactive ] || dn "$1" swarm leave --force >/dev/null 2>&1 || true
	_ids=$(dn "$1" volume ls -q 2>/dev/null || true)
	# shellcheck disable=SC2086 # one argument per volume name
	[ -z "$_ids" ] || dn "$1" volume rm -f $_ids >/dev/null 2>&1 || true
	dn "$1" network prune -f >/dev/null 2>&1 || true
}

cmd_down() {
	_t0=$(now)
	lock
	_alive=""
	for _dn in a b c; do
		if node_ours "$_dn"; then
			_alive="$_alive $_dn"
		elif answers "$(v SOCK "$_dn")"; then
			say "the engine on $(v SOCK "$_dn") is not the lab's: leaving it alone"
		fi
	done

	_svcs=""
	case "$_alive" in *a*) _svcs=$(dA service ls -q 2>/dev/null || true) ;; esac
	if [ -n "$_svcs" ]; then
		say "removing swarm services: $(dA service ls --format '{{.Name}}' 2>/dev/null | tr '\n' ' ')"
		# shellcheck disable=SC2086 # one argument per service id
		dA service rm $_svcs >/dev/null 2>&1 || true
	fi
	# node-a the one manager left: the nodes then leave a swarm that keeps its quorum to the end
	# (the last of three managers takes some 40 s to leave a swarm that has lost it)
	case "$_alive" in *a*)
		if has_quorum a; then
			for _dn in b c; do
				if ! node_is_worker a "node-$_dn" && node_ready a "node-$_dn"; then
					retry dA node demote "node-$_dn" >/dev/null 2>&1 || true
					wait_until 30 node_is_worker a "node-$_dn" || true
				fi
			done
		fi
		;;
	esac
	for _dn in b c a; do
		case "$_alive" in *"$_dn"*)
			say "node-$_dn: removing containers, volumes, networks; leaving the swarm"
			clean_engine "$_dn"
			# a data root left clean (images only) is marked so; an engine start removes the mark
			: >"$(v DATA "$_dn")/.lab-clean"
			;;
		esac
	done

	_t=$(now)
	remove_network
	say "engines B and C stopped; namespaces $NETNS_B, $NETNS_C, their veths, $BRIDGE and its FORWARD rule removed ($(since "$_t"))"
	if node_ours a || ! answers "$SOCK_A"; then
		_t=$(now)
		stop_engine a
		for _l in docker0 docker_gwbridge; do ip link delete "$_l" 2>/dev/null || true; done
		iptables_cleanup
		restore_host_settings
		say "engine A stopped, its bridges and iptables rules removed ($(since "$_t"))"
	fi
	# an engine that was dead could not leave its swarm nor drop its containers and volumes:
	# discard its data root unless it was left clean
	for _d in "$DATA_A" "$DATA_B" "$DATA_C"; do
		[ ! -d "$_d" ] || [ -e "$_d/.lab-clean" ] || {
			say "discarding $_d (its engine was not running to clean it)"
			rm -rf --one-file-system "$_d"
		}
	done
	unmount_under "$LAB_RUN"
	unmount_under "$LAB_LIB"
	rm -rf --one-file-system "$EXEC_A" "$EXEC_B" "$EXEC_C"
	rm -f "$LAB_RUN/resolv.conf"
	# directories the engines and `ip netns` create on first use; with no containerd left running,
	# the sockets in /run/containerd/s are those of killed shims
	rmdir /run/docker/plugins /run/docker 2>/dev/null || true
	if ! grep -qs '^containerd' /proc/[0-9]*/comm; then
		rm -f /run/containerd/s/* 2>/dev/null || true
		rmdir /run/containerd/s /run/containerd 2>/dev/null || true
	fi
	if [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
		umount /run/netns 2>/dev/null || true
		rmdir /run/netns 2>/dev/null || true
	fi
	say "down ($(since "$_t0"))"
}

cmd_purge() {
	cmd_down
	rm -rf --one-file-system "$LAB_LIB" "$LAB_CACHE" "$LAB_LOG"
	say "purged $LAB_LIB $LAB_CACHE $LAB_LOG"
}

# node_state HOSTNAME: ready, down, ... as node-a (a manager) sees it
node_state() { node_field a "$1" '{{.Status.State}}'; }
node_down() { [ "$(node_state "$1")" = down ]; }     # node_down HOSTNAME
node_up() { [ "$(node_state "$1")" = ready ]; }       # node_up HOSTNAME
# gone_leader HOSTNAME: the leader that was HOSTNAME is gone: another manager leads, and to it
# HOSTNAME is down or unknown (never heard from since its election)
gone_leader() {
	_gl=$(leader_of a)
	[ -n "$_gl" ] && [ "$_gl" != "$1" ] || return 1
	case $(node_state "$1") in down | unknown) return 0 ;; *) return 1 ;; esac
}

# the_node WORD VERB: b or c from b, c, node-b, node-c; node-a and anything else refused
the_node() {
	case $1 in
	b | node-b) echo b ;;
	c | node-c) echo c ;;
	a | node-a) die "node-a is the host's own engine (unix://$SOCK_A, the one the tests and Pulumi talk to): it cannot be $2; node-b or node-c can" ;;
	*) die "usage: $SELF $3 b|c" ;;
	esac
}

# other_node b|c: the other one of the two
other_node() { if [ "$1" = b ]; then echo c; else echo b; fi; }

cmd_stop_node() {
	_x=$(the_node "${1:-}" stopped stop-node)
	lock
	_t=$(now)
	_y=$(other_node "$_x")
	# with the other one gone too, no two managers are left to see this one go
	_quorum=1
	if ! node_up "node-$_y" || partitioned "$_y"; then _quorum=""; fi
	# a node that leads: the new leader never hears from it and keeps it "unknown" for one to
	# two minutes before it marks it Down (swarmkit's grace for nodes unknown at an election)
	_was_leader=''
	if leads "$_x" 2>/dev/null; then _was_leader=1; fi
	_pids=$(procs_of "$(v EXEC "$_x")")
	if [ -z "$_pids" ]; then
		say "node-$_x's engine is not running (nothing to stop)"
	else
		say "node-$_x goes away at $(clock): SIGKILL to its engine, containerd, shims and containers" \
			"($(printf '%s\n' "$_pids" | wc -l) processes)"
		# shellcheck disable=SC2086 # one argument per process id
		kill_all $_pids
	fi
	stop_engine "$_x" # whatever is left: mounts, pid file, socket, cgroups (no engine to signal now)
	if [ -z "$_quorum" ]; then
		say "node-$_y is not Ready either: the swarm has lost its quorum (node-a is the one manager left)," \
			"no manager can mark node-$_x Down ($(since "$_t"))"
		return 0
	fi
	if [ -n "$_was_leader" ]; then
		say "node-$_x led the swarm: waiting for a new leader (node-a or node-$_y) and node-$_x Down or unknown to it"
		wait_until 120 gone_leader "node-$_x" || die "the managers see node-$_x as $(node_state "node-$_x") after 120 s (leader: $(leader_of a))"
		say "node-$_x is $(node_state "node-$_x") in the swarm at $(clock) ($(since "$_t")); new leader $(leader_of a)"
		return 0
	fi
	say "waiting for the managers (node-a, node-$_y) to mark node-$_x Down"
	wait_until 120 node_down "node-$_x" || die "the managers still see node-$_x as $(node_state "node-$_x") after 120 s"
	say "node-$_x is Down in the swarm at $(clock) ($(since "$_t")); leader $(leader_of a)"
}

cmd_start_node() {
	_x=$(the_node "${1:-}" started start-node)
	lock
	_t=$(now)
	if ! node_net_ok "$_x" || ! bridge_ok; then
		die "namespace $(v NETNS "$_x") or its veth is missing: run scripts/lab.sh up"
	fi
	node_ours a || die "engine A (node-a) is not running: run scripts/lab.sh up"
	start_engine_ns "$_x"
	if partitioned "$_x"; then
		partition_add "$_x" # the engine put its FORWARD rules first
		say "node-$_x's engine runs, but node-$_x is partitioned (since $(partitioned_since "$_x")):" \
			"it is Ready again after scripts/lab.sh heal $_x"
		return 0
	fi
	ensure_swarm keep
	say "node-$_x is back and Ready ($(since "$_t"))"
}

cmd_partition() {
	_x=$(the_node "${1:-}" partitioned partition)
	lock
	node_net_ok "$_x" || die "namespace $(v NETNS "$_x") or its veth is missing: run scripts/lab.sh up"
	if partition_whole "$_x"; then
		say "node-$_x is partitioned already (since $(partitioned_since "$_x"))"
		return 0
	fi
	partition_add "$_x"
	say "node-$_x partitioned at $(partitioned_since "$_x"): namespace $(v NETNS "$_x") drops everything" \
		"in and out on $(v VETH "$_x") ($(v ADDR "$_x")), its own and its containers' (chain $PARTITION," \
		"from INPUT, OUTPUT and FORWARD); the host still reaches the ports node-$_x publishes ($(v ADDR "$_x"):PORT)"
}

# settled: every node whose engine runs is a Ready manager that sees a leader
settled() {
	for _st in a b c; do
		! node_ours "$_st" || manager_ready a "$_st" || return 1
	done
}

cmd_heal() {
	if [ -n "${1:-}" ]; then _nodes=$(the_node "$1" partitioned heal); else _nodes="b c"; fi
	lock
	_healed="" _names="" _lead0=$(leader_of a)
	for _x in $_nodes; do
		if partitioned "$_x"; then
			_since=$(partitioned_since "$_x")
			partition_remove "$_x"
			say "node-$_x healed at $(clock) (partitioned since $_since)"
			_healed="$_healed $_x" _names="$_names node-$_x"
		else
			say "node-$_x is not partitioned"
		fi
	done
	_t=$(now)
	for _x in $_nodes; do
		node_ours "$_x" || say "node-$_x's engine is not running: scripts/lab.sh start-node $_x"
	done
	# A healed manager comes back with a higher Raft term (it kept calling elections while cut
	# off, and swarmkit's Raft has no pre-vote): the leader steps down when it hears of it, and the
	# healed node, its log behind, keeps calling elections it cannot win, each one resetting the
	# others' timers, until one of them calls one first: some 15 to 80 s without a leader, during
	# which no manager serves the swarm's API. Settled: every running node is a Ready manager that
	# sees a leader.
	# Nothing healed: nothing to wait for (with two nodes stopped the swarm has no quorum and
	# would never settle; start-node brings them back)
	if [ -z "$_healed" ]; then
		say "nothing was partitioned: $(manager_list a)"
		return 0
	fi
	say "waiting until the managers see$_names Ready and the swarm has a leader"
	wait_until 300 settled || die "the swarm has not settled 300 s after the heal: $(manager_list a)"
	_lead=$(leader_of a)
	if [ -n "$_healed" ] && [ "$_lead" != "$_lead0" ]; then
		say "settled at $(clock) ($(since "$_t")), the leadership moved from ${_lead0:-nobody} to $_lead: $(manager_list a)"
	else
		say "settled at $(clock) ($(since "$_t")): $(manager_list a)"
	fi
}

cmd_leader() {
	answers "$SOCK_A" || die "engine A (node-a) is not running: run scripts/lab.sh up"
	case ${1:-} in
	"") ;;
	a | node-a) _x=a ;;
	b | node-b) _x=b ;;
	c | node-c) _x=c ;;
	*) die "usage: $SELF leader [a|b|c]" ;;
	esac
	if [ -n "${1:-}" ]; then
		lock
		if [ "$(swarm_field "$_x" ControlAvailable)" != true ] || ! has_quorum "$_x"; then
			die "node-$_x is not a manager of a swarm with a quorum: $(manager_list a)"
		fi
		move_leader "$_x"
	fi
	_l=$(leader_of a)
	say "leader: ${_l:-none (node-a sees no leader)}"
	[ -n "$_l" ]
}

cmd_status() {
	_ok=0
	check() { # check DESCRIPTION COMMAND...
		_d=$1
		shift
		if "$@" >/dev/null 2>&1; then say "up    $_d"; else say "DOWN  $_d"; _ok=1; fi
	}
	check "engine A (node-a) on unix://$SOCK_A" node_ours a
	check "bridge $BRIDGE, $ADDR_A/$PREFIX (node-a)" bridge_ok
	check "namespace $NETNS_B, veth $VETH_B $ADDR_B (node-b)" node_net_ok b
	check "engine B (node-b) on unix://$SOCK_B" node_ours b
	check "namespace $NETNS_C, veth $VETH_C $ADDR_C (node-c)" node_net_ok c
	check "engine C (node-c) on unix://$SOCK_C" node_ours c
	for _sn in a b c; do
		check "node-$_sn is a swarm manager" test "$(swarm_field "$_sn" ControlAvailable)" = true
	done
	_nodes=$(dA node ls --format '{{.Hostname}}={{.Status}}' 2>/dev/null | sort | tr '\n' ' ')
	check "nodes Ready: ${_nodes:-none}" test "$_nodes" = "node-a=Ready node-b=Ready node-c=Ready "
	_mgrs=$(dA node ls --format '{{.Hostname}}={{.ManagerStatus}}' 2>/dev/null | sort | tr '\n' ' ')
	check "managers: ${_mgrs:-none}" test "$(printf %s "$_mgrs" | grep -o '=\(Leader\|Reachable\)' | wc -l)" -eq 3
	_l=$(leader_of a)
	check "leader: ${_l:-none}" test -n "$_l"
	for _sn in b c; do
		if partitioned "$_sn"; then
			say "DOWN  node-$_sn is partitioned (since $(partitioned_since "$_sn"); scripts/lab.sh heal $_sn)"
			_ok=1
		else
			say "up    node-$_sn is not partitioned"
		fi
	done
	_hash=$(recipe_hash)
	check "image $IMAGE (recipe $_hash) on node-a" test "$(image_recipe_of a)" = "$_hash"
	check "image $IMAGE (recipe $_hash) on node-b" test "$(image_recipe_of b)" = "$_hash"
	if [ -f "$ARBITER_BUILD" ]; then
		for _sn in a b c; do check "image $ARBITER_IMAGE on node-$_sn" arbiter_on "$_sn"; done
	else
		say "--    image $ARBITER_IMAGE: $ARBITER_BUILD is not there yet"
	fi
	return $_ok
}

[ "$(id -u)" -eq 0 ] || die "run as root"
case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
image) cmd_image ;;
purge) cmd_purge ;;
stop-node) cmd_stop_node "${2:-}" ;;
start-node) cmd_start_node "${2:-}" ;;
partition) cmd_partition "${2:-}" ;;
heal) cmd_heal "${2:-}" ;;
leader) cmd_leader "${2:-}" ;;
*)
	echo "usage: $0 up|down|status|image|purge|stop-node b|c|start-node b|c|partition b|c|heal [b|c]|leader [a|b|c]" >&2
	exit 2
	;;
esac
