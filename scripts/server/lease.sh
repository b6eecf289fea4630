# pgha server: automatic failover's container side (sourced by entrypoint.sh): the lease client,
# the agent that runs beside PostgreSQL in every server container, and the start gate.
#
# The lease (holder, term) lives in a swarm config's labels, kept by the arbiter service on the
# swarm's managers (scripts/arbiter/: the only component with the Docker socket). This container
# talks to the arbiters over the overlay network (tasks.<arbiter service>, one plain-text line per
# TCP connection, authenticated with the token in pgha-secrets/pgha-arbiter-token) and never to
# Docker. What may be decided is decided by pure steps below (lease_start_plan,
# lease_primary_step, lease_extends, lease_standby_step; unit-tested with fabricated states in
# test/lease.test.ts); the agent only observes, decides and carries out:
#   - the primary renews the lease every renew interval (after a failed round, again at once or
#     within 300 ms; within a round, a new connection every 250 ms until one is up); when it has
#     not renewed for the fence deadline (measured from the moment it SENT the last request that
#     succeeded, on this container's monotonic clock) it puts standby.signal in place and stops
#     PostgreSQL at once (immediate shutdown: SIGQUIT to the postmaster); the entrypoint starts
#     it again as a standby. An arbiter judges a lease expired only after a full TTL without renewal on its own
#     clock, and the configuration refuses a fence deadline + call timeout above 80% of the TTL:
#     the old primary is stopped before anybody else can hold the next term;
#   - a standby that sees the lease expired (or free), streamed recently (within two TTLs),
#     within the lag bound, and no reachable standby ahead of it, acquires the next term and
#     promotes;
#   - a server whose lease is still its own but that runs as a standby (it fenced itself on a
#     blip, or a switchover handed it the lease) renews and promotes;
#   - a standby that cannot stream from the writable holder (its timeline diverged: it was the
#     old primary) is rejoined in its own container (rejoin.sh: pg_rewind, or a fresh copy with
#     the old data directory kept aside);
#   - every start of a server comes up writable only if it holds the current term
#     (lease_gate); otherwise standby.signal goes in first.
# Settings: failover.conf in PGHA_CONFIG_DIR (rendered by components/templates.ts, delivered by
# the reload operation, re-read on every round). Without it, or with automatic=0, nothing here
# runs and the server behaves exactly as without automatic failover.
#
#   entrypoint.sh lease read                    the lease as an arbiter sees it
#   entrypoint.sh lease claim                   take the next term unconditionally (the declared
#                                               failover; an operator's tool)

lease_conf=$PGHA_CONFIG_DIR/failover.conf
lease_token_file=$PGHA_SECRETS_DIR/pgha-arbiter-token
# the term this server last held (in the data volume, beside pgdata: survives restarts)
lease_term_file=$PGHA_DATA_DIR/pgha-lease-term
# set by a promoting operation (switchover, failover) while it promotes: the agent does not act
lease_busy=$PGHA_RUNTIME_DIR/lease-busy
# the agent fenced PostgreSQL: the entrypoint starts it again (as a standby) instead of exiting
lease_fenced=$PGHA_RUNTIME_DIR/lease-fenced
lease_pid_file=$PGHA_RUNTIME_DIR/agent.pid

# ---------------------------------------------------------------------------
# Decisions (pure: arguments in, one line out)
# ---------------------------------------------------------------------------

# lease_start_plan ME ANSWER MY_TERM: may this server, about to start PostgreSQL WITHOUT
# standby.signal, come up writable?
#   ANSWER        an arbiter's answer to `read` ("ok <holder> <term> <expired> <age> <managers>"),
#                 empty when no arbiter answered
#   MY_TERM       the term this server last held (pgha-lease-term), empty if none
# Prints:
#   writable      it holds the current term
#   acquire       the lease is free and nobody took a term since this server's, or it was never
#                 held at all (term 0: a new cluster, or automatic failover just switched on for
#                 a running one, whose primary this is): take it (compare-and-swap: one server
#                 at most), then start writable if that succeeds
#   standby       anything else: standby.signal goes in; the agent promotes later if it may
lease_start_plan() {
	case $2 in
	"ok "*) ;;
	*) echo standby; return 0 ;;
	esac
	_my=$3
	# shellcheck disable=SC2086 # the answer's words, split on purpose
	set -- "$1" $2
	# $1 me, $2 ok, $3 holder, $4 term, $5 expired, $6 age, $7 managers
	if [ "$3" = "$1" ]; then echo writable; return 0; fi
	if [ "$3" = - ]; then
		if [ "$4" = "$_my" ] || [ "$4" = 0 ]; then echo acquire; return 0; fi
	fi
	echo standby
}

# lease_primary_step NOW LAST_OK FENCE_MS ANSWER: one round of the primary's agent.
#   NOW, LAST_OK  monotonic ms; LAST_OK = when the last renewal that succeeded was sent
#   ANSWER        the renewal's answer: "ok ...", "lost <holder> <term>", or empty (no answer)
# Prints: renewed | fence lost (another server holds the lease) | fence deadline | wait
lease_primary_step() {
	case $4 in
	"ok "*) echo renewed ;;
	"lost "*) echo "fence lost" ;;
	*) if [ $(($1 - $2)) -ge "$3" ]; then echo "fence deadline"; else echo wait; fi ;;
	esac
}

# lease_extends UNAVAILABLE MANAGERS: whether a round in which UNAVAILABLE distinct arbiters
# answered "unavailable" (the store has no leader: they are reachable but cannot read) counts
# like a renewal. Only a majority of the MANAGERS: then no arbiter anywhere can grant the next
# term before the store is back, and every arbiter that saw the outage waits a full TTL after it
# (its observation restarts); a primary cut off from the others reaches at most its own node's
# arbiter. Prints yes or no.
lease_extends() {
	if [ "$2" -ge 3 ] && [ "$1" -ge $(($2 / 2 + 1)) ]; then echo yes; else echo no; fi
}

# lease_standby_step ME ANSWER WRITABLE_PEER STREAMED AHEAD_PEER FENCED TTL_MS: one round of a
# standby's agent.
#   ANSWER         "ok <holder> <term> <expired 0|1> <age_ms> <managers>", empty: no arbiter
#   WRITABLE_PEER  a peer that answers as primary, or -
#   STREAMED       yes: this standby streamed within the last two TTLs and its lag at its last
#                  sample was within the bound; no otherwise
#   AHEAD_PEER     a reachable standby that has received more WAL than this one, or -
#   FENCED         1: declared lost (pgha:lost): the operator decides, never the agent
# Prints one of:
#   wait <why>     nothing to do (why: fenced, unknown, held, conflict, stale, defer <peer>)
#   follow <peer>  another server is the writable holder: stream from it (rejoin if diverged)
#   promote        this server holds the lease: renew it, then promote
#   acquire        take the next term, then promote
lease_standby_step() {
	if [ "$6" = 1 ]; then echo "wait fenced"; return 0; fi
	case $2 in
	"ok "*) ;;
	*) echo "wait unknown"; return 0 ;;
	esac
	# shellcheck disable=SC2086 # the answer's words, split on purpose
	set -- "$1" "$3" "$4" "$5" "$7" $2
	# $1 me, $2 writable peer, $3 streamed, $4 ahead peer, $5 ttl, $6 ok, $7 holder, $8 term,
	# $9 expired, ${10} age
	if [ "$7" = "$1" ]; then
		if [ "$2" != - ]; then echo "wait conflict"; else echo promote; fi
		return 0
	fi
	if [ "$2" != - ]; then echo "follow $2"; return 0; fi
	if [ "$7" != - ] && [ "$9" != 1 ]; then echo "wait held"; return 0; fi
	if [ "$3" != yes ]; then echo "wait stale"; return 0; fi
	# a standby ahead of this one goes first, for one more TTL; then any eligible one may
	if [ "$4" != - ] && [ "${10}" -lt $(($5 * 2)) ]; then echo "wait defer $4"; return 0; fi
	echo acquire
}

# lease_lag_ok STATUS FLUSHED LATEST_END MAX_LAG: the WAL receiver's sample says this standby
# streams and lags the sender's last reported end of WAL by at most MAX_LAG bytes (LSNs as
# byte counts). Prints yes or no.
lease_lag_ok() {
	if [ "$1" = streaming ] && [ $(($3 - $2)) -le "$4" ]; then echo yes; else echo no; fi
}

# ---------------------------------------------------------------------------
# Settings, clock, arbiter client
# ---------------------------------------------------------------------------

# lease_settings: reads failover.conf (key=value lines; never sourced). Returns 1 when automatic
# failover is off or not configured.
lease_settings() {
	lf_automatic=0 lf_arbiter='' lf_port=7400 lf_ttl=10000 lf_renew=1000 lf_fence=6000 lf_call=1000 lf_lag=16777216
	[ -r "$lease_conf" ] || return 1
	while IFS='=' read -r _k _v || [ -n "$_k" ]; do
		case $_v in *[!A-Za-z0-9._-]*) continue ;; esac
		case $_k in
		automatic) lf_automatic=$_v ;;
		arbiter) lf_arbiter=$_v ;;
		port) lf_port=$_v ;;
		ttl_ms) lf_ttl=$_v ;;
		renew_ms) lf_renew=$_v ;;
		fence_ms) lf_fence=$_v ;;
		call_ms) lf_call=$_v ;;
		max_lag) lf_lag=$_v ;;
		esac
	done <"$lease_conf"
	[ "$lf_automatic" = 1 ] && [ -n "$lf_arbiter" ]
}

# now_ms: this container's monotonic clock (the kernel's boot clock, /proc/uptime), in ms.
now_ms() {
	read -r _up _ </proc/uptime
	_s=${_up%.*} _f=${_up#*.}
	echo $((_s * 1000 + ${_f#0} * 10))
}

# ms_to_s MS: seconds with a fraction, for sleep and timeout.
ms_to_s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# lease_addresses: every arbiter task's address (Docker's DNS: tasks.<service>), one a line.
lease_addresses() { getent ahostsv4 "tasks.$lf_arbiter" 2>/dev/null | awk '!seen[$1]++ { print $1 }'; }

# lease_call REQUEST [BUDGET_MS]: ask the arbiters; prints the answer that counts (ok, else lost
# or refused) and returns 1 when none gave one. `read` and `renew` go to every arbiter at once: a
# round costs at most one call timeout whatever is unreachable, and every reachable arbiter's
# answer counts (a renewal is idempotent; of several reads, the highest term's, an expired one
# first: arbiters that watched the lease for different spans disagree on expiry for a while).
# The others must take effect once (acquire, handover, claim, release): one arbiter after the
# other, until one answers (an acquire refused as "held" by one arbiter goes on to the next: it
# took no effect, and the next may have seen the lease expire already). Each call is bounded by the
# call timeout, all of them by BUDGET_MS. When lease_stats names a file, "<unavailable>
# <managers>" goes there: how many arbiters answered "unavailable" (reachable, but the store has
# no leader), and the manager count a `read` reported (0: unknown). The token goes to bash on a
# pipe, never on a command line; bash's /dev/tcp is the client (every image pgha supports has
# bash: the official postgres images' entrypoint is a bash script).
lease_call() {
	_budget=${2:-$((lf_call * 4))}
	[ -r "$lease_token_file" ] || { log "agent: $lease_token_file is missing: cannot talk to the arbiters"; return 1; }
	IFS= read -r _tok <"$lease_token_file" || [ -n "$_tok" ] || return 1
	_dir=$(mktemp -d "$PGHA_RUNTIME_DIR/lease.XXXXXX") || return 1
	case $1 in read | "renew "*) _par=1 ;; *) _par='' ;; esac
	_start=$(now_ms) _n=0 _pids=''
	for _ip in $(lease_addresses); do
		_left=$((_budget - ($(now_ms) - _start)))
		[ "$_left" -gt 50 ] || break
		[ "$_left" -le "$lf_call" ] || _left=$lf_call
		_n=$((_n + 1))
		if [ -n "$_par" ]; then
			lease_ask_retrying "$_ip" "$_left" "$1" >"$_dir/$_n" &
			_pids="$_pids $!"
		else
			lease_ask "$_ip" "$_left" "$1" >"$_dir/$_n"
			# an acquire refused because the lease is not expired as THAT arbiter saw it took no
			# effect: another arbiter may have watched it unchanged for a full TTL already (each
			# arbiter's grant is safe on its own: its own clock, compare-and-swap on the version)
			case $(cat "$_dir/$_n") in "refused "*" held") ;; "ok "* | "lost "* | "refused "*) break ;; esac
		fi
	done
	_tok=''
	# shellcheck disable=SC2086 # one argument per process id
	[ -z "$_pids" ] || wait $_pids
	_ok='' _okt='' _def='' _unav=0 _mgr=0
	for _f in "$_dir"/*; do
		[ -e "$_f" ] || continue
		IFS= read -r _a <"$_f" || [ -n "$_a" ] || _a=''
		case $_a in
		"ok "*)
			if [ "$1" = read ]; then
				# the answer of the arbiter that knows most: the highest term, then expired
				# ("ok <holder> <term> <expired> <age> <managers>", split once)
				read -r _ _ _at _ae _ _mgr <<-EOF
					$_a
				EOF
				if [ -z "$_ok" ] || [ "$_at" -gt "$_okt" ] || { [ "$_at" = "$_okt" ] && [ "$_ae" = 1 ]; }; then
					_ok=$_a _okt=$_at
				fi
			else
				[ -n "$_ok" ] || _ok=$_a
			fi
			;;
		"lost "* | "refused "*) [ -n "$_def" ] || _def=$_a ;;
		unavailable*) _unav=$((_unav + 1)) ;;
		denied*) log "agent: an arbiter refused the token (pgha-arbiter-token differs from the arbiter's secret)" ;;
		esac
	done
	rm -rf "$_dir"
	[ -z "${lease_stats:-}" ] || printf '%s %s\n' "$_unav" "${_mgr:-0}" >"$lease_stats"
	[ -n "$_ok$_def" ] || return 1
	printf '%s\n' "${_ok:-$_def}"
}

# lease_ask ADDRESS[:PORT] BUDGET_MS REQUEST [CONNECTED]: one request to one arbiter (the token in
# $_tok), its answer (PORT: lf_port unless given). With CONNECTED (a path), the request goes out
# only from the first attempt that creates that file once its connection is up (O_EXCL:
# lease_ask_retrying's attempts to one arbiter send one request between them).
lease_ask() {
	_host=${1%%:*} _port=${1#*:}
	[ "$_port" != "$1" ] || _port=$lf_port
	# shellcheck disable=SC2016 # $0, $1, $2, $l, $a are the inner bash's
	printf '%s %s\n' "$_tok" "$3" | timeout "$(ms_to_s "$2")" bash -c \
		'exec 3<>"/dev/tcp/$0/$1" || exit 1; if [ -n "$2" ]; then set -C; { : >"$2"; } 2>/dev/null || exit 0; fi
		IFS= read -r l; printf "%s\n" "$l" >&3; IFS= read -r a <&3; printf "%s\n" "$a"' \
		"$_host" "$_port" "${4:-}" 2>/dev/null || true
}

# lease_ask_retrying ADDRESS WINDOW_MS REQUEST: lease_ask for the idempotent verbs (read, renew),
# with a new connection every 250 ms until one is up, each attempt given what is left of the
# window. A connection begun while the network is cut waits for the kernel's first retry of its
# SYN (a second later); the next attempt after the cut ends connects at once, so a renewal
# lands within about 250 ms of the end of a blip instead of a call timeout. Once a connection is
# up, nothing more is sent: its answer ("unavailable" included) may take the whole window.
lease_ask_retrying() {
	_ar_dir=$(mktemp -d "$PGHA_RUNTIME_DIR/ask.XXXXXX") || return 0
	_ar_start=$(now_ms) _ar_k=0 _ar_last='' _ar_pids='' _ar_out=''
	while :; do
		_ar_now=$(now_ms)
		_ar_left=$(($2 - (_ar_now - _ar_start)))
		for _ar_f in "$_ar_dir"/a.*; do
			[ -s "$_ar_f" ] || continue
			IFS= read -r _ar_out <"$_ar_f" || [ -n "$_ar_out" ] || _ar_out=''
			[ -z "$_ar_out" ] || break 2
		done
		_ar_live=''
		for _ar_p in $_ar_pids; do kill -0 "$_ar_p" 2>/dev/null && _ar_live=1; done
		if [ -e "$_ar_dir/connected" ]; then
			# the request went out: its attempt answers or ends (its timeout, or the arbiter
			# closed the connection)
			[ -n "$_ar_live" ] || break
		elif [ "$_ar_left" -gt 50 ]; then
			if [ -z "$_ar_last" ] || [ $((_ar_now - _ar_last)) -ge 250 ]; then
				_ar_k=$((_ar_k + 1)) _ar_last=$_ar_now
				lease_ask "$1" "$_ar_left" "$3" "$_ar_dir/connected" >"$_ar_dir/a.$_ar_k" &
				_ar_pids="$_ar_pids $!"
			fi
		else
			[ -n "$_ar_live" ] || break
		fi
		# every attempt ends by its own timeout, within the window; this only bounds the loop
		[ "$_ar_left" -gt -200 ] || break
		sleep 0.025
	done
	# shellcheck disable=SC2086 # one argument per process id
	[ -z "$_ar_pids" ] || kill $_ar_pids 2>/dev/null || true
	rm -rf "$_ar_dir"
	[ -z "$_ar_out" ] || printf '%s\n' "$_ar_out"
}

# lease_record TERM: remember the term this server holds.
lease_record() {
	[ "$(cat "$lease_term_file" 2>/dev/null)" = "$1" ] && return 0
	printf '%s\n' "$1" >"$lease_term_file.tmp" && mv -f "$lease_term_file.tmp" "$lease_term_file"
}

# lease_field ANSWER N: the Nth word of an answer.
lease_field() {
	_lf_n=$2
	# shellcheck disable=SC2086 # the answer's words, split on purpose
	set -- $1
	[ "$#" -ge "$_lf_n" ] || { echo; return 0; }
	shift "$((_lf_n - 1))"
	printf '%s\n' "$1"
}

# ---------------------------------------------------------------------------
# The start gate (run.sh, before every start of PostgreSQL)
# ---------------------------------------------------------------------------

# lease_gate: with automatic failover, a server that would start writable (no
# standby.signal) does so only if it holds the current term; otherwise standby.signal goes in.
lease_gate() {
	lease_settings || return 0
	[ "${PGHA_FENCED:-}" != 1 ] || return 0
	[ ! -e "$pgdata/standby.signal" ] || return 0
	# the arbiters may be starting too (a whole cluster coming back): ask for up to two TTLs
	_until=$(($(now_ms) + 2 * lf_ttl))
	until _a=$(lease_call read); do
		_a=
		[ "$(now_ms)" -lt "$_until" ] || break
		set_state waiting
		log "lease: no arbiter answers yet; asking again before starting PostgreSQL"
		nap 1
		check_stopping
	done
	_plan=$(lease_start_plan "$server" "$_a" "$(cat "$lease_term_file" 2>/dev/null)")
	if [ "$_plan" = acquire ]; then
		_r=$(lease_call "acquire $server $(lease_field "$_a" 3)") || _r=
		case $_r in
		"ok "*) lease_record "$(lease_field "$_r" 3)"; _plan=writable ;;
		*) _plan=standby ;;
		esac
	fi
	if [ "$_plan" = writable ]; then
		[ "$(lease_field "$_a" 2)" != "$server" ] || lease_record "$(lease_field "$_a" 3)"
		log "lease: $server holds term $(cat "$lease_term_file" 2>/dev/null): starting writable"
		return 0
	fi
	: >"$pgdata/standby.signal"
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$pgdata/standby.signal"
	fsync_path "$pgdata"
	if [ -z "$_a" ]; then
		log "lease: no arbiter answers: starting read-only (standby.signal); the agent promotes $server if the lease is still its own"
	else
		log "lease: $server does not hold the current term (holder $(lease_field "$_a" 2), term $(lease_field "$_a" 3)): starting as a standby"
	fi
}

# lease_diverged_step STATUS OUTPUT: what `pg_rewind --dry-run` against the writable peer (its
# exit STATUS and OUTPUT) says about a standby PostgreSQL could not start:
#   rewind   the timelines diverged ("servers diverged at", whatever the dry run did after
#            that): this server wrote WAL past the point where the primary's timeline forked
#            off (it was the primary when another one took the lease), and the new timeline's
#            history reached it (restore_command): rewind it, or copy the primary afresh
#   none     no rewind required: the start failed for another reason (left to the operator)
#   unknown  the dry run failed before it could tell (the primary unreachable, ...)
lease_diverged_step() {
	case $2 in
	*"servers diverged at"*) echo rewind ;;
	*"no rewind required"*) if [ "$1" = 0 ]; then echo none; else echo unknown; fi ;;
	*) echo unknown ;;
	esac
}

# lease_recopy PRIMARY: a fresh copy of PRIMARY (bootstrap.sh: copy_primary) in place of this
# data directory, which is moved aside to pgdata.before-rejoin-<UTC time> (never deleted). If
# the copy fails, the old data directory goes back where it was. Returns 0 when the copy is in place.
lease_recopy() {
	_aside=$PGHA_DATA_DIR/pgdata.before-rejoin-$(date -u +%Y%m%dT%H%M%SZ)
	[ ! -e "$_aside" ] || return 1
	mv "$pgdata" "$_aside" || return 1
	fsync_path "$PGHA_DATA_DIR"
	log "lease: KEPT the old data directory as $_aside (in this server's data volume; pgha never deletes it: remove it yourself once you no longer need it)"
	if (copy_primary 300); then
		log "lease: fresh copy of $1 in place with standby.signal"
		return 0
	fi
	log "lease: the copy of $1 failed (above): the old data directory goes back to $pgdata"
	rm -rf "$pgdata_partial"
	[ ! -d "$pgdata" ] || rmdir "$pgdata" || return 1
	mv "$_aside" "$pgdata"
	fsync_path "$PGHA_DATA_DIR"
	return 1
}

# lease_rewind_diverged STATUS: PID 1 (run.sh), after PostgreSQL exited with STATUS while it runs
# as a standby. With automatic failover on, an old primary whose timeline diverged fails at start
# ("requested timeline N does not contain minimum recovery point ...") once the new timeline's
# history is in the archive; its container would exit again at every restart, and the agent
# inside it never runs. PostgreSQL is down here and only PID 1 starts it: pg_rewind it against
# the writable peer right here, or, when pg_rewind cannot, copy the peer afresh with this data
# directory kept aside (what the rejoin does). Returns 0 when it can start again, 1 otherwise.
lease_rewind_diverged() {
	[ "$1" != 0 ] && [ -e "$pgdata/standby.signal" ] && lease_settings || return 1
	[ "${PGHA_FENCED:-}" != 1 ] || return 1
	_primary=$(primary_sql "$(sql_name)" 2>/dev/null) || _primary=
	if [ -z "$_primary" ] || [ "$_primary" = "$server" ]; then
		log "lease: PostgreSQL could not start as a standby (exit status $1), and no writable peer answers to check its timeline against"
		return 1
	fi
	_st=0
	_out=$(pg_rewind_to "$_primary" --dry-run 2>&1) || _st=$?
	_why=$(printf '%s\n' "$_out" | grep -e 'diverged' -e 'no rewind' -e 'error' -e 'fatal' | tail -n 3 | tr '\n' ' ' | cut -c1-400)
	case $(lease_diverged_step "$_st" "$_out") in
	rewind)
		log "lease: PostgreSQL could not start as a standby (exit status $1): its timeline diverged from $_primary's (pg_rewind --dry-run, status $_st: $_why); rewinding it against $_primary (pg_rewind)"
		if [ "$_st" = 0 ] && rewind_from "$_primary"; then
			log "lease: rewound: starting $server as a standby of $_primary"
			return 0
		fi
		log "lease: pg_rewind cannot rewind $server against $_primary (above): copying $_primary afresh instead"
		lease_recopy "$_primary"
		;;
	none)
		log "lease: PostgreSQL could not start as a standby (exit status $1); its timeline has not diverged from $_primary's ($_why): see PostgreSQL's messages above"
		return 1
		;;
	*)
		log "lease: PostgreSQL could not start as a standby (exit status $1); could not tell whether its timeline diverged from $_primary's (pg_rewind --dry-run, status $_st: ${_why:-no output})"
		return 1
		;;
	esac
}

# ---------------------------------------------------------------------------
# The agent (a background process of PID 1, for the container's whole life)
# ---------------------------------------------------------------------------

# lease_fence WHY: standby.signal first (read only at start-up), then an immediate shutdown of
# the postmaster: every backend is gone at once, no commit is acknowledged after this.
lease_fence() {
	read_pidfile "$pgdata" || return 0
	: >"$pgdata/standby.signal"
	[ "$setuid_tool" = none ] || chown "$pg_uid:$pg_gid" "$pgdata/standby.signal"
	: >"$lease_fenced"
	kill -QUIT "$pm_pid" 2>/dev/null || true
	log "FENCED by the agent ($1): standby.signal written, immediate shutdown sent to PostgreSQL ($pm_pid); it starts again as a standby"
	fsync_path "$pgdata"
}

# lease_running: a postmaster runs on pgdata
lease_running() { read_pidfile "$pgdata" && kill -0 "$pm_pid" 2>/dev/null; }

# lease_busy_set / lease_busy_clear / lease_busy_now: an operation is promoting this server (the
# marker holds the monotonic time it was set; older than 120 s counts as left over)
lease_busy_set() { now_ms >"$lease_busy"; }
lease_busy_clear() { rm -f "$lease_busy"; }
lease_busy_now() {
	[ -r "$lease_busy" ] || return 1
	IFS= read -r _b <"$lease_busy" || return 1
	case $_b in *[!0-9]* | '') return 1 ;; esac
	[ $(($(now_ms) - _b)) -lt 120000 ]
}

# lease_lsn_bytes LSN: an LSN (X/Y) as a byte count
lease_lsn_bytes() {
	case $1 in */*) ;; *) echo 0; return 0 ;; esac
	echo $(((0x${1%/*} << 32) + 0x${1#*/}))
}

# lease_peer_sql PEER SQL: one statement on a peer, as postgres over the overlay network
lease_peer_sql() {
	printf '%s\n' "$2" | as_pg psql -X -q -A -t -v ON_ERROR_STOP=1 \
		-d "host=$1 port=5432 user=postgres passfile=$pgpass dbname=postgres connect_timeout=1 application_name=$server-agent" 2>/dev/null
}

# lease_peers_view MY_RECEIVED: sets lv_writable (a peer answering as primary, or -) and lv_ahead
# (a standby peer that has received more than MY_RECEIVED bytes, or -); peers that do not answer
# within a second count as neither.
lease_peers_view() {
	lv_writable=- lv_ahead=-
	for _p in $(printf '%s' "$PGHA_PEERS" | tr ',' ' '); do
		[ "$_p" != "$server" ] || continue
		_v=$(lease_peer_sql "$_p" "$(sql_peer_position)") || continue
		case $_v in
		f\|*) lv_writable=$_p ;;
		t\|*) [ "$(lease_lsn_bytes "${_v#t|}")" -le "$1" ] || lv_ahead=$_p ;;
		esac
	done
}

# lease_promote: promote this standby (it replays what it received first), marking the agent busy.
lease_promote() {
	lease_busy_set
	if _out=$(local_sql "$(sql_promote_now 60)" 2>&1); then checkpoint_soon; else _out="failed: $_out"; fi
	lease_busy_clear
	log "agent: promote: $_out"
}

lease_agent() {
	trap 'exit 0' TERM INT
	set +e
	lease_stats=$PGHA_RUNTIME_DIR/lease-stats
	_managers=0 _rounds=0
	_last_ok=$(now_ms)
	_mode=''
	_stream_at=0 _stream_ok=no _nostream_since=''
	while :; do
		if ! lease_settings || [ "${PGHA_FENCED:-}" = 1 ] || ! lease_running || lease_busy_now; then
			_mode='' _last_ok=$(now_ms)
			nap 1
			continue
		fi
		_round=$(now_ms)
		if [ ! -e "$pgdata/standby.signal" ]; then
			# ---- primary: renew, or fence
			if [ "$_mode" != primary ]; then _mode=primary _last_ok=$_round _prev_step=''; log "agent: primary: renewing the lease every $lf_renew ms (fence after $lf_fence ms without)"; fi
			_term=$(cat "$lease_term_file" 2>/dev/null)
			_budget=$((lf_fence - (_round - _last_ok)))
			[ "$_budget" -gt 0 ] || _budget=1
			# the manager count (for lease_extends), now and then from a read
			if [ "$_managers" = 0 ] || [ $((_rounds % 30)) -eq 0 ]; then
				lease_call read >/dev/null || true
				read -r _ _m <"$lease_stats" 2>/dev/null || _m=0
				[ "${_m:-0}" = 0 ] || _managers=$_m
			fi
			_rounds=$((_rounds + 1))
			_ans=$(lease_call "renew $server ${_term:-0}" "$_budget") || _ans=
			read -r _unavailable _ <"$lease_stats" 2>/dev/null || _unavailable=0
			case $_ans in
			"lost - "*)
				# free (automatic failover was just switched on, or a holder released it): the
				# writable server takes it
				_r=$(lease_call "acquire $server $(lease_field "$_ans" 3)" "$_budget") || _r=
				case $_r in "ok "*) lease_record "$(lease_field "$_r" 3)"; _ans=$_r ;; esac
				;;
			esac
			_step=$(lease_primary_step "$(now_ms)" "$_last_ok" "$lf_fence" "$_ans")
			case $_step in
			renewed) _last_ok=$_round ;;
			"fence "*)
				if [ "$_step" = "fence deadline" ] && [ "$(lease_extends "$_unavailable" "$_managers")" = yes ]; then
					_last_ok=$_round
					log "agent: the swarm's store has no leader ($_unavailable of $_managers arbiters say so): nobody can take the lease either; not fencing"
				else
					lease_fence "${_step#fence }: $(printf '%s' "${_ans:-no arbiter answered}" | cut -c1-80)"
					_mode=''
				fi
				;;
			wait)
				[ "$(lease_extends "$_unavailable" "$_managers")" != yes ] || _last_ok=$_round
				;;
			esac
			# The next renewal one renew interval after this one; after a round that renewed
			# nothing, again until the fence deadline: at once when the round waited out its call
			# timeout (arbiters that do not answer), within 300 ms when they answered (no leader,
			# refused). Within a round, lease_ask_retrying connects again every 250 ms until a
			# connection is up, so a renewal lands about 250 ms after a cut ends: a blip of up to
			# fenceDeadline - renewInterval - ~0.3 s costs no fence, whatever its phase against
			# the renew interval (4.7 s with the defaults).
			if [ "$_step" = renewed ]; then
				_sleep=$((lf_renew - ($(now_ms) - _round)))
			elif [ $(($(now_ms) - _round)) -ge $((_budget < lf_call ? _budget : lf_call)) ]; then
				_sleep=0
			else
				_sleep=300
			fi
			[ "$_sleep" -gt 0 ] && nap "$(ms_to_s "$_sleep")"
			continue
		fi
		# ---- standby
		[ "$_mode" = standby ] || { _mode=standby; _nostream_since=''; }
		_w=$(local_sql "$(sql_receiver_sample)" 2>/dev/null)
		_rcv=$(local_sql "$(sql_received_lsn)" 2>/dev/null)
		IFS='|' read -r _ws _wf _we <<-EOF
			$_w
		EOF
		if [ "$(lease_lag_ok "$_ws" "$(lease_lsn_bytes "$_wf")" "$(lease_lsn_bytes "$_we")" "$lf_lag")" = yes ]; then
			_stream_at=$_round
		fi
		# Streamed within two TTLs: a standby stops streaming when the primary dies, and the lease
		# expires up to a TTL (plus an arbiter's poll and this agent's round) later.
		if [ $((_round - _stream_at)) -le $((2 * lf_ttl)) ] && [ "$_stream_at" -gt 0 ]; then _stream_ok=yes; else _stream_ok=no; fi
		_ans=$(lease_call read) || _ans=
		lease_peers_view "$(lease_lsn_bytes "${_rcv:-0/0}")"
		_step=$(lease_standby_step "$server" "$_ans" "$lv_writable" "$_stream_ok" "$lv_ahead" "${PGHA_FENCED:-0}" "$lf_ttl")
		# An operation that promotes this server marks it busy BEFORE it changes the lease: an
		# answer read after that change is always checked against the marker here.
		if lease_busy_now; then _step="wait busy"; fi
		# what it decided, whenever that changes (the operator's trail in the container's log)
		if [ "$_step" != "${_prev_step:-}" ]; then
			log "agent: standby: $_step (lease: ${_ans:-no arbiter answered}; streamed recently: $_stream_ok; writable peer: $lv_writable; ahead: $lv_ahead)"
			_prev_step=$_step
		fi
		case $_step in
		promote)
			_r=$(lease_call "renew $server $(lease_field "$_ans" 3)") || _r=
			case $_r in "ok "*)
				lease_record "$(lease_field "$_r" 3)"
				log "agent: $server holds the lease (term $(lease_field "$_r" 3)) but runs as a standby: promoting"
				lease_promote
				;;
			esac
			;;
		acquire)
			log "agent: the lease (holder $(lease_field "$_ans" 2), term $(lease_field "$_ans" 3)) is expired and $server is the most advanced standby: acquiring the next term"
			_r=$(lease_call "acquire $server $(lease_field "$_ans" 3)") || _r=
			case $_r in
			"ok "*)
				lease_record "$(lease_field "$_r" 3)"
				log "agent: $server holds term $(lease_field "$_r" 3): promoting"
				lease_promote
				;;
			*) log "agent: acquire refused: ${_r:-no arbiter answered}" ;;
			esac
			;;
		"follow "*)
			# A standby that does not stream from the writable holder on its timeline for 15 s
			# diverged (it was the old primary): rewind it, or copy it afresh with the old data
			# kept aside (rejoin.sh, in this container).
			_primary=${_step#follow }
			if streams_on_timeline; then
				_nostream_since=''
			elif [ -z "$_nostream_since" ]; then
				_nostream_since=$_round
			elif [ $((_round - _nostream_since)) -ge 15000 ] && [ "$(lease_field "$_ans" 2)" = "$_primary" ]; then
				log "agent: $server has not streamed from $_primary on its timeline for $(((_round - _nostream_since) / 1000)) s: rejoining it"
				(rejoin 300) >/dev/null
				_nostream_since=''
			fi
			;;
		esac
		_sleep=$((1000 - ($(now_ms) - _round)))
		[ "$_sleep" -gt 0 ] && nap "$(ms_to_s "$_sleep")"
	done
}

# lease_agent_start / lease_agent_stop: PID 1 runs the agent in the background for the
# container's life
lease_agent_start() {
	lease_agent </dev/null &
	printf '%s\n' "$!" >"$lease_pid_file"
}
lease_agent_stop() {
	[ -r "$lease_pid_file" ] || return 0
	kill "$(cat "$lease_pid_file")" 2>/dev/null || true
	rm -f "$lease_pid_file"
}

lease_cmd() {
	find_pg_bin
	find_pg_user
	lease_settings || die "lease: automatic failover is off here ($lease_conf: automatic=0 or missing)"
	case ${1:-} in
	read)
		lease_call read || die "lease: no arbiter answered"
		;;
	claim)
		_a=$(lease_call "claim $server") || die "lease: no arbiter answered; the lease was not taken"
		case $_a in "ok "*) lease_record "$(lease_field "$_a" 3)" ;; *) die "lease: claim refused: $_a" ;; esac
		printf '%s\n' "$_a"
		;;
	*) die "usage: entrypoint.sh lease read|claim" ;;
	esac
}
