// Automatic failover through the program (stack "labaf": af1 on node-a, af2 on node-b, node-c a
// witness manager with no database; pgha:failover at its defaults: TTL 10 s, renew 1 s, fence 6 s),
// with a writer committing every 10 ms through a libpq multi-host connection and a watch asking
// both servers, every ≤ 20 ms, whether they are writable. In order:
//
//  1. blips: node-b (the primary's node) cut off for 3.5 s (the lab's partition and heal add
//     ~0.4 s; the agent tolerates fenceDeadline − renewInterval − ~0.3 s = 4.7 s in any phase),
//     the Raft leader's node (node-c, the witness, with its arbiter) stopped and started: no
//     failover, writes continue;
//  2. a standby's node lost (af1 primary after a planned switchover with failover armed; node-b
//     stopped): no failover, writes continue, the slot's retention bounded; node-b returns and af2
//     streams again; a switchover back to af2 (its write gap printed);
//  3. the primary's node killed (stop-node b): af1 writable within 15 s, the commits af1 never
//     received counted (asynchronous replication), never two writable servers; pulumi up with
//     the old pgha:primary does not switch back; node-b returns and af2 rejoins as a standby of
//     af1 by itself (the agent's rejoin: pg_rewind); pgha:primary af1 then agrees with no action;
//  4. the primary's node cut off while it keeps running (partition b, af2 primary again): af2
//     stops accepting writes within the fence deadline (a writer connected to it directly gets
//     errors, none commits later), af1 is promoted only after that; the partition lasts until
//     the swarm marks node-b down (and replaces af2's task); it heals and af2 rejoins as a
//     standby (its new container rewinds the diverged timeline).
// Stopping and cutting off node-b interrupts whatever else runs there: run this file alone (the
// e2e suite runs its files one at a time).

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { lab, run, Watch } from "./faults";
import { cleanLab, engineAsync, ENGINES, phase, query, stateFile, waitFor } from "./lab";
import { commandLog } from "./pulumi";
import { multiHostConninfo, Writer, WriterReport } from "./traffic";

const STACK = "labaf";
const NETWORK = "pgha_af";
const SERVERS = ["af1", "af2"];
const TABLE = "af_writes";
const state = stateFile("autofailover");
const TTL_MS = 10_000;
const FENCE_MS = 6_000;
// the network blip: 3.5 s (about 3.9 s with the lab's partition and heal), under the issue's 4 s
// and inside what the agent tolerates in any phase (fenceDeadline − renewInterval − ~0.3 s = 4.7 s)
const BLIP_MS = 3_500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const primaryConfig = (primary: string) => ["--set", `pgha:primary=${JSON.stringify(primary)}`];

// the writer connected to af2 directly in the partition proof: a table of its own, so that its
// clock-microsecond ids never collide with the multi-host writer's (its errors are the fence's)
const DIRECT_TABLE = "af_writes_direct";
const createTable = (table: string) =>
    `CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, at timestamptz NOT NULL DEFAULT clock_timestamp())`;
const OPTIONS = "tcp_user_timeout=1000 keepalives_idle=1 keepalives_interval=1 keepalives_count=1";
/** Through both published ports, to whichever is writable. */
const MULTI = multiHostConninfo(SERVERS, `target_session_attrs=read-write ${OPTIONS}`);
/** Directly to one server's published port: it commits only while that server is writable. */
const direct = (s: string) => multiHostConninfo([s], `target_session_attrs=read-write ${OPTIONS}`);

async function engine(verb: "up" | "preview" | "destroy", extra: string[] = []) {
    return engineAsync(verb, STACK, state, extra);
}

async function recovering(server: string): Promise<boolean> {
    return (await query(server, "SELECT pg_is_in_recovery() AS r"))[0].r;
}
async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}
async function present(server: string, ids: number[]): Promise<Set<number>> {
    const rows = await query<{ id: string }>(server, `SELECT id FROM ${TABLE} WHERE id = ANY($1::bigint[])`, [ids]);
    return new Set(rows.map((r) => Number(r.id)));
}
/** The lease as the swarm keeps it (the arbiter's config labels). */
async function lease(): Promise<{ holder: string; term: number }> {
    const r = await run("docker", ["config", "inspect", "--format", "{{json .Spec.Labels}}", "pgha-af-lease"]);
    const labels = JSON.parse(r.stdout || "{}") as Record<string, string>;
    return { holder: labels["pgha.lease.holder"] ?? "", term: Number(labels["pgha.lease.term"] ?? "0") };
}
/** The logs of a server's containers on a node (all of them: a fenced one restarts PostgreSQL in place). */
async function logsOf(service: string, engineHost: string): Promise<string> {
    const ids = (await run("docker", ["-H", engineHost, "ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${service}`])).stdout.trim();
    let out = "";
    for (const id of ids.split("\n").filter(Boolean)) out += (await run("docker", ["-H", engineHost, "logs", "-t", id])).stderr;
    return out;
}
const ENGINE_A = ENGINES["node-a"];
const ENGINE_B = ENGINES["node-b"];

/** What the agents and start gates said (their log lines), for the proof's log. */
async function showAgents(what: string): Promise<void> {
    for (const [s, e] of [
        ["af1", ENGINE_A],
        ["af2", ENGINE_B],
    ]) {
        const lines = (await logsOf(s, e))
            .split("\n")
            .filter((l) => /pgha: \w+: (agent|lease|FENCED|rejoin|pg_rewind)/.test(l))
            .sort();
        console.log(
            lines
                .slice(-25)
                .map((l) => `[e2e]   ${what} ${s} | ${l}`)
                .join("\n"),
        );
    }
}

/**
 * waitFor, and when it times out, an error that carries what the agents last said and how the lab
 * stands: a CI log keeps only its tail, where the failed tests' errors are printed.
 */
async function waitOrExplain<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs: number,
    everyMs: number,
): Promise<T> {
    try {
        return await waitFor(what, probe, timeoutMs, everyMs);
    } catch (e) {
        const lines: string[] = [];
        for (const [s, h] of [
            ["af1", ENGINE_A],
            ["af2", ENGINE_B],
        ]) {
            const said = (await logsOf(s, h).catch((x: unknown) => `(no logs: ${String(x)})`))
                .split("\n")
                .filter((l) => /pgha: \w+: /.test(l))
                .sort()
                .slice(-20);
            lines.push(...said.map((l) => `${s} | ${l}`));
        }
        const st = await run("sh", ["scripts/lab.sh", "status"]);
        lines.push(...`${st.stdout}${st.stderr}`.split("\n").filter((l) => /DOWN|leader|partition/.test(l)));
        const l = await lease().catch(() => ({ holder: "?", term: -1 }));
        lines.push(`lease: ${l.holder}/${l.term}`);
        throw new Error(`${(e as Error).message}\n${lines.join("\n")}`, { cause: e });
    }
}

let writer: Writer | undefined;
let watch: Watch | undefined;

async function startTraffic(): Promise<void> {
    writer = new Writer(MULTI, TABLE);
    watch = new Watch(SERVERS);
    await waitFor("the writer's first commits", () => writer!.count >= 20, 30_000, 10);
}
async function stopTraffic(): Promise<{ report: WriterReport; w: Watch }> {
    const report = await writer!.stop();
    await watch!.stop();
    const w = watch!;
    writer = undefined;
    watch = undefined;
    return { report, w };
}
async function moreCommits(n = 30): Promise<void> {
    const from = writer!.count;
    await waitOrExplain(`${n} more commits`, () => writer!.count >= from + n, 60_000, 10);
}
/** The longest interval between two acknowledged commits since `t`. */
function longestGap(ackTimes: number[], t: number): number {
    let max = 0;
    for (let i = 1; i < ackTimes.length; i++) if (ackTimes[i] >= t) max = Math.max(max, ackTimes[i] - ackTimes[i - 1]);
    return max;
}

beforeAll(async () => {
    await phase("lab: node-b and node-c up, nothing cut off", async () => {
        await lab("heal");
        await lab("start-node", "b");
        await lab("start-node", "c");
    });
    await phase("clean leftovers of earlier runs", () => cleanLab(SERVERS, NETWORK));
    await phase("apply the labaf stack from empty (af2 primary on node-b, automatic failover armed)", () => engine("up", primaryConfig("af2")));
    await waitOrExplain("af1 streaming from af2", () => streaming("af2", "af1"), 120_000, 200);
    await query("af2", createTable(TABLE));
    await query("af2", createTable(DIRECT_TABLE));
    const l = await lease();
    expect(l.holder).toBe("af2");
}, 900_000);

afterAll(async () => {
    if (writer) await writer.stop();
    if (watch) await watch.stop();
    await phase("lab: heal, node-b and node-c up again (if a step failed meanwhile)", async () => {
        await lab("heal");
        await lab("start-node", "b");
        await lab("start-node", "c");
    });
    await phase("destroy and remove the volumes", async () => {
        await engine("destroy", ["--unprotect"]);
        cleanLab(SERVERS, NETWORK);
    });
}, 900_000);

afterEach(async (ctx) => {
    await showAgents(ctx.task.name.split(" ").slice(0, 4).join(" "));
});

describe("automatic failover on the three-manager lab", () => {
    it("does not fail over on short blips of the network or the store, nor when the Raft leader's node is lost", async () => {
        await startTraffic();
        const t0 = Date.now();
        const before = await lease();

        await phase(`node-b cut off for ${BLIP_MS} ms (a network blip at the primary)`, async () => {
            await lab("partition", "b");
            await sleep(BLIP_MS);
            await lab("heal", "b");
        });
        await moreCommits();

        await phase("the Raft leader on node-c (the witness, with an arbiter), then node-c stopped", async () => {
            await lab("leader", "c");
            await lab("stop-node", "c");
        });
        await sleep(TTL_MS + 5000); // longer than a TTL without node-c's store and arbiter
        await moreCommits();
        await phase("node-c back", () => lab("start-node", "c"));
        await moreCommits();

        const { report, w } = await stopTraffic();
        const after = await lease();
        const gap = longestGap(report.ackTimes, t0);
        console.log(
            `[e2e] blips: lease ${before.holder}/${before.term} → ${after.holder}/${after.term}; longest write gap ${gap} ms; ` +
                `${report.acked.length} commits, ${w.samples} samples, ${w.twoWritable.length} with two writable servers`,
        );
        expect(after).toEqual(before);
        expect(await recovering("af2")).toBe(false);
        expect(w.writableSince("af1", t0)).toBe(0);
        expect(w.twoWritable).toEqual([]);
        // writes continued: no pause anywhere near the fence deadline
        expect(gap).toBeLessThan(FENCE_MS);
        expect((await logsOf("af2", ENGINE_B)).includes("FENCED by the agent")).toBe(false);
    }, 600_000);

    it("does not fail over when a standby's node is lost; the slot's retention stays bounded; a planned switchover keeps its gap", async () => {
        await startTraffic();
        const t0 = Date.now();
        const sw = await phase("planned switchover to af1 (automatic failover armed)", () => engine("up", primaryConfig("af1")));
        const swLog = commandLog(sw.stderr, "pgha-switchover").join("\n");
        expect(swLog).toMatch(/switchover done: af1 is primary/);
        expect((await lease()).holder).toBe("af1");
        await moreCommits();
        const swGap = longestGap(
            writer!.commits().map((c) => c.at),
            t0,
        );

        await phase("node-b (af2, the standby) goes away", () => lab("stop-node", "b"));
        const tLost = Date.now();
        await sleep(TTL_MS + 5000);
        await moreCommits();
        const [slot] = await query("af1", "SELECT wal_status, safe_wal_size::text AS safe FROM pg_replication_slots WHERE slot_name = 'af2'");
        console.log(`[e2e] af2's slot on af1 while node-b is gone: wal_status ${slot?.wal_status}, safe_wal_size ${slot?.safe}`);
        // max_slot_wal_keep_size (1GB here): the slot can hold back at most that much WAL
        expect(slot.safe).not.toBeNull();
        // (safe_wal_size counts to the end of the WAL segment in progress: 16 MB segments here)
        expect(Number(slot.safe)).toBeLessThanOrEqual(1024 * 1024 * 1024 + 2 * 16 * 1024 * 1024);
        await phase("node-b back", () => lab("start-node", "b"));
        await waitOrExplain("af2 streaming from af1 again", () => streaming("af1", "af2"), 120_000, 200);

        const { report, w } = await stopTraffic();
        const gapLost = longestGap(report.ackTimes, tLost);
        console.log(
            `[e2e] standby lost: switchover write gap ${swGap} ms (armed); longest gap while node-b was gone ${gapLost} ms; ` +
                `${w.twoWritable.length} samples with two writable servers`,
        );
        expect(await recovering("af1")).toBe(false);
        expect(w.writableSince("af2", tLost)).toBe(0);
        expect(gapLost).toBeLessThan(1000);
        expect(swGap).toBeLessThan(2000);
        expect(w.twoWritable).toEqual([]);

        // back to af2 for the next proofs
        await engine("up", primaryConfig("af2"));
        await waitOrExplain("af1 streaming from af2", () => streaming("af2", "af1"), 120_000, 200);
    }, 600_000);

    it("fails over by itself when the primary's node dies; pulumi up does not switch back; the old primary rejoins by itself", async () => {
        await startTraffic();
        await moreCommits(50);
        const before = await lease();
        const tKill = Date.now();
        await phase("node-b (af2, the primary) dies: lab.sh stop-node b", () => lab("stop-node", "b"));
        const ackedBefore = writer!.commits().filter((a) => a.at <= tKill).length;
        await waitOrExplain("af1 writable", () => watch!.firstWritable("af1", tKill), 60_000, 50);
        await moreCommits();
        const firstWritable = watch!.firstWritable("af1", tKill)!;
        const firstCommit = writer!.commits().find((a) => a.at > tKill)!.at;
        const after = await lease();
        console.log(
            `[e2e] node loss: af1 writable ${firstWritable - tKill} ms after the kill, first commit there ${firstCommit - tKill} ms after; ` +
                `lease ${before.holder}/${before.term} → ${after.holder}/${after.term}`,
        );
        expect(firstWritable - tKill).toBeLessThan(15_000);
        expect(after.holder).toBe("af1");
        expect(after.term).toBeGreaterThan(before.term);

        // Pulumi after the failover: pgha:primary still says af2. The preview says so; an up changes nothing.
        const drift =
            /pgha:primary says af2, but af1 holds the lease, term \d+: af1 is the primary\. If automatic failover moved it there, pulumi up keeps af1/;
        const pre = await phase("preview with pgha:primary af2 (stale): it names the primary the lease holds", () => engine("preview", primaryConfig("af2")));
        expect(`${pre.stdout}${pre.stderr}`).toMatch(drift);
        console.log(`[e2e] the preview says: ${`${pre.stdout}${pre.stderr}`.match(/pgha:primary says[^\n]*/)![0]}`);
        const up = await phase("pulumi up with pgha:primary af2 (stale): nothing moves", () => engine("up", primaryConfig("af2")));
        expect(`${up.stdout}${up.stderr}`).toMatch(drift);
        expect(up.stderr).not.toMatch(/switchover done/);
        expect(await recovering("af1")).toBe(false);

        const tBack = Date.now();
        await phase("node-b returns: af2 comes back as a standby of af1 by itself", () => lab("start-node", "b"));
        await waitOrExplain("af2 streaming from af1", () => streaming("af1", "af2"), 180_000, 200);
        expect(await recovering("af2")).toBe(true);
        const logs = await logsOf("af2", ENGINE_B);
        expect(logs).toMatch(/does not hold the current term.*starting as a standby|rejoin/);
        console.log(`[e2e] af2 streams from af1 ${Date.now() - tBack} ms after start-node b`);

        // pgha:primary af1: config and cluster agree, nothing happens
        const agree = await phase("pgha:primary af1: agrees, no action", () => engine("up", primaryConfig("af1")));
        expect(commandLog(agree.stderr, "pgha-switchover").join("\n")).toMatch(/af1 is the primary already: nothing to do/);
        expect(`${agree.stdout}${agree.stderr}`).not.toMatch(/pgha:primary says/);
        await moreCommits();

        const { report, w } = await stopTraffic();
        const acked = report.acked.slice(0, ackedBefore);
        const onAf1 = await present("af1", acked);
        const kept = acked.filter((id) => onAf1.has(id));
        const lost = acked.filter((id) => !onAf1.has(id));
        console.log(
            `[e2e] node loss: ${kept.length} of the ${acked.length} commits acknowledged before the kill are on af1, ${lost.length} lost ` +
                `(asynchronous replication); ${w.samples} samples, ${w.twoWritable.length} with two writable servers`,
        );
        // only commits after the last one af1 received can be missing
        const last = Math.max(...kept);
        expect(lost.every((id) => id > last)).toBe(true);
        // af2 was writable until its node died (a few ms after tKill: lab.sh's SIGKILL), never after af1 was
        const af2Last = w.lastWritable("af2") ?? 0;
        console.log(`[e2e] node loss: af2's last writable sample ${af2Last - tKill} ms after tKill, af1's first ${firstWritable - tKill} ms`);
        expect(af2Last).toBeLessThan(firstWritable);
        expect(w.twoWritable).toEqual([]);
    }, 900_000);

    it("fences a primary cut off from the others within the fence deadline, promotes only after that, and rejoins it after the partition heals", async () => {
        await phase("af2 primary again (planned switchover)", () => engine("up", primaryConfig("af2")));
        await waitOrExplain("af1 streaming from af2", () => streaming("af2", "af1"), 120_000, 200);
        await startTraffic();
        const onAf2 = new Writer(direct("af2"), DIRECT_TABLE);
        await waitFor("the direct writer committing on af2", () => onAf2.count >= 20, 30_000, 10);

        const tCut = Date.now();
        await phase("node-b cut off (partition b): af2 keeps running", () => lab("partition", "b"));
        await waitOrExplain("af1 writable", () => watch!.firstWritable("af1", tCut), 60_000, 50);
        await moreCommits();
        const direct2 = await onAf2.stop();
        const lastOnAf2 = direct2.ackTimes.filter((t) => t >= tCut).at(-1) ?? tCut;
        const firstAf1 = watch!.firstWritable("af1", tCut)!;
        const af2LastWritable =
            watch!.writableAt
                .get("af2")!
                .filter((t) => t >= tCut)
                .at(-1) ?? tCut;
        console.log(
            `[e2e] partition: af2's last commit ${lastOnAf2 - tCut} ms after the cut, last writable sample ${af2LastWritable - tCut} ms; ` +
                `af1 writable ${firstAf1 - tCut} ms after the cut; the direct writer's errors: ${direct2.errors.slice(0, 3).join(" | ")}`,
        );
        // af2 fenced itself within the fence deadline (+ one call timeout and a sample), af1 only after
        expect(lastOnAf2 - tCut).toBeLessThan(FENCE_MS + 1500);
        expect(firstAf1).toBeGreaterThan(af2LastWritable);
        expect(direct2.errors.length + direct2.inDoubt).toBeGreaterThan(0);
        expect(await recovering("af2")).toBe(true); // reachable from this host through its published port

        // The partition lasts until the managers mark node-b down: the swarm then replaces af2's
        // task, and on the heal a new container starts on af2's volume while the old one stops
        // (the volume lock orders them). The new one cannot start PostgreSQL as a standby (its
        // timeline diverged, and the new timeline's history is in the archive): PID 1 rewinds it.
        await waitOrExplain(
            "node-b down in the swarm",
            async () => (await run("docker", ["node", "inspect", "--format", "{{.Status.State}}", "node-b"])).stdout.trim() === "down",
            60_000,
            500,
        );
        const tHeal = Date.now();
        await phase("the partition heals", () => lab("heal", "b"));
        await waitOrExplain("af2 streaming from af1", () => streaming("af1", "af2"), 180_000, 200);
        console.log(`[e2e] af2 streams from af1 ${Date.now() - tHeal} ms after the heal (partition lasted ${tHeal - tCut} ms)`);
        const said = await logsOf("af2", ENGINE_B);
        expect(said).toMatch(/its timeline diverged from af1's .*rewinding it against af1|rejoining it/);
        await moreCommits();
        const { w } = await stopTraffic();
        expect(w.twoWritable).toEqual([]);
        expect((await lease()).holder).toBe("af1");
    }, 900_000);
});
