#!/bin/sh
# scripts/lab.sh — the two-node Docker swarm that pgha is tested on, on one machine.
#
#   scripts/lab.sh up       bring everything up (idempotent; repairs what a crash left behind)
#   scripts/lab.sh down     tear everything down and leave the host as it was found
#   scripts/lab.sh status   say what is up; exit 0 only when everything is
#   scripts/lab.sh image    only (re)build and load the PostgreSQL image (engines must be up)
#   scripts/lab.sh purge    down, then also delete the engines' data, the image cache and the logs
#   scripts/lab.sh stop-node b   node-b is gone: SIGKILL to its engine, containerd, shims and
#                           containers at once (a power cut; nothing shuts down cleanly), until the
#                           manager reports node-b Down (idempotent)
#   scripts/lab.sh start-node b  node-b is back: its engine starts again and the node is Ready in
#                           the swarm (rejoins it if needed; idempotent)
#
# The lab:
#   node-a  swarm manager, in the host's network namespace, engine on unix:///var/run/docker.sock
#   node-b  swarm worker, in network namespace pgha-nodeb, engine on unix:///var/run/docker-b.sock,
#           reached over a veth pair: host end 192.168.77.1/24, namespace end 192.168.77.2/24
#   image   pgha-postgres:$PGHA_PG_VERSION-lab (default 15; 17 and 18 too) on both engines, built
#           with debootstrap from Debian's mirror (there is no container registry here) and cached
#           by recipe hash. `PGHA_PG_VERSION=17 scripts/lab.sh image` adds another version's.
#
# Network rule: the lab only ever talks between the host, its namespace and its containers. So:
#   - the namespace has no default route;
#   - both engines run with --ip-forward=false: the host routes nothing for containers (docker
#     run prints "IPv4 forwarding is disabled": that is intended), containers reach each other
#     over their networks and the overlay, and nothing beyond the host;
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

LAB_RUN=/run/pgha-lab                  # pid files, exec roots, lock (/var/run is /run)
LAB_LOG=/var/log/pgha-lab              # engine logs, debootstrap log
LAB_LIB=/var/lib/pgha-lab              # engine data roots, saved host settings
LAB_CACHE=/var/cache/pgha-lab          # image rootfs tarballs, keyed by recipe hash

NETNS=pgha-nodeb
VETH_HOST=veth-pgha-a                  # host end of the pair (node A side)
VETH_NS=veth-pgha-b                    # namespace end (node B side)
ADDR_A=192.168.77.1
ADDR_B=192.168.77.2
PREFIX=24

SOCK_A=/var/run/docker.sock
SOCK_B=/var/run/docker-b.sock
DATA_A=$LAB_LIB/docker-a
DATA_B=$LAB_LIB/docker-b
EXEC_A=$LAB_RUN/docker-a
EXEC_B=$LAB_RUN/docker-b
PID_A=$LAB_RUN/dockerd-a.pid
PID_B=$LAB_RUN/dockerd-b.pid
LOG_A=$LAB_LOG/dockerd-a.log
LOG_B=$LAB_LOG/dockerd-b.log
SYSCTL_SAVE=$LAB_LIB/host-sysctl.orig

SELF=$0
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------------------------------------
# small helpers

say() { printf '[lab] %s\n' "$*"; }
die() { printf '[lab] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

dA() { timeout 60 docker -H "unix://$SOCK_A" "$@"; }
dB() { timeout 60 docker -H "unix://$SOCK_B" "$@"; }

# answers SOCK: the engine on SOCK answers the API
answers() { timeout 10 docker -H "unix://$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# ours SOCK DATA: the engine on SOCK answers and is the lab's (its data root is DATA)
ours() {
	[ "$(timeout 10 docker -H "unix://$1" info --format '{{.DockerRootDir}}' 2>/dev/null)" = "$2" ]
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

# remove the (empty) cgroups the lab's containers lived in: --cgroup-parent pgha-lab-a / -b
cgroup_cleanup() {
	for _g in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
		[ -d "$_g" ] || continue
		find "$_g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

# ---------------------------------------------------------------------------------------------
# engines

# dockerd_cmd NODE: the dockerd command line of node a or b (network settings as in the header)
dockerd_cmd() {
	case $1 in
	a) set -- "$SOCK_A" "$DATA_A" "$EXEC_A" "$PID_A" /pgha-lab-a ;;
	b) set -- "$SOCK_B" "$DATA_B" "$EXEC_B" "$PID_B" /pgha-lab-b ;;
	esac
	echo env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 \
		HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
		NO_PROXY=localhost,127.0.0.0/8,192.168.77.0/24 \
		dockerd -H "unix://$1" --data-root "$2" --exec-root "$3" --pidfile "$4" \
		--cgroup-parent "$5" --ip-forward=false --dns 127.0.0.1 --dns-opt ndots:1
}

# the resolv.conf the engines see: no name server but loopback
write_resolv_conf() {
	printf '# pgha lab (scripts/lab.sh): the engines resolve no name outside the machine\nnameserver 127.0.0.1\n' \
		>"$LAB_RUN/resolv.conf"
}

# stop_engine NODE: stop the engine, then anything it left behind (containerd, shims, containers,
# mounts); works on a healthy, a hung and an already dead engine
stop_engine() {
	case $1 in
	a) _pidf=$PID_A _exec=$EXEC_A _data=$DATA_A _sock=$SOCK_A ;;
	b) _pidf=$PID_B _exec=$EXEC_B _data=$DATA_B _sock=$SOCK_B ;;
	esac
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
		ours "$SOCK_A" "$DATA_A" || die "a Docker engine that the lab did not start answers on $SOCK_A" \
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
	ours "$SOCK_A" "$DATA_A" || die "unexpected engine on $SOCK_A"
	say "engine A ready ($(since "$_t"))"
}

# network_ok: the namespace and both ends of the veth pair are there, up, with their addresses
network_ok() {
	ip netns list 2>/dev/null | grep -qw "^$NETNS" || return 1
	ip -o addr show dev "$VETH_HOST" 2>/dev/null | grep -q " $ADDR_A/$PREFIX " || return 1
	ip -o link show dev "$VETH_HOST" 2>/dev/null | grep -q 'state UP' || return 1
	ip -n "$NETNS" -o addr show dev "$VETH_NS" 2>/dev/null | grep -q " $ADDR_B/$PREFIX " || return 1
	ip -n "$NETNS" -o link show dev "$VETH_NS" 2>/dev/null | grep -q 'state UP' || return 1
}

# remove_node_b: engine B and everything in or around its namespace
remove_node_b() {
	stop_engine b
	if ip netns list 2>/dev/null | grep -qw "^$NETNS"; then
		# shellcheck disable=SC2046 # one argument per process id
		kill_all $(ip netns pids "$NETNS" 2>/dev/null)
		ip netns delete "$NETNS" 2>/dev/null || true
	fi
	ip link delete "$VETH_HOST" 2>/dev/null || true
}

ensure_network() {
	_t=$(now)
	if answers "$SOCK_B" && ours "$SOCK_B" "$DATA_B" && network_ok; then
		ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1 # see below
		say "namespace $NETNS and veth up, engine B running"
		return 0
	fi
	if network_ok && ! pid_alive "$PID_B" "$EXEC_B"; then
		# an engine B that died may have left containers and mounts; start from a clean namespace
		say "engine B is not running: recreating namespace $NETNS"
	elif network_ok; then
		say "engine B does not answer: stopping it and recreating namespace $NETNS"
	fi
	remove_node_b
	say "creating namespace $NETNS and veth $VETH_HOST ($ADDR_A/$PREFIX) <-> $VETH_NS ($ADDR_B/$PREFIX)"
	ip netns add "$NETNS"
	ip -n "$NETNS" link set lo up
	ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$NETNS"
	ip addr add "$ADDR_A/$PREFIX" dev "$VETH_HOST"
	ip link set "$VETH_HOST" up
	ip -n "$NETNS" addr add "$ADDR_B/$PREFIX" dev "$VETH_NS"
	ip -n "$NETNS" link set "$VETH_NS" up
	# no default route in the namespace: node B reaches the host and nothing else
	# Forwarding inside the namespace only (not the host): a port a service publishes on node B
	# (host mode) is DNAT-ed from the veth to its container's bridge, which needs forwarding
	# between the namespace's own links; with no default route nothing goes further.
	ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1
	wait_until 10 network_ok || die "veth pair did not come up"
	say "network ready ($(since "$_t"))"
}

start_engine_b() {
	_t=$(now)
	if answers "$SOCK_B"; then
		ours "$SOCK_B" "$DATA_B" || die "a Docker engine that the lab did not start answers on $SOCK_B; stop it first"
		say "engine B (node-b) already running on unix://$SOCK_B"
		return 0
	fi
	mkdir -p "$DATA_B" "$EXEC_B"
	rm -f "$SOCK_B" "$PID_B" "$DATA_B/.lab-clean"
	say "starting engine B (node-b) in namespace $NETNS on unix://$SOCK_B, log $LOG_B"
	write_resolv_conf
	# `ip netns exec` gives it a mount namespace with the namespace's own /sys; cgroup2 goes there
	# shellcheck disable=SC2016,SC2046 # $0 and $@ are the inner sh's; dockerd_cmd's words are split on purpose
	setsid ip netns exec "$NETNS" unshare --uts sh -c \
		'hostname node-b && mount -t cgroup2 none /sys/fs/cgroup &&
		 mount --bind "$0" /etc/resolv.conf && exec "$@"' \
		"$LAB_RUN/resolv.conf" $(dockerd_cmd b) </dev/null >>"$LOG_B" 2>&1 9>&- &
	if ! wait_until 60 answers "$SOCK_B"; then
		tail -n 20 "$LOG_B" >&2
		die "engine B did not come up (log: $LOG_B)"
	fi
	ours "$SOCK_B" "$DATA_B" || die "unexpected engine on $SOCK_B"
	say "engine B ready ($(since "$_t"))"
}

# ---------------------------------------------------------------------------------------------
# swarm

swarm_field() { # swarm_field a|b FIELD
	case $1 in
	a) dA info --format "{{.Swarm.$2}}" 2>/dev/null ;;
	b) dB info --format "{{.Swarm.$2}}" 2>/dev/null ;;
	esac
}

node_ready() { # node_ready NODE_ID: the manager sees the node Ready
	[ "$(dA node inspect --format '{{.Status.State}}' "$1" 2>/dev/null)" = ready ]
}

ensure_swarm() {
	_t=$(now)
	# node A: an active manager advertising ADDR_A, or a fresh swarm
	_fresh=""
	if [ "$(swarm_field a LocalNodeState)" = active ] && [ "$(swarm_field a ControlAvailable)" = true ] &&
		[ "$(swarm_field a NodeAddr)" = "$ADDR_A" ]; then
		say "node-a is already the swarm manager"
	else
		if [ "$(swarm_field a LocalNodeState)" != inactive ]; then
			say "node-a has stale swarm state ($(swarm_field a LocalNodeState)): leaving it"
			dA swarm leave --force >/dev/null
		fi
		say "initialising the swarm on node-a ($ADDR_A)"
		dA swarm init --advertise-addr "$ADDR_A" --listen-addr "$ADDR_A:2377" >/dev/null
		_fresh=1
	fi
	_a_id=$(swarm_field a NodeID)

	# node B: a worker the manager knows and sees Ready, or it (re)joins
	_b_state=$(swarm_field b LocalNodeState)
	_b_id=$(swarm_field b NodeID)
	if [ -z "$_fresh" ] && [ "$_b_state" != inactive ] && [ -n "$_b_id" ] &&
		dA node inspect "$_b_id" >/dev/null 2>&1 && wait_until 30 node_ready "$_b_id"; then
		say "node-b is already a worker of this swarm"
	else
		if [ "$_b_state" != inactive ]; then
			say "node-b has stale swarm state ($_b_state): leaving it"
			dB swarm leave --force >/dev/null 2>&1 || true
		fi
		[ -z "$_b_id" ] || dA node rm --force "$_b_id" >/dev/null 2>&1 || true
		say "node-b joins as a worker"
		dB swarm join --token "$(dA swarm join-token -q worker)" \
			--advertise-addr "$ADDR_B" --listen-addr "$ADDR_B:2377" "$ADDR_A:2377" >/dev/null
		_b_id=$(swarm_field b NodeID)
	fi
	wait_until 60 node_ready "$_b_id" || die "node-b did not become Ready"
	wait_until 30 node_ready "$_a_id" || die "node-a is not Ready"

	# forget nodes of earlier lab runs (a node-b that was replaced)
	for _n in $(dA node ls -q); do
		[ "$_n" = "$_a_id" ] || [ "$_n" = "$_b_id" ] || {
			say "removing stale node $(dA node inspect --format '{{.Description.Hostname}}' "$_n") ($_n)"
			dA node rm --force "$_n" >/dev/null
		}
	done
	say "swarm ready: $(dA node ls --format '{{.Hostname}}={{.Status}}/{{if .ManagerStatus}}manager{{else}}worker{{end}}' | tr '\n' ' ')($(since "$_t"))"
}

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
	case $1 in
	a) dA image inspect --format '{{index .Config.Labels "pgha.recipe"}}' "$IMAGE" 2>/dev/null || true ;;
	b) dB image inspect --format '{{index .Config.Labels "pgha.recipe"}}' "$IMAGE" 2>/dev/null || true ;;
	esac
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
		say "image $IMAGE (recipe $_hash) already on both nodes"
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
		die "image $IMAGE is not on both engines"
	fi
	say "image $IMAGE (recipe $_hash) on both nodes ($(since "$_t"))"
}

# ---------------------------------------------------------------------------------------------
# subcommands

lock() {
	mkdir -p "$LAB_RUN" "$LAB_LOG" "$LAB_LIB" "$LAB_CACHE"
	exec 9>"$LAB_RUN/lock"
	flock -w 900 9 || die "another scripts/lab.sh is running"
}

cmd_up() {
	_t0=$(now)
	lock
	_t=$(now); ensure_packages; say "phase packages done ($(since "$_t"))"
	# change nothing while an engine the lab did not start holds one of the sockets
	for _s in "$SOCK_A:$DATA_A" "$SOCK_B:$DATA_B"; do
		! answers "${_s%%:*}" || ours "${_s%%:*}" "${_s#*:}" ||
			die "a Docker engine that the lab did not start answers on ${_s%%:*} (data root:" \
				"$(timeout 10 docker -H "unix://${_s%%:*}" info --format '{{.DockerRootDir}}' 2>/dev/null));" \
				"stop it first, the lab will not touch it"
	done
	ensure_network
	start_engine_a
	start_engine_b
	ensure_swarm
	ensure_image
	say "up: node-a (manager, unix://$SOCK_A) + node-b (worker, unix://$SOCK_B, $ADDR_B)," \
		"image $IMAGE ($(since "$_t0"))"
}

cmd_image() {
	lock
	ensure_image
}

# clean_engine a|b: remove the lab's containers, volumes and networks and leave the swarm
clean_engine() {
	case $1 in a) _d=dA ;; b) _d=dB ;; esac
	_ids=$($_d ps -aq 2>/dev/null || true)
	# shellcheck disable=SC2086 # one argument per container id
	[ -z "$_ids" ] || $_d rm -f -v $_ids >/dev/null 2>&1 || true
	[ "$(swarm_field "$1" LocalNodeState)" = inactive ] || $_d swarm leave --force >/dev/null 2>&1 || true
	_ids=$($_d volume ls -q 2>/dev/null || true)
	# shellcheck disable=SC2086 # one argument per volume name
	[ -z "$_ids" ] || $_d volume rm -f $_ids >/dev/null 2>&1 || true
	$_d network prune -f >/dev/null 2>&1 || true
}

cmd_down() {
	_t0=$(now)
	lock
	_alive_a="" _alive_b=""
	answers "$SOCK_A" && ours "$SOCK_A" "$DATA_A" && _alive_a=1
	if answers "$SOCK_A" && [ -z "$_alive_a" ]; then
		say "the engine on $SOCK_A is not the lab's: leaving it alone"
	fi
	answers "$SOCK_B" && ours "$SOCK_B" "$DATA_B" && _alive_b=1

	if [ -n "$_alive_a" ] && [ "$(swarm_field a ControlAvailable)" = true ]; then
		_svcs=$(dA service ls -q)
		if [ -n "$_svcs" ]; then
			say "removing swarm services: $(dA service ls --format '{{.Name}}' | tr '\n' ' ')"
			# shellcheck disable=SC2086 # one argument per service id
			dA service rm $_svcs >/dev/null
		fi
	fi
	[ -z "$_alive_b" ] || { say "node-b: removing containers, volumes, networks; leaving the swarm"; clean_engine b; }
	[ -z "$_alive_a" ] || { say "node-a: removing containers, volumes, networks; leaving the swarm"; clean_engine a; }
	# a data root left clean (images only) is marked so; an engine start removes the mark
	[ -z "$_alive_a" ] || : >"$DATA_A/.lab-clean"
	[ -z "$_alive_b" ] || : >"$DATA_B/.lab-clean"

	_t=$(now)
	remove_node_b
	say "engine B stopped, namespace $NETNS and veth removed ($(since "$_t"))"
	if [ -n "$_alive_a" ] || ! answers "$SOCK_A"; then
		_t=$(now)
		stop_engine a
		for _l in docker0 docker_gwbridge; do ip link delete "$_l" 2>/dev/null || true; done
		iptables_cleanup
		restore_host_settings
		say "engine A stopped, its bridges and iptables rules removed ($(since "$_t"))"
	fi
	# an engine that was dead could not leave its swarm nor drop its containers and volumes:
	# discard its data root unless it was left clean
	for _d in "$DATA_A" "$DATA_B"; do
		[ ! -d "$_d" ] || [ -e "$_d/.lab-clean" ] || {
			say "discarding $_d (its engine was not running to clean it)"
			rm -rf --one-file-system "$_d"
		}
	done
	unmount_under "$LAB_RUN"
	unmount_under "$LAB_LIB"
	rm -rf --one-file-system "$EXEC_A" "$EXEC_B"
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

# node_state HOSTNAME: ready, down, ... as the manager sees it
node_state() { dA node inspect --format '{{.Status.State}}' "$1" 2>/dev/null; }
node_down() { [ "$(node_state node-b)" = down ]; }

cmd_stop_node() {
	[ "${1:-}" = b ] || die "usage: $0 stop-node b (node-b, the worker, is the one that can go)"
	lock
	_t=$(now)
	_pids=$(procs_of "$EXEC_B")
	if [ -z "$_pids" ]; then
		say "node-b's engine is not running (nothing to stop)"
	else
		say "node-b goes away: SIGKILL to its engine, containerd, shims and containers ($(printf '%s\n' "$_pids" | wc -l) processes)"
		# shellcheck disable=SC2086 # one argument per process id
		kill_all $_pids
	fi
	stop_engine b # whatever is left: mounts, pid file, socket, cgroups (no engine to signal now)
	say "waiting for the manager to mark node-b Down"
	wait_until 120 node_down || die "the manager still sees node-b as $(node_state node-b) after 120 s"
	say "node-b is Down in the swarm ($(since "$_t"))"
}

cmd_start_node() {
	[ "${1:-}" = b ] || die "usage: $0 start-node b"
	lock
	_t=$(now)
	network_ok || die "namespace $NETNS or its veth is missing: run scripts/lab.sh up"
	if ! answers "$SOCK_A" || [ "$(swarm_field a ControlAvailable)" != true ]; then
		die "node-a is not the swarm manager: run scripts/lab.sh up"
	fi
	start_engine_b
	ensure_swarm
	say "node-b is back and Ready ($(since "$_t"))"
}

cmd_status() {
	_ok=0
	check() { # check DESCRIPTION COMMAND...
		_d=$1
		shift
		if "$@" >/dev/null 2>&1; then say "up    $_d"; else say "DOWN  $_d"; _ok=1; fi
	}
	check "engine A (node-a) on unix://$SOCK_A" ours "$SOCK_A" "$DATA_A"
	check "namespace $NETNS, veth $ADDR_A <-> $ADDR_B" network_ok
	check "engine B (node-b) on unix://$SOCK_B" ours "$SOCK_B" "$DATA_B"
	check "node-a is the swarm manager" test "$(swarm_field a ControlAvailable)" = true
	_nodes=$(dA node ls --format '{{.Hostname}}={{.Status}}' 2>/dev/null | sort | tr '\n' ' ')
	check "nodes Ready: ${_nodes:-none}" test "$_nodes" = "node-a=Ready node-b=Ready "
	_hash=$(recipe_hash)
	check "image $IMAGE (recipe $_hash) on node-a" test "$(image_recipe_of a)" = "$_hash"
	check "image $IMAGE (recipe $_hash) on node-b" test "$(image_recipe_of b)" = "$_hash"
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
*)
	echo "usage: $0 up|down|status|image|purge|stop-node b|start-node b" >&2
	exit 2
	;;
esac
