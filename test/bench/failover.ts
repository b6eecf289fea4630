// Benchmark (not a test): failovers when the primary's node dies, automatic and declared.
//   npm run bench:failover [-- --runs 3]
// On the stack labaf (af1 on node-a, af2 on node-b, node-c the witness manager), with a writer
// committing every 10 ms through a libpq multi-host connection and a watch asking both servers
// every ≤ 20 ms whether they are writable:
//   - automatic (pgha:failover at its defaults): `runs` times, af2 primary, node-b killed
//     (scripts/lab.sh stop-node b: SIGKILL to its engine and containers); nobody acts; node-b
//     returns and af2 rejoins by itself; a planned switchover back to af2;
//   - synchronous (automatic, with pgha:replication.synchronous true): `runs` times the same
//     kill; with two servers the new primary's commits wait for a synchronous standby, so
//     node-b is started again as soon as af1 is writable and the first commit comes once af2
//     rejoined (lost commits: 0 expected);
//   - declared (pgha:failover.automatic false, the same servers): `runs` times the same kill,
//     then `pgha:primary af1` + `pgha:lost ["af2"]` applied by a real `pulumi up` as soon as the
//     kill returned (an operator who reacts at once), then the rejoin and the switchover back.
// Per run: from the kill to the first commit on the new primary; until the old primary is fenced
// (its last writable sample: it dies with its node); commits acknowledged before the kill missing
// on the new primary (asynchronous replication); samples with two writable servers. Prints the
// figures and writes them to docs/benchmarks/failover.json and to the table in docs/benchmarks.md.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lab, Watch } from "../e2e/faults";
import { cleanLab, engineAsync, ENGINES, query, ROOT, stateFile, waitFor } from "../e2e/lab";
import { median, multiHostConninfo, Writer } from "../e2e/traffic";

const STACK = "labaf";
const NETWORK = "pgha_af";
const SERVERS = ["af1", "af2"];
const ENGINE_C = "unix:///var/run/docker-c.sock";
const TABLE = "bench_failover";
const runs = Number(process.argv[process.argv.indexOf("--runs") + 1]) || 3;
const state = stateFile("bench-failover");
const WRITER = multiHostConninfo(SERVERS, "target_session_attrs=read-write tcp_user_timeout=1000 keepalives_idle=1 keepalives_interval=1 keepalives_count=1");

interface RunFigures {
    killToCommitMs: number;
    killToWritableMs: number;
    fencedMs: number;
    lostCommits: number;
    twoWritable: number;
}

type Kind = "automatic" | "synchronous" | "declared";

const config = (primary: string, lost: string[], kind: Kind) => [
    "--set",
    `pgha:primary=${JSON.stringify(primary)}`,
    "--set",
    `pgha:lost=${JSON.stringify(lost)}`,
    "--set",
    `pgha:failover=${JSON.stringify({ automatic: kind !== "declared" })}`,
    "--set",
    `pgha:replication=${JSON.stringify({ synchronous: kind === "synchronous" })}`,
];

async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}

/**
 * What the surviving arbiters (node-a, node-c) and af1's agent said from the kill on: the story
 * behind one run's figures (when the lease expired where, who acquired it).
 */
function trail(since: number): void {
    const at = new Date(since - 1000).toISOString();
    for (const [who, engine, service] of [
        ["arbiter@node-a", ENGINES["node-a"], `${NETWORK.replace(/_/g, "-")}-arbiter`],
        ["arbiter@node-c", ENGINE_C, `${NETWORK.replace(/_/g, "-")}-arbiter`],
        ["af1", ENGINES["node-a"], "af1"],
    ]) {
        const ids = spawnSync("docker", ["-H", engine, "ps", "-q", "--filter", `label=com.docker.swarm.service.name=${service}`], { encoding: "utf8" });
        for (const id of (ids.stdout ?? "").split("\n").filter(Boolean)) {
            const r = spawnSync("docker", ["-H", engine, "logs", "-t", "--since", at, id], { encoding: "utf8" });
            const lines = `${r.stdout}${r.stderr}`.split("\n").filter((l) => (who === "af1" ? /agent: /.test(l) : l.trim() !== ""));
            for (const l of lines.slice(0, 12)) console.log(`[bench]   ${who} | ${l}`);
        }
    }
}

/** One kill of af2's node (af2 primary), the failover (`declare`: by `pulumi up`), back to where it started. */
async function oneRun(kind: Kind): Promise<RunFigures> {
    const automatic = kind !== "declared";
    await waitFor("af1 streaming from af2", () => streaming("af2", "af1"), 180_000, 200);
    const writer = new Writer(WRITER, TABLE);
    const watch = new Watch(SERVERS);
    await waitFor("the writer", () => writer.count >= 100, 30_000, 10);
    const tKill = Date.now();
    await lab("stop-node", "b");
    if (!automatic) await engineAsync("up", STACK, state, config("af1", ["af2"], kind));
    await waitFor("af1 writable", () => watch.firstWritable("af1", tKill), 120_000, 20);
    // synchronous: af1's commits wait for a synchronous standby, i.e. for af2's return
    if (kind === "synchronous") await lab("start-node", "b");
    const n = writer.count;
    await waitFor("commits on af1", () => writer.count >= n + 50, kind === "synchronous" ? 300_000 : 60_000, 10);
    const report = await writer.stop();
    await watch.stop();
    // the first commit on the new primary: the first acknowledgement, after the kill, of a row
    // af1 wrote itself (each row carries the cluster_name of the server that committed it: the
    // dying primary acknowledges commits for a few hundred ms after the kill was sent)
    const afterKill = report.acked.map((id, i) => ({ id, at: report.ackTimes[i] })).filter((c) => c.at > tKill);
    const own = await query<{ id: string }>("af1", `SELECT id FROM ${TABLE} WHERE srv = 'af1' AND id = ANY($1::bigint[])`, [afterKill.map((c) => c.id)]);
    const ownIds = new Set(own.map((r) => Number(r.id)));
    const firstCommit = afterKill.find((c) => ownIds.has(c.id))!.at;
    const before = report.acked.filter((_, i) => report.ackTimes[i] <= tKill);
    const rows = await query<{ n: number }>("af1", `SELECT count(*)::int AS n FROM ${TABLE} WHERE id = ANY($1::bigint[])`, [before]);
    const figures: RunFigures = {
        killToCommitMs: firstCommit - tKill,
        killToWritableMs: watch.firstWritable("af1", tKill)! - tKill,
        fencedMs: Math.max(0, (watch.lastWritable("af2") ?? tKill) - tKill),
        lostCommits: before.length - rows[0].n,
        twoWritable: watch.twoWritable.length,
    };
    console.log(`[bench] ${kind}: ${JSON.stringify(figures)}`);
    if (automatic) trail(tKill);

    // back: node-b returns; af2 rejoins (automatic: by itself; declared: pgha:lost [] applied)
    if (kind !== "synchronous") await lab("start-node", "b");
    if (!automatic) await engineAsync("up", STACK, state, config("af1", [], kind));
    await waitFor("af2 streaming from af1", () => streaming("af1", "af2"), 300_000, 200);
    // after an automatic failover pgha:primary still says af2: first make it agree (no action),
    // then move the primary back by a planned switchover
    if (automatic) await engineAsync("up", STACK, state, config("af1", [], kind));
    await engineAsync("up", STACK, state, config("af2", [], kind));
    return figures;
}

function summary(xs: RunFigures[]) {
    return {
        runs: xs,
        medianKillToCommitMs: median(xs.map((x) => x.killToCommitMs)),
        maxKillToCommitMs: Math.max(...xs.map((x) => x.killToCommitMs)),
        medianKillToWritableMs: median(xs.map((x) => x.killToWritableMs)),
        medianFencedMs: median(xs.map((x) => x.fencedMs)),
        lostCommits: xs.map((x) => x.lostCommits),
        twoWritable: xs.reduce((a, x) => a + x.twoWritable, 0),
    };
}

async function main(): Promise<void> {
    console.log(
        `[bench] ${runs} automatic failovers, ${runs} with synchronous replication, then ${runs} declared ones (pgha:lost), writer committing every 10 ms`,
    );
    await lab("heal");
    await lab("start-node", "b");
    await lab("start-node", "c");
    cleanLab(SERVERS, NETWORK);
    await engineAsync("up", STACK, state, config("af2", [], "automatic"));
    await waitFor("af1 streaming", () => streaming("af2", "af1"), 180_000, 200);
    await query(
        "af2",
        `CREATE TABLE IF NOT EXISTS ${TABLE} (id bigint PRIMARY KEY DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, srv text NOT NULL DEFAULT current_setting('cluster_name'))`,
    );
    const auto: RunFigures[] = [];
    for (let i = 0; i < runs; i++) auto.push(await oneRun("automatic"));
    await engineAsync("up", STACK, state, config("af2", [], "synchronous"));
    const sync: RunFigures[] = [];
    for (let i = 0; i < runs; i++) sync.push(await oneRun("synchronous"));
    await engineAsync("up", STACK, state, config("af2", [], "declared"));
    const declared: RunFigures[] = [];
    for (let i = 0; i < runs; i++) declared.push(await oneRun("declared"));

    const results = {
        date: new Date().toISOString(),
        writerIntervalMs: 10,
        automatic: summary(auto),
        synchronous: summary(sync),
        declared: summary(declared),
    };
    console.log(JSON.stringify(results, null, 2));
    const row = (name: string, s: ReturnType<typeof summary>) =>
        `| ${name} (${s.runs.length} runs) | ${s.medianKillToCommitMs} ms | ${s.maxKillToCommitMs} ms | ${s.medianKillToWritableMs} ms | ${s.medianFencedMs} ms | ${s.lostCommits.join(", ")} | ${s.twoWritable} |`;
    const table = [
        "| primary's node killed (this run, 3-manager lab) | kill → first commit on the new primary, median | max | kill → new primary writable, median | old primary's last writable sample after the kill, median | lost commits per run | samples with two writable servers |",
        "|---|---|---|---|---|---|---|",
        row("automatic failover (TTL 10 s, renew 1 s, fence 6 s)", results.automatic),
        row("automatic, `replication.synchronous` (the first commit waits for the old primary's rejoin: two servers)", results.synchronous),
        row("declared failover: `pgha:lost` applied by `pulumi up` at once", results.declared),
    ].join("\n");
    console.log(`\n${table}\n`);
    fs.writeFileSync(path.join(ROOT, "docs", "benchmarks", "failover.json"), JSON.stringify(results, null, 2) + "\n");
    const page = path.join(ROOT, "docs", "benchmarks.md");
    const text = fs.readFileSync(page, "utf8");
    const marked = /(<!-- bench:failover:start -->\n)[\s\S]*?(<!-- bench:failover:end -->)/;
    if (!marked.test(text)) throw new Error(`${page} has no bench:failover markers: the table was not written`);
    fs.writeFileSync(
        page,
        text.replace(marked, `$1${table}\n_${results.date}, \`npm run bench:failover\`; raw figures in docs/benchmarks/failover.json._\n$2`),
    );
    await engineAsync("destroy", STACK, state, ["--unprotect"]);
    cleanLab(SERVERS, NETWORK);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
