// The real Pulumi CLI for the end-to-end suite: every deployment proof runs `pulumi` (built by
// scripts/toolchain.sh) with the real docker and command plugins against the lab swarm.
//
// Each test file gets a workspace of its own: a temporary project directory (Pulumi.yaml copied,
// the program's files linked, the stack's Pulumi.<stack>.yaml copied so that `pulumi config set`
// never writes into the repository), a file backend and a passphrase that exist only for this run.
// Everything the CLI is given keeps it offline (scripts/toolchain.sh env): no update check, no
// plugin download, no cloud backend.

import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";

export const ROOT = path.join(__dirname, "..", "..");
const PULUMI_HOME = process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi");

/**
 * The passphrase of every test stack's secrets provider: this run's only, never printed
 * (PGHA_E2E_PASSPHRASE sets it, to look into a kept workspace with the CLI afterwards).
 */
const PASSPHRASE = process.env.PGHA_E2E_PASSPHRASE || crypto.randomBytes(24).toString("hex");

/** What keeps the CLI offline, as scripts/toolchain.sh sets it for `npm run up`. */
export function cliEnv(workspace: string): NodeJS.ProcessEnv {
    return {
        ...process.env,
        PATH: `${path.join(PULUMI_HOME, "bin")}:${process.env.PATH}`,
        PULUMI_HOME,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
        GRPC_ENABLE_TXT_SERVICE_CONFIG: "false",
        PULUMI_BACKEND_URL: `file://${path.join(workspace, "backend")}`,
        PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
        // no colours, no spinner: the output is read by the tests
        PULUMI_NO_COLOR: "true",
        NO_COLOR: "1",
    };
}

/** A new workspace directory (its project directory is made on first use). */
export function newWorkspace(name: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `pgha-e2e-${name}-`));
}

export function projectDir(workspace: string): string {
    return path.join(workspace, "project");
}

/** The program's files, linked into the workspace's project directory. */
const LINKED = ["index.ts", "components", "scripts", "node_modules", "package.json", "tsconfig.json"];

export function ensureProject(workspace: string): string {
    const dir = projectDir(workspace);
    if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        fs.mkdirSync(path.join(workspace, "backend"), { recursive: true });
        for (const f of LINKED) fs.symlinkSync(path.join(ROOT, f), path.join(dir, f));
        fs.copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
    }
    return dir;
}

export interface CliResult {
    status: number;
    stdout: string;
    stderr: string;
}

/** Runs `pulumi ARGS` in the workspace's project directory; never throws on a non-zero exit. */
export function pulumi(workspace: string, stack: string, args: string[], input?: string, timeoutMs = 20 * 60_000): CliResult {
    const cwd = ensureProject(workspace);
    const r = spawnSync("pulumi", args, { cwd, env: cliEnv(workspace), encoding: "utf8", input, maxBuffer: 256 << 20, timeout: timeoutMs });
    if (r.error) throw new Error(`pulumi ${args.join(" ")}: ${r.error.message}`);
    return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Like pulumi(), without blocking this process (for tests whose own clients keep running). */
export function pulumiAsync(workspace: string, stack: string, args: string[], timeoutMs = 20 * 60_000): Promise<CliResult> {
    const cwd = ensureProject(workspace);
    return new Promise((resolve, reject) => {
        const child = spawn("pulumi", args, { cwd, env: cliEnv(workspace) });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (status) => {
            clearTimeout(timer);
            resolve({ status: status ?? -1, stdout, stderr });
        });
    });
}

export function mustPulumi(workspace: string, stack: string, args: string[], input?: string): CliResult {
    const r = pulumi(workspace, stack, args, input);
    if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.stderr.slice(-6000)}\n${r.stdout.slice(-6000)}`);
    return r;
}

/**
 * Makes the stack on first use: `pulumi stack init`, its config from the repository's
 * Pulumi.<stack>.yaml, then the secrets with `pulumi config set --secret`. With copyConfigFrom (a
 * stack of the same workspace), the stack is made the way a user clones an environment:
 * `pulumi stack init NEW --copy-config-from SOURCE`, then the keys of Pulumi.<stack>.yaml are set
 * over the copy and the source's other keys removed (secrets are set anew).
 */
export function ensureStack(workspace: string, stack: string, secrets: Record<string, string>, copyConfigFrom?: string): void {
    const marker = path.join(workspace, `.stack-${stack}`);
    if (fs.existsSync(marker)) return;
    const dir = ensureProject(workspace);
    const repoFile = path.join(ROOT, `Pulumi.${stack}.yaml`);
    const init = ["stack", "init", stack, "--secrets-provider", "passphrase", "--non-interactive"];
    if (copyConfigFrom) {
        init.push("--copy-config-from", copyConfigFrom);
    } else if (fs.existsSync(repoFile)) {
        fs.copyFileSync(repoFile, path.join(dir, `Pulumi.${stack}.yaml`));
    }
    mustPulumi(workspace, stack, init);
    if (copyConfigFrom) {
        const wanted = fs.existsSync(repoFile) ? ((YAML.parse(fs.readFileSync(repoFile, "utf8"))?.config ?? {}) as Record<string, unknown>) : {};
        const copied = JSON.parse(mustPulumi(workspace, stack, ["config", "--json", "--stack", stack]).stdout) as Record<string, unknown>;
        for (const key of Object.keys(copied)) {
            if (!(key in wanted) && !(key in secrets)) mustPulumi(workspace, stack, ["config", "rm", "--stack", stack, key]);
        }
        setConfig(workspace, stack, wanted);
    }
    for (const [key, value] of Object.entries(secrets)) {
        // the value goes on stdin: never on a command line
        mustPulumi(workspace, stack, ["config", "set", "--secret", "--stack", stack, key], value);
    }
    // The stack's base config: every run starts from it (resetConfig), so the overrides a test
    // gives one run stay that run's (as a user's config change stays in their branch).
    fs.copyFileSync(path.join(dir, `Pulumi.${stack}.yaml`), baseConfigFile(workspace, stack));
    fs.writeFileSync(marker, "");
}

function baseConfigFile(workspace: string, stack: string): string {
    return path.join(workspace, `base.Pulumi.${stack}.yaml`);
}

/**
 * A secret's new value, as a user rotates it (`pulumi config set --secret`, the value on stdin),
 * kept in the stack's base config so that every later run has it.
 */
export function rotateSecret(workspace: string, stack: string, key: string, value: string): void {
    resetConfig(workspace, stack);
    mustPulumi(workspace, stack, ["config", "set", "--secret", "--stack", stack, key], value);
    fs.copyFileSync(path.join(projectDir(workspace), `Pulumi.${stack}.yaml`), baseConfigFile(workspace, stack));
}

/** Puts the stack's config back to what ensureStack made (repository file and secrets). */
export function resetConfig(workspace: string, stack: string): void {
    fs.copyFileSync(baseConfigFile(workspace, stack), path.join(projectDir(workspace), `Pulumi.${stack}.yaml`));
}

function setAllArgs(stack: string, values: Record<string, unknown>): string[] {
    const json: Record<string, { value: string; objectValue?: unknown; secret: boolean }> = {};
    for (const [key, v] of Object.entries(values)) {
        json[key] = typeof v === "string" ? { value: v, secret: false } : { value: JSON.stringify(v), objectValue: v, secret: false };
    }
    return ["config", "set-all", "--stack", stack, "--json", JSON.stringify(json)];
}

/** `pulumi config set-all --json`: sets keys to JSON values (objects and lists as structured config). */
export function setConfig(workspace: string, stack: string, values: Record<string, unknown>): void {
    if (Object.keys(values).length === 0) return;
    mustPulumi(workspace, stack, setAllArgs(stack, values));
}

/** setConfig without blocking this process (its clients, a writer or a sampler, keep running). */
export async function setConfigAsync(workspace: string, stack: string, values: Record<string, unknown>): Promise<void> {
    if (Object.keys(values).length === 0) return;
    const r = await pulumiAsync(workspace, stack, setAllArgs(stack, values));
    if (r.status !== 0) throw new Error(`pulumi config set-all failed (${r.status}):\n${r.stderr.slice(-3000)}`);
}

// ---------------------------------------------------------------------------------------------
// `pulumi preview --json`

export interface PreviewStep {
    op: string;
    urn: string;
    diffReasons?: string[];
    replaceReasons?: string[];
    detailedDiff?: Record<string, { kind: string; inputDiff?: boolean }>;
}

export function parsePreview(stdout: string): { steps: PreviewStep[]; changeSummary?: Record<string, number>; diagnostics?: unknown[] } {
    return JSON.parse(stdout.slice(stdout.indexOf("{")));
}

/** The "Resources:" block a `pulumi up` or `refresh` prints at its end ("3 unchanged", "+ 2 created" ...), trimmed. */
export function resourceSummary(output: string): string {
    return (/^Resources:\n((?: +\S.*\n?)+)/m.exec(output)?.[1] ?? "").trim();
}

/**
 * What a preview changes, one line per resource: "replace pgha-switchover", "update pg2", ...
 * A replacement is planned as three steps (create-replacement, replace, delete-replaced): it is
 * shown once, as "replace". Steps that change nothing ("same", "read") are left out.
 */
export function changes(steps: PreviewStep[]): string[] {
    const out: string[] = [];
    for (const s of steps) {
        if (["same", "read", "create-replacement", "delete-replaced", "refresh"].includes(s.op)) continue;
        const name = s.urn.split("::").pop();
        out.push(`${s.op} ${name}`);
    }
    return out.sort();
}

/** The resource's type from its URN: "...::pgha:index:Cluster$command:local:Command::pgha-switchover" → "command:local:Command". */
export function typeOf(urn: string): string {
    const parts = urn.split("::");
    return parts[parts.length - 2].split("$").pop() ?? "";
}

/**
 * The lines a Command logged during a CLI run. The command plugin sends each line of the streams
 * its `logging` names as a status message, which the CLI's non-interactive display prints as a
 * progress line of that resource:
 *
 *      +  command:local:Command pgha-switchover creating (3s) pgha switchover: ...
 *      ++ command:local:Command pgha-switchover creating replacement (0s) [diff: ~triggers]; pgha ...
 *
 * followed, for a failed step, by its error in the "Diagnostics:" section (with the command's
 * stderr). Consecutive repeats of a line (the display repeats the last message) count once.
 */
export function commandLog(output: string, name: string): string[] {
    const out: string[] = [];
    const progress = new RegExp(
        `^ ?\\S{0,2}\\s+command:local:Command ${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} [a-z ]+ \\([\\d.]+m?s\\) (?:\\[diff: [^\\]]*\\](?:; )?)?(.*)$`,
    );
    for (const l of output.split("\n")) {
        const m = progress.exec(l);
        if (m && m[1] !== "" && out[out.length - 1] !== m[1]) out.push(m[1]);
    }
    const lines = output.split("\n");
    const start = lines.findIndex((l) => l.trim() === "Diagnostics:");
    if (start >= 0) {
        let inside = false;
        for (const l of lines.slice(start + 1)) {
            if (/^\S/.test(l)) break; // the next section (Outputs:, Resources:, ...)
            const header = /^ {2}(\S+) \((.+)\):$/.exec(l);
            if (header) {
                inside = header[1] === "command:local:Command" && header[2] === name;
                continue;
            }
            if (inside && l.startsWith("    ")) out.push(l.slice(4));
        }
    }
    return out;
}

/**
 * Runs `pulumi ARGS` with its verbose log (-v=9 --logtostderr --logflow: the CLI, the language
 * host and the plugins) under `strace -f -e trace=connect`, and returns every network address any
 * of those processes tried to connect to ("127.0.0.1:34165", "[::1]:443", "unix:/var/run/...").
 */
export function tracedPulumi(workspace: string, stack: string, args: string[]): { result: CliResult; connects: string[]; log: string } {
    const cwd = ensureProject(workspace);
    const trace = path.join(workspace, `strace-${Date.now()}.txt`);
    const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=connect", "-o", trace, "pulumi", ...args, "-v=9", "--logtostderr", "--logflow"], {
        cwd,
        env: cliEnv(workspace),
        encoding: "utf8",
        maxBuffer: 512 << 20,
        timeout: 20 * 60_000,
    });
    if (r.error) throw new Error(`strace pulumi ${args.join(" ")}: ${r.error.message}`);
    const connects: string[] = [];
    for (const line of fs.readFileSync(trace, "utf8").split("\n")) {
        const v4 = /sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(line);
        const v6 = /sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*inet_pton\(AF_INET6, "([^"]+)"/.exec(line);
        const unix = /sa_family=AF_UNIX, sun_path="([^"]+)"/.exec(line);
        if (v4) connects.push(`${v4[2]}:${v4[1]}`);
        else if (v6) connects.push(`[${v6[2]}]:${v6[1]}`);
        else if (unix) connects.push(`unix:${unix[1]}`);
        else if (/connect\(/.test(line) && !/AF_UNSPEC|AF_NETLINK/.test(line)) connects.push(`unparsed: ${line}`);
    }
    return { result: { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" }, connects, log: (r.stdout ?? "") + (r.stderr ?? "") };
}
