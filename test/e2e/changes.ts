// The day-2 proof (docs/changes.md), shared by the stacks that run it on each PostgreSQL major
// version (test/e2e/changes.test.ts on 15, changes17.test.ts on 17): every kind of change goes
// through a real `pulumi up`, with a writer committing every 10 ms through a libpq multi-host
// connection and a sampler asking both servers every 10 ms whether they are writable.
//  - a reloadable parameter and a pg_hba change: previewed as the servers' reload Commands only;
//    no container restarted, no writer error, the new values live on every server;
//  - a restart-only parameter, then a new pgha entrypoint (a comment changed in the workspace's
//    copy of scripts/server/entrypoint.sh): previewed as the roll; the standby restarts first, one
//    switchover to it, the old primary restarts, one switchover back; 0 lost commits, never two
//    writable servers; every write gap printed;
//  - a new image of the same major version (the lab image under a second tag): the roll moves
//    each service to it, standby first;
//  - each password rotated: the standby's stream is never interrupted, a forced reconnect streams
//    with the new password, the new one works and the old one is refused on every server, neither
//    appears in any output, log or the state;
//  - an image of another major version: refused, naming pgha:image, with no container restarted.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
    CHECKED_PASSWORDS,
    cleanLab,
    connect,
    containerOf,
    docker,
    ENDPOINTS,
    EngineResult,
    ENGINES,
    engineAsync,
    labImage,
    PASSWORDS,
    phase,
    query,
    stackExport,
    stateFile,
    waitFor,
} from "./lab";
import { changes, commandLog, ensureProject, parsePreview, ROOT, rotateSecret } from "./pulumi";
import { streaming } from "./swap";
import { median, multiHostConninfo, Sampler, SamplerReport, Writer, WriterReport } from "./traffic";

export interface ChangesProof {
    readonly major: number;
    readonly stack: string;
    readonly network: string;
    /** [primary, standby], on node-a and node-b. */
    readonly servers: readonly [string, string];
    /** An image of another major version, for the refusal. */
    readonly otherMajorImage: string;
}

export function changesProof(p: ChangesProof): void {
    const [a, b] = p.servers;
    const nodes: Record<string, string> = { [a]: "node-a", [b]: "node-b" };
    const state = stateFile(`changes${p.major}`);
    const image = `pgha-postgres:${p.major}-lab`;
    // Every run starts from the stack file; the changes so far are given again each time.
    const sets: Record<string, unknown> = {};
    const extra = () => Object.entries(sets).flatMap(([k, v]) => ["--set", `${k}=${JSON.stringify(v)}`]);
    const containers = () => p.servers.map((s) => containerOf(s, nodes[s]));
    const show = async (s: string, name: string) => (await query(s, "SELECT current_setting($1) AS v", [name]))[0].v as string;
    const role = async (s: string) => ((await query(s, "SELECT pg_is_in_recovery() AS r"))[0].r ? "standby" : "primary");

    /** Preview (--json), then up, with the writer and the sampler running; what they saw. */
    /**
     * What the CLI's own preview (`pulumi preview --diff`, as a pull request's comment shows it)
     * says, condensed to one line per changed resource ("~ command:local:Command c1-reload
     * (update)") and the summary, printed.
     */
    async function printPreview(what: string): Promise<void> {
        const lines = (await engineAsync("preview", p.stack, state, extra())).stderr.split("\n");
        const out: string[] = [];
        lines.forEach((l, i) => {
            const step = /^\s*([~+-]{1,2}|\+-) (\S+): \((update|create|replace|delete|create-replacement|delete-replaced)\)/.exec(l);
            if (step) {
                const urn = lines.slice(i + 1, i + 4).find((x) => x.includes("[urn="));
                out.push(
                    `${step[1]} ${step[2]} ${
                        urn
                            ? urn
                                  .trim()
                                  .replace(/^\[urn=.*::/, "")
                                  .replace(/\]$/, "")
                            : "?"
                    } (${step[3]})`,
                );
            } else if (/^Resources:|^ {4}[~+-]? ?\d+ /.test(l)) out.push(l);
        });
        console.log(`[e2e] PostgreSQL ${p.major}, ${what}: pulumi preview --diff says\n${out.join("\n")}`);
    }

    async function applyWithTraffic(what: string, table: string, afterUp: () => void = () => undefined) {
        const plan = changes(
            parsePreview((await phase(`preview: ${what}`, () => engineAsync("preview", p.stack, state, [...extra(), "--json"]))).stdout).steps,
        );
        const [writable, other] = (await role(a)) === "primary" ? [a, b] : [b, a];
        await query(writable, `CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
        await waitFor(`${other} has ${table}`, async () => (await query(other, "SELECT to_regclass($1) AS t", [table]))[0].t !== null, 30_000, 100);
        const writer = new Writer(multiHostConninfo([a, b]), table);
        const sampler = new Sampler([a, b]);
        const started = Date.now();
        let up: EngineResult | undefined;
        let report: WriterReport;
        let sampled: SamplerReport;
        try {
            await waitFor("the writer's first commits", () => writer.count >= 20, 10_000, 20);
            up = await phase(`up: ${what}`, () => engineAsync("up", p.stack, state, extra()));
            afterUp();
            const before = writer.count;
            await waitFor("the writer committing after the change", () => writer.count >= before + 20, 30_000, 20);
        } finally {
            report = await writer.stop();
            sampled = await sampler.stop();
        }
        const seconds = (Date.now() - started) / 1000;
        const longest = report.ackTimes.slice(1).reduce((m, t, i) => Math.max(m, t - report.ackTimes[i]), 0);
        console.log(
            `[e2e] PostgreSQL ${p.major}, ${what}: writes unavailable for at most ${longest} ms (longest gap between commits); ` +
                `gaps > 50 ms: ${report.gaps.map((g) => g.ms).join(", ") || "none"}${report.gaps.length ? ` (median ${median(report.gaps.map((g) => g.ms))})` : ""}; ` +
                `${report.acked.length} commits in ${seconds.toFixed(1)} s, ${report.inDoubt} in doubt, ${report.errors.length} writer errors; ` +
                `${sampled.samples} samples, ${sampled.twoWritable} with two writable`,
        );
        // Every acknowledged commit is on the primary.
        const primary = (await role(a)) === "primary" ? a : b;
        const c = await connect(primary);
        try {
            const { rows } = await c.query(`SELECT count(*) FILTER (WHERE id = ANY($1::bigint[]))::int AS acked FROM ${table}`, [report.acked]);
            expect(rows[0].acked, "acknowledged commits on the primary").toBe(report.acked.length);
        } finally {
            await c.end();
        }
        expect(sampled.twoWritable, "samples with two writable servers").toBe(0);
        return { plan, up: up!, report, sampled, longest };
    }

    beforeAll(async () => {
        await phase(`the lab's PostgreSQL ${p.major} image`, () => labImage(p.major));
        await phase("clean leftovers of earlier runs", () => cleanLab([...p.servers], p.network));
        // The workspace's own copy of scripts/, so that the entrypoint can change in it.
        const dir = ensureProject(state);
        const scripts = path.join(dir, "scripts");
        if (fs.lstatSync(scripts).isSymbolicLink()) {
            fs.unlinkSync(scripts);
            fs.cpSync(path.join(ROOT, "scripts"), scripts, { recursive: true });
        }
        await phase(`apply the ${p.stack} stack from empty`, () => engineAsync("up", p.stack, state));
        await waitFor(`${b} streaming from ${a}`, () => streaming(a, b), 120_000, 500);
    }, 1_200_000);

    afterAll(async () => {
        // PGHA_E2E_KEEP_STACK=1 leaves the stack running, to look at it afterwards.
        if (process.env.PGHA_E2E_KEEP_STACK === "1") return;
        await phase("destroy and remove the volumes", async () => {
            await engineAsync("destroy", p.stack, state, ["--unprotect"]);
            cleanLab([...p.servers], p.network);
        });
    }, 300_000);

    describe(`PostgreSQL ${p.major}: changes after day one`, () => {
        it("applies a reloadable parameter and a pg_hba change by a reload: no restart, no writer error, live everywhere", async () => {
            const ids = containers();
            const cidrs = ["172.18.0.0/16", "192.168.77.0/24", "10.99.0.0/16"];
            sets["pgha:postgresql"] = { work_mem: "8MB" };
            sets["pgha:clients"] = { cidrs };
            await printPreview("work_mem and a pg_hba line");
            const r = await applyWithTraffic("work_mem and a pg_hba line", "reload_writes");
            expect(r.plan).toEqual([`update ${a}-reload`, `update ${b}-reload`]);
            expect(containers(), "no container restarted").toEqual(ids);
            expect(r.report.errors, "writer errors").toEqual([]);
            expect(r.report.inDoubt).toBe(0);
            for (const s of p.servers) {
                expect(await show(s, "work_mem"), s).toBe("8MB");
                const rules = await query(s, "SELECT count(*)::int AS n FROM pg_hba_file_rules WHERE address = '10.99.0.0'");
                expect(rules[0].n, s).toBe(1);
                expect(commandLog(r.up.stderr, `${s}-reload`).join("\n")).toMatch(/reloaded/);
            }
        }, 600_000);

        // The baseline for the roll's write gaps: plain planned switchovers (pgha:primary) of the
        // same stack, measured by the same writer, in this same run.
        const baseline: number[] = [];
        /** The `n` longest gaps between the writer's commits (a switchover's is the longest one). */
        const longestGaps = (report: WriterReport, n: number) =>
            report.gaps
                .map((g) => g.ms)
                .sort((x, y) => y - x)
                .slice(0, n);

        it("measures the baseline: a planned switchover there and back with the same writer", async () => {
            sets["pgha:primary"] = b;
            const there = await applyWithTraffic(`switchover to ${b} (baseline)`, "baseline_writes");
            sets["pgha:primary"] = a;
            const back = await applyWithTraffic(`switchover to ${a} (baseline)`, "baseline_writes");
            delete sets["pgha:primary"];
            expect(there.plan).toEqual(["replace pgha-switchover"]);
            baseline.push(...longestGaps(there.report, 1), ...longestGaps(back.report, 1));
            console.log(`[e2e] PostgreSQL ${p.major}, baseline: a planned switchover's write gap ${baseline.join(", ")} ms`);
            expect(await role(a)).toBe("primary");
        }, 600_000);

        /** A change the roll applies; `kind` is its step for each server: restart, or image (a new image in its spec). */
        const rolled = async (what: string, table: string, expectPlan: string[], kind: "restart" | "image" = "restart") => {
            const ids = containers();
            const startedAt = Date.now();
            const r = await applyWithTraffic(what, table);
            expect(r.plan).toEqual(expectPlan);
            const log = commandLog(r.up.stderr, "pgha-roll").join("\n");
            expect(log).toContain(`plan: ${kind} ${b}; switchover ${b}; ${kind} ${a}; switchover ${a}`);
            // Standby first, then the switchover, then the old primary, then back.
            const step = (s: string) => (kind === "restart" ? `${s}: restarting` : `${s}: moving its service to the image`);
            const order = [step(b), `switchover to ${b}`, step(a), `switchover to ${a}`].map((l) => log.indexOf(l));
            expect(
                order.every((i) => i >= 0),
                log,
            ).toBe(true);
            expect([...order].sort((x, y) => x - y)).toEqual(order);
            for (const l of log.split("\n").filter((x) => /writes were unavailable|back and streaming/.test(x))) console.log(`[e2e] ${l}`);
            const now = containers();
            expect(now[0]).not.toBe(ids[0]);
            expect(now[1]).not.toBe(ids[1]);
            // Each server restarted exactly once: one task of its service made during the change.
            for (const s of p.servers) {
                const tasks = docker(ENGINES["node-a"], ["service", "ps", "-q", "--no-trunc", s]).split("\n").filter(Boolean);
                const made = tasks.filter((t) => Date.parse(JSON.parse(docker(ENGINES["node-a"], ["inspect", "-f", "{{json .CreatedAt}}", t]))) >= startedAt);
                expect(made.length, `${s}: tasks made during the change`).toBe(1);
            }
            expect(await role(a)).toBe("primary");
            expect(await role(b)).toBe("standby");
            await waitFor(`${b} streaming from ${a}`, () => streaming(a, b), 60_000, 200);
            expect(r.report.gaps.length, "the two switchovers were felt, and measured").toBeGreaterThanOrEqual(1);
            const gaps = longestGaps(r.report, 2);
            console.log(
                `[e2e] PostgreSQL ${p.major}, ${what}: the roll's two switchovers' write gaps ${gaps.join(", ")} ms; ` +
                    `a plain switchover's (baseline, this run) ${baseline.join(", ") || "not measured"} ms; ` +
                    `ratio of the medians ${baseline.length ? (median(gaps) / median(baseline)).toFixed(2) : "n/a"}`,
            );
            return r;
        };

        it("applies a restart-only parameter by a rolling restart: standby, switchover, old primary, switchover back", async () => {
            sets["pgha:postgresql"] = { work_mem: "8MB", max_connections: 150 };
            await printPreview("max_connections");
            await rolled("max_connections (restart-only)", "restart_writes", [`update ${a}-reload`, `update ${b}-reload`, "update pgha-roll"]);
            for (const s of p.servers) expect(await show(s, "max_connections"), s).toBe("150");
        }, 600_000);

        it("rolls a new pgha entrypoint the same way (a comment changed in it)", async () => {
            const file = path.join(ensureProject(state), "scripts", "server", "entrypoint.sh");
            fs.appendFileSync(file, `# changed by the changes proof, ${new Date().toISOString()}\n`);
            await rolled("a new entrypoint", "entrypoint_writes", ["update pgha-roll"]);
            const text = fs.readFileSync(file, "utf8");
            for (const s of p.servers) {
                const inContainer = docker(ENGINES[nodes[s]], ["exec", containerOf(s, nodes[s]), "cat", "/var/lib/pgha/data/pgha/entrypoint.sh"]);
                expect(inContainer + "\n", s).toBe(text);
            }
        }, 600_000);

        it("moves every server to a new image of the same major version, one at a time", async () => {
            const retagged = `${image}-retagged`;
            for (const e of Object.values(ENGINES)) docker(e, ["tag", image, retagged]);
            sets["pgha:image"] = retagged;
            // Every Command that starts one-off containers of the image has it in its inputs, and
            // the services' specs name it: the roll moves them first, one at a time, and Pulumi's
            // update of each spec then finds it moved already (each server restarts once: below).
            const r = await rolled(
                "a new image (same major version)",
                "image_writes",
                [
                    "update pgha-roll",
                    "update pgha-passwords",
                    `update ${a}`,
                    `update ${b}`,
                    `update ${a}-reload`,
                    `update ${b}-reload`,
                    `update ${a}-bootstrap`,
                    `update ${b}-bootstrap`,
                ].sort(),
                "image",
            );
            for (const s of p.servers) {
                const img = docker(ENGINES[nodes[s]], ["inspect", "-f", "{{.Config.Image}}", containerOf(s, nodes[s])]);
                expect(img, s).toBe(retagged);
            }
            expect(commandLog(r.up.stderr, "pgha-roll").join("\n")).toContain(`${b}: moving its service to the image ${retagged}`);
        }, 600_000);

        for (const [key, user] of [
            ["pgha:replicatorPassword", "replicator"],
            ["pgha:superuserPassword", "postgres"],
        ] as const) {
            it(`rotates ${key} without a restart: the stream never breaks, the new password works, the old one is refused`, async () => {
                const ids = containers();
                const field = key === "pgha:replicatorPassword" ? "replicatorPassword" : "superuserPassword";
                const old = PASSWORDS[field];
                const fresh = `${user}-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
                const receiver = async () => (await query(b, "SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'"))[0]?.pid as number | undefined;
                const pidBefore = await receiver();
                expect(pidBefore).toBeDefined();
                // Both are looked for in everything the CLI prints (test/e2e/lab.ts).
                CHECKED_PASSWORDS.push(old, fresh);
                rotateSecret(state, p.stack, key, fresh);
                // Watch the stream while it changes: how long was the standby not streaming?
                let watching = true;
                let down = 0;
                let longestDown = 0;
                let samples = 0;
                // One session, opened before the change: the rotation must not be what it measures.
                const watch = await connect(a);
                const watcher = (async () => {
                    let since = 0;
                    while (watching) {
                        const ok = await watch
                            .query("SELECT state FROM pg_stat_replication WHERE application_name = $1", [b])
                            .then((q) => q.rows[0]?.state === "streaming")
                            .catch(() => false);
                        samples++;
                        if (!ok && !since) since = Date.now();
                        if (ok && since) {
                            longestDown = Math.max(longestDown, Date.now() - since);
                            since = 0;
                            down++;
                        }
                        await new Promise((res) => setTimeout(res, 50));
                    }
                })();
                let r;
                try {
                    // The writer and the sampler keep the sessions they opened with the old
                    // password; the tests' new connections use the new one once it is applied.
                    r = await applyWithTraffic(`${key} rotated`, `password_writes_${user}`, () => {
                        PASSWORDS[field] = fresh;
                    });
                } finally {
                    watching = false;
                    await watcher;
                    await watch.end();
                }
                console.log(`[e2e] ${key}: ${samples} stream samples during the change, ${down} interruptions, longest ${longestDown} ms`);
                expect(r.plan).toEqual(["update pgha-passwords", `update ${a}-bootstrap`, `update ${b}-bootstrap`].sort());
                expect(containers(), "no container restarted").toEqual(ids);
                expect(down, "stream interruptions").toBe(0);
                expect(await receiver(), "the same WAL receiver session").toBe(pidBefore);
                // A new replication session authenticates with the new password.
                await query(a, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = $1", [b]);
                const t0 = Date.now();
                await waitFor(
                    `${b} streaming again after its session was ended`,
                    async () => (await receiver()) !== undefined && (await receiver()) !== pidBefore && (await streaming(a, b)),
                    30_000,
                    50,
                );
                console.log(`[e2e] ${key}: the standby streamed again ${Date.now() - t0} ms after its session was ended (its reconnect)`);
                for (const s of p.servers) {
                    const login = async (password: string) => {
                        const c = new Client({ ...ENDPOINTS[s], user, password, database: "postgres", connectionTimeoutMillis: 5000 });
                        c.on("error", () => undefined);
                        await c.connect();
                        await c.end();
                    };
                    await expect(login(fresh), `${s}: new password`).resolves.toBeUndefined();
                    await expect(login(old), `${s}: old password`).rejects.toThrow(/password authentication failed/);
                }
                // Neither password anywhere: the CLI's output is checked by every engine run; the
                // state, the service specs and the containers' logs here.
                const exported = stackExport(p.stack, state);
                const specs = p.servers.map((s) => docker(ENGINES["node-a"], ["service", "inspect", s])).join("\n");
                const logs = p.servers
                    .map((s) => spawnSync("docker", ["-H", ENGINES[nodes[s]], "logs", containerOf(s, nodes[s])], { encoding: "utf8" }))
                    .map((x) => x.stdout + x.stderr)
                    .join("\n");
                for (const pw of [old, fresh]) {
                    expect(exported.includes(pw), "the state holds a password").toBe(false);
                    expect(specs.includes(pw), "a service spec holds a password").toBe(false);
                    expect(logs.includes(pw), "a container log holds a password").toBe(false);
                }
            }, 600_000);
        }

        it(`refuses an image of another major version before anything changes, naming pgha:image`, async () => {
            const ids = containers();
            // (engineAsync rejects when the CLI fails; its message carries the CLI's output)
            const failure = await phase("up with another major version's image", () =>
                engineAsync("up", p.stack, state, [...extra(), "--set", `pgha:image=${JSON.stringify(p.otherMajorImage)}`]).then(
                    () => "",
                    (e: unknown) => String(e),
                ),
            );
            expect(failure, "the up was refused").toMatch(/^Error: pulumi up failed/);
            expect(failure).toMatch(/pgha:image/);
            expect(failure).toMatch(new RegExp(`data directory is PostgreSQL ${p.major}\\b`));
            expect(containers(), "no container restarted").toEqual(ids);
            expect(await role(a)).toBe("primary");
            await waitFor(`${b} streaming from ${a}`, () => streaming(a, b), 30_000, 200);
            // and the stack as it was still applies with nothing to do for the servers
            const again = await engineAsync("up", p.stack, state, extra());
            expect(again.status, again.stderr.slice(-3000)).toBe(0);
            expect(containers()).toEqual(ids);
        }, 600_000);
    });
}
