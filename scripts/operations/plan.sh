# The decisions of the host-side operations, as pure steps (sourced by lib.sh, POSIX sh): each
# reads the servers' observed states (given as arguments: lines "name role", lists of names) and
# prints a plan or a refusal; the operation gathers the facts, asks, then carries the plan out.
# No step here runs docker, psql or anything else: test/plan.test.ts runs them with fabricated
# states. (The rejoin's own decisions, made inside the server's container, are
# scripts/server/rejoin.sh: rejoin_plan, rewind_start, rejoin_after_rewind.)
#
# Roles: primary, standby, down (does not answer), lost (declared in pgha:lost: never contacted).

# names LIST: the names of a comma-separated list, one a line.
names() { printf '%s\n' "$1" | tr ',' '\n' | awk 'NF { print $1 }'; }

# in_list NAME LIST: NAME is in the comma-separated LIST.
in_list() {
    case ",$2," in *",$1,"*) return 0 ;; esac
    return 1
}

# current_primary ROLES: which server is the primary, from lines "name role". Prints
#   one NAME          exactly one server is writable
#   none              no server is writable
#   many NAME NAME... more than one is (never resolved automatically)
current_primary() {
    printf '%s\n' "$1" | awk '
        $2 == "primary" { n++; names = names " " $1 }
        END {
            if (n == 0) print "none"
            else if (n == 1) print "one" names
            else print "many" names
        }'
}

# switchover_plan TARGET LOST ROLES: what `pulumi up` does for pgha:primary = TARGET, with the
# servers of the comma-separated LOST list declared lost and ROLES observed. Prints
#   refuse target-lost       TARGET is declared lost
#   refuse many NAME...      more than one writable server
#   failover                 no reachable server is writable and some server is lost
#   refuse no-primary        no server is writable and none is lost
#   nothing                  TARGET is the primary already
#   switchover OLD           demote OLD, promote TARGET
switchover_plan() {
    if in_list "$1" "$2"; then echo "refuse target-lost"; return 0; fi
    _sp=$(current_primary "$3")
    case $_sp in
    many*) echo "refuse $_sp" ;;
    none)
        if [ -n "$(names "$2")" ]; then echo failover; else echo "refuse no-primary"; fi
        ;;
    "one $1") echo nothing ;;
    one*) echo "switchover ${_sp#one }" ;;
    esac
}

# switchover_ready STATE: may the switchover demote the old primary, given the target's state in
# its pg_stat_replication ("streaming <lag bytes>", or anything else)? Prints
#   go LAG                   the target streams, LAG bytes behind in replay
#   refuse not-streaming     it does not: nothing may change
switchover_ready() {
    case $1 in
    "streaming "*) echo "go ${1#streaming }" ;;
    *) echo "refuse not-streaming" ;;
    esac
}

# failover_plan TARGET LOST ROLES FENCES: may TARGET be promoted without the LOST servers? ROLES
# holds the target's and every reachable server's role; FENCES, lines "name container fenced|
# unfenced", what the engines of the lost servers' nodes that still answer run. Prints
#   refuse target ROLE            TARGET is not a running standby
#   refuse unfenced NAME CONTAINER a lost server's node runs it without the fence: it may still be
#                                 a primary nobody sees from here
#   refuse writable NAME          a reachable server is writable: never two
#   promote                       promote TARGET now
failover_plan() {
    _tr=$(printf '%s\n' "$3" | awk -v t="$1" '$1 == t { print $2; exit }')
    if [ "$_tr" != standby ]; then echo "refuse target ${_tr:-down}"; return 0; fi
    _fu=$(printf '%s\n' "$4" | awk '$3 == "unfenced" { print $1 " " $2; exit }')
    if [ -n "$_fu" ]; then echo "refuse unfenced $_fu"; return 0; fi
    _fw=$(printf '%s\n' "$3" | awk -v t="$1" -v lost=",$2," '$1 != t && $2 == "primary" && index(lost, "," $1 ",") == 0 { print $1; exit }')
    if [ -n "$_fw" ]; then echo "refuse writable $_fw"; return 0; fi
    echo promote
}

# backup_source CONFIGURED ROLES: the server a base backup is taken on. CONFIGURED is
# pgha:backup.server (empty: choose). Prints
#   take NAME ROLE           back up NAME (a standby when there is one, else the primary)
#   refuse down NAME         the configured server does not answer
#   refuse none              no server answers
backup_source() {
    if [ -n "$1" ]; then
        _br=$(printf '%s\n' "$2" | awk -v n="$1" '$1 == n { print $2; exit }')
        case $_br in
        primary | standby) echo "take $1 $_br" ;;
        *) echo "refuse down $1" ;;
        esac
        return 0
    fi
    printf '%s\n' "$2" | awk '
        $2 == "standby" && s == "" { s = $1 }
        $2 == "primary" { p = $1 }
        END {
            if (s != "") print "take " s " standby"
            else if (p != "") print "take " p " primary"
            else print "refuse none"
        }'
}

# restore_primary ROLES: the server a point-in-time recovery restores into. Prints
#   restore NAME             NAME, the one primary (it stays the primary)
#   refuse PRIMARIES         not exactly one primary ("none", or "many NAME...")
restore_primary() {
    _rp=$(current_primary "$1")
    case $_rp in
    one*) echo "restore ${_rp#one }" ;;
    *) echo "refuse $_rp" ;;
    esac
}

# initialize_plan TARGET-STATE WITH-DATA CLONE: what the first `pulumi up` does with the first
# primary's data volume. TARGET-STATE: data, initialize, partial, empty or foreign (volume_state);
# WITH-DATA: the other servers whose volume holds a data directory (comma-separated); CLONE: 1 when
# pgha:cloneFrom is set. Prints
#   nothing data             the cluster exists
#   nothing marked           already marked for initdb
#   refuse foreign           a non-empty pgdata that is not PostgreSQL's
#   refuse other-data NAMES  another server holds data: initializing would make a second cluster
#   clone                    fill it from another cluster (clone.sh)
#   mark                     mark it: its entrypoint runs initdb
initialize_plan() {
    case $1 in
    data) echo "nothing data" ;;
    initialize) echo "nothing marked" ;;
    foreign) echo "refuse foreign" ;;
    *)
        if [ -n "$2" ]; then
            echo "refuse other-data $2"
        elif [ "$3" = 1 ]; then
            echo clone
        else
            echo mark
        fi
        ;;
    esac
}

# bootstrap_plan STATE PEERS: what the bootstrap does with a server's data volume in STATE
# (volume_state), PEERS being its peers (comma-separated). Prints
#   nothing data             it holds a data directory
#   nothing initialize       it is the first primary (initialized by its entrypoint)
#   refuse foreign           a non-empty pgdata that is not PostgreSQL's
#   refuse no-peer           nobody to copy from
#   copy                     pg_basebackup of the primary (an interrupted copy starts over)
bootstrap_plan() {
    case $1 in
    data) echo "nothing data" ;;
    initialize) echo "nothing initialize" ;;
    foreign) echo "refuse foreign" ;;
    *) if [ -n "$(names "$2")" ]; then echo copy; else echo "refuse no-peer"; fi ;;
    esac
}

# retention_plan KEEP BACKUPS: which backups retention keeps. BACKUPS: lines "server<TAB>stopTime
# <TAB>label<TAB>startWal<TAB>json" from every archive. Prints the first WAL file of the oldest
# kept backup ("-" when no backup is kept: no WAL is removed), then one line "drop SERVER LABEL"
# per backup beyond the newest KEEP (by stop time).
retention_plan() {
    printf '%s\n' "$2" | awk 'NF' | sort -t "$(printf '\t')" -k2,2r | awk -F '\t' -v k="$1" '
        NR <= k { s = substr($4, 9); if (min == "" || s < min) { min = s; w = $4 } }
        NR > k { drop[++d] = $1 " " $3 }
        END { print (w == "" ? "-" : w); for (i = 1; i <= d; i++) print "drop " drop[i] }'
}

# roll_plan MODE STATES: the rolling restart (roll.sh). STATES: lines "name role need", need being
# restart (its restart key differs: restart it), image (its service runs another image: update
# it, which restarts it), ok, or - (down or lost: not contacted; it starts with the new files).
# MODE: return (the primary goes back where it was) or stay. Prints
#   refuse many NAME...     more than one writable server
#   refuse no-primary       a running server needs a restart but none is writable
#   nothing                 no running server needs a restart
# or the steps, one a line, in order:
#   restart NAME | image NAME   a standby, each back and streaming before the next step
#   switchover NAME             the planned switchover (switchover.sh) to a restarted standby
#   restart NAME | image NAME   then the old primary, now a standby
#   switchover NAME             with MODE return: back to the old primary
#   alone restart|image NAME    the primary has no standby to hand over to: restarted in place
#                               (writes are unavailable while it restarts)
roll_plan() {
    printf '%s\n' "$2" | awk -v mode="$1" '
        NF < 3 { next }
        $2 == "primary" { np++; primaries = primaries " " $1; p = $1; pneed = $3 }
        $2 == "standby" { ns++; standby[ns] = $1; sneed[ns] = $3 }
        ($2 == "primary" || $2 == "standby") && ($3 == "restart" || $3 == "image") { work++ }
        END {
            if (np > 1) { print "refuse many" primaries; exit }
            if (work == 0) { print "nothing"; exit }
            if (np == 0) { print "refuse no-primary"; exit }
            for (i = 1; i <= ns; i++) if (sneed[i] == "restart" || sneed[i] == "image") print sneed[i] " " standby[i]
            if (pneed != "restart" && pneed != "image") exit
            if (ns == 0) { print "alone " pneed " " p; exit }
            print "switchover " standby[1]
            print pneed " " p
            if (mode == "return") print "switchover " p
        }'
}

# manager_verdict COUNT: may automatic failover run on a swarm with COUNT managers?
#   ok                                  three or more: the Raft store keeps a majority when one goes
#   refuse <why>                        fewer
manager_verdict() {
    case $1 in
    0 | 1) echo "refuse with one manager the loss of its node stops the store, and every lease renewal with it: the primary would fence itself" ;;
    2) echo "refuse with two managers the loss of either loses the store's majority, and every lease renewal with it: the primary would fence itself although nothing happened to it" ;;
    *) echo ok ;;
    esac
}

# switchover_keep RUN AUTOMATIC PLAN: the switchover's PLAN, unless it would move the primary back
# on its own. RUN is create (pgha:primary changed: the operator asks for that primary) or update
# (the Command re-runs because another input changed). With automatic failover (AUTOMATIC 1) the
# primary may have moved since pgha:primary was last set: an update then keeps it where it is.
#   keep OLD     do nothing; pgha:primary names another server than OLD, the primary
#   (otherwise)  PLAN unchanged
switchover_keep() {
    if [ "$1" = update ] && [ "$2" = 1 ]; then
        case $3 in "switchover "*) echo "keep ${3#switchover }"; return 0 ;; esac
    fi
    echo "$3"
}
