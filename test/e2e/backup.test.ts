// End-to-end backups, retention, continuous archiving across a swap and point-in-time recovery,
// all driven through the real program (stack "labbk") by config changes applied by the real
// Pulumi CLI
// on the two-node lab: bk1 on node-a (primary at first), bk2 on node-b.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, containerOf, docker, engine, engineAsync, ENGINES, mustEngine, phase, query, stateFile, waitFor } from "./lab";
import { multiHostConninfo, Writer } from "./traffic";

const STACK = "labbk";
const NETWORK = "pgha_bk";
const SERVERS = ["bk1", "bk2"];
const NODE: Record<string, string> = { bk1: "node-a", bk2: "node-b" };
const ARCHIVE = "/var/lib/pgha/archive";
const DATA = "/var/lib/pgha/data";
const state = stateFile("backup");
let outputs: Record<string, any> = {};

/**
 * Applies the stack with these config overrides (JSON values); returns the stack outputs. The CLI
 * runs without blocking this process, so that a writer running meanwhile keeps being read.
 */
async function up(sets: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const extra = Object.entries(sets).flatMap(([k, v]) => ["--set", `pgha:${k}=${JSON.stringify(v)}`]);
    const r = await engineAsync("up", STACK, state, extra);
    outputs = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
    return outputs;
}

/** A shell command in a server's container (as root). */
function sh(server: string, script: string): string {
    return docker(ENGINES[NODE[server]], ["exec", containerOf(server, NODE[server]), "sh", "-c", script]);
}
function ls(server: string, dir: string): string[] {
    const out = sh(server, `ls -A ${dir} 2>/dev/null || true`);
    return out ? out.split("\n") : [];
}
const segments = (names: string[]) => names.filter((n) => /^[0-9A-F]{24}$/.test(n));
const segno = (wal: string) => wal.slice(8);

async function one<T = any>(server: string, sql: string): Promise<T> {
    return (await query(server, sql))[0];
}
async function insert(server: string, phaseName: string, n: number): Promise<void> {
    await query(server, "insert into pitr (phase) select $1 from generate_series(1, $2)", [phaseName, n]);
}
async function counts(server: string): Promise<Record<string, number>> {
    const rows = await query<{ phase: string; n: string }>(server, "select phase, count(*) as n from pitr group by phase");
    return Object.fromEntries(rows.map((r) => [r.phase, Number(r.n)]));
}
/** Switches the primary to a new WAL file and waits until that file is in both archives. */
async function archiveNow(primary: string): Promise<string> {
    const { walfile } = await one(primary, "select pg_walfile_name(pg_switch_wal()) as walfile");
    for (const s of SERVERS) await waitFor(`${walfile} in ${s}'s archive`, () => ls(s, `${ARCHIVE}/wal`).includes(walfile), 60_000, 250);
    return walfile;
}
async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "select state from pg_stat_replication where application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}
async function timelineOf(server: string): Promise<number> {
    return Number((await one(server, "select timeline_id from pg_control_checkpoint()")).timeline_id);
}

beforeAll(async () => {
    await phase("backup: clean leftovers of earlier runs", () => cleanLab(SERVERS, NETWORK));
    await phase("backup: apply the labbk stack from empty", () => up());
    await phase("backup: both servers accept connections, bk2 streams", () =>
        waitFor("bk2 streaming from bk1", async () => (await one("bk2", "select 1 as ok")).ok === 1 && (await streaming("bk1", "bk2")), 120_000, 500),
    );
    await query("bk1", "create table pitr (id bigserial primary key, phase text not null, at timestamptz not null default clock_timestamp())");
}, 900_000);

afterAll(async () => {
    if (process.env.PGHA_E2E_KEEP) return; // leave the stack for a post-mortem
    await phase("backup: destroy (unprotected) and remove the volumes", () => {
        mustEngine("destroy", STACK, state, ["--unprotect"]);
        cleanLab(SERVERS, NETWORK);
    });
}, 300_000);

describe("backups, retention, archiving across a swap, point-in-time recovery (labbk)", () => {
    it("takes a base backup on the standby when backup.id is set, with its metadata, and lists it", async () => {
        await insert("bk1", "before-b1", 100);
        expect(outputs.backups).toEqual([]);
        // With a writer committing every 10 ms through libpq (multi-host, read-write) meanwhile.
        await query("bk1", "create table backup_writes (id bigserial primary key)");
        const writer = new Writer(multiHostConninfo(SERVERS), "backup_writes");
        await waitFor("the writer's first commits", () => writer.count >= 20, 10_000, 20);
        let report: Awaited<ReturnType<Writer["stop"]>>;
        try {
            await phase("backup: pulumi up with backup.id b1", () => up({ backup: { id: "b1", keep: 2 } }));
        } finally {
            report = await writer.stop();
        }
        const w = await one(
            "bk1",
            `select count(*)::int as n, count(*) filter (where id = any('{${report.acked.join(",")}}'::bigint[]))::int as acked from backup_writes`,
        );
        expect(w.acked).toBe(report.acked.length);
        expect(w.n - report.acked.length).toBeLessThanOrEqual(report.inDoubt);
        expect(report.inDoubt).toBe(0); // a backup never interrupts the primary's writers
        console.log(`[e2e] backup: ${report.acked.length} commits acknowledged during the backup, all on the primary`);
        expect(outputs.backups).toHaveLength(1);
        const b1 = outputs.backups[0];
        expect(b1).toMatchObject({ label: "b1", server: "bk2", archiveVolume: "bk2-archive", backupFrom: "standby", timeline: 1, stopTimeline: 1 });
        expect(b1.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
        expect(b1.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
        expect(b1.startWal).toMatch(/^00000001[0-9A-F]{16}$/);
        expect(Date.parse(b1.startTime)).toBeLessThanOrEqual(Date.parse(b1.stopTime));
        expect(Date.now() - Date.parse(b1.stopTime)).toBeLessThan(10 * 60_000);
        expect((await one("bk1", `select '${b1.stopLsn}'::pg_lsn >= '${b1.startLsn}'::pg_lsn as ok`)).ok).toBe(true);
        expect(b1.bytes).toBeGreaterThan(1_000_000);

        // In the standby's archive volume, nowhere else; the metadata agrees with backup_label.
        expect(ls("bk2", `${ARCHIVE}/backups/b1`).sort()).toEqual(["backup.json", "backup_manifest", "base.tar.gz", "pg_wal.tar.gz"]);
        expect(ls("bk1", `${ARCHIVE}/backups`)).toEqual([]);
        const label = sh("bk2", `tar -xzOf ${ARCHIVE}/backups/b1/base.tar.gz backup_label`);
        expect(label).toContain(`START WAL LOCATION: ${b1.startLsn} (file ${b1.startWal})`);
        expect(label).toContain("LABEL: b1");
        expect(label).toContain("BACKUP FROM: standby");
        expect(label).toContain("START TIMELINE: 1");
        expect(JSON.parse(sh("bk2", `cat ${ARCHIVE}/backups/b1/backup.json`))).toEqual(
            Object.fromEntries(Object.entries(b1).filter(([k]) => k !== "archiveVolume")),
        );

        // A label is never overwritten.
        const before = sh("bk2", `md5sum ${ARCHIVE}/backups/b1/base.tar.gz`);
        expect(() => sh("bk2", "/var/lib/pgha/data/pgha/entrypoint.sh backup take b1")).toThrow(/exists already.*refusing to overwrite/);
        expect(sh("bk2", `md5sum ${ARCHIVE}/backups/b1/base.tar.gz`)).toBe(before);
    });

    it("keeps archiving into both archives across a switchover, with the new timeline's history file in both", async () => {
        await phase("backup: switchover to bk2", () => up({ backup: { id: "b1", keep: 2 }, primary: "bk2" }));
        expect((await one("bk2", "select pg_is_in_recovery() as r")).r).toBe(false);
        await waitFor("bk1 streaming from bk2", () => streaming("bk2", "bk1"), 60_000, 250);
        expect(outputs.backups.map((b: any) => b.label)).toEqual(["b1"]);
        await insert("bk2", "after-swap", 100);
        const walfile = await archiveNow("bk2");
        expect(walfile.startsWith("00000002")).toBe(true);
        for (const s of SERVERS) {
            expect(ls(s, `${ARCHIVE}/wal`), s).toContain("00000002.history");
            const a = await one(s, "select archived_count, failed_count, last_archived_wal from pg_stat_archiver");
            expect(Number(a.failed_count), `${s} failed_count`).toBe(0);
            expect(Number(a.archived_count), `${s} archived_count`).toBeGreaterThan(0);
        }
        // Both archives hold the same segments of the new timeline (each archives the full stream).
        const tl2 = (s: string) =>
            segments(ls(s, `${ARCHIVE}/wal`))
                .filter((n) => n.startsWith("00000002"))
                .sort();
        expect(tl2("bk1")).toEqual(tl2("bk2"));
    });

    it("keeps the newest `keep` backups, removes older ones and the WAL before the oldest kept, keeps history files", async () => {
        await insert("bk2", "before-b2", 100);
        await archiveNow("bk2");
        // b2: no server named, so the standby (bk1 since the swap) takes it.
        await phase("backup: pulumi up with backup.id b2", () => up({ backup: { id: "b2", keep: 2 }, primary: "bk2" }));
        const b2 = outputs.backups.find((b: any) => b.label === "b2");
        // A standby's backup starts at its last restartpoint: possibly still on timeline 1, just before the swap.
        expect(b2).toMatchObject({ server: "bk1", archiveVolume: "bk1-archive", backupFrom: "standby", stopTimeline: 2 });
        expect([1, 2]).toContain(b2.timeline);
        expect(outputs.backups.map((b: any) => b.label)).toEqual(["b1", "b2"]);

        await insert("bk2", "after-b2", 100);
        await archiveNow("bk2");
        await insert("bk2", "more", 10);
        await archiveNow("bk2");
        const older = (s: string) => segments(ls(s, `${ARCHIVE}/wal`)).filter((n) => segno(n) < segno(b2.startWal));
        for (const s of SERVERS) expect(older(s).length, `${s} holds WAL older than b2 before the retention`).toBeGreaterThan(0);

        // b3 on the primary (named): the third backup with keep 2 removes b1 and the WAL before b2.
        await phase("backup: pulumi up with backup.id b3 on bk2 (keep 2)", () => up({ backup: { id: "b3", server: "bk2", keep: 2 }, primary: "bk2" }));
        expect(outputs.backups.map((b: any) => [b.label, b.server, b.backupFrom])).toEqual([
            ["b2", "bk1", "standby"],
            ["b3", "bk2", "primary"],
        ]);
        expect(ls("bk2", `${ARCHIVE}/backups`).sort()).toEqual(["b3"]);
        expect(ls("bk1", `${ARCHIVE}/backups`).sort()).toEqual(["b2"]);
        for (const s of SERVERS) {
            const names = ls(s, `${ARCHIVE}/wal`);
            expect(older(s), `${s}: WAL older than the oldest kept backup (b2, ${b2.startWal})`).toEqual([]);
            expect(names, s).toContain("00000002.history");
            expect(
                segments(names).some((n) => segno(n) >= segno(b2.startWal)),
                s,
            ).toBe(true);
        }
        expect(ls("bk1", `${ARCHIVE}/wal`)).toContain(b2.startWal);
    });

    it("restores the cluster to a named restore point exactly: rows before it present, rows after it absent", async () => {
        await insert("bk2", "before-target", 100);
        await one("bk2", "select pg_create_restore_point('rp1')");
        await insert("bk2", "after-target", 100);
        await query("bk2", "create table after_target (x int)");
        const expected = await counts("bk2");
        delete expected["after-target"];
        const tlBefore = await timelineOf("bk2");

        // b2 is in bk1's archive (the standby): backup and missing WAL travel to the primary bk2.
        await phase("backup: pulumi up with restore { backup b2, target name rp1 }", () =>
            up({ backup: { id: "b3", server: "bk2", keep: 2 }, primary: "bk2", restore: { backup: "b2", target: { name: "rp1" }, confirm: "b2" } }),
        );
        expect((await one("bk2", "select pg_is_in_recovery() as r")).r).toBe(false);
        expect(await counts("bk2")).toEqual(expected);
        expect((await one("bk2", "select to_regclass('after_target') as t")).t).toBeNull();
        expect(await timelineOf("bk2")).toBeGreaterThan(tlBefore);

        // The old data directories are kept aside, the standby was copied again and streams.
        for (const s of SERVERS)
            expect(
                ls(s, DATA).filter((n) => n.startsWith("pgdata.before-restore-")),
                s,
            ).toHaveLength(1);
        await waitFor("bk1 streaming from the restored bk2", () => streaming("bk2", "bk1"), 60_000, 250);
        await insert("bk2", "after-restore", 10);
        await waitFor("the new rows on bk1", async () => (await counts("bk1"))["after-restore"] === 10, 10_000, 100);
        expect(await counts("bk1")).toEqual({ ...expected, "after-restore": 10 });
        const a = await one("bk2", "select failed_count, last_failed_wal from pg_stat_archiver");
        expect(Number(a.failed_count), `bk2's archiver failed on ${a.last_failed_wal}`).toBe(0);
    });

    it("leaves the cluster as it was when the target is never reached", async () => {
        const expected = await counts("bk2");
        const timeline = await timelineOf("bk2");
        const r = await phase("backup: pulumi up with restore { backup b3, target name no-such-point } (fails)", () =>
            engine("up", STACK, state, [
                "--set",
                `pgha:backup=${JSON.stringify({ id: "b3", server: "bk2", keep: 2 })}`,
                "--set",
                'pgha:primary="bk2"',
                "--set",
                `pgha:restore=${JSON.stringify({ backup: "b3", target: { name: "no-such-point" }, confirm: "b3" })}`,
            ]),
        );
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/recovery ended before configured recovery target was reached/);
        expect(r.stderr).toMatch(/every server was resumed with its data as it was/);
        await waitFor("bk2 writable again", async () => (await one("bk2", "select pg_is_in_recovery() as r")).r === false, 60_000, 250);
        await waitFor("bk1 streaming again", () => streaming("bk2", "bk1"), 60_000, 250);
        expect(await counts("bk2")).toEqual(expected);
        expect(await timelineOf("bk2")).toBe(timeline);
        for (const s of SERVERS)
            expect(
                ls(s, DATA).filter((n) => n.startsWith("pgdata.before-restore-")),
                s,
            ).toHaveLength(1);
        expect(ls("bk2", DATA)).not.toContain("pgdata.restore");
        expect(ls("bk2", DATA)).not.toContain("pgha-restore-wal");
    });

    it("restores to a time, from a backup on the primary, across the timeline the first restore created", async () => {
        await insert("bk2", "before-time", 50);
        const { t } = await one("bk2", "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') as t");
        await new Promise((r) => setTimeout(r, 1100));
        await insert("bk2", "after-time", 50);
        const expected = await counts("bk2");
        delete expected["after-time"];

        // b3 was taken on timeline 2 before rp1; the target lies on the timeline the first restore made.
        await phase("backup: pulumi up with restore { backup b3, target time }", () =>
            up({ backup: { id: "b3", server: "bk2", keep: 2 }, primary: "bk2", restore: { backup: "b3", target: { time: t }, confirm: "b3" } }),
        );
        expect(await counts("bk2")).toEqual(expected);
        await waitFor("bk1 streaming from bk2", () => streaming("bk2", "bk1"), 60_000, 250);
        for (const s of SERVERS)
            expect(
                ls(s, DATA).filter((n) => n.startsWith("pgdata.before-restore-")),
                s,
            ).toHaveLength(2);
    });
});
