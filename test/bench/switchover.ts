// Benchmark (not a test): planned switchovers under write load, through pgha and by hand.
//   npm run bench:switchover [-- --rounds 10]
// A writer commits a row every 10 ms through one libpq multi-host connection
// (target_session_attrs=read-write). First `rounds` switchovers back and forth through the
// program (config change + apply, as `pulumi up` does) with automatic failover armed (the
// default; the lab has three managers: the switchover hands the lease over in its write gap),
// then `rounds` with it off (pgha:failover.automatic false: the baseline of the lease's cost),
// then the same number done by hand on the same servers (demote with standby.signal, pg_ctl stop
// -m fast, pg_promote(), no pgha script; failover still off, so no agent acts): the floor of what
// PostgreSQL itself needs, measured in the same run.
// Prints the write-unavailability windows (median, max), lost commits, and writes the figures to
// docs/benchmarks/switchover.json and to the table in docs/benchmarks.md.

import * as fs from "fs";
import * as path from "path";
import { cleanLab, containerOf, docker, engineAsync, ENGINES, mustEngine, query, ROOT, stateFile, waitFor } from "../e2e/lab";
import { median, multiHostConninfo, Writer } from "../e2e/traffic";

const STACK = "lab";
const NETWORK = "pgha_lab";
const NODE: Record<string, string> = { pg1: "node-a", pg2: "node-b" };
const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1]) || 10;
const state = stateFile("bench");

async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}

/** The cluster's lease (holder, term) in the swarm's store: the labels of its config. */
function lease(): { holder: string; term: number } {
    let out: string;
    try {
        out = docker(ENGINES["node-a"], ["config", "inspect", "--format", "{{json .Spec.Labels}}", `${NETWORK.replace(/_/g, "-")}-lease`]);
    } catch {
        return { holder: "", term: 0 }; // no lease (yet): automatic failover never ran here
    }
    const labels = JSON.parse(out || "{}") as Record<string, string>;
    return { holder: labels["pgha.lease.holder"] ?? "", term: Number(labels["pgha.lease.term"] ?? "0") };
}

/** The writer's longest gap between acknowledged commits that overlaps [from, to]. */
function gapDuring(acks: number[], from: number, to: number): number {
    let worst = 0;
    for (let i = 1; i < acks.length; i++) {
        if (acks[i] >= from && acks[i - 1] <= to) worst = Math.max(worst, acks[i] - acks[i - 1]);
    }
    return worst;
}

function exec(server: string, user: string, script: string): string {
    return docker(ENGINES[NODE[server]], ["exec", "-u", user, containerOf(server, NODE[server]), "sh", "-c", script]);
}

/** A switchover by hand, as an operator would type it: PostgreSQL's own floor. */
async function byHand(from: string, to: string): Promise<{ stopMs: number; promoteMs: number }> {
    const bin = "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)";
    const pgdata = "/var/lib/pgha/data/pgdata";
    exec(from, "root", "touch /dev/shm/pgha/hold");
    const stop = exec(
        from,
        "postgres",
        `touch ${pgdata}/standby.signal; t0=$(date +%s%3N); ${bin}/pg_ctl stop -D ${pgdata} -m fast -w >/dev/null; t1=$(date +%s%3N); echo $((t1 - t0)); ${bin}/pg_controldata -D ${pgdata} | sed -n 's/^Latest checkpoint location: *//p'`,
    );
    const [stopMs, lsn] = stop.split("\n");
    const promote = exec(
        to,
        "postgres",
        `t0=$(date +%s%3N); ${bin}/psql -X -At -h /var/run/postgresql -c "SELECT pg_last_wal_replay_lsn() > '${lsn}'" -c "SELECT pg_promote()" >/dev/null; t1=$(date +%s%3N); echo $((t1 - t0))`,
    );
    exec(from, "root", "rm -f /dev/shm/pgha/hold");
    await waitFor(`${from} streaming from ${to}`, () => streaming(to, from), 60_000, 100);
    return { stopMs: Number(stopMs), promoteMs: Number(promote) };
}

async function main(): Promise<void> {
    console.log(`[bench] ${rounds} switchovers through pgha, then ${rounds} by hand, writer committing every 10 ms`);
    cleanLab(["pg1", "pg2"], NETWORK);
    mustEngine("up", STACK, state);
    await waitFor("pg2 streaming", () => streaming("pg1", "pg2"), 120_000, 500);
    await query("pg1", "CREATE TABLE IF NOT EXISTS bench_writes (id bigserial PRIMARY KEY)");
    const writer = new Writer(multiHostConninfo(["pg1", "pg2"]), "bench_writes");
    await waitFor("the writer", () => writer.count > 50, 10_000, 20);

    let primary = "pg1";
    const settings = (automatic: boolean, to: string) => [
        "--set",
        `pgha:primary=${JSON.stringify(to)}`,
        "--set",
        `pgha:failover=${JSON.stringify({ automatic })}`,
    ];
    const throughPgha = async (automatic: boolean) => {
        const swaps: { window: [number, number]; scriptMs: number }[] = [];
        for (let i = 0; i < rounds; i++) {
            const to = primary === "pg1" ? "pg2" : "pg1";
            const t0 = Date.now();
            const term = lease().term;
            const out = await engineAsync("up", STACK, state, settings(automatic, to));
            const scriptMs = Number(/writes were unavailable for at most (\d+) ms/.exec(out.stderr)?.[1] ?? "NaN");
            swaps.push({ window: [t0, Date.now()], scriptMs });
            // armed: the switchover handed the lease over (next term) in its write gap
            const now = lease();
            if (automatic && !(now.holder === to && now.term > term))
                throw new Error(
                    `the armed switchover to ${to} left the lease at ${now.holder}/${now.term} (was term ${term}): automatic failover is not armed on the lab`,
                );
            await waitFor(`${primary} streaming from ${to}`, () => streaming(to, primary), 60_000, 100);
            primary = to;
            const n = writer.count;
            await waitFor("the writer on the new primary", () => writer.count > n + 20, 30_000, 20);
        }
        return swaps;
    };
    const pgha = await throughPgha(true);
    // failover off (the agents stop, the lease stays): the same rounds without the handover
    await engineAsync("up", STACK, state, settings(false, primary));
    const unarmed = await throughPgha(false);
    const manual: { window: [number, number]; stopMs: number; promoteMs: number }[] = [];
    for (let i = 0; i < rounds; i++) {
        const to = primary === "pg1" ? "pg2" : "pg1";
        const t0 = Date.now();
        const r = await byHand(primary, to);
        manual.push({ window: [t0, Date.now()], ...r });
        primary = to;
        const n = writer.count;
        await waitFor("the writer on the new primary", () => writer.count > n + 20, 30_000, 20);
    }
    // Leave the program's view and the cluster in agreement again.
    await engineAsync("up", STACK, state, settings(false, primary));
    const report = await writer.stop();
    const rows = await query(primary, "SELECT count(*) FILTER (WHERE id = ANY($1::bigint[]))::int AS present FROM bench_writes", [report.acked]);
    const lost = report.acked.length - rows[0].present;
    const ackTimes = report.ackTimes;
    const pghaGaps = pgha.map((s) => gapDuring(ackTimes, s.window[0], s.window[1]));
    const unarmedGaps = unarmed.map((s) => gapDuring(ackTimes, s.window[0], s.window[1]));
    const manualGaps = manual.map((s) => gapDuring(ackTimes, s.window[0], s.window[1]));
    const floor = manual.map((m) => m.stopMs + m.promoteMs);
    const results = {
        date: new Date().toISOString(),
        rounds,
        writerIntervalMs: 10,
        acknowledgedCommits: report.acked.length,
        inDoubt: report.inDoubt,
        lostCommits: lost,
        pgha: { medianMs: median(pghaGaps), maxMs: Math.max(...pghaGaps), gapsMs: pghaGaps, scriptMs: pgha.map((s) => s.scriptMs) },
        pghaFailoverOff: {
            medianMs: median(unarmedGaps),
            maxMs: Math.max(...unarmedGaps),
            gapsMs: unarmedGaps,
            scriptMs: unarmed.map((s) => s.scriptMs),
        },
        byHand: { medianMs: median(manualGaps), maxMs: Math.max(...manualGaps), gapsMs: manualGaps },
        postgresFloor: { medianMs: median(floor), maxMs: Math.max(...floor), stopMs: manual.map((m) => m.stopMs), promoteMs: manual.map((m) => m.promoteMs) },
        ratioPghaToByHand: Number((median(pghaGaps) / median(manualGaps)).toFixed(2)),
        ratioArmedToFailoverOff: Number((median(pghaGaps) / median(unarmedGaps)).toFixed(2)),
    };
    console.log(JSON.stringify(results, null, 2));
    const table = [
        "| planned switchover (this run, 3-manager lab, servers on node-a and node-b) | median write gap | max | lost commits |",
        "|---|---|---|---|",
        `| pgha, real \`pulumi up\`, automatic failover armed (${rounds} swaps) | ${results.pgha.medianMs} ms | ${results.pgha.maxMs} ms | ${lost} |`,
        `| pgha, real \`pulumi up\`, \`failover.automatic\` false (${rounds} swaps) | ${results.pghaFailoverOff.medianMs} ms | ${results.pghaFailoverOff.maxMs} ms | ${lost} |`,
        `| by hand: stop -m fast, LSN check, pg_promote (${rounds} swaps) | ${results.byHand.medianMs} ms | ${results.byHand.maxMs} ms | — |`,
        `| PostgreSQL alone: pg_ctl stop + pg_promote, timed inside the containers | ${results.postgresFloor.medianMs} ms | ${results.postgresFloor.maxMs} ms | — |`,
    ].join("\n");
    console.log(`\n${table}\n`);
    fs.writeFileSync(path.join(ROOT, "docs", "benchmarks", "switchover.json"), JSON.stringify(results, null, 2) + "\n");
    const page = path.join(ROOT, "docs", "benchmarks.md");
    const text = fs.readFileSync(page, "utf8");
    const marked = /(<!-- bench:switchover:start -->\n)[\s\S]*?(<!-- bench:switchover:end -->)/;
    if (!marked.test(text)) throw new Error(`${page} has no bench:switchover markers: the table was not written`);
    fs.writeFileSync(
        page,
        text.replace(marked, `$1${table}\n_${results.date}, \`npm run bench:switchover\`; raw figures in docs/benchmarks/switchover.json._\n$2`),
    );
    mustEngine("destroy", STACK, state, ["--unprotect"]);
    cleanLab(["pg1", "pg2"], NETWORK);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
