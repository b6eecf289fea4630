// Helpers of the end-to-end suite: the lab swarm (scripts/lab.sh), the test engine that applies
// the real program to it (test/engine), and PostgreSQL clients to the real servers.

import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";

export const ROOT = path.join(__dirname, "..", "..");
export const ENGINES: Record<string, string> = { "node-a": "unix:///var/run/docker.sock", "node-b": "unix:///var/run/docker-b.sock" };
/** Where the test host reaches each lab server's published port. */
export const ENDPOINTS: Record<string, { host: string; port: number }> = {
    pg1: { host: "127.0.0.1", port: 15432 },
    pg2: { host: "192.168.77.2", port: 15433 },
    // Pulumi.labst.yaml (test/e2e/status.test.ts)
    st1: { host: "127.0.0.1", port: 15472 },
    st2: { host: "192.168.77.2", port: 15473 },
    // Pulumi.labfo.yaml (test/e2e/failover.test.ts)
    fo1: { host: "127.0.0.1", port: 15442 },
    fo2: { host: "192.168.77.2", port: 15443 },
    // Pulumi.labbk.yaml (test/e2e/backup.test.ts; the source of test/e2e/clone.test.ts)
    bk1: { host: "127.0.0.1", port: 15452 },
    bk2: { host: "192.168.77.2", port: 15453 },
    // Pulumi.labclone.yaml (test/e2e/clone.test.ts)
    cl1: { host: "127.0.0.1", port: 15462 },
    cl2: { host: "192.168.77.2", port: 15463 },
};

/** Random passwords for this run, given to the program as secret config. */
export const PASSWORDS = {
    superuserPassword: `su-${crypto.randomBytes(12).toString("hex")}`,
    replicatorPassword: `repl-${crypto.randomBytes(12).toString("hex")}`,
};

const t0 = Date.now();
/** Prints how long a phase took (the suite's wall time is reported phase by phase). */
export async function phase<T>(name: string, body: () => Promise<T> | T): Promise<T> {
    const start = Date.now();
    try {
        return await body();
    } finally {
        console.log(`[e2e] ${name}: ${((Date.now() - start) / 1000).toFixed(1)} s (${((Date.now() - t0) / 1000).toFixed(0)} s since start)`);
    }
}

export function docker(engine: string, args: string[], input?: string): string {
    const r = spawnSync("docker", ["-H", engine, ...args], { encoding: "utf8", input, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`docker -H ${engine} ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
    return r.stdout.trim();
}

export function stateFile(name: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgha-e2e-${name}-`));
    return path.join(dir, "state.json");
}

function engineSecrets(): string {
    return JSON.stringify({ "pgha:superuserPassword": PASSWORDS.superuserPassword, "pgha:replicatorPassword": PASSWORDS.replicatorPassword });
}

export interface EngineResult {
    status: number;
    stdout: string;
    stderr: string;
}

/** Runs the test engine (a stand-in for `pulumi up/preview/destroy`) on the real program. */
export function engine(verb: "up" | "preview" | "destroy", stack: string, state: string, extra: string[] = []): EngineResult {
    const r = spawnSync("npx", ["tsx", "test/engine/cli.ts", verb, "--stack", stack, "--state", state, ...extra], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, PGHA_ENGINE_SECRETS: engineSecrets() },
        maxBuffer: 64 << 20,
        timeout: 15 * 60_000,
    });
    const result = { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
    for (const secret of Object.values(PASSWORDS)) {
        if (result.stdout.includes(secret) || result.stderr.includes(secret)) throw new Error(`the engine's output shows a password in plaintext (${verb})`);
    }
    return result;
}

/**
 * Like engine(), without blocking this process: for tests whose own clients (a sampler) must keep
 * running while the engine applies a change.
 */
export function engineAsync(verb: "up" | "preview" | "destroy", stack: string, state: string, extra: string[] = []): Promise<EngineResult> {
    return new Promise((resolve, reject) => {
        const child = spawn("npx", ["tsx", "test/engine/cli.ts", verb, "--stack", stack, "--state", state, ...extra], {
            cwd: ROOT,
            env: { ...process.env, PGHA_ENGINE_SECRETS: engineSecrets() },
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (status) => {
            for (const secret of Object.values(PASSWORDS)) {
                if (stdout.includes(secret) || stderr.includes(secret)) return reject(new Error(`the engine's output shows a password in plaintext (${verb})`));
            }
            if (status !== 0) return reject(new Error(`engine ${verb} failed (${status}):\n${stderr.slice(-6000)}\n${stdout.slice(-2000)}`));
            resolve({ status: status ?? -1, stdout, stderr });
        });
    });
}

export function mustEngine(verb: "up" | "preview" | "destroy", stack: string, state: string, extra: string[] = []): EngineResult {
    const r = engine(verb, stack, state, extra);
    if (r.status !== 0) throw new Error(`engine ${verb} failed (${r.status}):\n${r.stderr.slice(-6000)}\n${r.stdout.slice(-2000)}`);
    return r;
}

export async function connect(server: string, database = "postgres"): Promise<Client> {
    const { host, port } = ENDPOINTS[server];
    const client = new Client({ host, port, user: "postgres", password: PASSWORDS.superuserPassword, database, connectionTimeoutMillis: 5000, query_timeout: 15_000 });
    client.on("error", () => undefined); // a server going away between statements: the next one fails
    await client.connect();
    return client;
}

export async function query<T = any>(server: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const c = await connect(server);
    try {
        return (await c.query(sql, params)).rows as T[];
    } finally {
        await c.end();
    }
}

/** Polls `probe` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, everyMs = 250): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
        try {
            const v = await probe();
            if (v) return v;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

/** The running container of a service's task on a node's engine. */
export function containerOf(service: string, node: string): string {
    const id = docker(ENGINES[node], ["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${service}`, "--filter", "status=running"]);
    if (!id) throw new Error(`no running container of ${service} on ${node}`);
    return id.split("\n")[0];
}

/** Removes everything a previous run of the lab stack may have left (services, volumes, network). */
export function cleanLab(servers: string[], network: string): void {
    for (const engineHost of Object.values(ENGINES)) {
        spawnSync("docker", ["-H", engineHost, "service", "rm", ...servers], { encoding: "utf8" });
    }
    // Containers go away asynchronously after `service rm`.
    const deadline = Date.now() + 60_000;
    for (const engineHost of Object.values(ENGINES)) {
        while (Date.now() < deadline) {
            const ids = execFileSync("docker", ["-H", engineHost, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name"], { encoding: "utf8" }).trim();
            const ours = ids ? ids.split("\n").filter((id) => servers.includes(execFileSync("docker", ["-H", engineHost, "inspect", "-f", '{{index .Config.Labels "com.docker.swarm.service.name"}}', id], { encoding: "utf8" }).trim())) : [];
            if (ours.length === 0) break;
            spawnSync("docker", ["-H", engineHost, "rm", "-f", ...ours]);
        }
        for (const s of servers) spawnSync("docker", ["-H", engineHost, "volume", "rm", "-f", `${s}-data`, `${s}-archive`]);
    }
    spawnSync("docker", ["-H", ENGINES["node-a"], "network", "rm", network]);
    for (const engineHost of Object.values(ENGINES)) {
        const configs = execFileSync("docker", ["-H", engineHost, "info", "-f", "{{.Swarm.ControlAvailable}}"], { encoding: "utf8" }).trim();
        if (configs !== "true") continue;
        for (const kind of ["config", "secret"]) {
            const ids = execFileSync("docker", ["-H", engineHost, kind, "ls", "-q", "--filter", `label=pgha.cluster=${network}`], { encoding: "utf8" }).trim();
            if (ids) spawnSync("docker", ["-H", engineHost, kind, "rm", ...ids.split("\n")]);
        }
    }
}

/** Runs psql in a one-off container attached to the cluster network; the password goes on stdin. */
export function psqlOnNetwork(network: string, image: string, conninfo: string, sql: string): string {
    const script = 'read -r PGPASSWORD; PGUSER=postgres; export PGPASSWORD PGUSER; exec psql -X -At -d "$1" -c "$2"';
    return docker(ENGINES["node-a"], ["run", "--rm", "-i", "--network", network, "--entrypoint", "/bin/sh", image, "-c", script, "sh", conninfo, sql], `${PASSWORDS.superuserPassword}\n`);
}
