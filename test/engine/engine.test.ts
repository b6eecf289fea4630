// The test engine's own end-to-end tests: the fixture program (test/engine/fixture) applied to the
// lab swarm (scripts/lab.sh up) through the engine's CLI, checked with the docker CLI.
// Everything created here is named enginetest-*; the network is 10.0.250.0/24.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseGoDuration } from "./fields";
import { applyIgnoreChanges, diffProps, normalizeSets, SecretBox, SecretValue } from "./values";

const ROOT = path.resolve(__dirname, "..", "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");
const CLI = path.join(__dirname, "cli.ts");
const FIXTURE = path.join(__dirname, "fixture");
const MANAGER = "unix:///var/run/docker.sock";
const WORKER = "unix:///var/run/docker-b.sock";
const IMAGE = "pgha-postgres:15-lab";
const TOKEN = `tok-${crypto.randomBytes(9).toString("hex")}`;

function docker(host: string, ...args: string[]) {
    const r = spawnSync("docker", ["-H", host, ...args], { encoding: "utf8" });
    return { code: r.status ?? -1, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

function inspect(host: string, kind: string, name: string): any | undefined {
    const r = docker(host, kind, "inspect", name);
    return r.code === 0 ? JSON.parse(r.stdout)[0] : undefined;
}

function labProblem(): string | undefined {
    const info = docker(MANAGER, "info", "--format", "{{.Swarm.ControlAvailable}}");
    if (info.stdout !== "true") return `${MANAGER} is not a swarm manager`;
    if (docker(MANAGER, "image", "inspect", IMAGE).code !== 0) return `${IMAGE} is missing on the manager`;
    if (docker(WORKER, "image", "inspect", IMAGE).code !== 0) return `${IMAGE} is missing on node-b`;
    return undefined;
}

/** Removes every enginetest-* object from the lab (only those). */
function cleanLab() {
    const names = (host: string, kind: string) =>
        docker(host, kind, "ls", "--format", "{{.Name}}")
            .stdout.split("\n")
            .filter((n) => n.startsWith("enginetest-"));
    for (const s of names(MANAGER, "service")) docker(MANAGER, "service", "rm", s);
    for (const c of names(MANAGER, "config")) docker(MANAGER, "config", "rm", c);
    for (const s of names(MANAGER, "secret")) docker(MANAGER, "secret", "rm", s);
    for (let i = 0; i < 30; i++) {
        const nets = names(MANAGER, "network");
        if (nets.length === 0) break;
        for (const n of nets) docker(MANAGER, "network", "rm", n);
        execFileSync("sleep", ["1"]);
    }
    for (const host of [MANAGER, WORKER]) {
        for (let i = 0; i < 30; i++) {
            const vols = names(host, "volume");
            if (vols.length === 0) break;
            for (const v of vols) docker(host, "volume", "rm", "-f", v);
            execFileSync("sleep", ["1"]);
        }
    }
}

let work: string;
let markers: string;
let statePath: string;

interface Run {
    code: number;
    stdout: string;
    stderr: string;
}

function engine(op: string, ...extra: string[]): Promise<Run> {
    return cli(FIXTURE, "lab", statePath, [op, "--set", `markerDir=${JSON.stringify(markers)}`, ...extra]);
}

function cli(program: string, stack: string, state: string, argv: string[]): Promise<Run> {
    const [op, ...extra] = argv;
    const args = [CLI, op, "--stack", stack, "--state", state, "--program", program, ...extra];
    const env: NodeJS.ProcessEnv = { ...process.env, PGHA_ENGINE_SECRETS: JSON.stringify({ "enginetest:token": TOKEN }) };
    if (program !== FIXTURE) delete env.PGHA_ENGINE_SECRETS;
    delete env.PGHA_ENGINE_PASSPHRASE;
    return new Promise((resolve, reject) => {
        const child = spawn(TSX, args, { cwd: ROOT, env });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        // never outlive the test: a stuck run is killed and reported
        const timer = setTimeout(() => {
            stderr += "\n[test] engine run killed after 240 s\n";
            child.kill("SIGKILL");
        }, 240_000);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code: code ?? -1, stdout, stderr });
        });
    });
}

/** Non-"same" progress lines of a run. */
function changes(r: Run): string[] {
    return r.stderr.split("\n").filter((l) => /^\[engine\] (\+ |~ |\+-|- )/.test(l));
}

/** The service's spec and the spec before its last update (the Version index also moves with update status). */
function serviceSpec(): string {
    const s = inspect(MANAGER, "service", "enginetest-svc");
    return JSON.stringify([s.Spec, s.PreviousSpec ?? null]);
}

function markerFiles() {
    return fs.readdirSync(markers).sort();
}

describe("test engine on the lab swarm", () => {
    let first: Record<string, any>;

    beforeAll(() => {
        const problem = labProblem();
        if (problem) throw new Error(`the lab swarm is not ready (${problem}): run scripts/lab.sh up`);
        cleanLab();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "enginetest-"));
        markers = path.join(work, "markers");
        fs.mkdirSync(markers);
        statePath = path.join(work, "state.json");
    });

    afterAll(() => {
        if (labProblem() === undefined) cleanLab();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it("up from an empty state creates every declared object for real", async () => {
        const r = await engine("up");
        expect(r.code, r.stderr).toBe(0);
        first = JSON.parse(r.stdout);
        expect(r.stderr).toMatch(/^\[engine\] Resources: 9 created, 0 unchanged$/m);

        const net = inspect(MANAGER, "network", "enginetest-net");
        expect(net.Id).toBe(first.networkId);
        expect(net.Driver).toBe("overlay");
        expect(net.Attachable).toBe(true);
        expect(net.IPAM.Config).toEqual([{ Subnet: "10.0.250.0/24", Gateway: "10.0.250.1" }]);
        expect(net.Labels).toEqual({ team: "db", purpose: "enginetest" });

        // the volume lives on node-b's engine (the worker provider), not on the manager's
        expect(inspect(WORKER, "volume", "enginetest-data")?.Labels).toEqual({ team: "db", purpose: "enginetest" });
        expect(inspect(MANAGER, "volume", "enginetest-data")).toBeUndefined();

        expect(first.configName).toMatch(/^enginetest-conf-[0-9a-f]{7}$/);
        expect(Buffer.from(inspect(MANAGER, "config", first.configName).Spec.Data, "base64").toString()).toBe(
            "listen_addresses = '*'",
        );
        expect(inspect(MANAGER, "secret", first.secretName)).toBeDefined();

        const svc = inspect(MANAGER, "service", "enginetest-svc");
        expect(svc.ID).toBe(first.serviceId);
        const cs = svc.Spec.TaskTemplate.ContainerSpec;
        expect(cs.Command).toEqual(["sleep", "3600"]);
        expect(cs.Env).toEqual(["ENGINETEST=1"]);
        expect(cs.StopGracePeriod).toBe(5e9);
        expect(cs.Healthcheck).toEqual({ Test: ["CMD", "true"], Interval: 2e9, Timeout: 1e9, Retries: 3 });
        expect(cs.Mounts).toEqual([{ Type: "volume", Source: "enginetest-data", Target: "/data" }]);
        expect(cs.Configs).toEqual([
            { File: { Name: "/etc/enginetest.conf", UID: "0", GID: "0", Mode: 0o444 }, ConfigID: first.configId, ConfigName: first.configName },
        ]);
        expect(cs.Secrets[0].SecretName).toBe(first.secretName);
        expect(cs.Secrets[0].File.Mode).toBe(0o400);
        expect(svc.Spec.TaskTemplate.Networks).toEqual([{ Target: first.networkId, Aliases: ["enginetest"] }]);
        expect(svc.Spec.TaskTemplate.Placement.Constraints).toEqual(["node.hostname==node-b"]);
        expect(svc.Spec.EndpointSpec.Mode).toBe("dnsrr");
        // convergeConfig: the run returned only once the task was running
        const ps = docker(MANAGER, "service", "ps", "enginetest-svc", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}");
        expect(ps.stdout).toMatch(/^node-b Running/);

        expect(markerFiles()).toEqual(["create-one"]);
        expect(first.markerStdout).toBe("created one");
        // a command with a secret environment: secret output, redacted log line
        expect(first.secretStdout).toBe("[secret]");
        expect(r.stderr).toContain("with-secret | the token is [secret]");
        expect(r.stderr).not.toContain(TOKEN);
        expect(r.stdout).not.toContain(TOKEN);

        // data for the adoption test at the end
        const w = docker(WORKER, "run", "--rm", "-v", "enginetest-data:/data", IMAGE, "sh", "-c", "echo kept > /data/kept");
        expect(w.code, w.stderr).toBe(0);
    });

    it("up again with the same config changes nothing", async () => {
        const before = serviceSpec();
        const r = await engine("up");
        expect(r.code, r.stderr).toBe(0);
        expect(changes(r)).toEqual([]);
        expect(r.stderr).toMatch(/^\[engine\] Resources: 9 unchanged$/m);
        expect(JSON.parse(r.stdout)).toEqual(first);
        expect(serviceSpec()).toBe(before);
        expect(markerFiles()).toEqual(["create-one"]);
    });

    it("preview plans a trigger change as the replacement of that command only, and touches nothing", async () => {
        const state = fs.readFileSync(statePath, "utf8");
        const spec = serviceSpec();
        const r = await engine("preview", "--json", "--set", 'trigger="two"');
        expect(r.code, r.stderr).toBe(0);
        const plan = JSON.parse(r.stdout);
        const changed = plan.steps.filter((s: any) => s.op !== "same");
        expect(changed).toHaveLength(1);
        expect(changed[0]).toMatchObject({ op: "replace", type: "command:local:Command", name: "marker", deleteBeforeReplace: false });
        expect(changed[0].replaceReasons).toEqual(["triggers[0]"]);
        expect(changed[0].diffs).toEqual(["environment.TRIGGER", "triggers[0]"]);
        expect(plan.summary).toEqual({ same: 8, replace: 1 });
        expect(fs.readFileSync(statePath, "utf8")).toBe(state);
        expect(markerFiles()).toEqual(["create-one"]);
        expect(serviceSpec()).toBe(spec);
    });

    it("a trigger change replaces the command: the new create runs, then the old delete", async () => {
        const r = await engine("up", "--set", 'trigger="two"');
        expect(r.code, r.stderr).toBe(0);
        expect(changes(r).map((l) => l.replace(/ \(\d+\.\ds\)/, ""))).toEqual([
            "[engine] +- replace command:local:Command marker [diff: environment.TRIGGER, triggers[0]] [create-before-delete]",
            "[engine] - delete command:local:Command marker [original of a replacement]",
        ]);
        expect(markerFiles()).toEqual(["create-one", "create-two", "delete-one"]);
        // the old delete ran with the old environment and the old stdout
        expect(fs.readFileSync(path.join(markers, "delete-one"), "utf8").trim()).toBe("deleted created one");
        expect(JSON.parse(r.stdout).markerStdout).toBe("created two");
        expect(r.stderr).toMatch(/^\[engine\] Resources: 1 replaced, 8 unchanged$/m);
    });

    it("a config change creates the new config, moves the service to it, then deletes the old one", async () => {
        const set = ["--set", 'trigger="two"', "--set", 'configText="max_connections = 50"'];
        const p = await engine("preview", "--json", ...set);
        expect(p.code, p.stderr).toBe(0);
        const planned = JSON.parse(p.stdout).steps.filter((s: any) => s.op !== "same");
        expect(planned.map((s: any) => `${s.op} ${s.name}`)).toEqual(["replace enginetest-conf", "update svc"]);
        expect(planned[0].replaceReasons).toEqual(["data"]);
        expect(inspect(MANAGER, "config", first.configName)).toBeDefined();

        const r = await engine("up", ...set);
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout);
        expect(out.configId).not.toBe(first.configId);
        const order = changes(r).map((l) => l.replace(/ \(\d+\.\ds\).*$/, ""));
        expect(order).toEqual([
            "[engine] +- replace docker:index/serviceConfig:ServiceConfig enginetest-conf",
            "[engine] ~ update docker:index/service:Service svc",
            "[engine] - delete docker:index/serviceConfig:ServiceConfig enginetest-conf",
        ]);
        const svc = inspect(MANAGER, "service", "enginetest-svc");
        expect(svc.Spec.TaskTemplate.ContainerSpec.Configs[0].ConfigID).toBe(out.configId);
        expect(Buffer.from(inspect(MANAGER, "config", out.configName).Spec.Data, "base64").toString()).toBe("max_connections = 50");
        expect(inspect(MANAGER, "config", first.configId)).toBeUndefined();
        first = out;
    });

    it("an input field the engine does not translate fails the run, naming the resource and the field", async () => {
        const spec = serviceSpec();
        const r = await engine("up", "--set", 'trigger="two"', "--set", 'configText="max_connections = 50"', "--set", "untranslated=true");
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(
            "[engine] error: docker:index/service:Service svc: input taskSpec.containerSpec.hosts is not translated by the test engine",
        );
        expect(serviceSpec()).toBe(spec);
    });

    it("keeps no secret in plaintext in the state file", () => {
        const state = fs.readFileSync(statePath, "utf8");
        expect(state).not.toContain(TOKEN);
        expect(state).not.toContain(Buffer.from(TOKEN).toString("base64"));
        expect(state).toContain('"secretHash"');
        const s = JSON.parse(state);
        const urns = s.resources.map((e: any) => e.urn);
        expect(new Set(urns).size).toBe(urns.length);
        // a Docker secret's data: the hash only; a command's secret environment: hash and ciphertext
        const sec = s.resources.find((e: any) => e.type === "docker:index/secret:Secret");
        expect(Object.keys(sec.inputs.data)).toEqual(["secretHash"]);
        const cmd = s.resources.find((e: any) => e.name === "with-secret");
        expect(Object.keys(cmd.inputs.environment).sort()).toEqual(["ciphertext", "secretHash"]);
        const vol = s.resources.find((e: any) => e.type === "docker:index/volume:Volume");
        expect(vol).toMatchObject({ protect: true, retainOnDelete: true, engine: WORKER, id: "enginetest-data" });
    });

    it("destroy refuses while a resource is protected, before deleting anything", async () => {
        const r = await engine("destroy");
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain('unable to delete resource "urn:pulumi:lab::enginetest::docker:index/volume:Volume::data"');
        expect(r.stderr).toContain("as it is currently marked for protection");
        expect(inspect(MANAGER, "service", "enginetest-svc")).toBeDefined();
        expect(inspect(MANAGER, "config", first.configName)).toBeDefined();
    });

    it("destroy --unprotect deletes everything but the retained volume", async () => {
        const r = await engine("destroy", "--unprotect");
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toContain("[engine] - delete docker:index/volume:Volume data");
        expect(r.stderr).toContain("[retained, not deleted]");
        expect(inspect(MANAGER, "service", "enginetest-svc")).toBeUndefined();
        expect(inspect(MANAGER, "config", first.configName)).toBeUndefined();
        expect(inspect(MANAGER, "secret", first.secretName)).toBeUndefined();
        expect(inspect(MANAGER, "network", "enginetest-net")).toBeUndefined();
        expect(inspect(WORKER, "volume", "enginetest-data")).toBeDefined();
        expect(JSON.parse(fs.readFileSync(statePath, "utf8")).resources).toEqual([]);
        // the marker command's delete ran on destroy
        expect(markerFiles()).toEqual(["create-one", "create-two", "delete-one", "delete-two"]);
    });

    it("up after destroy adopts the retained volume with its data", async () => {
        const r = await engine("up");
        expect(r.code, r.stderr).toBe(0);
        const task = docker(MANAGER, "service", "ps", "enginetest-svc", "--filter", "desired-state=running", "-q");
        expect(task.stdout).not.toBe("");
        const cat = docker(WORKER, "run", "--rm", "-v", "enginetest-data:/data", IMAGE, "cat", "/data/kept");
        expect(cat.stdout).toBe("kept");
        const d = await engine("destroy", "--unprotect");
        expect(d.code, d.stderr).toBe(0);
    });
});

// Engine semantics with local commands only (no Docker): ordering of replacements, ignoreChanges,
// deletes of undeclared resources, protect, failures, components.
describe("test engine semantics (commands only)", () => {
    const PROGRAM = path.join(__dirname, "fixture-commands");
    let dir: string;
    let state: string;
    let logFile: string;
    const run = (op: string, sets: Record<string, unknown> = {}, ...extra: string[]) =>
        cli(PROGRAM, "dev", state, [
            op,
            "--set",
            `log=${JSON.stringify(logFile)}`,
            ...Object.entries(sets).flatMap(([k, v]) => ["--set", `${k}=${JSON.stringify(v)}`]),
            ...extra,
        ]);
    let seen = 0;
    /** Lines the commands appended to the log since the last call. */
    const newLog = () => {
        const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean) : [];
        const fresh = lines.slice(seen);
        seen = lines.length;
        return fresh;
    };

    beforeAll(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "enginetest-"));
        state = path.join(dir, "state.json");
        logFile = path.join(dir, "log");
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("creates in dependency order and records components with their URN chain", async () => {
        const r = await run("up", { withC: true });
        expect(r.code, r.stderr).toBe(0);
        expect(newLog()).toEqual(["create a 1", "create b a-1", "create c"]);
        expect(JSON.parse(r.stdout)).toEqual({ aStdout: "a-1", bStdout: "" });
        const s = JSON.parse(fs.readFileSync(state, "utf8"));
        const a = s.resources.find((e: any) => e.name === "a");
        expect(a.urn).toBe("urn:pulumi:dev::enginetest-commands::enginetest:index:Group$command:local:Command::a");
        expect(a.parent).toBe("urn:pulumi:dev::enginetest-commands::enginetest:index:Group::group");
        const c = s.resources.find((e: any) => e.name === "c");
        expect(c.dependencies).toEqual(["urn:pulumi:dev::enginetest-commands::enginetest:index:Group$command:local:Command::b"]);
    });

    it("ignores a change under ignoreChanges", async () => {
        const r = await run("up", { withC: true, note: "changed" });
        expect(r.code, r.stderr).toBe(0);
        expect(changes(r)).toEqual([]);
        expect(newLog()).toEqual([]);
    });

    it("replaces create-before-delete: new create, dependants updated, old delete last", async () => {
        const r = await run("up", { withC: true, a: "2" });
        expect(r.code, r.stderr).toBe(0);
        expect(newLog()).toEqual(["create a 2", "update b a-2 (was )", "delete a 1"]);
        expect(JSON.parse(r.stdout).bStdout).toBe("b-a-2");
    });

    it("replaces delete-before-replace when the option is set", async () => {
        const r = await run("up", { withC: true, a: "3", dbr: true });
        expect(r.code, r.stderr).toBe(0);
        expect(newLog()).toEqual(["delete a 2", "create a 3", "update b a-3 (was b-a-2)"]);
    });

    it("deletes a resource the program no longer declares", async () => {
        const r = await run("up", { a: "3", dbr: true });
        expect(r.code, r.stderr).toBe(0);
        expect(newLog()).toEqual(["delete c"]);
        expect(r.stderr).toMatch(/^\[engine\] Resources: 1 deleted, 4 unchanged$/m);
    });

    it("refuses to replace a protected resource", async () => {
        const r = await run("up", { a: "3", dbr: true, p: "2" });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain('unable to replace resource "urn:pulumi:dev::enginetest-commands::command:local:Command::p"');
        const p = await run("preview", { a: "3", dbr: true, p: "2" }, "--json");
        expect(p.code).not.toBe(0);
        expect(JSON.parse(p.stdout).steps.find((s: any) => s.name === "p").op).toBe("replace");
    });

    it("fails on a failing command with its output, keeping the state of what was applied", async () => {
        const r = await run("up", { a: "3", dbr: true, fail: true });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain('exit status 3: running "echo boom >&2; exit 3"');
        expect(r.stderr).toContain("boom");
        const s = JSON.parse(fs.readFileSync(state, "utf8"));
        expect(s.resources.map((e: any) => e.name).sort()).toEqual(["a", "b", "group", "p"]);
    });

    it("destroys dependants first, children before their component", async () => {
        const r = await run("destroy", {}, "--unprotect");
        expect(r.code, r.stderr).toBe(0);
        expect(newLog()).toEqual(["delete b", "delete a 3"]);
        const order = changes(r).map((l) => l.replace(/ \(.*$/, "").split(" ").slice(-2).join(" "));
        expect(order.indexOf("command:local:Command a")).toBeLessThan(order.indexOf("enginetest:index:Group group"));
        expect(JSON.parse(fs.readFileSync(state, "utf8")).resources).toEqual([]);
    });
});

describe("test engine values", () => {
    const box = new SecretBox("salt", crypto.randomBytes(32));

    it("diffs nested inputs by property path, secrets by hash only", () => {
        const prev = { a: { b: [1, 2], c: "x" }, s: new SecretValue("one") };
        expect(diffProps(box, prev, { a: { b: [1, 3], c: "x" }, s: new SecretValue("one") })).toEqual(["a.b[1]"]);
        expect(diffProps(box, prev, { a: { b: [1, 2], c: "x" }, s: new SecretValue("two") })).toEqual(["s"]);
        expect(diffProps(box, { e: { "K.1": "v" } }, { e: { "K.1": "w" } })).toEqual(['e["K.1"]']);
        expect(diffProps(box, { a: null as any }, {})).toEqual([]);
    });

    it("stores secrets as hashes (and ciphertext only when asked), never as plaintext", () => {
        const v = new SecretValue({ TOKEN: "hunter2" });
        const hashed = JSON.stringify(box.store({ env: v }));
        const sealed = JSON.stringify(box.store({ env: v }, true));
        expect(hashed).not.toContain("hunter2");
        expect(sealed).not.toContain("hunter2");
        expect(JSON.parse(hashed).env).toEqual({ secretHash: box.hash(v) });
        const back = (box.load(JSON.parse(sealed)) as Record<string, unknown>).env as SecretValue;
        expect(back.value).toEqual({ TOKEN: "hunter2" });
    });

    it("takes ignored paths from the old inputs", () => {
        const prev = { environment: { A: "1", NOTE: "old" }, create: "x" };
        const next = { environment: { A: "2", NOTE: "new" }, create: "y" };
        expect(applyIgnoreChanges(prev, next, ["environment.NOTE"])).toEqual({ environment: { A: "2", NOTE: "old" }, create: "y" });
        expect(applyIgnoreChanges(prev, next, ["environment", "create"])).toEqual(prev);
        expect(applyIgnoreChanges({ l: [{ v: 1 }, { v: 2 }] }, { l: [{ v: 3 }, { v: 4 }] }, ["l[*].v"])).toEqual({ l: [{ v: 1 }, { v: 2 }] });
    });

    it("sees no difference in the order of set-typed fields", () => {
        const a = { taskSpec: { containerSpec: { mounts: [{ target: "/a" }, { target: "/b" }] } } };
        const b = { taskSpec: { containerSpec: { mounts: [{ target: "/b" }, { target: "/a" }] } } };
        const sets = ["taskSpec.containerSpec.mounts"];
        expect(diffProps(box, normalizeSets(a, sets), normalizeSets(b, sets))).toEqual([]);
        expect(diffProps(box, a, b)).not.toEqual([]);
    });

    it("parses Go durations to nanoseconds", () => {
        expect(parseGoDuration("120s", "t")).toBe(120e9);
        expect(parseGoDuration("1m30s", "t")).toBe(90e9);
        expect(parseGoDuration("1.5h", "t")).toBe(5400e9);
        expect(parseGoDuration("250ms", "t")).toBe(250e6);
        expect(() => parseGoDuration("5 s", "t")).toThrow(/invalid duration/);
    });
});
