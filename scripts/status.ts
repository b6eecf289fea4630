// npm run status: the health of a running pgha cluster, asked from this host through each server's
// published port. Prints a table (or JSON with --json) and exits non-zero when the cluster is
// unhealthy, printing why. The checks themselves live in components/health.ts.
//
//   npm run status [-- --stack <stack>]            stack outputs and password from the Pulumi CLI
//   npm run status -- --outputs <file|-> [--json]  stack outputs from a file (`pulumi stack output
//                                                  --json`), the password from PGHA_SUPERUSER_PASSWORD
// Exit status: 0 healthy (warnings allowed), 1 unhealthy, 2 status could not run (usage, inputs).

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { buildReport, formatBytes, probeServer, ServerProbe, ServerTarget, StatusReport, unreachableProbe } from "../components/health";

export const EXIT = { healthy: 0, unhealthy: 1, error: 2 } as const;

const USAGE = `usage: npm run status -- [--stack <stack> | --outputs <file|->] [--json] [--timeout <seconds>]
  --stack <stack>    read the stack's outputs and pgha:superuserPassword with the Pulumi CLI
                     (default without --outputs: the selected stack)
  --outputs <file>   a JSON object of the stack's outputs (pulumi stack output --json > file);
                     '-' reads it from stdin
  --json             print the report as JSON
  --timeout <s>      seconds to wait for each server to answer (default 5)
The password of postgres comes from PGHA_SUPERUSER_PASSWORD, else from the Pulumi CLI
(pulumi config get pgha:superuserPassword; with --outputs only when --stack names the stack).
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
    return { declaredPrimary: typeof outputs.primary === "string" ? outputs.primary : null, servers: targets };
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

function pulumi(args: string[], what: string): string {
    const r = spawnSync("pulumi", args, { cwd: projectDir, env: pulumiEnv(), encoding: "utf8", maxBuffer: 16 << 20 });
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

export function renderTable(report: StatusReport): string {
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

    const probes = await Promise.all(targets.servers.map((t) => probe(t, password, args.timeoutSeconds)));
    const report = buildReport(probes, targets.declaredPrimary);
    let text = args.json ? JSON.stringify(report, null, 2) + "\n" : renderTable(report);
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
