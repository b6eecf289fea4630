// command:local:Command, run as pulumi-command 1.2 runs it: `create` on create (and on the create
// half of a replacement), `update` (or `create` when no update is given) when inputs change,
// `delete` (with the OLD inputs) on delete. Output: stdout/stderr without their final newline.
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import { Fields } from "./fields";
import type { Ctx, Existing, Handler } from "./handler";
import { containsSecret, isPlainObject, reveal, SecretValue, UNKNOWN, type Props, type Value } from "./values";

export const ENGINE_PRIVATE_ENV = ["PGHA_ENGINE_SECRETS", "PGHA_ENGINE_PASSPHRASE", "PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS"];

interface Cmd {
    create?: string;
    update?: string;
    delete?: string;
    dir?: string;
    environment?: Record<string, string>;
    interpreter?: string[];
    stdin?: string;
    logging?: string;
    addPreviousOutputInEnv: boolean;
}

function translate(goal: { type: string; name: string; inputs: Props }, forCheck: boolean): Cmd {
    const plainInputs = forCheck ? stripForCheck(goal.inputs) : reveal(goal.inputs as any, `${goal.type} ${goal.name}`);
    const f = new Fields(plainInputs, "", `${goal.type} ${goal.name}`);
    const c: Cmd = {
        create: f.str("create"),
        update: f.str("update"),
        delete: f.str("delete"),
        dir: f.str("dir"),
        environment: f.strMap("environment"),
        interpreter: f.strList("interpreter"),
        stdin: f.str("stdin"),
        logging: f.str("logging"),
        addPreviousOutputInEnv: f.bool("addPreviousOutputInEnv") ?? true,
    };
    f.get("triggers"); // only drives replacement
    f.reject("assetPaths");
    f.reject("archivePaths");
    if (c.logging !== undefined && (c.logging as any) !== UNKNOWN && !["stdout", "stderr", "stdoutAndStderr", "none"].includes(c.logging)) {
        throw new Error(`${goal.type} ${goal.name}: input logging must be stdout, stderr, stdoutAndStderr or none`);
    }
    if (c.interpreter && c.interpreter.length === 0) c.interpreter = undefined;
    f.done();
    return c;
}

function stripForCheck(v: Value | undefined): any {
    if (v instanceof SecretValue) return v.value === undefined ? UNKNOWN : stripForCheck(v.value);
    if (Array.isArray(v)) return v.map(stripForCheck);
    if (isPlainObject(v)) {
        const o: Record<string, any> = {};
        for (const [k, e] of Object.entries(v)) o[k] = stripForCheck(e as Value);
        return o;
    }
    return v;
}

/** Runs one command; returns trimmed stdout/stderr or throws with the combined output. */
async function run(
    ctx: Ctx,
    name: string,
    command: string,
    c: Cmd,
    prev: { stdout?: string; stderr?: string },
): Promise<{ stdout: string; stderr: string }> {
    const argv = [...(c.interpreter ?? ["/bin/sh", "-c"]), command];
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (v !== undefined && !ENGINE_PRIVATE_ENV.includes(k)) env[k] = v;
    }
    Object.assign(env, c.environment ?? {});
    if (c.addPreviousOutputInEnv) {
        if (prev.stdout) env.PULUMI_COMMAND_STDOUT = prev.stdout;
        if (prev.stderr) env.PULUMI_COMMAND_STDERR = prev.stderr;
    }
    const logStdout = c.logging === undefined || c.logging === "stdout" || c.logging === "stdoutAndStderr";
    const logStderr = c.logging === undefined || c.logging === "stderr" || c.logging === "stdoutAndStderr";
    const hasStdin = c.stdin !== undefined && c.stdin.length > 0;
    const child = spawn(argv[0], argv.slice(1), {
        cwd: c.dir ?? ctx.programDir,
        env,
        stdio: [hasStdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const both: Buffer[] = [];
    const lineLogger = (enabled: boolean) => {
        let pending = "";
        return {
            push(chunk: Buffer) {
                if (!enabled) return;
                pending += chunk.toString("utf8");
                let i: number;
                while ((i = pending.indexOf("\n")) >= 0) {
                    ctx.log(`    ${name} | ${ctx.redact(pending.substring(0, i))}`);
                    pending = pending.substring(i + 1);
                }
            },
            flush() {
                if (enabled && pending.length) ctx.log(`    ${name} | ${ctx.redact(pending)}`);
                pending = "";
            },
        };
    };
    const lo = lineLogger(logStdout);
    const le = lineLogger(logStderr);
    child.stdout!.on("data", (d: Buffer) => {
        out.push(d);
        both.push(d);
        lo.push(d);
    });
    child.stderr!.on("data", (d: Buffer) => {
        err.push(d);
        both.push(d);
        le.push(d);
    });
    if (hasStdin) {
        child.stdin!.on("error", () => undefined);
        child.stdin!.end(c.stdin);
    }
    const code: number | string = await new Promise((resolve, reject) => {
        child.on("error", reject);
        child.on("close", (code, signal) => resolve(code ?? `signal ${signal}`));
    });
    lo.flush();
    le.flush();
    if (code !== 0) {
        throw new Error(
            ctx.redact(`exit status ${code}: running ${JSON.stringify(command)}:\n${Buffer.concat(both).toString("utf8")}`),
        );
    }
    return {
        stdout: Buffer.concat(out).toString("utf8").replace(/\n$/, ""),
        stderr: Buffer.concat(err).toString("utf8").replace(/\n$/, ""),
    };
}

/** pulumi-go-provider's default: every output depends on every input, so one secret input makes all outputs secret. */
function outputsOf(goal: { inputs: Props }, stdout: Value, stderr: Value): Props {
    const o: Props = { ...goal.inputs, stdout, stderr };
    if (!containsSecret(goal.inputs)) return o;
    const s: Props = {};
    for (const [k, v] of Object.entries(o)) s[k] = v instanceof SecretValue ? v : new SecretValue(v);
    return s;
}

function prevOutputs(old: Existing): { stdout?: string; stderr?: string } {
    const get = (k: string) => {
        const v = old.outputs[k];
        const r = v instanceof SecretValue ? v.value : v;
        return typeof r === "string" ? r : undefined;
    };
    return { stdout: get("stdout"), stderr: get("stderr") };
}

export const commandHandler: Handler = {
    usesDocker: false,
    check(goal) {
        translate(goal, true);
    },
    replacePaths: () => [], // replacement comes from the SDK's replaceOnChanges: ["triggers[*]"]
    deleteBeforeReplace: () => false,
    previewOutputs(goal) {
        return outputsOf(goal, UNKNOWN, UNKNOWN);
    },
    async create(ctx, goal) {
        const c = translate(goal, false);
        const id = `${goal.name}${crypto.randomBytes(4).toString("hex")}`;
        if (c.create === undefined) return { id, outputs: outputsOf(goal, "", "") };
        const r = await run(ctx, goal.name, c.create, c, {});
        return { id, outputs: outputsOf(goal, r.stdout, r.stderr) };
    },
    async update(ctx, goal, old) {
        const c = translate(goal, false);
        const cmd = c.update ?? c.create;
        const prev = prevOutputs(old);
        if (cmd === undefined) return { outputs: outputsOf(goal, prev.stdout ?? "", prev.stderr ?? "") };
        const r = await run(ctx, goal.name, cmd, c, prev);
        return { outputs: outputsOf(goal, r.stdout, r.stderr) };
    },
    async delete(ctx, type, name, old) {
        const c = translate({ type, name, inputs: old.inputs }, false);
        if (c.delete === undefined) return;
        await run(ctx, name, c.delete, c, prevOutputs(old));
    },
};
