// The switchover proof's core, shared by every stack that proves it (test/e2e/switchover.test.ts on
// PostgreSQL 15, test/e2e/versions.test.ts on the other major versions): swap the primary to the
// other server and back through a real `pulumi up`, with a writer committing every 10 ms through a
// libpq multi-host connection and a sampler asking both servers every 10 ms whether they are
// writable; then every acknowledged commit must be on the primary, no sample may see two writable
// servers, and no service may have been re-created or restarted.

import { expect } from "vitest";
import { connect, containerOf, engineAsync, phase, query, waitFor } from "./lab";
import { median, multiHostConninfo, Sampler, Writer } from "./traffic";

export async function streaming(primary: string, standby: string): Promise<boolean> {
    const rows = await query(primary, "SELECT state FROM pg_stat_replication WHERE application_name = $1", [standby]);
    return rows[0]?.state === "streaming";
}

export interface SwapProof {
    readonly stack: string;
    /** The workspace (stateFile) of the test file. */
    readonly state: string;
    /** [primary, standby] now, each with its node. */
    readonly servers: readonly [readonly [string, string], readonly [string, string]];
    /** A table the writer inserts into (created here on the primary). */
    readonly table: string;
}

/** Swaps to the standby and back with the writer and the sampler running; asserts the proof. */
export async function swapThereAndBack(p: SwapProof): Promise<void> {
    const [[first, firstNode], [second, secondNode]] = p.servers;
    const names = [first, second];
    await query(first, `CREATE TABLE IF NOT EXISTS ${p.table} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    const containers = [containerOf(first, firstNode), containerOf(second, secondNode)];
    const writer = new Writer(multiHostConninfo(names), p.table);
    const sampler = new Sampler(names);
    const started = Date.now();
    let report: Awaited<ReturnType<Writer["stop"]>>;
    let sampled: Awaited<ReturnType<Sampler["stop"]>>;
    try {
        await waitFor("the writer's first commits", () => writer.count >= 20, 10_000, 20);
        for (const [to, from] of [
            [second, first],
            [first, second],
        ]) {
            const out = await phase(`switchover to ${to}`, () => engineAsync("up", p.stack, p.state, ["--set", `pgha:primary=${JSON.stringify(to)}`]));
            expect(out.stderr).toMatch(new RegExp(`switchover done: ${to} is primary`));
            for (const l of out.stderr.split("\n").filter((x) => /stopped cleanly|writes were unavailable/.test(x)))
                console.log(`[e2e] ${l.replace(/^.*pgha switchover: /, "")}`);
            expect((await query(to, "SELECT pg_is_in_recovery() AS r"))[0].r).toBe(false);
            expect((await query(from, "SELECT pg_is_in_recovery() AS r"))[0].r).toBe(true);
            await waitFor(`${from} streaming from ${to}`, () => streaming(to, from), 60_000, 100);
            const before = writer.count;
            await waitFor("the writer committing on the new primary", () => writer.count >= before + 20, 30_000, 20);
        }
    } finally {
        report = await writer.stop();
        sampled = await sampler.stop();
    }
    const seconds = (Date.now() - started) / 1000;
    console.log(
        `[e2e] ${report.acked.length} commits acknowledged in ${seconds.toFixed(1)} s, ${report.inDoubt} in doubt; ` +
            `write gaps > 50 ms: ${report.gaps.map((g) => g.ms).join(", ")} ms (median ${median(report.gaps.map((g) => g.ms))}); ` +
            `${sampled.samples} samples, ${sampled.twoWritable} with two writable, longest sampling interval ${sampled.maxIntervalMs} ms`,
    );
    // Every acknowledged commit is on the primary, and on the standby once it caught up.
    const c = await connect(first);
    try {
        const { rows } = await c.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE id = ANY($1::bigint[]))::int AS acked FROM ${p.table}`, [
            report.acked,
        ]);
        expect(rows[0].acked).toBe(report.acked.length);
        expect(rows[0].n - report.acked.length).toBeLessThanOrEqual(report.inDoubt);
    } finally {
        await c.end();
    }
    expect(sampled.twoWritable).toBe(0);
    expect(sampled.samples).toBeGreaterThan((seconds * 1000) / 20 / 2);
    expect(report.gaps.length).toBeGreaterThanOrEqual(2); // the two swaps were felt, and measured
    // The swap itself re-created or restarted no service.
    expect([containerOf(first, firstNode), containerOf(second, secondNode)]).toEqual(containers);
}
