// The health of a running cluster, in one place: the SQL that reads each server's state, the
// mapping of its rows to typed facts (ServerProbe), and the pure evaluation of those facts into
// findings. `npm run status` (scripts/status.ts) is its command line; tests and other code reuse it
// with any way of running SQL (a `pg` client, psql through `docker exec`): see QueryFn.
//
// A cluster is healthy when every server answers, exactly one is primary (the one the stack
// declares), every other server streams from it through its own active slot, no slot has lost or
// is about to lose the WAL it needs, and no archiver is failing. The shell operations
// (scripts/operations/lib.sh, asking scripts/server/instance.sh) keep their own quick checks of
// single facts; this is the full check (docs/status.md maps the two).

/** What a server is, as far as this host can tell. */
export type Role = "primary" | "standby" | "down" | "unknown";

/** Where a server is reached from here (from the stack's `servers` output). */
export interface ServerTarget {
    readonly name: string;
    readonly node: string;
    /** Hostname or IPv4 address of the published port (`servers[i].address`, default the node). */
    readonly address?: string;
    /** Port published on the node; none: not reachable from outside the swarm. */
    readonly port?: number;
}

/** A standby's WAL receiver (pg_stat_wal_receiver). */
export interface WalReceiver {
    readonly status: string;
    readonly receivedTimeline: number | null;
    readonly senderHost: string | null;
    readonly slotName: string | null;
}

/** One row of the primary's pg_stat_replication: a standby (or a backup) streaming from it. */
export interface ReplicationRow {
    readonly applicationName: string;
    readonly clientAddr: string | null;
    readonly state: string;
    readonly syncState: string | null;
    readonly sentLsn: string | null;
    readonly writeLsn: string | null;
    readonly flushLsn: string | null;
    readonly replayLsn: string | null;
    /** write_lag, flush_lag, replay_lag in seconds (null: not measured lately, e.g. idle and caught up). */
    readonly writeLagSeconds: number | null;
    readonly flushLagSeconds: number | null;
    readonly replayLagSeconds: number | null;
    /** sent_lsn - replay_lsn: WAL sent but not yet replayed. */
    readonly sentReplayBytes: number | null;
    /** pg_current_wal_lsn() - replay_lsn: how far the standby's replay is behind the primary. */
    readonly behindBytes: number | null;
}

/** A replication slot (pg_replication_slots). */
export interface SlotRow {
    readonly name: string;
    readonly type: string;
    readonly temporary: boolean;
    readonly active: boolean;
    readonly restartLsn: string | null;
    /** reserved, extended, unreserved, lost; null when the slot reserves no WAL (restart_lsn null). */
    readonly walStatus: string | null;
    /** WAL the slot holds back on this server: its position (primary: pg_current_wal_lsn, standby: replay) - restart_lsn. */
    readonly retainedBytes: number | null;
    /** safe_wal_size: bytes that can still be written before the slot is in danger of losing WAL. */
    readonly safeWalBytes: number | null;
}

/** The archiver (pg_stat_archiver); every server archives (archive_mode = always). */
export interface ArchiverRow {
    readonly archivedCount: number;
    readonly lastArchivedWal: string | null;
    readonly lastArchivedTime: string | null;
    readonly failedCount: number;
    readonly lastFailedWal: string | null;
    readonly lastFailedTime: string | null;
}

/** What one server reported (or why it could not be asked). */
export interface ServerProbe {
    readonly name: string;
    readonly node: string;
    /** `address:port` it was asked at; null without a published port. */
    readonly endpoint: string | null;
    readonly role: Role;
    /** Why the server could not be asked (role down or unknown). */
    readonly error?: string;
    /** cluster_name the server answered with (pgha sets it to the server's name). */
    readonly clusterName?: string;
    /** Primary: the timeline it writes; standby: the timeline it receives (else of its last restartpoint). */
    readonly timeline?: number | null;
    /** Primary: pg_current_wal_lsn(). */
    readonly currentLsn?: string | null;
    /** Standby: pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(). */
    readonly receiveLsn?: string | null;
    readonly replayLsn?: string | null;
    readonly lastReplayTime?: string | null;
    /** Standby: its WAL receiver, null when it has none running. */
    readonly receiver?: WalReceiver | null;
    /** Primary: pg_stat_replication. */
    readonly replication?: readonly ReplicationRow[];
    readonly slots?: readonly SlotRow[];
    readonly archiver?: ArchiverRow;
}

export type Severity = "error" | "warning";

export type Check =
    | "unreachable"
    | "identity"
    | "primary-count"
    | "declared-primary"
    | "not-streaming"
    | "slot-missing"
    | "slot-inactive"
    | "slot-wal"
    | "slot-orphan"
    | "archiver-failing";

/** One thing wrong (error: the cluster is unhealthy) or worth a look (warning). */
export interface Finding {
    readonly severity: Severity;
    readonly check: Check;
    /** The server the finding is about (null: the cluster as a whole). */
    readonly server: string | null;
    readonly message: string;
}

/** A server in the report: what it said, plus (standbys) the primary's view of its stream. */
export type ServerStatus = ServerProbe & {
    /** The primary's pg_stat_replication row for this standby; null when it is not connected. */
    readonly stream?: ReplicationRow | null;
};

export interface StatusReport {
    /** No error among the findings (warnings allowed). */
    readonly healthy: boolean;
    /** The one server that is primary, or null (none, or more than one). */
    readonly primary: string | null;
    /** The primary the stack declares (pgha:primary), when known. */
    readonly declaredPrimary: string | null;
    readonly servers: readonly ServerStatus[];
    readonly findings: readonly Finding[];
}

// ---------------------------------------------------------------------------------------------
// SQL (PostgreSQL 15). Every statement is safe on a primary and on a standby; positions come from
// pg_current_wal_lsn() only when the server is not in recovery (CASE evaluates lazily, and a
// server never goes back into recovery without a restart).

const POSITION = "CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn()) ELSE pg_current_wal_lsn() END";

export const HEALTH_SQL = {
    /** Role, identity, positions, timeline and WAL receiver: one row. */
    server: `SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('cluster_name') AS cluster_name,
       CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN NOT pg_is_in_recovery() THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS wal_timeline,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_last_xact_replay_timestamp() AS last_replay_time,
       r.status AS receiver_status, r.received_tli, r.sender_host, r.slot_name AS receiver_slot
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`,
    /** The primary's WAL senders. */
    replication: `SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
       extract(epoch FROM write_lag)::float8 AS write_lag, extract(epoch FROM flush_lag)::float8 AS flush_lag,
       extract(epoch FROM replay_lag)::float8 AS replay_lag,
       pg_wal_lsn_diff(sent_lsn, replay_lsn)::bigint AS sent_replay_bytes,
       CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END AS behind_bytes
FROM pg_stat_replication ORDER BY application_name, pid`,
    /** Replication slots and the WAL each holds back on this server. */
    slots: `SELECT slot_name, slot_type, temporary, active, restart_lsn::text AS restart_lsn, wal_status,
       pg_wal_lsn_diff(${POSITION}, restart_lsn)::bigint AS retained_bytes, safe_wal_size
FROM pg_replication_slots ORDER BY slot_name`,
    /** Continuous archiving. */
    archiver: `SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time
FROM pg_stat_archiver`,
} as const;

/** Runs one statement and returns its rows (a `pg` client, psql through docker exec, a fixture). */
export type QueryFn = (sql: string) => Promise<readonly Record<string, unknown>[]>;

// ---------------------------------------------------------------------------------------------
// Rows to facts

const str = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v));
const num = (v: unknown): number | null => (v === null || v === undefined || v === "" ? null : Number(v));
const bool = (v: unknown): boolean => v === true || v === "t" || v === "true";

export function endpointOf(t: ServerTarget): string | null {
    return t.port === undefined ? null : `${t.address ?? t.node}:${t.port}`;
}

/** A server that could not be asked: `unknown` without a published port, else `down`. */
export function unreachableProbe(t: ServerTarget, error?: string): ServerProbe {
    const endpoint = endpointOf(t);
    if (endpoint === null) return { name: t.name, node: t.node, endpoint, role: "unknown", error: "not reachable from here (no published port)" };
    return { name: t.name, node: t.node, endpoint, role: "down", error: error ?? "not reachable" };
}

export function replicationRow(r: Record<string, unknown>): ReplicationRow {
    return {
        applicationName: String(r.application_name ?? ""),
        clientAddr: str(r.client_addr),
        state: String(r.state ?? ""),
        syncState: str(r.sync_state),
        sentLsn: str(r.sent_lsn),
        writeLsn: str(r.write_lsn),
        flushLsn: str(r.flush_lsn),
        replayLsn: str(r.replay_lsn),
        writeLagSeconds: num(r.write_lag),
        flushLagSeconds: num(r.flush_lag),
        replayLagSeconds: num(r.replay_lag),
        sentReplayBytes: num(r.sent_replay_bytes),
        behindBytes: num(r.behind_bytes),
    };
}

export function slotRow(r: Record<string, unknown>): SlotRow {
    return {
        name: String(r.slot_name),
        type: String(r.slot_type ?? "physical"),
        temporary: bool(r.temporary),
        active: bool(r.active),
        restartLsn: str(r.restart_lsn),
        walStatus: str(r.wal_status),
        retainedBytes: num(r.retained_bytes),
        safeWalBytes: num(r.safe_wal_size),
    };
}

export function archiverRow(r: Record<string, unknown>): ArchiverRow {
    return {
        archivedCount: num(r.archived_count) ?? 0,
        lastArchivedWal: str(r.last_archived_wal),
        lastArchivedTime: str(r.last_archived_time),
        failedCount: num(r.failed_count) ?? 0,
        lastFailedWal: str(r.last_failed_wal),
        lastFailedTime: str(r.last_failed_time),
    };
}

/** The facts of one answering server, from the rows of HEALTH_SQL (replication: primaries only). */
export function serverProbe(
    t: ServerTarget,
    rows: {
        server: Record<string, unknown>;
        replication?: readonly Record<string, unknown>[];
        slots: readonly Record<string, unknown>[];
        archiver?: Record<string, unknown>;
    },
): ServerProbe {
    const s = rows.server;
    const primary = !bool(s.in_recovery);
    const common = {
        name: t.name,
        node: t.node,
        endpoint: endpointOf(t),
        clusterName: String(s.cluster_name ?? ""),
        slots: rows.slots.map(slotRow),
        ...(rows.archiver ? { archiver: archiverRow(rows.archiver) } : {}),
    };
    if (primary) {
        return {
            ...common,
            role: "primary",
            timeline: num(s.wal_timeline) ?? num(s.checkpoint_timeline),
            currentLsn: str(s.current_lsn),
            replication: (rows.replication ?? []).map(replicationRow),
        };
    }
    const receiver: WalReceiver | null =
        s.receiver_status === null || s.receiver_status === undefined
            ? null
            : { status: String(s.receiver_status), receivedTimeline: num(s.received_tli), senderHost: str(s.sender_host), slotName: str(s.receiver_slot) };
    return {
        ...common,
        role: "standby",
        timeline: receiver?.receivedTimeline ?? num(s.checkpoint_timeline),
        receiveLsn: str(s.receive_lsn),
        replayLsn: str(s.replay_lsn),
        lastReplayTime: str(s.last_replay_time),
        receiver,
    };
}

/** Asks one server everything the checks need. Errors while querying make it `down`. */
export async function probeServer(t: ServerTarget, query: QueryFn): Promise<ServerProbe> {
    try {
        const [server] = await query(HEALTH_SQL.server);
        if (!server) throw new Error("no answer to the status query");
        const primary = !bool(server.in_recovery);
        // One after the other: a QueryFn may be a single connection.
        const replication = primary ? await query(HEALTH_SQL.replication) : [];
        const slots = await query(HEALTH_SQL.slots);
        const archiver = await query(HEALTH_SQL.archiver);
        return serverProbe(t, { server, replication, slots, archiver: archiver[0] });
    } catch (e) {
        return unreachableProbe(t, (e as Error)?.message ?? String(e));
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation: facts to findings (pure)

export function formatBytes(n: number | null | undefined): string {
    if (n === null || n === undefined) return "-";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let v = n;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
        v /= 1024;
        u++;
    }
    return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

function time(iso: string | null): number {
    return iso === null ? Number.NaN : Date.parse(iso);
}

/** The archiver is failing: its last failure is newer than its last success (or it never succeeded). */
export function archiverFailing(a: ArchiverRow): boolean {
    if (a.lastFailedTime === null) return false;
    if (a.lastArchivedTime === null) return true;
    return time(a.lastFailedTime) > time(a.lastArchivedTime);
}

/** The server answered under its own name (cluster_name), so its facts are about it. */
function asItself(s: ServerProbe): boolean {
    return s.clusterName === undefined || s.clusterName === s.name;
}

/**
 * Everything wrong with the cluster, given what each server reported. `servers` is in the
 * stack's order; `declaredPrimary` is the stack's pgha:primary when known.
 */
export function evaluate(servers: readonly ServerProbe[], declaredPrimary?: string | null): Finding[] {
    const findings: Finding[] = [];
    const error = (check: Check, server: string | null, message: string) => findings.push({ severity: "error", check, server, message });
    const warning = (check: Check, server: string | null, message: string) => findings.push({ severity: "warning", check, server, message });
    const names = new Set(servers.map((s) => s.name));

    // Every server answers, as itself.
    for (const s of servers) {
        if (s.role === "unknown") {
            error(
                "unreachable",
                s.name,
                `${s.name} (node ${s.node}): ${s.error ?? "not reachable from here"}; status cannot vouch for it (publish a port: servers[i].port, and set servers[i].address)`,
            );
        } else if (s.role === "down") {
            error("unreachable", s.name, `${s.name} (node ${s.node}) does not answer at ${s.endpoint}: ${s.error ?? "not reachable"}`);
        } else if (!asItself(s)) {
            error(
                "identity",
                s.name,
                `${s.endpoint} answers as '${s.clusterName}', not as ${s.name}: check servers[i].address and servers[i].port of ${s.name}`,
            );
        }
    }

    // Exactly one primary, the declared one (a server answering under another name does not count).
    const primaries = servers.filter((s) => s.role === "primary" && asItself(s));
    const answering = servers.filter((s) => (s.role === "primary" || s.role === "standby") && asItself(s));
    if (primaries.length > 1) {
        error(
            "primary-count",
            null,
            `more than one server is primary (${primaries.map((s) => s.name).join(", ")}): writes may go to any of them; stop all but one (docker exec <its container> /bin/sh /var/lib/pgha/data/pgha/entrypoint.sh switchover demote)`,
        );
    } else if (primaries.length === 0) {
        const why =
            answering.length === 0
                ? "no server answers"
                : `${answering.map((s) => s.name).join(", ")} ${answering.length === 1 ? "is a standby" : "are standbys"}, the others do not answer`;
        error("primary-count", null, `no primary: ${why}`);
    }
    const primary = primaries.length === 1 ? primaries[0] : undefined;
    if (primary && declaredPrimary && declaredPrimary !== primary.name && names.has(declaredPrimary)) {
        error(
            "declared-primary",
            primary.name,
            `${primary.name} is primary, but the stack declares ${declaredPrimary} (pgha:primary): run pulumi up to finish the switchover, or set pgha:primary back to ${primary.name}`,
        );
    }

    // Every other server streams from the primary, through its own active slot.
    if (primary) {
        const replication = primary.replication ?? [];
        const slots = primary.slots ?? [];
        for (const s of servers) {
            if (s.name === primary.name) continue;
            const rows = replication.filter((r) => r.applicationName === s.name);
            const streaming = rows.find((r) => r.state === "streaming");
            if (!streaming) {
                const seen = rows.length > 0 ? `state ${rows.map((r) => r.state).join(", ")}` : "not connected";
                const receiver = s.role === "standby" ? (s.receiver ? `; its WAL receiver is ${s.receiver.status}` : "; it has no WAL receiver running") : "";
                error("not-streaming", s.name, `${s.name} does not stream from ${primary.name} (${seen}${receiver})`);
            }
            const slot = slots.find((x) => x.name === s.name);
            if (!slot) {
                error(
                    "slot-missing",
                    s.name,
                    `${primary.name} has no replication slot for ${s.name}: WAL ${s.name} needs may be removed (create it: SELECT pg_create_physical_replication_slot('${s.name}') on ${primary.name})`,
                );
            } else if (!slot.active) {
                error(
                    "slot-inactive",
                    s.name,
                    `slot ${s.name} on ${primary.name} is not active: ${s.name} does not stream through it${slot.retainedBytes !== null ? ` (it holds back ${formatBytes(slot.retainedBytes)} of WAL)` : ""}`,
                );
            }
        }
        for (const slot of slots) {
            if (!names.has(slot.name) && !slot.temporary && !slot.active) {
                warning(
                    "slot-orphan",
                    primary.name,
                    `slot ${slot.name} on ${primary.name} belongs to no server of the stack and is inactive${slot.retainedBytes !== null ? `; it holds back ${formatBytes(slot.retainedBytes)} of WAL` : ""} (drop it if nothing uses it: SELECT pg_drop_replication_slot('${slot.name}'))`,
                );
            }
        }
    }

    // No slot has lost, or is about to lose, WAL (on any server: a standby's slots serve after a switchover).
    for (const s of servers) {
        for (const slot of s.slots ?? []) {
            if (slot.walStatus === "lost") {
                error(
                    "slot-wal",
                    s.name,
                    `slot ${slot.name} on ${s.name} has lost WAL it needed (wal_status lost, beyond pgha:replication.maxSlotWalKeepSize): ${slot.name} cannot stream through it any more and needs a new copy (bootstrap)`,
                );
            } else if (slot.walStatus === "unreserved") {
                error(
                    "slot-wal",
                    s.name,
                    `slot ${slot.name} on ${s.name} is about to lose WAL (wal_status unreserved, at pgha:replication.maxSlotWalKeepSize${slot.retainedBytes !== null ? `, ${formatBytes(slot.retainedBytes)} held back` : ""})`,
                );
            } else if (slot.walStatus === "extended") {
                warning(
                    "slot-wal",
                    s.name,
                    `slot ${slot.name} on ${s.name} holds back more WAL than max_wal_size (wal_status extended${slot.retainedBytes !== null ? `, ${formatBytes(slot.retainedBytes)}` : ""})`,
                );
            }
        }
    }

    // No archiver is failing.
    for (const s of servers) {
        const a = s.archiver;
        if (a && archiverFailing(a)) {
            error(
                "archiver-failing",
                s.name,
                `the archiver of ${s.name} is failing: ${a.lastFailedWal ?? "a WAL file"} failed at ${a.lastFailedTime}${a.lastArchivedTime ? `, last success ${a.lastArchivedWal} at ${a.lastArchivedTime}` : ", nothing archived yet"} (${a.failedCount} failures; see docker service logs ${s.name})`,
            );
        }
    }
    return findings;
}

/** The report `npm run status` prints: facts, the primary's view of each standby, findings. */
export function buildReport(servers: readonly ServerProbe[], declaredPrimary?: string | null): StatusReport {
    const findings = evaluate(servers, declaredPrimary);
    const primaries = servers.filter((s) => s.role === "primary" && asItself(s));
    const primary = primaries.length === 1 ? primaries[0] : undefined;
    return {
        healthy: !findings.some((f) => f.severity === "error"),
        primary: primary?.name ?? null,
        declaredPrimary: declaredPrimary ?? null,
        servers: servers.map((s) => {
            if (!primary || s.name === primary.name) return s;
            const rows = (primary.replication ?? []).filter((r) => r.applicationName === s.name);
            return { ...s, stream: rows.find((r) => r.state === "streaming") ?? rows[0] ?? null };
        }),
        findings,
    };
}
