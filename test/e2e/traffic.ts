// Client traffic for the switchover proofs and the benchmark: a writer that commits a row every
// 10 ms through one libpq multi-host connection (target_session_attrs=read-write), exactly as an
// application would, and a sampler that asks every server, every 10 ms, whether it is writable.

import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import * as readline from "readline";
import { Client as PgClient } from "pg";
import { ENDPOINTS, PASSWORDS } from "./lab";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** libpq connection string naming every server's published endpoint, for the writer. */
export function multiHostConninfo(servers: string[], options = "target_session_attrs=read-write"): string {
    const hosts = servers.map((s) => ENDPOINTS[s].host).join(",");
    const ports = servers.map((s) => ENDPOINTS[s].port).join(",");
    return `host=${hosts} port=${ports} dbname=postgres user=postgres password=${PASSWORDS.superuserPassword} connect_timeout=2 ${options}`;
}

export interface WriterReport {
    acked: number[];
    /** When each acknowledgement arrived (epoch ms), in order. */
    ackTimes: number[];
    /** Statements sent whose outcome is unknown (the connection broke before the answer). */
    inDoubt: number;
    /** Gaps between consecutive acknowledged commits longer than `gapMs`, in ms, in order. */
    gaps: { startedAt: number; ms: number }[];
    errors: string[];
}

/**
 * Commits one row every `everyMs` until stopped, through libpq (pg-native, node-postgres'
 * binding to libpq: only libpq does multi-host connection strings with target_session_attrs),
 * in a process of its own (test/e2e/writer-main.ts), reconnecting at once after any failure.
 */
export class Writer {
    private readonly child: ChildProcess;
    private readonly acked: number[] = [];
    private readonly ackTimes: number[] = [];
    private inDoubt = 0;
    private readonly errors: string[] = [];
    private readonly exited: Promise<void>;

    constructor(conninfo: string, table: string, everyMs = 10) {
        this.child = spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "writer-main.ts")], {
            env: { ...process.env, PGHA_WRITER_CONNINFO: conninfo, PGHA_WRITER_TABLE: table, PGHA_WRITER_EVERY_MS: String(everyMs) },
            stdio: ["ignore", "pipe", "inherit"],
        });
        readline.createInterface({ input: this.child.stdout! }).on("line", (line) => {
            const [kind, a, b] = line.split(" ");
            if (kind === "ack") {
                this.acked.push(Number(a));
                this.ackTimes.push(Number(b));
            } else if (kind === "doubt") this.inDoubt++;
            else if (kind === "error") this.errors.push(line.slice(6));
        });
        // "close", not "exit": the child may exit before this process has read the last lines it
        // wrote (acknowledgements still in the pipe); "close" comes after its stdout has ended.
        this.exited = new Promise((resolve) => this.child.once("close", () => resolve()));
    }

    get count(): number {
        return this.acked.length;
    }

    /** The acknowledged commits so far, with the time each acknowledgement arrived (epoch ms). */
    commits(): { id: number; at: number }[] {
        return this.acked.map((id, i) => ({ id, at: this.ackTimes[i] }));
    }

    async stop(gapMs = 50): Promise<WriterReport> {
        this.child.kill("SIGTERM");
        await Promise.race([this.exited, sleep(10_000)]);
        const gaps: { startedAt: number; ms: number }[] = [];
        for (let i = 1; i < this.ackTimes.length; i++) {
            const ms = this.ackTimes[i] - this.ackTimes[i - 1];
            if (ms > gapMs) gaps.push({ startedAt: this.ackTimes[i - 1], ms });
        }
        return { acked: [...this.acked], ackTimes: [...this.ackTimes], inDoubt: this.inDoubt, gaps, errors: [...this.errors] };
    }
}

export interface SamplerReport {
    samples: number;
    /** Sampled instants at which more than one server answered pg_is_in_recovery() = false. */
    twoWritable: number;
    maxIntervalMs: number;
}

/** Every `everyMs`, asks each server directly whether it is writable (down counts as not). */
export class Sampler {
    private running = true;
    private readonly clients = new Map<string, PgClient | undefined>();
    private samples = 0;
    private twoWritable = 0;
    private maxIntervalMs = 0;
    private done: Promise<void>;

    constructor(
        private readonly servers: string[],
        private readonly everyMs = 10,
    ) {
        this.done = this.loop();
    }

    private async writable(server: string): Promise<boolean> {
        let c = this.clients.get(server);
        try {
            if (!c) {
                c = new PgClient({
                    ...ENDPOINTS[server],
                    user: "postgres",
                    password: PASSWORDS.superuserPassword,
                    database: "postgres",
                    connectionTimeoutMillis: 1000,
                });
                c.on("error", () => undefined);
                await c.connect();
                this.clients.set(server, c);
            }
            const r = await c.query("SELECT pg_is_in_recovery() AS r");
            return r.rows[0].r === false;
        } catch {
            this.clients.set(server, undefined);
            c?.end().catch(() => undefined);
            return false;
        }
    }

    private async loop(): Promise<void> {
        let last = Date.now();
        while (this.running) {
            const started = Date.now();
            const states = await Promise.all(this.servers.map((s) => this.writable(s)));
            this.samples++;
            if (states.filter(Boolean).length > 1) this.twoWritable++;
            this.maxIntervalMs = Math.max(this.maxIntervalMs, Date.now() - last);
            last = Date.now();
            const wait = this.everyMs - (Date.now() - started);
            if (wait > 0) await sleep(wait);
        }
    }

    async stop(): Promise<SamplerReport> {
        this.running = false;
        await this.done;
        for (const c of this.clients.values()) await c?.end().catch(() => undefined);
        return { samples: this.samples, twoWritable: this.twoWritable, maxIntervalMs: this.maxIntervalMs };
    }
}

export function median(xs: number[]): number {
    if (xs.length === 0) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
