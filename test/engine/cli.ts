// Test engine CLI (test-only stand-in for the Pulumi CLI, which cannot be installed here).
//
//   npx tsx test/engine/cli.ts <up|destroy|preview> --stack <name> --state <file>
//       [--program <dir>] [--set key=json ...] [--unprotect] [--json]
//
// Progress goes to stderr; `up` prints the stack outputs as JSON on stdout, `preview` prints the
// plan (as JSON with --json). Secrets come from PGHA_ENGINE_SECRETS (a JSON object).
import * as path from "node:path";
import { defaultProgramDir, EngineError, runEngine, summaryLine, type EngineResult, type Operation } from "./engine";

function usage(msg?: string): never {
    if (msg) process.stderr.write(`[engine] error: ${msg}\n`);
    process.stderr.write(
        "usage: tsx test/engine/cli.ts <up|destroy|preview> --stack <name> --state <file> " +
            "[--program <dir>] [--set key=json ...] [--unprotect] [--json]\n",
    );
    process.exit(2);
}

function parseArgs(argv: string[]) {
    const op = argv[0] as Operation;
    if (!["up", "destroy", "preview"].includes(op)) usage(`unknown operation ${JSON.stringify(argv[0] ?? "")}`);
    let stack: string | undefined;
    let state: string | undefined;
    let program = defaultProgramDir;
    const sets: Record<string, unknown> = {};
    let unprotect = false;
    let json = false;
    for (let i = 1; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            const v = argv[++i];
            if (v === undefined) usage(`${a} needs a value`);
            return v;
        };
        if (a === "--stack") stack = val();
        else if (a === "--state") state = val();
        else if (a === "--program") program = val();
        else if (a === "--unprotect") unprotect = true;
        else if (a === "--json") json = true;
        else if (a === "--set") {
            const kv = val();
            const eq = kv.indexOf("=");
            if (eq <= 0) usage(`--set ${kv}: expected key=json`);
            const key = kv.substring(0, eq);
            try {
                sets[key] = JSON.parse(kv.substring(eq + 1));
            } catch {
                usage(`--set ${key}: the value is not JSON (quote strings: --set ${key}='"text"')`);
            }
        } else usage(`unknown argument ${a}`);
    }
    if (!stack) usage("--stack is required");
    if (!state) usage("--state is required");
    return {
        op,
        stack,
        statePath: path.resolve(state),
        programDir: path.resolve(program),
        sets,
        unprotect,
        json,
    };
}

function printPlan(r: EngineResult) {
    const sym: Record<string, string> = { create: "+ ", update: "~ ", replace: "+-", delete: "- ", same: "  " };
    const lines: string[] = [];
    for (const s of r.steps) {
        if (s.op === "same") continue;
        let l = `${sym[s.op]} ${s.type} ${s.name} (${s.op}${s.retained ? ", retained" : ""}${s.replaced ? ", original of a replacement" : ""})`;
        if (s.op === "replace") l += s.deleteBeforeReplace ? " [delete-before-replace]" : " [create-before-delete]";
        lines.push(l);
        for (const d of s.diffs ?? []) {
            const forces = s.replaceReasons?.includes(d) ? " (forces replacement)" : "";
            lines.push(`      ~ ${d}${forces}`);
        }
    }
    lines.push(summaryLine(r.summary, true));
    print(lines.join("\n") + "\n");
}

// stdout carries only the engine's result (outputs / plan): whatever the program or a library
// prints while the engine runs goes to stderr, as Pulumi shows it among the diagnostics
const stdoutWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: any, ...rest: any[]) => (process.stderr.write as any)(chunk, ...rest)) as any;
const print = (text: string) => stdoutWrite(text);

async function main() {
    const args = parseArgs(process.argv.slice(2));
    let result: EngineResult;
    try {
        result = await runEngine(args);
    } catch (e) {
        if (e instanceof EngineError) {
            if (args.op === "preview") {
                if (args.json) print(JSON.stringify({ ...e.result, ok: false }, null, 2) + "\n");
                else printPlan(e.result);
            }
            process.stderr.write(`[engine] error: ${e.message}\n`);
            process.exit(1);
        }
        process.stderr.write(`[engine] error: ${(e as Error)?.stack ?? e}\n`);
        process.exit(1);
    }
    if (args.op === "preview") {
        if (args.json) print(JSON.stringify({ ...result, ok: true }, null, 2) + "\n");
        else printPlan(result);
    } else if (args.op === "up") {
        print(JSON.stringify(result.outputs, null, 2) + "\n");
    }
    process.exit(0);
}

main();
