// End-to-end upgrade proof: upgrading pgha recreates nothing. The stack "labup" (up1 on node-a, up2
// on node-b, its own network, ports and volumes) is first deployed with the program of the last
// release before the structure change, a row is written, then the workspace's project directory is
// re-linked to the checkout's program and `pulumi preview` and `pulumi up` run with it:
//   - the preview plans no create, replace or delete of any Volume, Service or Network (Docker
//     configs may be replaced, Commands updated or replaced); every step is printed, grouped by
//     op and type, so the log shows what the upgrade does;
//   - after the up the services keep their Docker IDs, the volumes and the network are the same
//     Docker objects, and the row is on the primary and on the streaming standby;
//   - a second `pulumi up` changes nothing.
// A resource whose name or parent changed in the new code needs `aliases`: this proves that there
// is no replacement, whichever way the new code gets there.

import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, containerOf, docker, ENDPOINTS, engineAsync, ENGINES, PASSWORDS, phase, query, stackExport, stateFile, waitFor } from "./lab";
import { commandLog, ensureProject, parsePreview, type PreviewStep, pulumiAsync, resetConfig, resourceSummary, ROOT, typeOf } from "./pulumi";

/** The last release before the structure change (98d3b15): the program the stack is first deployed with. */
const OLD_RELEASE = "98d3b1538a6383b1a4368d7f6c2640f7e8b89ffd";

const STACK = "labup";
const NETWORK = "pgha_up";
const SERVERS: [string, string][] = [
    ["up1", "node-a"],
    ["up2", "node-b"],
];
const NAMES = SERVERS.map(([s]) => s);
const state = stateFile("upgrade");

// Where this host reaches the labup servers (Pulumi.labup.yaml): the harness's clients look them up here.
Object.assign(ENDPOINTS, { up1: { host: "127.0.0.1", port: 15482 }, up2: { host: "192.168.77.2", port: 15483 } });

/** The resources an upgrade must keep: a new one of these is a new Docker object (data, task, addresses). */
const KEPT_TYPES = ["docker:index/volume:Volume", "docker:index/service:Service", "docker:index/network:Network"];
/**
 * What this release adds beside the kept resources: automatic failover's arbiter (a new service on
 * the managers, components/arbiter.ts), created by the upgrade. Nothing of the servers' is.
 */
const isArbiter = (urn: string) => urn.includes("pgha:index:Arbiter");
/** The steps that make, remake or remove a resource. */
const RECREATING_OPS = ["create", "replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"];

let oldProgram = "";
let deployed = false;
let upgradePlanned = false;
/** The Commands the upgrade updates or replaces: an update without an `update` command runs `create` again. */
let rerunCommands: string[] = [];
let upgraded = false;
let before: Identity;
let stateBefore: Record<string, string> = {};
let containersBefore: string[] = [];
const ROW = `written by the release ${OLD_RELEASE.slice(0, 7)}`;

function git(args: string[]): { status: number; out: string } {
    const r = spawnSync("git", ["-C", ROOT, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
    return { status: r.status ?? -1, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/** The old release's program in a temporary directory outside the repository (its node_modules: the checkout's). */
function extractOldRelease(): string {
    if (git(["cat-file", "-e", `${OLD_RELEASE}^{commit}`]).status !== 0) {
        const shallow = git(["rev-parse", "--is-shallow-repository"]).out === "true";
        throw new Error(
            `the upgrade proof needs commit ${OLD_RELEASE} (the last release before the structure change), and ${ROOT} does not have it` +
                (shallow ? " (a shallow clone: run `git fetch --unshallow`)" : ` (fetch it: git fetch origin ${OLD_RELEASE})`),
        );
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgha-e2e-release-${OLD_RELEASE.slice(0, 7)}-`));
    const tar = path.join(dir, "..", `${path.basename(dir)}.tar`);
    try {
        const a = git(["archive", "--format=tar", "-o", tar, OLD_RELEASE]);
        if (a.status !== 0) throw new Error(`git archive ${OLD_RELEASE} failed: ${a.out}`);
        const x = spawnSync("tar", ["-xf", tar, "-C", dir], { encoding: "utf8" });
        if (x.status !== 0) throw new Error(`tar -xf ${tar} failed: ${x.stderr}`);
    } finally {
        fs.rmSync(tar, { force: true });
    }
    fs.symlinkSync(fs.realpathSync(path.join(ROOT, "node_modules")), path.join(dir, "node_modules"));
    return dir;
}

/**
 * Points the workspace's project directory at a program: every top-level entry of programDir is
 * linked (whatever the program's layout), its Pulumi.yaml copied; the stack's Pulumi.<stack>.yaml
 * of the workspace stays as it is.
 */
function linkProgram(programDir: string): void {
    const dir = ensureProject(state);
    for (const e of fs.readdirSync(dir)) {
        const p = path.join(dir, e);
        if (e === "Pulumi.yaml" || fs.lstatSync(p).isSymbolicLink()) fs.rmSync(p);
    }
    for (const e of fs.readdirSync(programDir)) {
        if (e.startsWith(".") || e === "Pulumi.yaml" || /^Pulumi\..+\.yaml$/.test(e)) continue;
        fs.symlinkSync(path.join(programDir, e), path.join(dir, e));
    }
    fs.copyFileSync(path.join(programDir, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
}

interface Identity {
    services: Record<string, string>;
    volumes: Record<string, string>;
    network: string;
}

/** The mount points of a server's volumes in its container (components/templates.ts PATHS). */
const VOLUME_DIRS: Record<string, string> = { data: "/var/lib/pgha/data", archive: "/var/lib/pgha/archive" };
/** A file of this test's own in the root of each volume (the scripts look only into pgdata/, wal/, ...). */
const MARKER = ".pgha-upgrade-proof";
const markers: Record<string, string> = {};

/**
 * Writes a random marker into each volume of the running servers. Docker volumes have no ID (and
 * their CreatedAt is their directory's mtime): a volume is the same one when it still holds the marker.
 */
function markVolumes(): void {
    for (const [server, node] of SERVERS) {
        for (const [kind, dir] of Object.entries(VOLUME_DIRS)) {
            const token = crypto.randomBytes(8).toString("hex");
            docker(ENGINES[node], ["exec", "-i", containerOf(server, node), "sh", "-c", 'cat > "$1"', "sh", `${dir}/${MARKER}`], token);
            markers[`${server}-${kind}`] = token;
        }
    }
}

/** The Docker objects of the stack as the engines see them: service IDs, volume identities, network ID. */
function identity(): Identity {
    const services: Record<string, string> = {};
    const volumes: Record<string, string> = {};
    for (const [server, node] of SERVERS) {
        services[server] = docker(ENGINES["node-a"], ["service", "inspect", "-f", "{{.ID}} created {{.CreatedAt}}", server]);
        const container = containerOf(server, node);
        for (const [kind, dir] of Object.entries(VOLUME_DIRS)) {
            const volume = `${server}-${kind}`;
            const inspected = docker(ENGINES[node], ["volume", "inspect", "-f", "{{.Driver}} {{.Mountpoint}}", volume]);
            const marker = docker(ENGINES[node], ["exec", container, "sh", "-c", 'cat "$1" 2>/dev/null || echo none', "sh", `${dir}/${MARKER}`]);
            volumes[volume] = `${inspected} marker ${marker === markers[volume] ? "kept" : `lost (${marker})`}`;
        }
    }
    for (const node of Object.keys(ENGINES)) {
        volumes[`(${node}: every volume of the cluster)`] = docker(ENGINES[node], ["volume", "ls", "-q", "--filter", `label=pgha.cluster=${NETWORK}`])
            .split("\n")
            .sort()
            .join(" ");
    }
    return { services, volumes, network: docker(ENGINES["node-a"], ["network", "inspect", "-f", "{{.Id}}", NETWORK]) };
}

/** The kept resources in the stack's state: "type id" → URN (their URNs may change, with aliases). */
function keptInState(): Record<string, string> {
    const resources = JSON.parse(stackExport(STACK, state)).deployment.resources as { type: string; urn: string; id?: string }[];
    return Object.fromEntries(resources.filter((r) => KEPT_TYPES.includes(r.type) && !isArbiter(r.urn)).map((r) => [`${r.type} ${r.id}`, r.urn]));
}

function containers(): string[] {
    return SERVERS.map(([server, node]) => containerOf(server, node));
}

async function streaming(): Promise<boolean> {
    const rows = await query("up1", "select state from pg_stat_replication where application_name = 'up2'");
    return rows[0]?.state === "streaming";
}

const nameOf = (s: PreviewStep) => s.urn.split("::").pop() ?? s.urn;
function reasons(s: PreviewStep): string {
    const out: string[] = [];
    if (s.replaceReasons?.length) out.push(`replace: ${s.replaceReasons.join(", ")}`);
    if (s.diffReasons?.length) out.push(`diff: ${s.diffReasons.join(", ")}`);
    return out.length ? ` [${out.join("; ")}]` : "";
}

/** Every step of a plan, grouped by op, then type. */
function describeSteps(steps: PreviewStep[]): string {
    const byOp = new Map<string, Map<string, string[]>>();
    for (const s of steps) {
        const types = byOp.get(s.op) ?? new Map<string, string[]>();
        byOp.set(s.op, types);
        const names = types.get(typeOf(s.urn)) ?? [];
        types.set(typeOf(s.urn), names);
        names.push(`${nameOf(s)}${s.op === "same" ? "" : reasons(s)}`);
    }
    const lines = [`[e2e] the upgrade's preview (${OLD_RELEASE.slice(0, 7)} → this checkout): ${steps.length} steps`];
    for (const [op, types] of [...byOp].sort(([a], [b]) => (a === "same" ? 1 : b === "same" ? -1 : a.localeCompare(b)))) {
        lines.push(`  ${op} (${[...types.values()].reduce((n, l) => n + l.length, 0)})`);
        for (const [type, names] of [...types].sort(([a], [b]) => a.localeCompare(b))) lines.push(`    ${type}: ${names.sort().join(", ")}`);
    }
    return lines.join("\n");
}

function noPasswords(what: string, ...texts: string[]): void {
    for (const secret of Object.values(PASSWORDS)) {
        if (texts.some((t) => t.includes(secret))) throw new Error(`${what} shows a password in plaintext`);
    }
}

interface Plan {
    steps: PreviewStep[];
    /** why the preview failed ("" when it succeeded): the CLI's error diagnostics and the end of its stderr */
    failure: string;
}

/** `pulumi preview --json` (every step) of the stack's base config with the program linked now. */
async function preview(): Promise<Plan> {
    resetConfig(state, STACK);
    // every step: the unchanged ones and the create-replacement / delete-replaced halves too
    const r = await pulumiAsync(state, STACK, ["preview", "--stack", STACK, "--non-interactive", "--json", "--show-sames", "--show-replacement-steps"]);
    noPasswords("the preview", r.stdout, r.stderr);
    let plan: ReturnType<typeof parsePreview> | undefined;
    try {
        plan = parsePreview(r.stdout);
    } catch {
        plan = undefined;
    }
    if (r.status === 0 && plan) return { steps: plan.steps ?? [], failure: "" };
    const diagnostics = ((plan?.diagnostics ?? []) as { severity?: string; message?: string; urn?: string }[])
        .filter((d) => d.severity === "error")
        .map((d) => `  ${d.urn ? `${d.urn.split("::").pop()}: ` : ""}${(d.message ?? "").trim()}`);
    return {
        steps: plan?.steps ?? [],
        failure: `\`pulumi preview\` of the upgrade failed (exit ${r.status}):\n${diagnostics.join("\n")}\n${r.stderr.slice(-4000)}${plan ? "" : `\n${r.stdout.slice(-4000)}`}`,
    };
}

beforeAll(async () => {
    oldProgram = await phase("upgrade: the old release's program", () => extractOldRelease());
    const since = git(["rev-list", "--count", `${OLD_RELEASE}..HEAD`]).out;
    console.log(
        `[e2e] upgrading from ${OLD_RELEASE.slice(0, 7)} to this checkout (${since} commits later; working tree vs the release: ${git(["diff", "--shortstat", OLD_RELEASE]).out || "no difference"})`,
    );
    await phase("upgrade: clean leftovers of earlier runs", () => cleanLab(NAMES, NETWORK));
    linkProgram(oldProgram);
    deployed = true;
    const r = await phase(`upgrade: deploy the labup stack with ${OLD_RELEASE.slice(0, 7)}`, () => engineAsync("up", STACK, state));
    console.log(`[e2e] the old release's up: ${resourceSummary(r.stderr).replace(/\n\s*/g, ", ")}`);
    await phase("upgrade: up2 streams from up1", () => waitFor("up2 streaming from up1", streaming, 120_000, 500));
    await query("up1", "create table upgrade_probe (id int primary key, note text not null)");
    await query("up1", "insert into upgrade_probe values (1, $1)", [ROW]);
    await query("up1", "checkpoint");
    await waitFor("the row on up2", async () => (await query("up2", "select note from upgrade_probe where id = 1"))[0]?.note === ROW, 30_000, 200);
    markVolumes();
    before = identity();
    stateBefore = keptInState();
    containersBefore = containers();
    // from here on, the checkout's program
    linkProgram(ROOT);
}, 900_000);

afterAll(async () => {
    await phase("upgrade: destroy (unprotected) and remove the volumes", async () => {
        try {
            if (deployed) await engineAsync("destroy", STACK, state, ["--unprotect"]);
        } finally {
            try {
                cleanLab(NAMES, NETWORK);
            } finally {
                if (oldProgram) fs.rmSync(oldProgram, { recursive: true, force: true });
            }
        }
    });
}, 600_000);

describe(`upgrading a stack deployed with ${OLD_RELEASE.slice(0, 7)} to this checkout`, () => {
    it("previews no create, replace or delete of a volume, service or network", async () => {
        const { steps, failure } = await phase("upgrade: preview with the checkout's program", () => preview());
        console.log(describeSteps(steps));
        const recreated = steps
            .filter((s) => KEPT_TYPES.includes(typeOf(s.urn)) && RECREATING_OPS.includes(s.op))
            .filter((s) => !(isArbiter(s.urn) && s.op === "create"))
            .map((s) => `${s.op} ${typeOf(s.urn)} ${nameOf(s)}${reasons(s)}`)
            .sort();
        expect(
            recreated,
            `the upgrade would make, remake or remove these (a renamed or re-parented resource needs \`aliases\`)${failure ? `; and ${failure}` : ""}`,
        ).toEqual([]);
        if (failure) throw new Error(failure);
        // every kept resource of the old state is in the plan, unreplaced
        expect(steps.filter((s) => KEPT_TYPES.includes(typeOf(s.urn)) && !isArbiter(s.urn)).length, "volumes, services and the network in the plan").toBe(
            Object.keys(stateBefore).length,
        );
        rerunCommands = steps.filter((s) => typeOf(s.urn) === "command:local:Command" && ["update", "replace"].includes(s.op)).map(nameOf);
        upgradePlanned = true;
    });

    it("applies the upgrade: same services, volumes and network, and the row on the primary and the streaming standby", async () => {
        expect(upgradePlanned, "not applied: the upgrade's preview failed or planned a recreation (see above)").toBe(true);
        const r = await phase("upgrade: pulumi up with the checkout's program", () => engineAsync("up", STACK, state));
        upgraded = true;
        for (const name of rerunCommands) {
            const lines = commandLog(r.stderr, name).map((l) => `    ${l}`);
            console.log(`[e2e] ${name} ran during the upgrade${lines.length ? `:\n${lines.join("\n")}` : " (it logged nothing)"}`);
        }
        console.log(`[e2e] the upgrade's up: ${resourceSummary(r.stderr).replace(/\n\s*/g, ", ")}`);
        await phase("upgrade: up2 streams from up1 again", () => waitFor("up2 streaming from up1 after the upgrade", streaming, 180_000, 500));
        expect(identity(), "the Docker objects after the upgrade").toEqual(before);
        const stateAfter = keptInState();
        expect(Object.keys(stateAfter).sort(), "the volumes, services and network in the state after the upgrade").toEqual(Object.keys(stateBefore).sort());
        for (const [key, urn] of Object.entries(stateAfter)) {
            if (urn !== stateBefore[key]) console.log(`[e2e] kept through an alias: ${stateBefore[key]} → ${urn}`);
        }
        const after = containers();
        console.log(
            `[e2e] containers: ${NAMES.map((s, i) => `${s} ${after[i] === containersBefore[i] ? "kept" : "restarted (its service was updated)"}`).join(", ")}`,
        );
        expect((await query("up1", "select pg_is_in_recovery() as r"))[0].r).toBe(false);
        expect((await query("up2", "select pg_is_in_recovery() as r"))[0].r).toBe(true);
        expect(await query("up1", "select note from upgrade_probe")).toEqual([{ note: ROW }]);
        expect(await query("up2", "select note from upgrade_probe")).toEqual([{ note: ROW }]);
        // and the standby still replays what the primary commits now
        await query("up1", "insert into upgrade_probe values (2, 'after the upgrade')");
        await waitFor(
            "a row written after the upgrade on up2",
            async () => (await query("up2", "select 1 from upgrade_probe where id = 2")).length === 1,
            30_000,
            200,
        );
    }, 900_000);

    it("changes nothing on a second `pulumi up`", async () => {
        expect(upgraded, "not run: the upgrade was not applied").toBe(true);
        const r = await phase("upgrade: pulumi up again", () => engineAsync("up", STACK, state));
        expect(resourceSummary(r.stderr), r.stderr.slice(-3000)).toMatch(/^\d+ unchanged$/);
        expect(identity()).toEqual(before);
    }, 600_000);
});
