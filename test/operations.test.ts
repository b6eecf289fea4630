// The typed contract between the program and the operation scripts (components/operations.ts),
// checked against what the scripts themselves require and read: a renamed or missing variable
// fails here, not in a deployment.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { OPERATIONS, Operation, SERVER_ENV, operationCommand, operationEnv, serverEnv } from "../components/operations";

const ROOT = path.join(__dirname, "..");
const OPS_DIR = path.join(ROOT, "scripts", "operations");
const SERVER_DIR = path.join(ROOT, "scripts", "server");

/** A shell script's code without its comments (a `#` that starts a word starts a comment). */
function code(file: string): string {
    return fs
        .readFileSync(file, "utf8")
        .split("\n")
        .map((l) => l.replace(/(^|\s)#.*$/, ""))
        .join("\n");
}

/** The variables `require_env` demands at the top level of a script (always), and anywhere (in a branch). */
function required(file: string): { always: Set<string>; anywhere: Set<string> } {
    const always = new Set<string>();
    const anywhere = new Set<string>();
    for (const l of code(file).split("\n")) {
        const m = /^(\s*)require_env\s+(.*)$/.exec(l);
        if (!m) continue;
        for (const v of m[2].trim().split(/\s+/)) {
            anywhere.add(v);
            if (m[1] === "") always.add(v);
        }
    }
    return { always, anywhere };
}

/** The PGHA_ variables a script reads ($NAME, ${NAME...}) and the ones it assigns itself. */
function variables(file: string): { read: Set<string>; assigned: Set<string> } {
    const text = code(file);
    const read = new Set([...text.matchAll(/\$\{?(PGHA_[A-Z0-9_]+)/g)].map((m) => m[1]));
    for (const m of text.matchAll(/require_env\s+([^\n]*)/g)) for (const v of m[1].trim().split(/\s+/)) read.add(v);
    const assigned = new Set([...text.matchAll(/(?:^|[\s;])(PGHA_[A-Z0-9_]+)=/gm)].map((m) => m[1]));
    return { read, assigned };
}

const operations = Object.keys(OPERATIONS) as Operation[];

describe("every operation's contract", () => {
    it("covers every host-side operation script (apart from the shared lib.sh and plan.sh)", () => {
        const scripts = fs
            .readdirSync(OPS_DIR)
            .filter((f) => f.endsWith(".sh") && f !== "lib.sh" && f !== "plan.sh")
            .sort();
        const covered = operations.flatMap((op) => [OPERATIONS[op].script, ...OPERATIONS[op].runs]).sort();
        expect(covered).toEqual(scripts);
    });

    for (const op of operations) {
        const c = OPERATIONS[op];
        const contract = c.env as Record<string, { required: boolean }>;
        const main = path.join(OPS_DIR, c.script);
        const all = [main, ...c.runs.map((f) => path.join(OPS_DIR, f))];

        describe(op, () => {
            it(`is named after its script (${c.script})`, () => {
                expect(c.script).toBe(`${op}.sh`);
                expect(operationCommand(op)).toBe(`sh ./scripts/operations/${op}.sh`);
            });

            it("requires exactly what the script refuses to run without", () => {
                const declared = Object.keys(contract)
                    .filter((v) => contract[v].required)
                    .sort();
                expect([...required(main).always].sort()).toEqual(declared);
                // scripts it hands over to may demand more, but only variables of the contract
                for (const f of all) for (const v of required(f).anywhere) expect(Object.keys(contract), `${path.basename(f)} requires ${v}`).toContain(v);
            });

            it("declares every PGHA_ variable its scripts read, and nothing they do not", () => {
                const readByAny = new Set<string>();
                for (const f of all) {
                    const { read, assigned } = variables(f);
                    for (const v of read) {
                        readByAny.add(v);
                        if (!assigned.has(v)) expect(Object.keys(contract), `${path.basename(f)} reads ${v}`).toContain(v);
                    }
                }
                for (const v of Object.keys(contract)) expect([...readByAny], `${v} is in the contract but no script of ${op} reads it`).toContain(v);
            });
        });
    }

    it("every script's header names its environment as the contract does", () => {
        for (const op of operations) {
            const text = fs.readFileSync(path.join(OPS_DIR, OPERATIONS[op].script), "utf8");
            expect(text, op).toContain("Environment (components/operations.ts)");
            for (const v of Object.keys(OPERATIONS[op].env)) {
                if (v.startsWith("PGHA_CLONE_")) continue; // initialize names them as PGHA_CLONE_*
                expect(text, `${op}.sh's header does not mention ${v}`).toContain(v);
            }
        }
    });
});

describe("one format per kind of value", () => {
    const rows = [
        { name: "pg1", engine: "", dataVolume: "pg1-data", archiveVolume: "pg1-archive" },
        { name: "pg2", engine: "ssh://admin@node-b", dataVolume: "pg2-data", archiveVolume: "pg2-archive" },
    ];

    it("writes names comma-separated, the server table one line per server, flags as 1/0, counts as numbers", () => {
        expect(operationEnv("switchover", { PGHA_PRIMARY: "pg1", PGHA_SERVERS: rows, PGHA_LOST: ["pg2", "pg3"] })).toEqual({
            PGHA_PRIMARY: "pg1",
            PGHA_SERVERS: "pg1 - pg1-data pg1-archive\npg2 ssh://admin@node-b pg2-data pg2-archive",
            PGHA_LOST: "pg2,pg3",
        });
        expect(operationEnv("rejoin", { PGHA_SERVER: "pg2", PGHA_SERVER_LOST: true }).PGHA_SERVER_LOST).toBe("1");
        expect(operationEnv("rejoin", { PGHA_SERVER: "pg2", PGHA_SERVER_LOST: false }).PGHA_SERVER_LOST).toBe("0");
        expect(operationEnv("backup", { PGHA_SERVERS: rows, PGHA_BACKUP_LABEL: "b1", PGHA_BACKUP_KEEP: 7 }).PGHA_BACKUP_KEEP).toBe("7");
        expect(serverEnv({ PGHA_SERVER: "pg1" })).toEqual({ PGHA_SERVER: "pg1" });
        expect(serverEnv({ PGHA_SERVER: "pg1", PGHA_FENCED: true })).toEqual({ PGHA_SERVER: "pg1", PGHA_FENCED: "1" });
    });

    it("refuses a variable outside the contract and a missing required one", () => {
        expect(() => operationEnv("switchover", { PGHA_PRIMARY: "pg1", PGHA_SERVERS: rows, PGHA_NOPE: "x" } as never)).toThrow(
            /PGHA_NOPE is not in its contract/,
        );
        expect(() => operationEnv("switchover", { PGHA_PRIMARY: "pg1" } as never)).toThrow(/PGHA_SERVERS is required/);
    });

    it("is the format the scripts read (scripts/operations/lib.sh and plan.sh)", () => {
        const env = operationEnv("switchover", { PGHA_PRIMARY: "pg1", PGHA_SERVERS: rows, PGHA_LOST: ["pg2", "pg3"] });
        const sh = (script: string) => {
            const r = spawnSync("sh", ["-c", `. "$(dirname "$0")/lib.sh"; ${script}`, path.join(OPS_DIR, "contract-test")], {
                encoding: "utf8",
                env: { ...process.env, ...env },
            });
            expect(r.status, r.stderr).toBe(0);
            return r.stdout;
        };
        expect(sh("server_names")).toBe("pg1\npg2\n");
        expect(sh('printf "[%s]" "$(server_host pg1)" "$(server_host pg2)"')).toBe("[][ssh://admin@node-b]");
        expect(sh("server_field pg2 3; echo; server_field pg2 4")).toBe("pg2-data\npg2-archive");
        expect(sh('names "$PGHA_LOST"')).toBe("pg2\npg3\n");
        expect(sh('in_list pg3 "$PGHA_LOST" && echo yes; in_list pg1 "$PGHA_LOST" || echo no')).toBe("yes\nno\n");
    });
});

describe("the server containers' environment", () => {
    it("is read by the container side (scripts/server/)", () => {
        const text = fs
            .readdirSync(SERVER_DIR)
            .map((f) => code(path.join(SERVER_DIR, f)))
            .join("\n");
        for (const v of Object.keys(SERVER_ENV)) expect(text, v).toMatch(new RegExp(`\\$\\{?${v}\\b`));
    });
});

describe("one owner for each piece of instance SQL", () => {
    // The facts about an instance's replication state: its role, timeline, streaming state, slots.
    const FACTS =
        /pg_is_in_recovery|pg_stat_replication|pg_stat_wal_receiver|pg_(create|drop)_physical_replication_slot|pg_replication_slots|pg_walfile_name|pg_control_checkpoint|pg_promote|pg_switch_wal/;
    const shell = [...fs.readdirSync(OPS_DIR).map((f) => path.join(OPS_DIR, f)), ...fs.readdirSync(SERVER_DIR).map((f) => path.join(SERVER_DIR, f))];

    it("is scripts/server/instance.sh in the shell: no other script writes that SQL", () => {
        for (const f of shell) {
            if (f.endsWith(path.join("server", "instance.sh"))) continue;
            const lines = code(f)
                .split("\n")
                .filter((l) => FACTS.test(l));
            expect(lines, path.relative(ROOT, f)).toEqual([]);
        }
        expect(code(path.join(SERVER_DIR, "instance.sh"))).toMatch(FACTS);
    });

    it("is components/health.ts in TypeScript (npm run status)", () => {
        const ts = ["components", "scripts"].flatMap((d) =>
            fs
                .readdirSync(path.join(ROOT, d), { recursive: true })
                .map(String)
                .filter((f) => f.endsWith(".ts") && !f.includes("toolchain"))
                .map((f) => path.join(d, f)),
        );
        const owners = ts.filter((f) =>
            FACTS.test(
                fs
                    .readFileSync(path.join(ROOT, f), "utf8")
                    .replace(/\/\/.*$/gm, "")
                    .replace(/\/\*[\s\S]*?\*\//g, ""),
            ),
        );
        // pg-parameters.ts is the generated parameter table (names only); health.ts runs the queries.
        expect(owners.sort()).toEqual(["components/health.ts"]);
    });
});
