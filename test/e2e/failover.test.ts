// Failover, fencing and rejoin through the program (stack "labfo": fo1 on node-a, fo2 on node-b),
// with a writer committing every 10 ms through a libpq multi-host connection and a watch asking
// both servers, every ≤ 20 ms, whether they are writable:
//
//  1. fo2 is primary; its node dies (scripts/lab.sh stop-node b: a power cut) while fo1 lags
//     behind; `pgha:primary fo1` + `pgha:lost ["fo2"]` and apply → fo1 promoted, the writer goes
//     on there; the commits fo1 never received are lost (asynchronous replication), every other
//     acknowledged commit is on fo1;
//  2. node-b returns → fo2 starts fenced, read-only, never writable;
//  3. `pgha:lost []` and apply → fo2 rewound with pg_rewind, streams from fo1 on its timeline, has
//     the rows written on fo1 after the failover;
//  4. the same once more, with the WAL pg_rewind needs gone from fo2 → a fresh copy, the old data
//     directory kept aside in the volume.
// At no sampled instant are two servers writable.
//
// The writer and the watch run in this process, so the engine and lab.sh run as child processes
// without blocking it (spawn, not spawnSync): they keep committing and sampling during every step.
// Stopping node-b interrupts whatever else runs there: run this file alone (the e2e suite does).

import { spawnSync } from "child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lab, run, type Run, Watch } from "./faults";
import { cleanLab, engineAsync, ENGINES, phase, query, stateFile, waitFor } from "./lab";
import { changes, commandLog, parsePreview } from "./pulumi";
import { multiHostConninfo, Writer, WriterReport } from "./traffic";

const STACK = "labfo";
const NETWORK = "pgha_fo";
const SERVERS = ["fo1", "fo2"];
const TABLE = "fo_writes";
const state = stateFile("failover");
const config = (primary: string, lost: string[]) => ["--set", `pgha:primary=${JSON.stringify(primary)}`, "--set", `pgha:lost=${JSON.stringify(lost)}`];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The real `pulumi` (up, preview, destroy) on the labfo stack, without blocking; fails on error. */
async function engine(verb: "up" | "preview" | "destroy", extra: string[] = []): Promise<Run> {
    try {
        return await engineAsync(verb, STACK, state, extra);
    } catch (e) {
        // What swarm says about the servers' tasks, and the last words of the containers of tasks
        // that ended: the cause of a failed service update is there, not in the provider's error.
        throw new Error(`${(e as Error).message}\n--- swarm's view ---\n${SERVERS.map(taskReport).join("\n")}`, { cause: e });
    }
}

function taskReport(service: string): string {
    const lines: string[] = [];
    const sh = (args: string[]) => {
        const r = spawnSync("docker", ["-H", ENGINES["node-a"], ...args], { encoding: "utf8" });
        return `${r.stdout}${r.stderr}`.trim();
    };
    lines.push(sh(["service", "ps", "--no-trunc", service]));
    for (const task of sh(["service", "ps", "-q", "--no-trunc", service]).split("\n").filter(Boolean)) {
        const info = sh([
            "inspect",
            "--format",
            "{{.NodeID}} {{.Status.State}} {{.Status.Err}} {{.Status.ContainerStatus.ContainerID}} {{.Status.ContainerStatus.ExitCode}}",
            task,
        ]);
        lines.push(`task ${task}: ${info}`);
        const container = info.split(" ")[3];
        if (container && /^[0-9a-f]{12,}$/.test(container)) {
            for (const engineHost of Object.values(ENGINES)) {
                const r = spawnSync("docker", ["-H", engineHost, "logs", "--tail", "15", container], { encoding: "utf8" });
                if (r.status === 0)
                    lines.push(`  logs of ${container.slice(0, 12)} (${engineHost}):\n${`${r.stdout}${r.stderr}`.trim().replace(/^/gm, "    ")}`);
            }
        }
    }
    return lines.join("\n");
}

/** What a preview changes other than "same": ["replace fo2-rejoin", ...], sorted. */
async function planned(extra: string[]): Promise<string[]> {
    const plan = await engine("preview", [...extra, "--json"]);
    return changes(parsePreview(plan.stdout).steps);
}

/** Prints what the operations said in an engine run (the proof's log). */
function show(what: string, r: Run, ...commands: string[]): void {
    for (const c of commands) {
        const lines = opLines(r, c)
            .split("\n")
            .filter((l) => l && !/^pgha: \w+: pg_(basebackup|rewind): +\d+\/\d+ kB/.test(l));
        console.log(lines.map((l) => `[e2e]   ${what} ${c} | ${l}`).join("\n"));
    }
}

/** Lines one operation (a Command, by name) logged during a CLI run (see commandLog). */
function opLines(r: Run, command: string): string {
    return commandLog(r.stderr, command).join("\n");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

async function recovering(server: string): Promise<boolean> {
    return (await query(server, "SELECT pg_is_in_recovery() AS r"))[0].r;
}

async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}

/** The primary's timeline: its current WAL file's (pg_control_checkpoint() lags until a checkpoint). */
async function primaryTimeline(server: string): Promise<number> {
    return Number((await query(server, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS t"))[0].t);
}

/** The timeline a standby streams on. */
async function receivedTimeline(server: string): Promise<number> {
    return Number((await query(server, "SELECT received_tli FROM pg_stat_wal_receiver"))[0]?.received_tli);
}

/** Of `ids`, those present in the table on `server`. */
async function present(server: string, ids: number[]): Promise<Set<number>> {
    const rows = await query<{ id: string }>(server, `SELECT id FROM ${TABLE} WHERE id = ANY($1::bigint[])`, [ids]);
    return new Set(rows.map((r) => Number(r.id)));
}

/** Waits until `standby` has replayed everything `primary` has written so far. */
async function caughtUp(primary: string, standby: string): Promise<void> {
    const [{ lsn }] = await query(primary, "SELECT pg_current_wal_lsn()::text AS lsn");
    await waitFor(
        `${standby} replaying ${lsn}`,
        async () => (await query(standby, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok", [lsn]))[0].ok,
        60_000,
        100,
    );
}

// The writer inserts into a table whose key is the commit's microsecond timestamp: unique across
// timelines (a sequence on a promoted standby may hand out again the numbers the lost primary used).
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${TABLE} (id bigint PRIMARY KEY DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, at timestamptz NOT NULL DEFAULT clock_timestamp())`;
// Through both published ports; a connection to a node that is gone fails within 1 s (no RST
// comes from a dead node: without tcp_user_timeout a commit would wait for TCP's own timeout).
const WRITER_CONNINFO = multiHostConninfo(
    SERVERS,
    "target_session_attrs=read-write tcp_user_timeout=1000 keepalives_idle=1 keepalives_interval=1 keepalives_count=1",
);

let writer: Writer | undefined;
let watch: Watch | undefined;

async function stopTraffic(): Promise<{ report: WriterReport; watch: Watch }> {
    const report = await writer!.stop();
    await watch!.stop();
    const w = watch!;
    writer = undefined;
    watch = undefined;
    return { report, watch: w };
}

/**
 * fo2 primary (planned switchover), the writer committing on it; fo1 stops receiving WAL (a lagging
 * standby), fo2 commits `lagCommits` more, then node-b dies; failover to fo1. Returns how many
 * commits the writer had acknowledged before the failover (the first ones of its list).
 */
async function loseNodeB(lagCommits: number): Promise<{ ackedBefore: number; tFailover: number; failover: Run }> {
    await waitFor("fo2 streaming from fo1", () => streaming("fo1", "fo2"), 120_000, 100);
    const out = await phase("switchover to fo2 (primary on node-b)", () => engine("up", config("fo2", [])));
    show("switchover", out, "pgha-switchover");
    expect(out.stderr).toMatch(/switchover done: fo2 is primary/);
    await waitFor("fo1 streaming from fo2", () => streaming("fo2", "fo1"), 60_000, 100);
    // fo2 has run as primary for a while: it has a checkpoint on its own timeline. (One that dies
    // before its first checkpoint after a promotion cannot be rewound by PostgreSQL 15's pg_rewind,
    // which takes the target's timeline from that checkpoint: the rejoin then copies afresh.)
    await query("fo2", "CHECKPOINT");
    const from = writer!.count;
    await waitFor("the writer committing on fo2", () => writer!.count >= from + 30, 30_000, 10);

    // fo1 falls behind: its WAL receiver stops (primary_conninfo emptied and reloaded).
    await query("fo1", "ALTER SYSTEM SET primary_conninfo = ''");
    await query("fo1", "SELECT pg_reload_conf()");
    await waitFor(
        "fo1's WAL receiver to stop",
        async () => Number((await query("fo1", "SELECT count(*) AS n FROM pg_stat_wal_receiver"))[0].n) === 0,
        15_000,
        20,
    );
    const lagFrom = writer!.count;
    await waitFor(`${lagCommits} commits on fo2 only`, () => writer!.count >= lagFrom + lagCommits, 15_000, 5);

    await phase("node-b goes away (lab.sh stop-node b)", () => lab("stop-node", "b"));
    // fo1 is read-only now: no commit is acknowledged from here until it is promoted
    const ackedBefore = writer!.count;
    await expect(query("fo2", "SELECT 1")).rejects.toThrow();

    // The preview of a failover: the lost server's rejoin (no-op) and fenced spec, the switchover;
    // and the day-2 operations whose inputs name the lost list (they leave fo2 alone, nothing to do).
    expect(await planned(config("fo1", ["fo2"]))).toEqual([
        "replace fo2-rejoin",
        "replace pgha-switchover",
        "update fo2",
        "update fo2-reload",
        "update pgha-passwords",
        "update pgha-roll",
    ]);
    const tFailover = Date.now();
    const failover = await phase("failover: pgha:primary fo1, pgha:lost [fo2], apply", () => engine("up", config("fo1", ["fo2"])));
    show("failover", failover, "pgha-switchover", "fo2-rejoin");
    expect(opLines(failover, "pgha-switchover")).toMatch(/fo2: lost \(pgha:lost\), not contacted/);
    expect(opLines(failover, "pgha-switchover")).toMatch(/failover done: fo1 is primary/);
    expect(opLines(failover, "fo2-rejoin")).toMatch(/fo2 is declared lost \(pgha:lost\): not contacted/);
    expect(await recovering("fo1")).toBe(false);
    // fo1's own settings again (ignored while it is primary; symmetric when it is a standby again)
    await query("fo1", "ALTER SYSTEM RESET primary_conninfo");
    await query("fo1", "SELECT pg_reload_conf()");
    const after = writer!.count;
    await waitFor("the writer committing on fo1", () => writer!.count >= after + 30, 30_000, 10);
    console.log(`[e2e] writes resumed on fo1 ${((Date.now() - tFailover) / 1000).toFixed(1)} s after the failover began`);
    return { ackedBefore, tFailover, failover };
}

/** node-b returns; fo2 starts from its fenced spec: read-only, and never writable. */
async function nodeBReturnsFenced(tFailover: number): Promise<string> {
    await phase("node-b returns (lab.sh start-node b)", () => lab("start-node", "b"));
    // (any answer: a fenced server that came back writable must fail the test, not be waited for)
    const answer = () => waitFor("fo2 to answer", async () => ({ inRecovery: await recovering("fo2") }), 60_000, 200);
    const back = await phase("fo2 back, fenced", async () => {
        try {
            return await answer();
        } catch {
            // Seen here once: swarm left the task it created while the node was down Pending ("no
            // suitable node") after the node was Ready again; an operator forces it.
            console.log(`[e2e] fo2 did not come back: ${(await run("docker", ["service", "ps", "fo2", "--no-trunc"])).stdout}`);
            console.log("[e2e] docker service update --force fo2 (swarm left its task pending)");
            await run("docker", ["service", "update", "--force", "--detach", "fo2"]);
            return await answer();
        }
    });
    expect(back.inRecovery).toBe(true);
    const container = await fo2Container();
    expect(await envOf(container)).toContain("PGHA_FENCED=1");
    const logs = (await run("docker", ["-H", ENGINES["node-b"], "logs", container])).stderr;
    expect(logs).toMatch(/FENCED: starting read-only as a standby/);
    await sleep(2000); // it stays read-only (the watch samples it)
    expect(await recovering("fo2")).toBe(true);
    // fo2 went on committing after fo1 stopped receiving: its timeline diverged, it cannot follow fo1
    expect(await streaming("fo1", "fo2")).toBe(false);
    expect(watch!.writableSince("fo2", tFailover)).toBe(0);
    return container;
}

/** docker against node-b's engine, without blocking the event loop (the writer and the watch run). */
async function dockerB(args: string[]): Promise<string> {
    const r = await run("docker", ["-H", ENGINES["node-b"], ...args]);
    if (r.status !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
    return r.stdout.trim();
}

/** fo2's running container on node-b. */
async function fo2Container(): Promise<string> {
    const id = (await dockerB(["ps", "-q", "--filter", "label=com.docker.swarm.service.name=fo2", "--filter", "status=running"])).split("\n")[0];
    if (!id) throw new Error("no running container of fo2 on node-b");
    return id;
}

const envOf = async (container: string) => (await dockerB(["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", container])).split("\n");

/** After a rejoin: fo2's service restarted without PGHA_FENCED, and streams from fo1 as a standby. */
async function unfencedAndStreaming(): Promise<void> {
    await phase("fo2 restarted without the fence, streaming", async () => {
        await waitFor("fo2's container without PGHA_FENCED", async () => !(await envOf(await fo2Container())).includes("PGHA_FENCED=1"), 120_000, 200);
        await waitFor("fo2 streaming from fo1", () => streaming("fo1", "fo2"), 120_000, 100);
    });
    expect(await recovering("fo2")).toBe(true);
}

/** What the writer's acknowledged commits say about the failover: lost ones, and the rest kept. */
async function checkFailoverData(acked: number[], ackedBefore: number): Promise<number[]> {
    const before = acked.slice(0, ackedBefore);
    const onFo1 = await present("fo1", before);
    const kept = before.filter((id) => onFo1.has(id));
    const last = Math.max(...kept);
    const lost = before.filter((id) => !onFo1.has(id));
    console.log(
        `[e2e] failover: ${kept.length} of the ${before.length} commits acknowledged before it are on fo1, ${lost.length} lost (acknowledged by fo2 after the last one fo1 received)`,
    );
    // every commit acknowledged up to the last one fo1 received is there; only later ones are lost
    expect(lost.every((id) => id > last)).toBe(true);
    return lost;
}

beforeAll(async () => {
    await phase("node-b up (idempotent; a failed earlier run may have left it down)", () => lab("start-node", "b"));
    await phase("clean leftovers of earlier runs", () => cleanLab(SERVERS, NETWORK));
    await phase("apply the labfo stack from empty (fo1 primary)", () => engine("up", config("fo1", [])));
    await waitFor("fo2 streaming from fo1", () => streaming("fo1", "fo2"), 120_000, 200);
    await query("fo1", CREATE_TABLE);
}, 600_000);

afterAll(async () => {
    if (writer) await writer.stop();
    if (watch) await watch.stop();
    await phase("node-b up again (if a step failed while it was down)", () => lab("start-node", "b"));
    await phase("destroy and remove the volumes", async () => {
        await engine("destroy", ["--unprotect"]);
        cleanLab(SERVERS, NETWORK);
    });
}, 600_000);

describe("failover, fencing and rejoin by `pulumi up`", () => {
    it("fails over when the primary's node is gone, keeps the old primary read-only when it returns, and rejoins it with pg_rewind", async () => {
        writer = new Writer(WRITER_CONNINFO, TABLE);
        watch = new Watch(SERVERS);
        await waitFor("the writer's first commits", () => writer!.count >= 20, 20_000, 10);

        const { ackedBefore, tFailover } = await loseNodeB(20);
        await nodeBReturnsFenced(tFailover);

        // Rejoin: fo2 leaves pgha:lost. Preview: its rejoin runs, its fence goes, the switchover
        // sees the new lost list (and finds fo1 primary already).
        expect(await planned(config("fo1", []))).toEqual([
            "replace fo2-rejoin",
            "update fo2",
            "update fo2-reload",
            "update pgha-passwords",
            "update pgha-roll",
            "update pgha-switchover",
        ]);
        const rejoin = await phase("rejoin: pgha:lost [], apply", () => engine("up", config("fo1", [])));
        show("rejoin", rejoin, "fo2-rejoin", "pgha-switchover");
        const ops = opLines(rejoin, "fo2-rejoin");
        expect(ops).toMatch(/pg_rewind: servers diverged at WAL location/);
        expect(ops).toMatch(/fo2 rewound with pg_rewind and streaming from the primary/);
        expect(opLines(rejoin, "pgha-switchover")).toMatch(/fo1 is the primary already: nothing to do/);
        // the fence is lifted from the spec: the service restarts once, as a standby
        await unfencedAndStreaming();
        expect(await recovering("fo2")).toBe(true);
        expect(await receivedTimeline("fo2")).toBe(await primaryTimeline("fo1"));
        const more = writer.count;
        await waitFor("more commits on fo1", () => writer!.count >= more + 30, 30_000, 10);

        const { report, watch: w } = await stopTraffic();
        console.log(
            `[e2e] ${report.acked.length} commits acknowledged, ${report.inDoubt} in doubt; write gaps > 50 ms: ${report.gaps.map((g) => g.ms).join(", ")} ms; ` +
                `${w.samples} samples (longest interval ${w.maxIntervalMs} ms), ${w.twoWritable.length} with two writable servers`,
        );
        const lost = await checkFailoverData(report.acked, ackedBefore);
        expect(lost.length).toBeGreaterThanOrEqual(20); // the commits fo1 never received
        // every commit acknowledged after the failover is on fo1, and on fo2 once it caught up;
        // the lost ones are on neither (pg_rewind discarded fo2's diverged part)
        const afterFailover = report.acked.slice(ackedBefore);
        expect((await present("fo1", afterFailover)).size).toBe(afterFailover.length);
        await caughtUp("fo1", "fo2");
        expect((await present("fo2", afterFailover)).size).toBe(afterFailover.length);
        expect((await present("fo2", lost)).size).toBe(0);
        const [{ n }] = await query("fo1", `SELECT count(*)::int AS n FROM ${TABLE}`);
        expect(n - (report.acked.length - lost.length)).toBeLessThanOrEqual(report.inDoubt);
        // never two writable servers; fo2 never writable after the failover began
        expect(w.twoWritable).toEqual([]);
        expect(w.writableSince("fo2", tFailover)).toBe(0);
        // the watch really sampled all along (nothing blocked this process for long)
        expect(w.samples).toBeGreaterThan(((Date.now() - w.started) / 20) * 0.5);
        expect(w.maxIntervalMs).toBeLessThan(250);
    }, 600_000);

    it("copies the primary afresh when pg_rewind is impossible, keeping the old data directory aside", async () => {
        writer = new Writer(WRITER_CONNINFO, TABLE);
        watch = new Watch(SERVERS);
        await waitFor("the writer's first commits", () => writer!.count >= 20, 20_000, 10);
        const { ackedBefore, tFailover } = await loseNodeB(10);
        const container = await nodeBReturnsFenced(tFailover);

        // The WAL pg_rewind reads on fo2 is gone (as when an old primary ran on long enough to
        // recycle it, and its archive was pruned past it): stop fo2 (held, as an operation does)
        // and remove its WAL segments, from pg_wal and from its archive (pg_rewind restores
        // what pg_wal lacks from there: --restore-target-wal).
        const sabotage = await run("docker", [
            "-H",
            ENGINES["node-b"],
            "exec",
            "-u",
            "postgres",
            container,
            "sh",
            "-c",
            "touch /dev/shm/pgha/hold && pg_ctl stop -D /var/lib/pgha/data/pgdata -m fast -w >/dev/null && " +
                "find /var/lib/pgha/data/pgdata/pg_wal /var/lib/pgha/archive/wal -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' -print -delete",
        ]);
        expect(sabotage.status, sabotage.stderr).toBe(0);
        expect(sabotage.stdout.trim().split("\n").length).toBeGreaterThan(0);
        const rejoin = await phase("rejoin without the WAL pg_rewind needs: a fresh copy", () => engine("up", config("fo1", [])));
        show("rejoin", rejoin, "fo2-rejoin");
        const ops = opLines(rejoin, "fo2-rejoin");
        expect(ops).toMatch(/pg_rewind against fo1 failed/);
        const kept = /KEPT the old data directory as (\/var\/lib\/pgha\/data\/pgdata\.before-rejoin-\d{8}T\d{6}Z)/.exec(ops)?.[1];
        expect(kept, ops).toBeTruthy();
        expect(ops).toMatch(/fo2 copied afresh from the primary and streaming/);
        await unfencedAndStreaming();
        // the old data directory is in fo2's data volume, whole (its PG_VERSION and control file)
        const listing = await dockerB(["exec", await fo2Container(), "sh", "-c", `ls /var/lib/pgha/data; ls ${kept}`]);
        expect(listing).toContain(kept!.split("/").pop());
        expect(listing).toMatch(/PG_VERSION/);
        expect(listing).toMatch(/global/);

        const more = writer.count;
        await waitFor("more commits on fo1", () => writer!.count >= more + 30, 30_000, 10);
        const { report, watch: w } = await stopTraffic();
        console.log(
            `[e2e] ${report.acked.length} commits acknowledged, ${report.inDoubt} in doubt; ${w.samples} samples (longest interval ${w.maxIntervalMs} ms), ${w.twoWritable.length} with two writable servers`,
        );
        const lost = await checkFailoverData(report.acked, ackedBefore);
        expect(lost.length).toBeGreaterThanOrEqual(10);
        const afterFailover = report.acked.slice(ackedBefore);
        await caughtUp("fo1", "fo2");
        expect((await present("fo1", afterFailover)).size).toBe(afterFailover.length);
        expect((await present("fo2", afterFailover)).size).toBe(afterFailover.length);
        expect(w.twoWritable).toEqual([]);
        expect(w.writableSince("fo2", tFailover)).toBe(0);
        expect(w.maxIntervalMs).toBeLessThan(250);
    }, 600_000);
});
