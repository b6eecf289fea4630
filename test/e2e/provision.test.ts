// End-to-end provisioning: the real program (index.ts, stack "lab"), applied by the real Pulumi CLI
// to the real two-node swarm, gives a primary on node-a and a streaming hot standby on node-b, with
// slots, continuous archiving on both, working client connection strings, idempotent re-applies
// and data volumes that survive a destroy.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changes, parsePreview, resourceSummary, tracedPulumi } from "./pulumi";
import {
    cleanLab,
    connect,
    containerOf,
    docker,
    engine,
    engineAsync,
    ENGINES,
    mustEngine,
    PASSWORDS,
    phase,
    psqlOnNetwork,
    query,
    stackExport,
    stateFile,
    waitFor,
} from "./lab";

const STACK = "lab";
const NETWORK = "pgha_lab";
const IMAGE = "pgha-postgres:15-lab";
const state = stateFile("provision");
let outputs: Record<string, any> = {};
let upOutput = "";
/** How Pulumi marks a secret value in a state file (sdk/go/common/resource/sig). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

function parseOutputs(stdout: string): Record<string, any> {
    const start = stdout.indexOf("{");
    return JSON.parse(stdout.slice(start));
}

beforeAll(async () => {
    await phase("clean leftovers of earlier runs", () => cleanLab(["pg1", "pg2"], NETWORK));
    const r = await phase("apply the lab stack from empty", () => mustEngine("up", STACK, state));
    outputs = parseOutputs(r.stdout);
    upOutput = r.stderr;
    // The bootstrap Command waits until pg2 streams; the services' health is the last thing to come.
    await phase("both servers accept connections", () =>
        waitFor(
            "pg1 and pg2 to accept connections",
            async () => (await query("pg1", "select 1 as ok"))[0].ok === 1 && (await query("pg2", "select 1 as ok"))[0].ok === 1,
            120_000,
            500,
        ),
    );
}, 900_000);

afterAll(async () => {
    await phase("destroy (unprotected) and remove the volumes", () => {
        mustEngine("destroy", STACK, state, ["--unprotect"]);
        cleanLab(["pg1", "pg2"], NETWORK);
    });
}, 300_000);

describe("the lab stack on a real two-node swarm", () => {
    it("runs pg1 on node-a and pg2 on node-b", () => {
        expect(docker(ENGINES["node-a"], ["service", "ps", "pg1", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"])).toMatch(
            /^node-a Running/,
        );
        expect(docker(ENGINES["node-a"], ["service", "ps", "pg2", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"])).toMatch(
            /^node-b Running/,
        );
    });

    it("keeps each server's data and archive volume on its own node", () => {
        for (const [server, node, other] of [
            ["pg1", "node-a", "node-b"],
            ["pg2", "node-b", "node-a"],
        ]) {
            for (const kind of ["data", "archive"]) {
                expect(docker(ENGINES[node], ["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", `${server}-${kind}`])).toBe(`${server}-${kind} local`);
                expect(() => docker(ENGINES[other], ["volume", "inspect", `${server}-${kind}`])).toThrow();
            }
        }
    });

    it("exports what the program declares", () => {
        expect(outputs.primary).toBe("pg1");
        expect(outputs.servers.pg2.node).toBe("node-b");
        expect(outputs.servers.pg2.dataVolume).toBe("pg2-data");
        expect(outputs.readWriteConnectionString).toBe("postgresql://pg1:5432,pg2:5432/postgres?target_session_attrs=read-write");
    });

    it("shows no drift on `pulumi refresh` right after provisioning, and no change in a preview after it", () => {
        const r = mustEngine("refresh", STACK, state);
        expect(resourceSummary(r.stderr), r.stderr.slice(-3000)).toMatch(/^\d+ unchanged$/);
        const plan = mustEngine("preview", STACK, state, ["--json"]);
        expect(changes(parsePreview(plan.stdout).steps)).toEqual([]);
    });

    it("keeps the passwords out of the state, the CLI's output, the preview and every Command's recorded output", () => {
        const exported = stackExport(STACK, state);
        const plan = mustEngine("preview", STACK, state, ["--json"]).stdout;
        for (const secret of Object.values(PASSWORDS)) {
            expect(exported.includes(secret), "a password in `pulumi stack export`").toBe(false);
            expect(plan.includes(secret), "a password in `pulumi preview --json`").toBe(false);
            expect(upOutput.includes(secret), "a password in the output of `pulumi up`").toBe(false);
        }
        // The Commands that carry a password in their environment have every output secret:
        // ciphertext in the state, never the text.
        const resources = JSON.parse(exported).deployment.resources as { type: string; urn: string; inputs?: any; outputs?: any }[];
        for (const name of ["pg2-bootstrap", "pgha-passwords"]) {
            const c = resources.find((r) => r.type === "command:local:Command" && r.urn.endsWith(`::${name}`));
            expect(c, `the ${name} Command in the state`).toBeTruthy();
            expect(c!.inputs.environment[SECRET_SIG], name).toBe("1b47061264138c4ac30d75fd1eb44270");
            for (const key of ["stdout", "stderr", "environment"])
                expect(c!.outputs[key]?.[SECRET_SIG], `${name} output ${key} is secret`).toBe("1b47061264138c4ac30d75fd1eb44270");
        }
        // No Docker secret but automatic failover's token (the arbiter's), itself secret in the
        // state, and the Command that made it with its output secret: the passwords go into the
        // data volumes by the passwords operation.
        const dockerSecrets = resources.filter((r) => r.type === "docker:index/secret:Secret");
        expect(dockerSecrets.map((r) => r.urn.split("::").pop())).toEqual(["pgha-arbiter-secret"]);
        expect(dockerSecrets[0].inputs.data[SECRET_SIG], "the arbiter's token in the state").toBe("1b47061264138c4ac30d75fd1eb44270");
        const token = resources.find((r) => r.type === "command:local:Command" && r.urn.endsWith("::pgha-arbiter-token"));
        expect(token!.outputs.stdout[SECRET_SIG], "the token Command's output").toBe("1b47061264138c4ac30d75fd1eb44270");
    });

    it("never makes the CLI, the language host or a plugin try an outside address", () => {
        const { result, connects, log } = tracedPulumi(state, STACK, ["preview", "--refresh", "--stack", STACK, "--non-interactive"]);
        expect(result.status, log.slice(-3000)).toBe(0);
        const outside = connects.filter((c) => !/^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(c) && !c.startsWith("unix:"));
        expect(outside, "connections to addresses other than loopback and unix sockets").toEqual([]);
        expect(
            connects.some((c) => c === "unix:/var/run/docker-b.sock"),
            "the docker provider reached node-b's engine",
        ).toBe(true);
        // and none was planned: no update check, no plugin download, no cloud backend
        expect(log).not.toMatch(/api\.pulumi\.com|get\.pulumi\.com|github\.com\/pulumi|downloading plugin|checking for (a )?new version/i);
        // (The log itself is not checked for passwords: at -v=9 Pulumi's engine logs every RPC
        // payload, secrets in plaintext included; docs/toolchain.md says so.)
    });

    it("has pg1 primary and pg2 a hot standby streaming through its slot", async () => {
        expect((await query("pg1", "select pg_is_in_recovery() as r"))[0].r).toBe(false);
        expect((await query("pg2", "select pg_is_in_recovery() as r"))[0].r).toBe(true);
        const rep = await waitFor("pg2 streaming", async () => {
            const rows = await query("pg1", "select application_name, state from pg_stat_replication");
            return rows.find((r) => r.application_name === "pg2" && r.state === "streaming");
        });
        expect(rep).toBeTruthy();
        const slots = await query("pg1", "select slot_name, slot_type, active from pg_replication_slots where slot_name = 'pg2'");
        expect(slots).toEqual([{ slot_name: "pg2", slot_type: "physical", active: true }]);
        const receiver = await query("pg2", "select status, slot_name, sender_host from pg_stat_wal_receiver");
        expect(receiver[0]).toMatchObject({ status: "streaming", slot_name: "pg2", sender_host: "pg1" });
    });

    it("replays a commit on the standby within one second", async () => {
        const primary = await connect("pg1");
        const standby = await connect("pg2");
        try {
            await primary.query("create table if not exists e2e_probe (id serial primary key, note text)");
            const note = `probe-${Date.now()}`;
            await primary.query("insert into e2e_probe (note) values ($1)", [note]);
            const committed = Date.now();
            await waitFor("the row on pg2", async () => (await standby.query("select 1 from e2e_probe where note = $1", [note])).rowCount === 1, 1000, 10);
            console.log(`[e2e] commit visible on the standby after ${Date.now() - committed} ms`);
        } finally {
            await primary.end();
            await standby.end();
        }
    });

    it("archives WAL segments into both servers' archive volumes", async () => {
        // Some WAL first: a switch at a segment boundary (nothing written since the last one) closes
        // nothing, and the segment would wait for archive_timeout (seen on 17: test/e2e/versions.test.ts).
        await query("pg1", "CREATE TABLE IF NOT EXISTS archive_probe (at timestamptz DEFAULT clock_timestamp()); INSERT INTO archive_probe DEFAULT VALUES");
        const [{ walfile }] = await query("pg1", "select pg_walfile_name(pg_switch_wal()) as walfile");
        for (const [server, node] of [
            ["pg1", "node-a"],
            ["pg2", "node-b"],
        ]) {
            await waitFor(
                `${walfile} in ${server}'s archive`,
                () =>
                    docker(ENGINES[node], ["exec", containerOf(server, node), "ls", "/var/lib/pgha/archive/wal"])
                        .split("\n")
                        .includes(walfile),
                60_000,
                500,
            );
        }
        const archiver = await query("pg1", "select failed_count from pg_stat_archiver");
        expect(Number(archiver[0].failed_count)).toBe(0);
    });

    it("gives working client connection strings on the network", () => {
        const rw = psqlOnNetwork(NETWORK, IMAGE, outputs.readWriteConnectionString, "select current_setting('cluster_name') || ' ' || pg_is_in_recovery()");
        expect(rw).toBe("pg1 false");
        const ro = psqlOnNetwork(NETWORK, IMAGE, outputs.readOnlyConnectionString, "select current_setting('cluster_name') || ' ' || pg_is_in_recovery()");
        expect(ro).toBe("pg2 true");
    });

    it("changes nothing when the same config is applied again", async () => {
        const before = [containerOf("pg1", "node-a"), containerOf("pg2", "node-b")];
        const plan = mustEngine("preview", STACK, state, ["--json"]);
        expect(changes(parsePreview(plan.stdout).steps)).toEqual([]);
        await phase("re-apply the same config", () => mustEngine("up", STACK, state));
        expect([containerOf("pg1", "node-a"), containerOf("pg2", "node-b")]).toEqual(before);
    });

    it("stops `pulumi destroy` at the protected volumes, keeping their data, and comes back on them", async () => {
        // Pulumi's engine deletes what is not protected (services, network,
        // Commands) and refuses every protected resource: the cluster goes down, the data stays.
        await query("pg1", "create table if not exists e2e_protected (v text)");
        await query("pg1", "insert into e2e_protected values ('still here')");
        await query("pg1", "checkpoint");
        const r = mustEngineFails("destroy");
        for (const v of ["pg1-data", "pg2-data", "pg1-archive", "pg2-archive"]) {
            expect(r).toMatch(new RegExp(`docker:index/volume:Volume::${v}" cannot be deleted\\s+because it is protected`));
        }
        expect(docker(ENGINES["node-a"], ["volume", "inspect", "-f", "{{.Name}}", "pg1-data"])).toBe("pg1-data");
        expect(docker(ENGINES["node-b"], ["volume", "inspect", "-f", "{{.Name}}", "pg2-data"])).toBe("pg2-data");
        await phase("re-apply after the refused destroy", () => engineAsync("up", STACK, state));
        await waitFor("pg1 back with its data", async () => (await query("pg1", "select v from e2e_protected"))[0]?.v === "still here", 120_000, 500);
        await waitFor(
            "pg2 back and streaming",
            async () => (await query("pg1", "select state from pg_stat_replication where application_name = 'pg2'"))[0]?.state === "streaming",
            120_000,
            500,
        );
        expect((await query("pg2", "select v from e2e_protected"))[0].v).toBe("still here");
    });

    it("keeps the data volumes and their data across destroy and re-apply", async () => {
        await query("pg1", "create table if not exists e2e_keep (v text)");
        await query("pg1", "insert into e2e_keep values ('kept')");
        await query("pg1", "checkpoint");
        await phase("destroy (unprotected)", () => engineAsync("destroy", STACK, state, ["--unprotect"]));
        expect(docker(ENGINES["node-a"], ["service", "ls", "-q", "--filter", "label=pgha.cluster=pgha_lab"])).toBe("");
        expect(docker(ENGINES["node-a"], ["volume", "inspect", "-f", "{{.Name}}", "pg1-data"])).toBe("pg1-data");
        expect(docker(ENGINES["node-b"], ["volume", "inspect", "-f", "{{.Name}}", "pg2-data"])).toBe("pg2-data");
        await phase("re-apply onto the kept volumes", () => engineAsync("up", STACK, state));
        await waitFor("pg1 back", async () => (await query("pg1", "select v from e2e_keep"))[0]?.v === "kept", 120_000, 500);
        await waitFor(
            "pg2 back and streaming",
            async () => (await query("pg1", "select state from pg_stat_replication where application_name = 'pg2'"))[0]?.state === "streaming",
            120_000,
            500,
        );
        expect((await query("pg2", "select v from e2e_keep"))[0].v).toBe("kept");
        expect((await query("pg2", "select pg_is_in_recovery() as r"))[0].r).toBe(true);
    });
});

function mustEngineFails(verb: "destroy"): string {
    const r = engine(verb, STACK, state);
    expect(r.status).not.toBe(0);
    return r.stderr + r.stdout;
}
