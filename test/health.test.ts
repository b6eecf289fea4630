// The cluster health checks (components/health.ts): rows as PostgreSQL returns them (fixtures) go
// through the same mapping and evaluation `npm run status` uses. A healthy cluster has no finding;
// each unhealthy condition produces its finding, naming the server.

import { describe, expect, it } from "vitest";
import {
    archiverFailing,
    buildReport,
    Check,
    evaluate,
    formatBytes,
    HEALTH_SQL,
    probeServer,
    QueryFn,
    ServerProbe,
    serverProbe,
    ServerTarget,
    unreachableProbe,
} from "../components/health";

type Row = Record<string, unknown>;

const T = (name: string, node: string, port?: number): ServerTarget => ({
    name,
    node,
    address: node === "node-a" ? "127.0.0.1" : "192.168.77.2",
    ...(port ? { port } : {}),
});
const pg1 = T("pg1", "node-a", 15432);
const pg2 = T("pg2", "node-b", 15433);
const pg3 = T("pg3", "node-b", 15434);

// Rows shaped like the `pg` client returns them: bigint as text, timestamptz as Date.
const primaryRow = (name: string, over: Row = {}): Row => ({
    in_recovery: false,
    cluster_name: name,
    current_lsn: "0/5000148",
    wal_timeline: 1,
    checkpoint_timeline: 1,
    receive_lsn: null,
    replay_lsn: null,
    last_replay_time: null,
    receiver_status: null,
    received_tli: null,
    sender_host: null,
    receiver_slot: null,
    ...over,
});
const standbyRow = (name: string, primary = "pg1", over: Row = {}): Row => ({
    in_recovery: true,
    cluster_name: name,
    current_lsn: null,
    wal_timeline: null,
    checkpoint_timeline: 1,
    receive_lsn: "0/5000148",
    replay_lsn: "0/5000148",
    last_replay_time: new Date("2025-01-01T10:00:00Z"),
    receiver_status: "streaming",
    received_tli: 1,
    sender_host: primary,
    receiver_slot: name,
    ...over,
});
const replRow = (name: string, over: Row = {}): Row => ({
    application_name: name,
    client_addr: "10.0.201.4",
    state: "streaming",
    sync_state: "async",
    sent_lsn: "0/5000148",
    write_lsn: "0/5000148",
    flush_lsn: "0/5000148",
    replay_lsn: "0/5000148",
    write_lag: 0.0004,
    flush_lag: 0.0005,
    replay_lag: 0.0006,
    sent_replay_bytes: "0",
    behind_bytes: "0",
    ...over,
});
const slotRowFx = (name: string, over: Row = {}): Row => ({
    slot_name: name,
    slot_type: "physical",
    temporary: false,
    active: true,
    restart_lsn: "0/5000148",
    wal_status: "reserved",
    retained_bytes: "0",
    safe_wal_size: "10737418240",
    ...over,
});
const archiverFx = (over: Row = {}): Row => ({
    archived_count: "3",
    last_archived_wal: "000000010000000000000004",
    last_archived_time: new Date("2025-01-01T10:00:00Z"),
    failed_count: "0",
    last_failed_wal: null,
    last_failed_time: null,
    ...over,
});

function primary(t: ServerTarget, standbys: string[], over: { server?: Row; replication?: Row[]; slots?: Row[]; archiver?: Row } = {}): ServerProbe {
    return serverProbe(t, {
        server: primaryRow(t.name, over.server),
        replication: over.replication ?? standbys.map((s) => replRow(s)),
        slots: over.slots ?? standbys.map((s) => slotRowFx(s)),
        archiver: archiverFx(over.archiver),
    });
}
function standby(t: ServerTarget, peers: string[], over: { server?: Row; slots?: Row[]; archiver?: Row } = {}): ServerProbe {
    // A standby keeps an unreserved slot for each peer (the entrypoint creates them).
    return serverProbe(t, {
        server: standbyRow(t.name, "pg1", over.server),
        slots: over.slots ?? peers.map((p) => slotRowFx(p, { active: false, restart_lsn: null, wal_status: null, retained_bytes: null, safe_wal_size: null })),
        archiver: archiverFx(over.archiver),
    });
}
const healthy = (): ServerProbe[] => [primary(pg1, ["pg2"]), standby(pg2, ["pg1"])];

function checks(probes: ServerProbe[], declared: string | null = "pg1"): { check: Check; server: string | null; severity: string }[] {
    return evaluate(probes, declared).map((f) => ({ check: f.check, server: f.server, severity: f.severity }));
}
function messages(probes: ServerProbe[], declared: string | null = "pg1"): string {
    return evaluate(probes, declared)
        .map((f) => f.message)
        .join("\n");
}

describe("mapping rows to facts", () => {
    it("reads a primary: timeline, current LSN, its standbys' streams and lags, its slots, its archiver", () => {
        const p = primary(pg1, ["pg2"], { replication: [replRow("pg2", { sent_replay_bytes: "8192", behind_bytes: "16384", replay_lag: null })] });
        expect(p).toMatchObject({ name: "pg1", node: "node-a", endpoint: "127.0.0.1:15432", role: "primary", timeline: 1, currentLsn: "0/5000148" });
        expect(p.replication![0]).toMatchObject({
            applicationName: "pg2",
            state: "streaming",
            sentReplayBytes: 8192,
            behindBytes: 16384,
            writeLagSeconds: 0.0004,
            replayLagSeconds: null,
        });
        expect(p.slots![0]).toEqual({
            name: "pg2",
            type: "physical",
            temporary: false,
            active: true,
            restartLsn: "0/5000148",
            walStatus: "reserved",
            retainedBytes: 0,
            safeWalBytes: 10737418240,
        });
        expect(p.archiver).toMatchObject({ archivedCount: 3, failedCount: 0, lastArchivedTime: "2025-01-01T10:00:00.000Z", lastFailedTime: null });
    });

    it("reads a standby: receive and replay LSN, its WAL receiver, the received timeline", () => {
        const s = standby(pg2, ["pg1"], { server: { received_tli: 2, checkpoint_timeline: 1 } });
        expect(s).toMatchObject({ role: "standby", timeline: 2, receiveLsn: "0/5000148", replayLsn: "0/5000148", lastReplayTime: "2025-01-01T10:00:00.000Z" });
        expect(s.receiver).toEqual({ status: "streaming", receivedTimeline: 2, senderHost: "pg1", slotName: "pg2" });
        expect(standby(pg2, [], { server: { receiver_status: null, received_tli: null } })).toMatchObject({ receiver: null, timeline: 1 });
    });

    it("reports a server without a published port as unknown, and a failed connection as down", () => {
        expect(unreachableProbe(T("pg3", "node-b"))).toMatchObject({ role: "unknown", endpoint: null, error: "not reachable from here (no published port)" });
        expect(unreachableProbe(pg2, "connect ECONNREFUSED 192.168.77.2:15433")).toMatchObject({
            role: "down",
            endpoint: "192.168.77.2:15433",
            error: "connect ECONNREFUSED 192.168.77.2:15433",
        });
    });

    it("asks a server through any query function, and reports a failing one as down", async () => {
        const asked: string[] = [];
        const fixture: QueryFn = async (sql) => {
            asked.push(sql);
            if (sql === HEALTH_SQL.server) return [primaryRow("pg1")];
            if (sql === HEALTH_SQL.replication) return [replRow("pg2")];
            if (sql === HEALTH_SQL.slots) return [slotRowFx("pg2")];
            if (sql === HEALTH_SQL.archiver) return [archiverFx()];
            throw new Error(`unexpected SQL ${sql}`);
        };
        const p = await probeServer(pg1, fixture);
        expect(p.role).toBe("primary");
        expect(asked.sort()).toEqual([HEALTH_SQL.archiver, HEALTH_SQL.replication, HEALTH_SQL.server, HEALTH_SQL.slots].sort());
        const standbyAsked: string[] = [];
        await probeServer(pg2, async (sql) => {
            standbyAsked.push(sql);
            return sql === HEALTH_SQL.server ? [standbyRow("pg2")] : [];
        });
        expect(standbyAsked).not.toContain(HEALTH_SQL.replication);
        const failing = await probeServer(pg2, async () => {
            throw new Error("the database system is shutting down");
        });
        expect(failing).toMatchObject({ name: "pg2", role: "down", error: "the database system is shutting down" });
    });

    it("formats bytes as PostgreSQL does (B, kB, MB, GB)", () => {
        expect([formatBytes(0), formatBytes(1023), formatBytes(16384), formatBytes(16 * 1024 * 1024), formatBytes(null)]).toEqual([
            "0 B",
            "1023 B",
            "16.0 kB",
            "16.0 MB",
            "-",
        ]);
    });
});

describe("a healthy cluster", () => {
    it("has no finding", () => {
        expect(evaluate(healthy(), "pg1")).toEqual([]);
        const report = buildReport(healthy(), "pg1");
        expect(report).toMatchObject({ healthy: true, primary: "pg1", declaredPrimary: "pg1", findings: [] });
        expect(report.servers[1].stream).toMatchObject({ applicationName: "pg2", state: "streaming" });
        expect(report.servers[0].stream).toBeUndefined();
    });

    it("has no finding with two standbys, or with one server alone", () => {
        expect(evaluate([primary(pg1, ["pg2", "pg3"]), standby(pg2, ["pg1", "pg3"]), standby(pg3, ["pg1", "pg2"])], "pg1")).toEqual([]);
        expect(evaluate([primary(pg1, [])], "pg1")).toEqual([]);
    });

    it("is healthy when the archiver failed once but archived since, and with a temporary slot of a running backup", () => {
        const p = primary(pg1, ["pg2"], {
            archiver: { failed_count: "1", last_failed_wal: "000000010000000000000002", last_failed_time: new Date("2025-01-01T09:00:00Z") },
            slots: [slotRowFx("pg2"), slotRowFx("pg_basebackup_123", { temporary: true })],
        });
        expect(evaluate([p, standby(pg2, ["pg1"])], "pg1")).toEqual([]);
    });

    it("is healthy, with warnings only, for an orphan slot and a slot beyond max_wal_size", () => {
        const p = primary(pg1, ["pg2"], {
            slots: [
                slotRowFx("pg2", { wal_status: "extended", retained_bytes: "2147483648" }),
                slotRowFx("old", { active: false, retained_bytes: "33554432" }),
            ],
        });
        const report = buildReport([p, standby(pg2, ["pg1"])], "pg1");
        expect(report.healthy).toBe(true);
        expect(report.findings.map((f) => [f.severity, f.check])).toEqual([
            ["warning", "slot-orphan"],
            ["warning", "slot-wal"],
        ]);
        expect(report.findings[0].message).toMatch(/slot old on pg1 belongs to no server.*32\.0 MB.*pg_drop_replication_slot\('old'\)/);
    });
});

describe("each unhealthy condition produces its finding", () => {
    it("a server that does not answer", () => {
        const probes = [
            primary(pg1, ["pg2"], { replication: [], slots: [slotRowFx("pg2", { active: false, retained_bytes: "65536" })] }),
            unreachableProbe(pg2, "connect ECONNREFUSED 192.168.77.2:15433"),
        ];
        expect(checks(probes)).toEqual([
            { check: "unreachable", server: "pg2", severity: "error" },
            { check: "not-streaming", server: "pg2", severity: "error" },
            { check: "slot-inactive", server: "pg2", severity: "error" },
        ]);
        expect(messages(probes)).toMatch(/pg2 \(node node-b\) does not answer at 192\.168\.77\.2:15433: connect ECONNREFUSED/);
        expect(messages(probes)).toMatch(/slot pg2 on pg1 is not active.*64\.0 kB/);
        expect(buildReport(probes, "pg1").servers[1]).toMatchObject({ role: "down", stream: null });
    });

    it("a server without a published port (status cannot vouch for it)", () => {
        const probes = [primary(pg1, ["pg3"]), unreachableProbe(T("pg3", "node-b"))];
        expect(checks(probes)).toEqual([{ check: "unreachable", server: "pg3", severity: "error" }]);
        expect(messages(probes)).toMatch(/pg3 \(node node-b\): not reachable from here \(no published port\)/);
    });

    it("no primary", () => {
        const probes = [standby(pg1, ["pg2"]), standby(pg2, ["pg1"], { server: { receiver_status: "waiting" } })];
        expect(checks(probes)).toEqual([{ check: "primary-count", server: null, severity: "error" }]);
        expect(messages(probes)).toMatch(/no primary: pg1, pg2 are standbys/);
        expect(messages([unreachableProbe(pg1, "timeout"), unreachableProbe(pg2, "timeout")])).toMatch(/no primary: no server answers/);
    });

    it("two primaries", () => {
        const probes = [
            primary(pg1, ["pg2"], { replication: [], slots: [slotRowFx("pg2", { active: false })] }),
            primary(pg2, ["pg1"], { replication: [], slots: [slotRowFx("pg1", { active: false })] }),
        ];
        const found = checks(probes);
        expect(found).toEqual([{ check: "primary-count", server: null, severity: "error" }]);
        expect(messages(probes)).toMatch(/more than one server is primary \(pg1, pg2\)/);
        expect(buildReport(probes, "pg1")).toMatchObject({ healthy: false, primary: null });
    });

    it("a primary other than the declared one", () => {
        const probes = [standby(pg1, ["pg2"]), primary(pg2, ["pg1"])];
        expect(checks(probes, "pg1")).toEqual([{ check: "declared-primary", server: "pg2", severity: "error" }]);
        expect(messages(probes, "pg1")).toMatch(/pg2 is primary, but the stack declares pg1/);
        expect(evaluate(probes, "pg2")).toEqual([]);
        expect(evaluate(probes, null)).toEqual([]);
    });

    it("a server answering under another name (wrong address or port)", () => {
        const wrong = serverProbe(pg2, { server: primaryRow("pg1"), replication: [replRow("pg2")], slots: [slotRowFx("pg2")], archiver: archiverFx() });
        const found = checks([primary(pg1, ["pg2"]), wrong]);
        expect(found[0]).toEqual({ check: "identity", server: "pg2", severity: "error" });
        expect(found.map((f) => f.check)).not.toContain("primary-count");
        expect(messages([primary(pg1, ["pg2"]), wrong])).toMatch(/192\.168\.77\.2:15433 answers as 'pg1', not as pg2/);
    });

    it("a standby that is not streaming (catching up, or not connected)", () => {
        const catchup = [
            primary(pg1, ["pg2"], { replication: [replRow("pg2", { state: "catchup" })] }),
            standby(pg2, ["pg1"], { server: { receiver_status: "streaming" } }),
        ];
        expect(checks(catchup)).toEqual([{ check: "not-streaming", server: "pg2", severity: "error" }]);
        expect(messages(catchup)).toMatch(/pg2 does not stream from pg1 \(state catchup; its WAL receiver is streaming\)/);
        const gone = [
            primary(pg1, ["pg2"], { replication: [], slots: [slotRowFx("pg2", { active: false })] }),
            standby(pg2, ["pg1"], { server: { receiver_status: null } }),
        ];
        expect(checks(gone).map((f) => f.check)).toEqual(["not-streaming", "slot-inactive"]);
        expect(messages(gone)).toMatch(/pg2 does not stream from pg1 \(not connected; it has no WAL receiver running\)/);
    });

    it("a standby without a slot on the primary", () => {
        const probes = [primary(pg1, ["pg2"], { slots: [] }), standby(pg2, ["pg1"])];
        expect(checks(probes)).toEqual([{ check: "slot-missing", server: "pg2", severity: "error" }]);
        expect(messages(probes)).toMatch(/pg1 has no replication slot for pg2/);
    });

    it("a standby streaming without its slot (the slot inactive)", () => {
        const probes = [primary(pg1, ["pg2"], { slots: [slotRowFx("pg2", { active: false })] }), standby(pg2, ["pg1"])];
        expect(checks(probes)).toEqual([{ check: "slot-inactive", server: "pg2", severity: "error" }]);
    });

    for (const walStatus of ["lost", "unreserved"]) {
        it(`a slot whose wal_status is ${walStatus}`, () => {
            const probes = [primary(pg1, ["pg2"], { slots: [slotRowFx("pg2", { wal_status: walStatus })] }), standby(pg2, ["pg1"])];
            expect(checks(probes)).toEqual([{ check: "slot-wal", server: "pg1", severity: "error" }]);
            expect(messages(probes)).toMatch(new RegExp(`slot pg2 on pg1 .*wal_status ${walStatus}`));
        });
    }

    it("a lost slot on a standby (it would serve after a switchover)", () => {
        const probes = [primary(pg1, ["pg2"]), standby(pg2, ["pg1"], { slots: [slotRowFx("pg1", { active: false, wal_status: "lost" })] })];
        expect(checks(probes)).toEqual([{ check: "slot-wal", server: "pg2", severity: "error" }]);
    });

    it("a failing archiver: the last failure is newer than the last success", () => {
        const failing = { failed_count: "7", last_failed_wal: "000000010000000000000005", last_failed_time: new Date("2025-01-01T10:00:05Z") };
        const probes = [primary(pg1, ["pg2"]), standby(pg2, ["pg1"], { archiver: failing })];
        expect(checks(probes)).toEqual([{ check: "archiver-failing", server: "pg2", severity: "error" }]);
        expect(messages(probes)).toMatch(
            /the archiver of pg2 is failing: 000000010000000000000005 failed at 2025-01-01T10:00:05\.000Z, last success 000000010000000000000004.*7 failures/,
        );
    });

    it("a failing archiver that never archived anything", () => {
        const probes = [
            primary(pg1, [], {
                archiver: {
                    last_archived_wal: null,
                    last_archived_time: null,
                    archived_count: "0",
                    failed_count: "2",
                    last_failed_wal: "000000010000000000000001",
                    last_failed_time: new Date(),
                },
            }),
        ];
        expect(checks(probes)).toEqual([{ check: "archiver-failing", server: "pg1", severity: "error" }]);
        expect(
            archiverFailing({ archivedCount: 0, lastArchivedWal: null, lastArchivedTime: null, failedCount: 0, lastFailedWal: null, lastFailedTime: null }),
        ).toBe(false);
    });

    it("reports every problem at once, each naming its server", () => {
        const probes = [
            primary(pg1, ["pg2", "pg3"], {
                replication: [replRow("pg2", { state: "catchup" })],
                slots: [slotRowFx("pg2", { wal_status: "unreserved" })],
                archiver: { last_failed_time: new Date("2025-01-02T00:00:00Z"), last_failed_wal: "x", failed_count: "1" },
            }),
            standby(pg2, ["pg1", "pg3"]),
            unreachableProbe(pg3, "timeout expired"),
        ];
        expect(checks(probes).map((f) => `${f.check} ${f.server}`)).toEqual([
            "unreachable pg3",
            "not-streaming pg2",
            "not-streaming pg3",
            "slot-missing pg3",
            "slot-wal pg1",
            "archiver-failing pg1",
        ]);
        expect(buildReport(probes, "pg1").healthy).toBe(false);
    });
});
