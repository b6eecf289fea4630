// npm run status: the health of a running pgha cluster, asked from this host through each server's
// published port. Prints a table (or JSON with --json) and exits non-zero when the cluster is
// unhealthy, printing why. The checks themselves live in components/health.ts. It also reports
// automatic failover (pgha:failover): the swarm's managers, the arbiter service and the lease, as
// the docker CLI sees them, and whether automatic failover is armed.
//
//   npm run status [-- --stack <stack>]            stack outputs and password from the Pulumi CLI
//   npm run status -- --outputs <file|-> [--json]  stack outputs from a file (`pulumi stack output
//                                                  --json`), the password from PGHA_SUPERUSER_PASSWORD
// Exit status: 0 healthy (warnings allowed), 1 unhealthy, 2 status could not run (usage, inputs).

import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { arbiterServiceName, Lease, leaseConfigName, parseLease, primaryMismatch, resolveFailover } from "../components/config";
import { buildReport, formatBytes, probeServer, ServerProbe, ServerTarget, StatusReport, unreachableProbe } from "../components/health";

export const EXIT = { healthy: 0, unhealthy: 1, error: 2 } as const;

const USAGE = `usage: npm run status -- [--stack <stack> | --outputs <file|->] [--json] [--timeout <seconds>]
  --stack <stack>    read the stack's outputs and pgha:superuserPassword with the Pulumi CLI
                     (default without --outputs: the selected stack)
  --outputs <file>   a JSON object of the stack's outputs (pulumi stack output --json > file);
                     '-' reads it from stdin
  --json             print the report as JSON
  --timeout <s>      seconds to wait for each server, and each docker call, to answer (default 5)
The password of postgres comes from PGHA_SUPERUSER_PASSWORD, else from the Pulumi CLI
(pulumi config get pgha:superuserPassword; with --outputs only when --stack names the stack);
pgha:failover likewise from the Pulumi CLI. The swarm (managers, arbiter, lease) is asked with the
docker CLI: first the engine DOCKER_HOST names (else the local one), then the servers' dockerHost.
Exit status: 0 healthy, 1 unhealthy (the reasons are printed), 2 status could not run.`;

/** A problem with the inputs: status cannot run (exit 2). */
export class InputError extends Error {}

export interface StatusArgs {
    readonly stack?: string;
    readonly outputs?: string;
    readonly json: boolean;
    readonly timeoutSeconds: number;
    readonly help: boolean;
}

export function parseArgs(argv: readonly string[]): StatusArgs {
    let stack: string | undefined;
    let outputs: string | undefined;
    let json = false;
    let help = false;
    let timeoutSeconds = 5;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            const v = argv[++i];
            if (v === undefined || (v.startsWith("--") && v !== "-")) throw new InputError(`${a} needs a value\n${USAGE}`);
            return v;
        };
        if (a === "--stack" || a === "-s") stack = value();
        else if (a === "--outputs") outputs = value();
        else if (a === "--json") json = true;
        else if (a === "--timeout") {
            const v = value();
            timeoutSeconds = Number(v);
            if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new InputError(`--timeout ${v}: expected a number of seconds`);
        } else if (a === "--help" || a === "-h") help = true;
        else throw new InputError(`unknown argument ${a}\n${USAGE}`);
    }
    return { stack, outputs, json, timeoutSeconds, help };
}

export interface StackTargets {
    /** pgha:primary as the stack declares it (its `primary` output), when present. */
    readonly declaredPrimary: string | null;
    readonly servers: readonly ServerTarget[];
    /** The overlay network's name (the `network` output), when present: the failover objects are named after it. */
    readonly network?: string;
    /** The servers' engines (their `dockerHost` outputs; "" is the local engine), each once, in server order; absent when no output names one. */
    readonly dockerHosts?: readonly string[];
}

/**
 * The servers to ask, from the stack's outputs (a JSON object of outputs, as `pulumi stack output
 * --json` prints them). Each server is reached at `address` (default: its node) and `publishedPort`.
 */
export function targetsFromOutputs(doc: unknown, source: string): StackTargets {
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
    if (!isObject(doc)) throw new InputError(`${source}: expected a JSON object of stack outputs`);
    const outputs = doc;
    const servers = outputs.servers;
    if (!isObject(servers) || Object.keys(servers).length === 0) {
        throw new InputError(`${source}: no 'servers' output (is this pgha's stack, and was it brought up? pulumi stack output --json)`);
    }
    const targets = Object.entries(servers).map(([name, v]): ServerTarget => {
        if (!isObject(v) || typeof v.node !== "string") throw new InputError(`${source}: servers.${name} has no node`);
        const port = v.publishedPort;
        if (port !== undefined && port !== null && (typeof port !== "number" || !Number.isInteger(port)))
            throw new InputError(`${source}: servers.${name}.publishedPort is not a port`);
        const address = typeof v.address === "string" && v.address !== "" ? v.address : v.node;
        return { name, node: v.node, address, ...(typeof port === "number" ? { port } : {}) };
    });
    const dockerHosts = [...new Set(Object.values(servers).flatMap((v) => (isObject(v) && typeof v.dockerHost === "string" ? [v.dockerHost] : [])))];
    return {
        declaredPrimary: typeof outputs.primary === "string" ? outputs.primary : null,
        servers: targets,
        ...(typeof outputs.network === "string" && outputs.network !== "" ? { network: outputs.network } : {}),
        ...(dockerHosts.length > 0 ? { dockerHosts } : {}),
    };
}

function readOutputsFile(file: string): unknown {
    const text = file === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(file, "utf8");
    try {
        return JSON.parse(text);
    } catch (e) {
        throw new InputError(`${file === "-" ? "stdin" : file}: not JSON (${(e as Error).message})`);
    }
}

// ---------------------------------------------------------------------------------------------
// The Pulumi CLI (when the outputs or the password are not given otherwise)

// The Pulumi project: the current directory when it holds one (npm runs scripts in the project
// directory), else this checkout.
const projectDir = fs.existsSync(path.join(process.cwd(), "Pulumi.yaml")) ? process.cwd() : path.join(__dirname, "..");

/**
 * The environment `npm run up` uses: its local file backend and passphrase, unless set otherwise,
 * and the CLI scripts/toolchain.sh installs (in $PULUMI_HOME/bin), kept offline.
 */
function pulumiEnv(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    const home = env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi");
    // a `pulumi` on PATH first; else the one scripts/toolchain.sh installed
    if (fs.existsSync(path.join(home, "bin", "pulumi"))) env.PATH = `${env.PATH ?? ""}:${path.join(home, "bin")}`;
    env.PULUMI_SKIP_UPDATE_CHECK ??= "true";
    env.GRPC_ENABLE_TXT_SERVICE_CONFIG ??= "false";
    const local = path.join(projectDir, ".pulumi");
    if (!env.PULUMI_BACKEND_URL && fs.existsSync(local)) env.PULUMI_BACKEND_URL = `file://${local}`;
    if (!env.PULUMI_CONFIG_PASSPHRASE && !env.PULUMI_CONFIG_PASSPHRASE_FILE && fs.existsSync(path.join(local, "passphrase"))) {
        env.PULUMI_CONFIG_PASSPHRASE_FILE = path.join(local, "passphrase");
    }
    return env;
}

function runPulumi(args: string[]) {
    return spawnSync("pulumi", args, { cwd: projectDir, env: pulumiEnv(), encoding: "utf8", maxBuffer: 16 << 20 });
}

function pulumi(args: string[], what: string): string {
    const r = runPulumi(args);
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new InputError(
            `${what} needs the Pulumi CLI, which is not installed ('pulumi' is not on PATH); without it, pass --outputs <file> (a JSON object of the stack's outputs) and set PGHA_SUPERUSER_PASSWORD`,
        );
    }
    if (r.status !== 0)
        throw new InputError(`pulumi ${args.filter((a) => a !== "--show-secrets").join(" ")} failed (${r.status ?? r.signal}): ${(r.stderr ?? "").trim()}`);
    return r.stdout;
}

const stackArgs = (stack?: string) => (stack ? ["--stack", stack] : []);

/** pgha:failover.automatic from the stack's value of pgha:failover (unset: the default), or why it is not known. */
export function automaticSetting(value: unknown): AutomaticSetting {
    const { failover, problems } = resolveFailover(value);
    const own = problems.find((p) => p.startsWith("pgha:failover:") || p.startsWith("pgha:failover.automatic:"));
    if (own !== undefined) return { automatic: undefined, why: `invalid, and pulumi up refuses it: ${own}` };
    return { automatic: failover.automatic };
}

/**
 * pgha:failover.automatic from the Pulumi CLI, as the password is read: for a named --stack, or
 * for the selected stack without --outputs. Never fails: says why it is not known. The CLI applies
 * Pulumi.yaml's default when the stack leaves the key unset.
 */
function readAutomatic(args: StatusArgs): AutomaticSetting {
    if (args.outputs && !args.stack) return { automatic: undefined, why: "not read: with --outputs, name the stack (--stack) to read it" };
    const r = runPulumi(["config", "get", "pgha:failover", ...stackArgs(args.stack)]);
    if (r.error) {
        const missing = (r.error as NodeJS.ErrnoException).code === "ENOENT";
        return { automatic: undefined, why: missing ? "not read: the Pulumi CLI is not installed" : `not read: ${r.error.message}` };
    }
    if (r.status !== 0) {
        // Unset in the stack, and the CLI did not apply Pulumi.yaml's default: the program takes the default.
        if (/not found/.test(r.stderr ?? "")) return automaticSetting(undefined);
        return {
            automatic: undefined,
            why: `not read: pulumi config get pgha:failover failed (${r.status ?? r.signal}): ${firstLine((r.stderr ?? "").trim())}`,
        };
    }
    const text = (r.stdout ?? "").trim();
    let value: unknown = text;
    try {
        value = JSON.parse(text);
    } catch {
        // not JSON: the validator's own problem says what is wrong with it
    }
    return automaticSetting(value);
}

// ---------------------------------------------------------------------------------------------
// Asking the servers

async function probe(t: ServerTarget, password: string, timeoutSeconds: number): Promise<ServerProbe> {
    if (t.port === undefined) return unreachableProbe(t);
    const client = new Client({
        host: t.address ?? t.node,
        port: t.port,
        user: "postgres",
        password,
        database: "postgres",
        ssl: false,
        application_name: "pgha-status",
        connectionTimeoutMillis: timeoutSeconds * 1000,
        query_timeout: timeoutSeconds * 1000,
    });
    // A server that goes away mid-query emits 'error' on the client: the query's rejection reports it.
    client.on("error", () => undefined);
    try {
        await client.connect();
    } catch (e) {
        await client.end().catch(() => undefined);
        return unreachableProbe(t, (e as Error)?.message || String(e));
    }
    try {
        return await probeServer(t, async (sql) => (await client.query(sql)).rows);
    } finally {
        await client.end().catch(() => undefined);
    }
}

// ---------------------------------------------------------------------------------------------
// Automatic failover (pgha:failover): the swarm's managers, the arbiter service, the lease. The
// decisions are pure functions of what the docker CLI reported; the calls come after them.

/** A swarm node, from `docker node inspect`. */
export interface SwarmNode {
    readonly id: string;
    readonly hostname: string;
    /** Spec.Role: manager or worker. */
    readonly role: string;
    /** Status.State: ready, down, unknown, disconnected. */
    readonly state: string;
    /** ManagerStatus.Reachability of a manager: reachable, unreachable, unknown; null for a worker. */
    readonly reachability: string | null;
    readonly leader: boolean;
}

/** The nodes of a `docker node inspect <id>...` (a JSON array). */
export function parseNodes(json: string): SwarmNode[] {
    const doc: unknown = JSON.parse(json);
    if (!Array.isArray(doc)) throw new Error("docker node inspect: expected a JSON array");
    /** The value at a path of nested objects, or undefined. */
    const at = (v: unknown, ...path: string[]): unknown =>
        path.reduce<unknown>((o, k) => (typeof o === "object" && o !== null ? (o as Record<string, unknown>)[k] : undefined), v);
    return doc.map((n): SwarmNode => {
        const manager = at(n, "ManagerStatus");
        return {
            id: String(at(n, "ID") ?? ""),
            hostname: String(at(n, "Description", "Hostname") ?? ""),
            role: String(at(n, "Spec", "Role") ?? ""),
            state: String(at(n, "Status", "State") ?? ""),
            reachability: typeof manager === "object" && manager !== null ? String(at(manager, "Reachability") ?? "") : null,
            leader: at(manager, "Leader") === true,
        };
    });
}

export interface ManagerCounts {
    /** Nodes whose Spec.Role is manager. */
    readonly total: number;
    /** Managers whose ManagerStatus.Reachability is reachable: they count for the quorum. */
    readonly reachable: number;
    /** Managers whose Status.State is ready. */
    readonly ready: number;
}

export function countManagers(nodes: readonly SwarmNode[]): ManagerCounts {
    const managers = nodes.filter((n) => n.role === "manager");
    return {
        total: managers.length,
        reachable: managers.filter((n) => n.reachability === "reachable").length,
        ready: managers.filter((n) => n.state === "ready").length,
    };
}

/** The smallest majority of n (the swarm's quorum of n managers). */
export function majority(n: number): number {
    return Math.floor(n / 2) + 1;
}

/** One task of the arbiter service, from `docker service ps --format '{{json .}}'` (one JSON object a line). */
export interface ServiceTask {
    /** The node's hostname ("" while unassigned). */
    readonly node: string;
    /** Running, Preparing, Failed, ... (the first word of CurrentState). */
    readonly state: string;
}

export function parseTasks(stdout: string): ServiceTask[] {
    return stdout
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => {
            const t = JSON.parse(l) as Record<string, unknown>;
            return { node: String(t.Node ?? ""), state: String(t.CurrentState ?? "").split(" ")[0] };
        });
}

/** How many managers run a task of the service that is Running now. */
export function managersRunning(tasks: readonly ServiceTask[], nodes: readonly SwarmNode[]): number {
    const managers = new Set(nodes.filter((n) => n.role === "manager").map((n) => n.hostname));
    return new Set(tasks.filter((t) => t.state === "Running" && managers.has(t.node)).map((t) => t.node)).size;
}

/** What the armed verdict is decided from. */
export interface ArmedInputs {
    /** pgha:failover.automatic; undefined when it is not known here (`unknown` says why). */
    readonly automatic: boolean | undefined;
    /** The swarm's managers; undefined when no engine answered (`unknown` says why). */
    readonly managers: ManagerCounts | undefined;
    /** A manager answered that the swarm has no leader (too few managers online). */
    readonly quorumLost?: boolean;
    /** The arbiter service's name (arbiterServiceName of the network). */
    readonly arbiterService: string;
    /** Managers with a running arbiter task; `no-service` when the service does not exist; `unknown` when it could not be asked. */
    readonly arbiterManagers: number | "no-service" | "unknown";
    /** Why something above is not known. */
    readonly unknown?: string;
}

export interface ArmedVerdict {
    readonly armed: boolean;
    /** Why automatic failover is not armed; null when it is. */
    readonly reason: string | null;
    /** `armed`, or `not armed: <reason>`. */
    readonly text: string;
}

/**
 * Whether automatic failover is armed: pgha:failover.automatic is true, the swarm has at least
 * three managers and a majority of them reachable, and the arbiter service runs a task on a
 * majority of the managers. Otherwise the first reason it is not, in that order.
 */
export function armedVerdict(i: ArmedInputs): ArmedVerdict {
    const no = (reason: string): ArmedVerdict => ({ armed: false, reason, text: `not armed: ${reason}` });
    if (i.automatic === false) return no("automatic failover is off (pgha:failover.automatic is false)");
    if (i.automatic === undefined) return no(`pgha:failover is not known here${i.unknown ? ` (${i.unknown})` : ""}`);
    if (i.quorumLost && i.managers === undefined) {
        return no(
            "the swarm's quorum is lost: a manager answers that the swarm has no leader; no lease can be renewed or taken, and the primary fences itself",
        );
    }
    const m = i.managers;
    if (m === undefined) return no(`the swarm could not be asked${i.unknown ? ` (${i.unknown})` : ""}`);
    const promote = "promote a node (docker node promote <node>) or add a manager";
    if (m.total === 0) return no(`the swarm reports no manager; automatic failover needs at least 3: ${promote}`);
    if (m.total === 1) {
        return no(
            `with 1 manager the loss of its node loses the swarm, and with it every lease renewal; automatic failover needs at least 3 managers: ${promote}`,
        );
    }
    if (m.total === 2) {
        return no(
            `with 2 managers the loss of either loses the swarm's quorum, and with it every lease renewal: the primary would fence itself; automatic failover needs at least 3 managers: ${promote}`,
        );
    }
    const need = majority(m.total);
    if (i.quorumLost || m.reachable < need) {
        return no(
            `the swarm's quorum is lost: ${m.reachable} of ${m.total} managers are reachable, a majority is ${need}; no lease can be renewed or taken, and the primary fences itself`,
        );
    }
    if (i.arbiterManagers === "unknown") return no(`the arbiter service ${i.arbiterService} could not be asked${i.unknown ? ` (${i.unknown})` : ""}`);
    if (i.arbiterManagers === "no-service") return no(`the arbiter is not running: there is no service ${i.arbiterService} (pulumi up creates it)`);
    if (i.arbiterManagers < need) {
        return no(
            `the arbiter is not running on a majority of the managers: ${i.arbiterService} runs on ${i.arbiterManagers} of ${m.total}, a majority is ${need} (docker service ps ${i.arbiterService})`,
        );
    }
    return { armed: true, reason: null, text: "armed" };
}

/** The failover part of the report (the `failover` field of --json). */
export interface FailoverStatus {
    /** pgha:failover.automatic; null when not known here (see `notes`). */
    readonly automatic: boolean | null;
    /** The engine the swarm was asked through ("" = the local engine or DOCKER_HOST); null when none answered. */
    readonly dockerHost: string | null;
    /** The managers; null when the swarm could not be asked. */
    readonly managers: (ManagerCounts & { readonly majority: number; readonly nodes: readonly SwarmNode[] }) | null;
    /** The arbiter service (null: no network to name it after): running on some managers (maybe none), no such service, or not known (see `notes`). */
    readonly arbiter: { readonly service: string | null; readonly state: "running" | "no-service" | "unknown"; readonly runningOnManagers: number | null };
    /** The lease config: held (holder, term), none yet, or not known (see `notes`). */
    readonly lease: {
        readonly config: string | null;
        readonly state: "held" | "none" | "unknown";
        readonly holder: string | null;
        readonly term: number | null;
    };
    readonly armed: boolean;
    /** `armed`, or `not armed: <reason>`. */
    readonly verdict: string;
    /** See primaryMismatch. */
    readonly primaryMismatch: string | null;
    /** What could not be asked, and why. */
    readonly notes: readonly string[];
}

/** What the docker CLI said about the swarm (askSwarm), before any verdict. */
export interface SwarmFacts {
    readonly dockerHost: string | null;
    readonly nodes: readonly SwarmNode[] | null;
    readonly quorumLost: boolean;
    /** Managers with a running arbiter task; `no-service`: the service does not exist; `unknown`: not asked, or no answer. */
    readonly arbiterManagers: number | "no-service" | "unknown";
    /** The lease; `none`: no lease yet; `unknown`: not asked, or no answer. */
    readonly lease: Lease | "none" | "unknown";
    readonly notes: readonly string[];
}

/** pgha:failover.automatic as this run knows it, or why it does not. */
export type AutomaticSetting = { readonly automatic: boolean } | { readonly automatic: undefined; readonly why: string };

/** The failover status from the facts: the verdict and the mismatch line (pure). */
export function failoverStatus(
    setting: AutomaticSetting,
    network: string | undefined,
    swarm: SwarmFacts,
    declaredPrimary: string | null,
    actualPrimary: string | null,
): FailoverStatus {
    // Why pgha:failover is not known is the verdict's reason already.
    const notes = swarm.notes;
    const service = network === undefined ? null : arbiterServiceName(network);
    const managers = swarm.nodes === null ? undefined : countManagers(swarm.nodes);
    const lease = typeof swarm.lease === "object" ? swarm.lease : null;
    const arbiter = swarm.arbiterManagers;
    const verdict = armedVerdict({
        automatic: setting.automatic,
        managers,
        quorumLost: swarm.quorumLost,
        arbiterService: service ?? "(unknown)",
        arbiterManagers: swarm.arbiterManagers,
        unknown: "why" in setting && setting.automatic === undefined ? setting.why : swarm.notes.join("; ") || undefined,
    });
    return {
        automatic: setting.automatic ?? null,
        dockerHost: swarm.dockerHost,
        managers: managers && swarm.nodes ? { ...managers, majority: majority(managers.total), nodes: swarm.nodes } : null,
        arbiter: {
            service,
            state: typeof arbiter === "number" ? "running" : arbiter,
            runningOnManagers: typeof arbiter === "number" ? arbiter : null,
        },
        lease: {
            config: network === undefined ? null : leaseConfigName(network),
            state: lease !== null ? "held" : (swarm.lease as "none" | "unknown"),
            holder: lease?.holder ?? null,
            term: lease?.term ?? null,
        },
        armed: verdict.armed,
        verdict: verdict.text,
        primaryMismatch: primaryMismatch(declaredPrimary, actualPrimary, lease),
        notes,
    };
}

/** The report with the failover line in place of the declared-primary finding when the lease explains the mismatch. */
export function withFailoverFindings(report: StatusReport, failover: FailoverStatus): StatusReport {
    if (failover.lease.state !== "held" || failover.lease.holder !== report.primary || failover.primaryMismatch === null) return report;
    const message = failover.primaryMismatch;
    return { ...report, findings: report.findings.map((f) => (f.check === "declared-primary" ? { ...f, message } : f)) };
}

/** The failover section of the table: one line per fact, then the verdict. */
export function renderFailover(f: FailoverStatus): string {
    const rows: [string, string][] = [];
    const via = f.dockerHost === null ? "" : `, asked through ${f.dockerHost === "" ? "the local engine" : f.dockerHost}`;
    rows.push(["automatic", f.automatic === null ? "unknown" : `${f.automatic ? "on" : "off"} (pgha:failover.automatic)`]);
    const m = f.managers;
    rows.push(["managers", m === null ? "unknown" : `${m.total} (${m.reachable} reachable, ${m.ready} ready; a majority is ${m.majority})${via}`]);
    const a = f.arbiter;
    const arbiter =
        a.state === "running"
            ? `running on ${a.runningOnManagers} of ${m?.total ?? "?"} managers`
            : a.state === "no-service"
              ? "not running (no such service)"
              : "unknown";
    rows.push(["arbiter", a.service === null ? "unknown" : `${a.service}: ${arbiter}`]);
    const l = f.lease;
    rows.push(["lease", l.state === "held" ? `held by ${l.holder}, term ${l.term ?? "?"} (${l.config})` : l.state === "none" ? "no lease yet" : "unknown"]);
    rows.push(["verdict", f.verdict]);
    if (f.primaryMismatch !== null) rows.push(["primary", f.primaryMismatch]);
    for (const n of f.notes) rows.push(["note", n]);
    const width = Math.max(...rows.map(([k]) => k.length));
    return ["automatic failover", ...rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`)].join("\n");
}

// The calls.

interface DockerResult {
    readonly ok: boolean;
    readonly stdout: string;
    readonly stderr: string;
    /** The docker CLI is not installed. */
    readonly missing?: boolean;
}

function docker(host: string, args: readonly string[], timeoutMs: number): Promise<DockerResult> {
    const env = { ...process.env };
    if (host !== "") env.DOCKER_HOST = host;
    return new Promise((resolve) => {
        execFile("docker", args, { env, timeout: timeoutMs, maxBuffer: 16 << 20, encoding: "utf8" }, (error, stdout, stderr) => {
            if (error && (error as NodeJS.ErrnoException).code === "ENOENT") resolve({ ok: false, stdout: "", stderr: "", missing: true });
            else if (error)
                resolve({ ok: false, stdout, stderr: (stderr || (error.killed ? `no answer within ${timeoutMs / 1000} s` : error.message)).trim() });
            else resolve({ ok: true, stdout, stderr });
        });
    });
}

const firstLine = (text: string) => text.split("\n").find((l) => l.trim() !== "") ?? text;
const engine = (host: string) => (host === "" ? "the local engine" : host);

/**
 * Asks the swarm through the first engine that answers as a manager: `hosts` in order ("" = the
 * local engine or DOCKER_HOST). Read-only: docker node ls/inspect, service ps, config inspect.
 */
export async function askSwarm(hosts: readonly string[], network: string, timeoutMs: number): Promise<SwarmFacts> {
    const notes: string[] = [];
    const none = (quorumLost = false, dockerHost: string | null = null): SwarmFacts => ({
        dockerHost,
        nodes: null,
        quorumLost,
        arbiterManagers: "unknown",
        lease: "unknown",
        notes,
    });
    for (const host of hosts) {
        const ls = await docker(host, ["node", "ls", "-q"], timeoutMs);
        if (ls.missing) {
            notes.push("the docker CLI is not installed, so the swarm was not asked");
            return none();
        }
        if (!ls.ok) {
            if (/does not have a leader|too few managers/i.test(ls.stderr)) {
                notes.push(`${engine(host)}: ${firstLine(ls.stderr)}`);
                return none(true, host);
            }
            notes.push(`${engine(host)}: ${firstLine(ls.stderr)}`);
            continue;
        }
        const ids = ls.stdout.split("\n").filter((l) => l.trim() !== "");
        const inspect = await docker(host, ["node", "inspect", ...ids], timeoutMs);
        let nodes: SwarmNode[];
        try {
            if (!inspect.ok) throw new Error(firstLine(inspect.stderr));
            nodes = parseNodes(inspect.stdout);
        } catch (e) {
            notes.push(`${engine(host)}: docker node inspect: ${(e as Error).message}`);
            continue;
        }
        const notesHere: string[] = [];
        const service = arbiterServiceName(network);
        const [ps, config] = await Promise.all([
            docker(host, ["service", "ps", service, "--filter", "desired-state=running", "--format", "{{json .}}"], timeoutMs),
            docker(host, ["config", "inspect", "--format", "{{json .Spec.Labels}}", leaseConfigName(network)], timeoutMs),
        ]);
        let arbiterManagers: SwarmFacts["arbiterManagers"] = "unknown";
        if (ps.ok) {
            try {
                arbiterManagers = managersRunning(parseTasks(ps.stdout), nodes);
            } catch (e) {
                notesHere.push(`docker service ps ${service}: ${(e as Error).message}`);
            }
        } else if (/no such service/i.test(ps.stderr)) arbiterManagers = "no-service";
        else notesHere.push(`docker service ps ${service}: ${firstLine(ps.stderr)}`);
        let lease: SwarmFacts["lease"] = "unknown";
        if (config.ok) {
            try {
                lease = parseLease(config.stdout) ?? "none";
            } catch (e) {
                notesHere.push(`docker config inspect ${leaseConfigName(network)}: ${(e as Error).message}`);
            }
        } else if (/no such config|not found/i.test(config.stderr)) lease = "none";
        else notesHere.push(`docker config inspect ${leaseConfigName(network)}: ${firstLine(config.stderr)}`);
        // The engines tried before this one are no longer worth a note: one answered.
        return { dockerHost: host, nodes, quorumLost: false, arbiterManagers, lease, notes: notesHere };
    }
    if (hosts.length === 0) notes.push("no engine to ask");
    return none();
}

/** The engines to ask the swarm through: the local one (or DOCKER_HOST) first, then the servers'. */
export function swarmEngines(targets: StackTargets): string[] {
    return [...new Set(["", ...(targets.dockerHosts ?? [])])];
}

// ---------------------------------------------------------------------------------------------
// The table

function table(header: string[], rows: string[][]): string {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    const line = (r: string[]) =>
        r
            .map((c, i) => (i < r.length - 1 ? (c ?? "").padEnd(widths[i]) : (c ?? "")))
            .join("  ")
            .trimEnd();
    return [line(header), ...rows.map(line)].join("\n");
}

export function formatSeconds(s: number | null | undefined): string {
    if (s === null || s === undefined) return "-";
    return s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`;
}

/** The tables and the findings; with `failover`, its section before the verdict on the cluster's health. */
export function renderTable(report: StatusReport, failover?: FailoverStatus): string {
    const out: string[] = [];
    const servers = report.servers.map((s) => {
        const lsn = s.role === "primary" ? (s.currentLsn ?? "-") : s.role === "standby" ? `receive ${s.receiveLsn ?? "-"}, replay ${s.replayLsn ?? "-"}` : "-";
        let stream = "";
        let bytes = "";
        let lag = "";
        if (s.role !== "primary" && report.primary !== null) {
            const r = s.stream;
            stream = r ? r.state : "not connected";
            bytes = r ? formatBytes(r.sentReplayBytes) : "-";
            lag = r ? `${formatSeconds(r.writeLagSeconds)} / ${formatSeconds(r.flushLagSeconds)} / ${formatSeconds(r.replayLagSeconds)}` : "-";
        }
        return [s.name, s.node, s.endpoint ?? "(no published port)", s.role, s.timeline != null ? String(s.timeline) : "-", lsn, stream, bytes, lag];
    });
    out.push(table(["server", "node", "endpoint", "role", "timeline", "LSN", "stream", "sent-replay", "lag write / flush / replay"], servers));

    const slots = report.servers.flatMap((s) =>
        (s.slots ?? []).map((x) => [
            s.name + (s.role === "primary" ? " (primary)" : ""),
            x.name,
            x.active ? "yes" : "no",
            formatBytes(x.retainedBytes),
            x.walStatus ?? "-",
            x.restartLsn ?? "-",
        ]),
    );
    out.push("", "replication slots");
    out.push(slots.length > 0 ? table(["server", "slot", "active", "retained WAL", "wal_status", "restart_lsn"], slots) : "(none reported)");

    const archivers = report.servers
        .filter((s) => s.archiver)
        .map((s) => {
            const a = s.archiver!;
            const failure = a.lastFailedTime ? `${a.lastFailedWal ?? "?"} at ${a.lastFailedTime}` : "-";
            return [s.name, a.lastArchivedWal ?? "-", a.lastArchivedTime ?? "-", String(a.archivedCount), String(a.failedCount), failure];
        });
    out.push("", "archiver");
    out.push(archivers.length > 0 ? table(["server", "last archived", "at", "archived", "failed", "last failure"], archivers) : "(none reported)");

    if (failover) out.push("", renderFailover(failover));

    const errors = report.findings.filter((f) => f.severity === "error");
    const warnings = report.findings.filter((f) => f.severity === "warning");
    out.push("");
    if (errors.length === 0) out.push(`healthy: ${report.primary} is primary${report.servers.length > 1 ? ", every standby streams through its slot" : ""}`);
    else out.push(`UNHEALTHY: ${errors.length} problem${errors.length === 1 ? "" : "s"}`);
    for (const f of [...errors, ...warnings]) out.push(`  ${f.severity === "error" ? "error" : "warning"}: ${f.message}`);
    return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------

export async function main(argv: readonly string[]): Promise<number> {
    let args: StatusArgs;
    try {
        args = parseArgs(argv);
    } catch (e) {
        process.stderr.write(`pgha status: ${(e as Error).message}\n`);
        return EXIT.error;
    }
    if (args.help) {
        process.stdout.write(USAGE + "\n");
        return EXIT.healthy;
    }
    let targets: StackTargets;
    let password: string;
    try {
        targets = args.outputs
            ? targetsFromOutputs(readOutputsFile(args.outputs), args.outputs === "-" ? "stdin" : args.outputs)
            : targetsFromOutputs(
                  JSON.parse(pulumi(["stack", "output", "--json", ...stackArgs(args.stack)], "reading the stack's outputs")),
                  "pulumi stack output",
              );
        // With --outputs, the password comes from the Pulumi CLI only for a named --stack: the
        // selected stack need not be the one the file describes.
        if (!process.env.PGHA_SUPERUSER_PASSWORD && args.outputs && !args.stack) {
            throw new InputError(
                "set PGHA_SUPERUSER_PASSWORD to the password of postgres (pgha:superuserPassword), or name the stack to read it from with --stack",
            );
        }
        password =
            process.env.PGHA_SUPERUSER_PASSWORD ||
            pulumi(
                ["config", "get", "pgha:superuserPassword", ...stackArgs(args.stack)],
                "reading pgha:superuserPassword (or set PGHA_SUPERUSER_PASSWORD)",
            ).replace(/\r?\n$/, "");
        if (!password) throw new InputError("the password of postgres is empty: set PGHA_SUPERUSER_PASSWORD or pgha:superuserPassword");
    } catch (e) {
        const msg = e instanceof InputError ? e.message : `${(e as Error).message}`;
        process.stderr.write(`pgha status: ${msg}\n`);
        return EXIT.error;
    }

    const setting = readAutomatic(args);
    const network = targets.network;
    const notAsked: SwarmFacts = {
        dockerHost: null,
        nodes: null,
        quorumLost: false,
        arbiterManagers: "unknown",
        lease: "unknown",
        notes: ["the stack's outputs name no network, so the arbiter service and the lease config cannot be named; the swarm was not asked"],
    };
    const [probes, swarm] = await Promise.all([
        Promise.all(targets.servers.map((t) => probe(t, password, args.timeoutSeconds))),
        network === undefined ? Promise.resolve(notAsked) : askSwarm(swarmEngines(targets), network, args.timeoutSeconds * 1000),
    ]);
    const health = buildReport(probes, targets.declaredPrimary);
    const failover = failoverStatus(setting, network, swarm, targets.declaredPrimary, health.primary);
    const report = withFailoverFindings(health, failover);
    let text = args.json ? JSON.stringify({ ...report, failover }, null, 2) + "\n" : renderTable(report, failover);
    // Never print the password, even should a server echo it back in an error.
    text = text.split(password).join("[secret]");
    process.stdout.write(text);
    return report.healthy ? EXIT.healthy : EXIT.unhealthy;
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => {
            process.exitCode = code;
        },
        (e) => {
            process.stderr.write(`pgha status: ${(e as Error)?.stack ?? e}\n`);
            process.exitCode = EXIT.error;
        },
    );
}
