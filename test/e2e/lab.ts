// Helpers of the end-to-end suite: the lab swarm (scripts/lab.sh), the real Pulumi CLI that applies
// the program to it (pulumi.ts), and PostgreSQL clients to the real servers.

import { execFileSync, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as path from "path";
import { Client } from "pg";
import { arbiterServiceName, leaseConfigName } from "../../components/config";
import { type CliResult, ensureStack, mustPulumi, newWorkspace, pulumi, pulumiAsync, resetConfig, setConfig, setConfigAsync } from "./pulumi";

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
    // Pulumi.lab17.yaml (test/e2e/versions.test.ts)
    v1: { host: "127.0.0.1", port: 15492 },
    v2: { host: "192.168.77.2", port: 15493 },
    // Pulumi.lab18.yaml (test/e2e/versions18.test.ts)
    w1: { host: "127.0.0.1", port: 15522 },
    w2: { host: "192.168.77.2", port: 15523 },
    // Pulumi.labch.yaml (test/e2e/changes.test.ts, PostgreSQL 15)
    c1: { host: "127.0.0.1", port: 15502 },
    c2: { host: "192.168.77.2", port: 15503 },
    // Pulumi.labch17.yaml (test/e2e/changes17.test.ts)
    d1: { host: "127.0.0.1", port: 15512 },
    d2: { host: "192.168.77.2", port: 15513 },
    // Pulumi.labaf.yaml (test/e2e/autofailover.test.ts, test/bench/failover.ts)
    af1: { host: "127.0.0.1", port: 15532 },
    af2: { host: "192.168.77.2", port: 15533 },
};

/** Random passwords for this run, given to the program as secret config. */
export const PASSWORDS = {
    superuserPassword: `su-${crypto.randomBytes(12).toString("hex")}`,
    replicatorPassword: `repl-${crypto.randomBytes(12).toString("hex")}`,
};

const t0 = Date.now();
/** Prints how long a phase took (the suite's wall time is reported phase by phase). */
/**
 * `scripts/lab.sh image` for a PostgreSQL major version (built once, then cached), without blocking
 * this process: a build takes a minute or more, and a test worker blocked that long loses its
 * connection to vitest ("Timeout calling onTaskUpdate").
 */
export function labImage(major: number): Promise<void> {
    return new Promise((resolve, reject) => {
        const child = spawn("sh", [path.join(ROOT, "scripts", "lab.sh"), "image"], {
            env: { ...process.env, PGHA_PG_VERSION: String(major) },
            stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        const timer = setTimeout(() => child.kill("SIGTERM"), 900_000);
        child.on("close", (code) => {
            clearTimeout(timer);
            if (code === 0) resolve();
            else reject(new Error(`scripts/lab.sh image (PGHA_PG_VERSION=${major}) failed (${code}):\n${out}`));
        });
    });
}

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

/** A workspace of the real CLI for one test file (a project directory, a file backend): see pulumi.ts. */
export function stateFile(name: string): string {
    return newWorkspace(name);
}

/** The test run's passwords as the stack's secret config. */
export const SECRETS = { "pgha:superuserPassword": PASSWORDS.superuserPassword, "pgha:replicatorPassword": PASSWORDS.replicatorPassword };

export interface EngineResult {
    status: number;
    /** `up`: the stack outputs (`pulumi stack output --json`); `preview --json`: the plan. */
    stdout: string;
    /** what the CLI printed (progress, diagnostics, the commands' logged output) */
    stderr: string;
}

export type Verb = "up" | "preview" | "destroy" | "refresh";

/**
 * The extra arguments the tests give a deployment: `--set key=json` (stack config, set with
 * `pulumi config set-all --json` before the run), `--unprotect` (destroy: `pulumi state unprotect
 * --all` first), `--json` (preview: `pulumi preview --json`).
 */
function parseExtra(extra: string[]): { sets: Record<string, unknown>; unprotect: boolean; json: boolean } {
    const sets: Record<string, unknown> = {};
    let unprotect = false;
    let json = false;
    for (let i = 0; i < extra.length; i++) {
        const a = extra[i];
        if (a === "--set") {
            const kv = extra[++i];
            const eq = kv.indexOf("=");
            sets[kv.slice(0, eq)] = JSON.parse(kv.slice(eq + 1));
        } else if (a === "--unprotect") unprotect = true;
        else if (a === "--json") json = true;
        else throw new Error(`unknown test argument ${a}`);
    }
    return { sets, unprotect, json };
}

function verbArgs(verb: Verb, stack: string, json: boolean): string[] {
    const common = ["--stack", stack, "--non-interactive"];
    switch (verb) {
        case "up":
            return ["up", "--yes", "--skip-preview", ...common];
        case "preview":
            return ["preview", ...common, ...(json ? ["--json"] : ["--diff"])];
        case "destroy":
            return ["destroy", "--yes", "--skip-preview", ...common];
        case "refresh":
            return ["refresh", "--yes", "--skip-preview", ...common, ...(json ? ["--json"] : [])];
    }
}

/** Passwords besides the current ones that must never be printed (rotated ones, the old and the new). */
export const CHECKED_PASSWORDS: string[] = [];

function noPlaintextPasswords(verb: string, ...texts: string[]): void {
    for (const secret of [...Object.values(PASSWORDS), ...CHECKED_PASSWORDS]) {
        if (texts.some((t) => t.includes(secret))) throw new Error(`the CLI's output shows a password in plaintext (${verb})`);
    }
}

function prepare(verb: Verb, stack: string, state: string, extra: string[]): string[] {
    const { sets, unprotect, json } = parseExtra(extra);
    ensureStack(state, stack, SECRETS);
    resetConfig(state, stack);
    setConfig(state, stack, sets);
    if (verb === "destroy" && unprotect) mustPulumi(state, stack, ["state", "unprotect", "--all", "--yes", "--stack", stack]);
    return verbArgs(verb, stack, json);
}

function finish(verb: Verb, stack: string, state: string, args: string[], r: CliResult): EngineResult {
    noPlaintextPasswords(verb, r.stdout, r.stderr);
    if (verb === "up" && r.status === 0) {
        const out = mustPulumi(state, stack, ["stack", "output", "--json", "--stack", stack]);
        noPlaintextPasswords("stack output", out.stdout);
        return { status: 0, stdout: out.stdout, stderr: r.stdout + r.stderr };
    }
    return finishWithoutOutputs(args, r);
}

/** `preview --json`: the plan on stdout; otherwise everything the CLI printed as one text. */
function finishWithoutOutputs(args: string[], r: CliResult): EngineResult {
    return args.includes("--json") ? { status: r.status, stdout: r.stdout, stderr: r.stderr } : { status: r.status, stdout: "", stderr: r.stdout + r.stderr };
}

/** Runs the real `pulumi` (up, preview, destroy, refresh) on the test's workspace. */
export function engine(verb: Verb, stack: string, state: string, extra: string[] = []): EngineResult {
    const args = prepare(verb, stack, state, extra);
    return finish(verb, stack, state, args, pulumi(state, stack, args));
}

/**
 * Like engine(), without blocking this process: for tests whose own clients (a sampler) must keep
 * running while the CLI applies a change. Rejects when the CLI fails.
 */
export async function engineAsync(verb: Verb, stack: string, state: string, extra: string[] = []): Promise<EngineResult> {
    // (the first use of a workspace makes its stack synchronously: before any client runs)
    const { sets, unprotect, json } = parseExtra(extra);
    ensureStack(state, stack, SECRETS);
    resetConfig(state, stack);
    await setConfigAsync(state, stack, sets);
    if (verb === "destroy" && unprotect) await pulumiAsync(state, stack, ["state", "unprotect", "--all", "--yes", "--stack", stack]);
    const args = verbArgs(verb, stack, json);
    const r = await pulumiAsync(state, stack, args);
    noPlaintextPasswords(verb, r.stdout, r.stderr);
    if (verb === "up" && r.status === 0) {
        const out = await pulumiAsync(state, stack, ["stack", "output", "--json", "--stack", stack]);
        if (out.status !== 0) throw new Error(`pulumi stack output failed (${out.status}):\n${out.stderr.slice(-3000)}`);
        noPlaintextPasswords("stack output", out.stdout);
        return { status: 0, stdout: out.stdout, stderr: r.stdout + r.stderr };
    }
    if (r.status !== 0) throw new Error(`pulumi ${verb} failed (${r.status}):\n${r.stderr.slice(-6000)}\n${r.stdout.slice(-2000)}`);
    return finishWithoutOutputs(args, r);
}

export function mustEngine(verb: Verb, stack: string, state: string, extra: string[] = []): EngineResult {
    const r = engine(verb, stack, state, extra);
    if (r.status !== 0) throw new Error(`pulumi ${verb} failed (${r.status}):\n${r.stderr.slice(-6000)}\n${r.stdout.slice(-2000)}`);
    return r;
}

/** `pulumi stack export`: the stack's state as the backend keeps it. */
export function stackExport(stack: string, state: string): string {
    const r = mustPulumi(state, stack, ["stack", "export", "--stack", stack]);
    return r.stdout;
}

export async function connect(server: string, database = "postgres"): Promise<Client> {
    const { host, port } = ENDPOINTS[server];
    const client = new Client({
        host,
        port,
        user: "postgres",
        password: PASSWORDS.superuserPassword,
        database,
        connectionTimeoutMillis: 5000,
        query_timeout: 15_000,
    });
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
export async function waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs = 60_000,
    everyMs = 250,
): Promise<T> {
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
    // automatic failover's arbiter (labelled with the cluster) and the lease it keeps (its own config)
    const arbiters = spawnSync("docker", ["-H", ENGINES["node-a"], "service", "ls", "-q", "--filter", `label=pgha.cluster=${network}`], { encoding: "utf8" });
    const ids = (arbiters.stdout ?? "").trim();
    if (ids) spawnSync("docker", ["-H", ENGINES["node-a"], "service", "rm", ...ids.split("\n")], { encoding: "utf8" });

    // Containers go away asynchronously after `service rm`.
    const deadline = Date.now() + 60_000;
    for (const engineHost of Object.values(ENGINES)) {
        while (Date.now() < deadline) {
            const ids = execFileSync("docker", ["-H", engineHost, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name"], { encoding: "utf8" }).trim();
            const ours = ids
                ? ids.split("\n").filter((id) =>
                      [...servers, arbiterServiceName(network)].includes(
                          execFileSync("docker", ["-H", engineHost, "inspect", "-f", '{{index .Config.Labels "com.docker.swarm.service.name"}}', id], {
                              encoding: "utf8",
                          }).trim(),
                      ),
                  )
                : [];
            if (ours.length === 0) break;
            spawnSync("docker", ["-H", engineHost, "rm", "-f", ...ours]);
        }
        for (const s of servers) spawnSync("docker", ["-H", engineHost, "volume", "rm", "-f", `${s}-data`, `${s}-archive`]);
    }
    // the lease, once no arbiter runs that would make it again
    spawnSync("docker", ["-H", ENGINES["node-a"], "config", "rm", leaseConfigName(network)], { encoding: "utf8" });
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
    return docker(
        ENGINES["node-a"],
        ["run", "--rm", "-i", "--network", network, "--entrypoint", "/bin/sh", image, "-c", script, "sh", conninfo, sql],
        `${PASSWORDS.superuserPassword}\n`,
    );
}
