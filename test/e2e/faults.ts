// Faults and observation for the end-to-end proofs of failover: child processes that do not block
// the event loop (the lab's faults, the CLI), and a watch that asks every server, every ≤ 20 ms,
// whether it is writable, keeping the instants (two writable servers at one instant must never be
// seen). Used by test/e2e/failover.test.ts (the declared failover), autofailover.test.ts and the
// failover benchmark (test/bench/failover.ts).

import { spawn } from "child_process";
import { Client } from "pg";
import { ENDPOINTS, PASSWORDS, ROOT } from "./lab";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A child process's outcome. */
export interface Run {
    status: number;
    stdout: string;
    stderr: string;
}

/** Runs a command without blocking the event loop (the writer and the watch keep running). */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 600_000): Promise<Run> {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
        p.on("error", reject);
        p.on("close", (code) => {
            clearTimeout(timer);
            resolve({ status: code ?? -1, stdout, stderr });
        });
    });
}

/** scripts/lab.sh (faults: stop-node, start-node, partition, heal, leader), its output shown. */
export async function lab(...args: string[]): Promise<void> {
    const r = await run("sh", ["scripts/lab.sh", ...args], process.env, 300_000);
    const out = `${r.stdout}${r.stderr}`.trim();
    console.log(
        out
            .split("\n")
            .map((l) => `[e2e]   ${l}`)
            .join("\n"),
    );
    if (r.status !== 0) throw new Error(`scripts/lab.sh ${args.join(" ")} failed (${r.status}):\n${out}`);
}

/** Every ≤ 20 ms: which servers are writable, among those that answered within the last 100 ms. */
export class Watch {
    private running = true;
    private readonly last = new Map<string, { at: number; writable: boolean }>();
    private readonly done: Promise<unknown>;
    readonly writableAt = new Map<string, number[]>();
    readonly twoWritable: number[] = [];
    samples = 0;
    maxIntervalMs = 0;
    readonly started = Date.now();

    constructor(private readonly servers: string[]) {
        for (const s of servers) this.writableAt.set(s, []);
        this.done = Promise.all([...servers.map((s) => this.poll(s)), this.tick()]);
    }

    // One connection per server, asked every few ms; a server that does not answer within 300 ms
    // (its node is gone: no RST, nothing) counts as unreachable until it answers again.
    private async poll(server: string): Promise<void> {
        let c: Client | undefined;
        while (this.running) {
            try {
                if (!c) {
                    c = new Client({
                        ...ENDPOINTS[server],
                        user: "postgres",
                        password: PASSWORDS.superuserPassword,
                        database: "postgres",
                        connectionTimeoutMillis: 500,
                        query_timeout: 300,
                        keepAlive: true,
                    });
                    c.on("error", () => undefined);
                    await c.connect();
                }
                const r = await c.query("SELECT pg_is_in_recovery() AS r");
                this.last.set(server, { at: Date.now(), writable: r.rows[0].r === false });
                await sleep(5);
            } catch {
                this.last.delete(server);
                const broken = c;
                c = undefined;
                broken?.end().catch(() => undefined);
                await sleep(20);
            }
        }
        if (c) await Promise.race([c.end().catch(() => undefined), sleep(1000)]);
    }

    private async tick(): Promise<void> {
        let prev = Date.now();
        while (this.running) {
            await sleep(15);
            const now = Date.now();
            this.maxIntervalMs = Math.max(this.maxIntervalMs, now - prev);
            prev = now;
            const writable = this.servers.filter((s) => {
                const st = this.last.get(s);
                return st !== undefined && now - st.at <= 100 && st.writable;
            });
            this.samples++;
            for (const s of writable) this.writableAt.get(s)!.push(now);
            if (writable.length > 1) this.twoWritable.push(now);
        }
    }

    /** The first sampled instant at or after `t` at which `server` was writable (undefined: none). */
    firstWritable(server: string, t: number): number | undefined {
        return this.writableAt.get(server)!.find((x) => x >= t);
    }

    /** The last sampled instant at which `server` was writable (undefined: never). */
    lastWritable(server: string): number | undefined {
        return this.writableAt.get(server)!.at(-1);
    }

    /** Sampled instants since `t` at which `server` was writable. */
    writableSince(server: string, t: number): number {
        return this.writableAt.get(server)!.filter((x) => x >= t).length;
    }

    async stop(): Promise<void> {
        this.running = false;
        await this.done;
    }
}
