// The declared graph of the whole program, evaluated by Pulumi's mock runtime: what `pulumi up`
// would ask the docker and command providers to create, input by input.

import * as fs from "fs";
import * as path from "path";
import { describe, expect, it, vi } from "vitest";
import { Cluster, parseBackups } from "../components/cluster";
import { HEALTHCHECK, LAUNCHER } from "../components/server";
import { validateConfig } from "../components/config";
import { loadConfig } from "../components/stack-config";
import { serverFilesDigest } from "../components/changes";
import { serverFiles } from "../components/cluster";
import { DeclaredResource, isSecretValue, plaintextStrings, ProgramRun, runUnderMocks, unwrapSecrets, valueOf } from "./helpers/mock-program";

const SUPERUSER = "su-Secret-4711";
const REPLICATOR = "repl-Secret-0815";
const secrets = { superuserPassword: SUPERUSER, replicatorPassword: REPLICATOR };

const lab = {
    network: { name: "pgha_lab", cidr: "10.0.201.0/24", gateway: "10.0.201.1" },
    image: "pgha-postgres:15-lab",
    servers: [
        { name: "pg1", node: "node-a", dockerHost: "unix:///var/run/docker.sock", port: 15432 },
        { name: "pg2", node: "node-b", dockerHost: "unix:///var/run/docker-b.sock", port: 15433 },
        { name: "pg3", node: "node-b", dockerHost: "unix:///var/run/docker-b.sock" },
    ],
    primary: "pg1",
};

async function declare(config: Record<string, unknown>): Promise<ProgramRun & { cluster: Cluster }> {
    let cluster: Cluster | undefined;
    const run = await runUnderMocks(config, secrets, () => {
        const loaded = loadConfig();
        cluster = new Cluster("pgha", loaded);
    });
    return { ...run, cluster: cluster! };
}

const SERVICE = "docker:index/service:Service";
const VOLUME = "docker:index/volume:Volume";
const CONFIG = "docker:index/serviceConfig:ServiceConfig";
const SECRET = "docker:index/secret:Secret";
const COMMAND = "command:local:Command";
/** The container side, as the program ships it: every file of scripts/server/, sorted. */
const SERVER_FILES = fs
    .readdirSync(path.join(__dirname, "..", "scripts", "server"))
    .filter((f) => f.endsWith(".sh"))
    .sort();

function spec(r: DeclaredResource): any {
    return unwrapSecrets(r.inputs);
}

describe("the declared cluster", async () => {
    const run = await declare(lab);

    it("declares one attachable overlay network with the fixed subnet and gateway", () => {
        const nets = run.ofType("docker:index/network:Network");
        expect(nets).toHaveLength(1);
        expect(spec(nets[0])).toMatchObject({
            name: "pgha_lab",
            driver: "overlay",
            attachable: true,
            ipamConfigs: [{ subnet: "10.0.201.0/24", gateway: "10.0.201.1" }],
        });
    });

    it("declares one docker provider per distinct node engine", () => {
        const providers = run.ofType("pulumi:providers:docker");
        expect(providers.map((p) => p.inputs.host).sort()).toEqual(["unix:///var/run/docker-b.sock", "unix:///var/run/docker.sock"]);
    });

    for (const s of lab.servers) {
        describe(`server ${s.name}`, () => {
            it("has its data and archive volumes on its own node's engine, protected", () => {
                for (const kind of ["data", "archive"]) {
                    const v = run.byName(`${s.name}-${kind}`, VOLUME);
                    expect(v.inputs.name).toBe(`${s.name}-${kind}`);
                    expect(v.inputs.driver).toBe("local");
                    const provider = run.ofType("pulumi:providers:docker").find((p) => v.provider?.includes(`::${p.name}::`));
                    expect(provider?.inputs.host, `provider of ${v.name}: ${v.provider}`).toBe(s.dockerHost);
                }
            });

            it("has one service, one replica, tethered to its node, named and reachable as itself", () => {
                const svc = spec(run.byName(s.name, SERVICE));
                expect(svc.name).toBe(s.name);
                expect(svc.mode).toEqual({ replicated: { replicas: 1 } });
                expect(svc.taskSpec.placement.constraints).toEqual([`node.hostname==${s.node}`]);
                expect(svc.taskSpec.containerSpec.hostname).toBe(s.name);
                expect(svc.taskSpec.containerSpec.image).toBe("pgha-postgres:15-lab");
                expect(svc.taskSpec.networksAdvanceds).toEqual([{ id: "pgha-network-id", aliases: [s.name] }]);
                expect(svc.endpointSpec.mode).toBe("dnsrr");
                expect(svc.endpointSpec.ports).toEqual(s.port ? [{ targetPort: 5432, publishedPort: s.port, publishMode: "host", protocol: "tcp" }] : []);
            });

            it("mounts its own volumes and nothing that changes with the config or with pgha: no config, no secret", () => {
                const c = spec(run.byName(s.name, SERVICE)).taskSpec.containerSpec;
                expect(c.mounts).toEqual([
                    { type: "volume", source: `${s.name}-data`, target: "/var/lib/pgha/data" },
                    { type: "volume", source: `${s.name}-archive`, target: "/var/lib/pgha/archive" },
                ]);
                expect(c.configs).toBeUndefined();
                expect(c.secrets).toBeUndefined();
                // the launcher waits for the entrypoint the roll delivers into the data volume
                expect(c.commands).toEqual(["/bin/sh", "-c", LAUNCHER]);
                expect(LAUNCHER).toContain('exec /bin/sh "$d/entrypoint.sh"');
                expect(LAUNCHER).toContain("d=/var/lib/pgha/data/pgha");
            });

            it("has a healthcheck, a restart policy and a stop grace period for a clean shutdown", () => {
                const t = spec(run.byName(s.name, SERVICE)).taskSpec;
                expect(t.containerSpec.healthcheck.tests).toEqual(["CMD", "/bin/sh", "-c", HEALTHCHECK]);
                expect(HEALTHCHECK).toContain('exec /bin/sh "$f" health');
                expect(t.restartPolicy.condition).toBe("any");
                expect(t.containerSpec.stopGracePeriod).toBe("2m");
            });

            it("names no role anywhere in its spec", () => {
                const text = JSON.stringify(spec(run.byName(s.name, SERVICE)));
                expect(text).not.toMatch(/primary|standby|PGHA_ROLE/i);
                expect(spec(run.byName(s.name, SERVICE)).taskSpec.containerSpec.env).toEqual({ PGHA_SERVER: s.name });
            });

            it("gets its own server.conf and peers file through its reload Command", () => {
                const env = spec(run.byName(`${s.name}-reload`, COMMAND)).environment;
                expect(env.PGHA_SERVER_CONF).toContain(`primary_slot_name = '${s.name}'`);
                expect(env.PGHA_PEERS).toBe(
                    lab.servers
                        .filter((p) => p.name !== s.name)
                        .map((p) => p.name)
                        .join(","),
                );
                expect(env.PGHA_POSTGRESQL_CONF).toContain("archive_mode = 'always'");
                expect(env.PGHA_HBA_CONF).toContain("10.0.201.0/24");
                expect(env).toMatchObject({
                    PGHA_DATA_VOLUME: `${s.name}-data`,
                    PGHA_DOCKER_HOST: s.dockerHost,
                    PGHA_SERVER_LOST: "0",
                    PGHA_PG_MAJOR: "15",
                    PGHA_IMAGE: "pgha-postgres:15-lab",
                });
            });
        });
    }

    it("declares no Docker config, and no secret but the arbiter's token: the files and passwords go into the data volumes", () => {
        expect(run.ofType(CONFIG)).toEqual([]);
        expect(run.ofType(SECRET).map((r) => spec(r).name)).toEqual(["pgha-lab-arbiter-token"]);
        for (const svc of run.ofType(SERVICE).filter((r) => spec(r).name !== "pgha-lab-arbiter")) {
            expect(spec(svc).taskSpec.containerSpec.secrets ?? []).toEqual([]);
        }
    });

    it("runs the arbiter on every manager, the only service with the Docker socket", () => {
        const services = run.ofType(SERVICE).map(spec);
        const arbiter = services.find((s) => s.name === "pgha-lab-arbiter");
        expect(arbiter.mode).toEqual({ global: true });
        expect(arbiter.taskSpec.placement.constraints).toEqual(["node.role==manager"]);
        expect(arbiter.taskSpec.containerSpec.image).toBe("pgha-arbiter:0.1.0");
        expect(arbiter.taskSpec.containerSpec.mounts).toEqual([{ type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" }]);
        expect(arbiter.taskSpec.containerSpec.env).toMatchObject({ PGHA_LEASE_CONFIG: "pgha-lab-lease", PGHA_TTL_MS: "10000", PGHA_CALL_TIMEOUT_MS: "500" });
        expect(arbiter.endpointSpec).toEqual({ mode: "dnsrr" });
        for (const s of services.filter((x) => x !== arbiter)) {
            expect(JSON.stringify(s.taskSpec.containerSpec.mounts)).not.toContain("docker.sock");
        }
    });

    it("gives every server its failover settings and the token, and the switchover an update that never moves the primary back", () => {
        const reload = spec(run.byName("pg2-reload", COMMAND));
        expect(reload.environment.PGHA_FAILOVER_CONF).toContain("automatic=1\narbiter=pgha-lab-arbiter\nport=7400\nttl_ms=10000\nrenew_ms=1000\nfence_ms=6000");
        const passwords = run.byName("pgha-passwords", COMMAND);
        expect(Object.keys(spec(passwords).environment)).toContain("PGHA_ARBITER_TOKEN");
        expect(JSON.stringify(passwords.inputs.environment)).toContain("4dabf18193072939515e22adb298388d"); // a secret Output
        const sw = spec(run.byName("pgha-switchover", COMMAND));
        expect(sw.update).toBe("sh ./scripts/operations/switchover.sh update");
        expect(sw.environment.PGHA_FAILOVER_AUTOMATIC).toBe("1");
    });

    it("declares no arbiter with automatic failover off; the servers' agents are told so", async () => {
        const off = await declare({ ...lab, failover: { automatic: false } });
        expect(off.ofType(SECRET)).toEqual([]);
        expect(off.ofType(SERVICE).map((r) => spec(r).name)).not.toContain("pgha-lab-arbiter");
        expect(off.invokes.filter((i) => i.token === "command:local:run")).toEqual([]);
        expect(spec(off.byName("pg1-reload", COMMAND)).environment.PGHA_FAILOVER_CONF).toContain("automatic=0");
    });

    it("reads the lease on every preview and update, and warns when it names another primary than pgha:primary", async () => {
        const leaseOf = (holder: string) => JSON.stringify({ "pgha.lease.holder": holder, "pgha.lease.term": "4" });
        const warned = async (labels: string): Promise<{ run: ProgramRun; warnings: string }> => {
            const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
            try {
                const run = await runUnderMocks(
                    lab,
                    secrets,
                    () => new Cluster("pgha", loadConfig()),
                    () => 0,
                    (token) => (token === "command:local:run" ? { stdout: labels, stderr: "" } : undefined),
                );
                return { run, warnings: warn.mock.calls.flat().join("\n") };
            } finally {
                warn.mockRestore();
            }
        };
        const moved = await warned(leaseOf("pg2"));
        const reads = moved.run.invokes.filter((i) => i.token === "command:local:run");
        expect(reads).toHaveLength(1);
        expect(reads[0].inputs).toMatchObject({ command: "sh ./scripts/operations/arbiter.sh lease", logging: "none" });
        expect((reads[0].inputs.environment as Record<string, string>).PGHA_LEASE_CONFIG).toBe("pgha-lab-lease");
        expect(moved.warnings).toMatch(
            /pgha:primary says pg1, but pg2 holds the lease, term 4: pg2 is the primary\. If automatic failover moved it there, pulumi up keeps pg2/,
        );
        expect(moved.warnings).toMatch(/run pulumi config set pgha:primary pg2 to make config and cluster agree/);
        // the lease agrees, there is none yet, or the swarm did not answer: no warning
        for (const labels of [leaseOf("pg1"), leaseOf("-"), "", "null", "{}", "not json"])
            expect((await warned(labels)).warnings).not.toMatch(/pgha:primary says/);
    });

    it("rolls pgha's container files: the roll carries their digest and a restart key", () => {
        const roll = spec(run.byName("pgha-roll", COMMAND));
        expect(roll.create).toBe("sh ./scripts/operations/roll.sh");
        expect(roll.environment.PGHA_SERVER_FILES).toBe(serverFilesDigest(serverFiles(path.join(__dirname, ".."))));
        expect(roll.environment.PGHA_RESTART_KEY).toMatch(/^[0-9a-f]{64}$/);
        expect(roll.environment).toMatchObject({ PGHA_IMAGE: "pgha-postgres:15-lab", PGHA_PG_MAJOR: "15", PGHA_ROLL_PRIMARY: "return", PGHA_LOST: "" });
        expect(SERVER_FILES).toEqual(expect.arrayContaining(["entrypoint.sh", "run.sh", "instance.sh", "reload.sh", "roll.sh", "passwords.sh"]));
    });

    it("declares each service after the roll, the roll after every reload and the passwords, and those on the volumes alone", async () => {
        // Slow deliveries: the services must still come after them (their launcher starts on the files).
        const slow = await runUnderMocks(
            lab,
            secrets,
            () => new Cluster("pgha", loadConfig()),
            (type, name) => (/-(reload|passwords|roll)$/.test(name) ? 150 : 0),
        );
        const order = slow.resources.map((r) => `${r.type} ${r.name}`);
        const at = (type: string, name: string) => order.indexOf(`${type} ${name}`);
        for (const s of lab.servers) {
            expect(at(COMMAND, "pgha-roll")).toBeGreaterThan(at(COMMAND, `${s.name}-reload`));
            expect(at(SERVICE, s.name)).toBeGreaterThan(at(COMMAND, "pgha-roll"));
            expect(at(COMMAND, `${s.name}-bootstrap`)).toBeGreaterThan(at(SERVICE, s.name));
        }
        expect(at(COMMAND, "pgha-roll")).toBeGreaterThan(at(COMMAND, "pgha-passwords"));
    });

    it("delivers the passwords through the passwords Command, as secret inputs", () => {
        const pw = run.byName("pgha-passwords", COMMAND);
        expect(pw.inputs.create).toBe("sh ./scripts/operations/passwords.sh");
        expect(isSecretValue(pw.inputs.environment)).toBe(true);
        expect(unwrapSecrets(pw.inputs.environment)).toMatchObject({ PGHA_SUPERUSER_PASSWORD: SUPERUSER, PGHA_REPLICATOR_PASSWORD: REPLICATOR });
    });

    it("never puts a secret in plaintext into any resource input", () => {
        const needles = [SUPERUSER, REPLICATOR, Buffer.from(SUPERUSER).toString("base64"), Buffer.from(REPLICATOR).toString("base64")];
        for (const r of run.resources) {
            for (const text of plaintextStrings(r.inputs)) {
                for (const n of needles) expect(text.includes(n), `${r.type} ${r.name} holds a password in plaintext`).toBe(false);
            }
        }
        // ...and the check itself sees them where they are wrapped.
        expect(JSON.stringify(unwrapSecrets(run.byName("pg2-bootstrap", COMMAND).inputs))).toContain(REPLICATOR);
    });

    it("initializes the cluster once, on the primary, and bootstraps every server without naming the primary", () => {
        const init = run.byName("pgha-initialize", COMMAND);
        expect(init.inputs.create).toBe("sh ./scripts/operations/initialize.sh");
        expect((init.inputs.environment as any).PGHA_SERVER).toBe("pg1");
        for (const s of lab.servers) {
            const b = spec(run.byName(`${s.name}-bootstrap`, COMMAND));
            expect(b.create).toBe("sh ./scripts/operations/bootstrap.sh");
            expect(b.environment).toMatchObject({
                PGHA_SERVER: s.name,
                PGHA_DATA_VOLUME: `${s.name}-data`,
                PGHA_DOCKER_HOST: s.dockerHost,
                PGHA_NETWORK: "pgha_lab",
            });
        }
    });

    it("exports connection strings for writes and reads", () => {
        expect(run.cluster.connectionStrings.readWrite).toBe("postgresql://pg1:5432,pg2:5432,pg3:5432/postgres?target_session_attrs=read-write");
        expect(run.cluster.connectionStrings.readOnly).toContain("target_session_attrs=prefer-standby");
        expect(run.cluster.primary).toBe("pg1");
    });
});

describe("a role swap", async () => {
    const before = await declare(lab);
    const after = await declare({ ...lab, primary: "pg2" });

    it("changes the switchover Command's trigger and no input of anything else", () => {
        const key = (r: DeclaredResource) => `${r.type} ${r.name}`;
        const a = new Map(after.resources.map((r) => [key(r), r]));
        expect([...a.keys()].sort()).toEqual(before.resources.map(key).sort());
        const changed = before.resources
            .filter((r) => JSON.stringify(unwrapSecrets(a.get(key(r))!.inputs)) !== JSON.stringify(unwrapSecrets(r.inputs)))
            .map((r) => r.name);
        // initialize has ignoreChanges on its inputs: it ran once, at creation, and stays as it was
        expect(changed.sort()).toEqual(["pgha-initialize", "pgha-switchover"]);
        expect(before.byName("pgha-switchover", COMMAND).inputs.triggers).toEqual(["pg1"]);
        expect(after.byName("pgha-switchover", COMMAND).inputs.triggers).toEqual(["pg2"]);
        expect((after.byName("pgha-switchover", COMMAND).inputs.environment as any).PGHA_PRIMARY).toBe("pg2");
    });

    it("runs the switchover only after every server is bootstrapped", async () => {
        // Slow bootstraps: the switchover must still be created after all of them.
        const slow = await runUnderMocks(
            { ...lab, primary: "pg2" },
            secrets,
            () => new Cluster("pgha", loadConfig()),
            (type, name) => (name.endsWith("-bootstrap") ? 200 : 0),
        );
        const order = slow.resources.map((r) => r.name);
        expect(slow.byName("pgha-switchover", COMMAND).inputs.create).toBe("sh ./scripts/operations/switchover.sh");
        for (const s of lab.servers) expect(order.indexOf("pgha-switchover")).toBeGreaterThan(order.indexOf(`${s.name}-bootstrap`));
    });
});

describe("failover and rejoin (pgha:lost)", async () => {
    const healthy = await declare(lab);
    const failover = await declare({ ...lab, primary: "pg1", lost: ["pg2"] });
    const env = (run: ProgramRun, s: string) => spec(run.byName(s, SERVICE)).taskSpec.containerSpec.env;

    it("fences only the lost server's service (PGHA_FENCED=1), and no service of a healthy cluster", () => {
        for (const s of lab.servers) expect(env(healthy, s.name).PGHA_FENCED, s.name).toBeUndefined();
        expect(env(failover, "pg2").PGHA_FENCED).toBe("1");
        expect(env(failover, "pg1").PGHA_FENCED).toBeUndefined();
        expect(env(failover, "pg3").PGHA_FENCED).toBeUndefined();
    });

    it("does not wait for a lost server's service to converge (its node is gone: that would hold up the failover)", () => {
        expect(spec(failover.byName("pg2", SERVICE)).convergeConfig).toBeUndefined();
        expect(spec(failover.byName("pg1", SERVICE)).convergeConfig).toBeDefined();
        expect(spec(healthy.byName("pg2", SERVICE)).convergeConfig).toEqual(spec(failover.byName("pg1", SERVICE)).convergeConfig);
    });

    it("declares one rejoin Command per server, triggered by whether the server is lost", () => {
        for (const s of lab.servers) {
            const r = spec(healthy.byName(`${s.name}-rejoin`, COMMAND));
            expect(r.create).toBe("sh ./scripts/operations/rejoin.sh");
            expect(r.triggers).toEqual(["not lost"]);
            expect(r.environment).toEqual({ PGHA_SERVER: s.name, PGHA_DOCKER_HOST: s.dockerHost, PGHA_DATA_VOLUME: `${s.name}-data`, PGHA_SERVER_LOST: "0" });
        }
        expect(spec(failover.byName("pg2-rejoin", COMMAND)).triggers).toEqual(["lost"]);
        expect(spec(failover.byName("pg2-rejoin", COMMAND)).environment.PGHA_SERVER_LOST).toBe("1");
        expect(spec(failover.byName("pg1-rejoin", COMMAND)).triggers).toEqual(["not lost"]);
    });

    it("changes, for a failover, the lost server's rejoin and service, and the switchover (primary and lost list)", async () => {
        const key = (r: DeclaredResource) => `${r.type} ${r.name}`;
        const before = await declare({ ...lab, primary: "pg2" });
        const after = new Map(failover.resources.map((r) => [key(r), r]));
        const changed = before.resources
            .filter((r) => JSON.stringify(unwrapSecrets(after.get(key(r))!.inputs)) !== JSON.stringify(unwrapSecrets(r.inputs)))
            .map((r) => r.name);
        // (initialize ignores changes of its inputs: it ran once, at creation)
        expect(changed.sort()).toEqual(["pg2", "pg2-rejoin", "pg2-reload", "pgha-initialize", "pgha-passwords", "pgha-roll", "pgha-switchover"]);
        expect((failover.byName("pgha-switchover", COMMAND).inputs.environment as any).PGHA_LOST).toBe("pg2");
        expect(failover.byName("pgha-switchover", COMMAND).inputs.triggers).toEqual(["pg1"]);
    });

    it("updates a server's service only after its rejoin ran (the fence is lifted after the rejoin)", async () => {
        const slow = await runUnderMocks(
            lab,
            secrets,
            () => new Cluster("pgha", loadConfig()),
            (type, name) => (name.endsWith("-rejoin") ? 200 : 0),
        );
        const order = slow.resources.map((r) => `${r.type} ${r.name}`);
        for (const s of lab.servers) {
            expect(order.indexOf(`${SERVICE} ${s.name}`)).toBeGreaterThan(order.indexOf(`${COMMAND} ${s.name}-rejoin`));
        }
    });
});

describe("the program's entry point", () => {
    it("exports the primary, the servers and the connection strings", async () => {
        let mod: any;
        await runUnderMocks(lab, secrets, async () => {
            mod = await import("../index");
        });
        expect(mod.primary).toBe("pg1");
        expect(mod.readWriteConnectionString).toContain("target_session_attrs=read-write");
        expect(Object.keys(mod.servers)).toEqual(["pg1", "pg2", "pg3"]);
        expect(mod.servers.pg2.node).toBe("node-b");
        expect(await valueOf(mod.servers.pg2.dataVolume)).toBe("pg2-data");
        expect(await valueOf(mod.network)).toBe("pgha_lab");
    });

    it("exports where each server's published port is reached: its address, by default its node", async () => {
        const run = await declare({ ...lab, servers: lab.servers.map((s) => (s.name === "pg1" ? { ...s, address: "127.0.0.1" } : s)) });
        const out = run.cluster.serverOutputs;
        expect([out.pg1.address, out.pg1.publishedPort]).toEqual(["127.0.0.1", 15432]);
        expect([out.pg2.address, out.pg2.publishedPort]).toEqual(["node-b", 15433]);
        expect(out.pg3.address).toBe("node-b");
        expect(out.pg3.publishedPort).toBeUndefined();
    });

    it("declares nothing when the config is invalid", async () => {
        let error: unknown;
        const run = await runUnderMocks({ ...lab, primary: "pg9" }, secrets, () => {
            try {
                new Cluster("pgha", loadConfig());
            } catch (e) {
                error = e;
            }
        });
        expect(String(error)).toMatch(/pgha:primary: 'pg9' is not among pgha:servers/);
        expect(run.resources).toHaveLength(0);
    });

    it("declares nothing when a password is missing", async () => {
        let error: unknown;
        const run = await runUnderMocks(lab, { superuserPassword: SUPERUSER }, () => {
            try {
                new Cluster("pgha", loadConfig());
            } catch (e) {
                error = e;
            }
        });
        expect(String(error)).toMatch(/pgha:replicatorPassword: missing/);
        expect(run.resources).toHaveLength(0);
    });

    it("validates with the same rules as the pure validator", () => {
        expect(() => validateConfig(lab)).not.toThrow();
    });
});

describe("backups, point-in-time recovery and cloning", async () => {
    const backup = { id: "nightly-1", keep: 3 };
    const restore = { backup: "nightly-1", target: { name: "before-migration" }, confirm: "nightly-1" };
    const run = await declare({ ...lab, backup, restore });

    it("declares no backup or restore Command unless configured, and lists no backups", async () => {
        const plain = await declare(lab);
        const commands = (r: ProgramRun) => r.ofType(COMMAND).filter((c) => /-(backup|restore)$/.test(c.name));
        expect(commands(plain)).toEqual([]);
        expect(await valueOf(plain.cluster.backups)).toEqual([]);
        expect(
            commands(run)
                .map((r) => r.name)
                .sort(),
        ).toEqual(["pgha-backup", "pgha-restore"]);
    });

    it("takes a backup when backup.id changes (its trigger), and re-applies retention only otherwise", () => {
        const b = spec(run.byName("pgha-backup", COMMAND));
        expect(b.create).toBe("sh ./scripts/operations/backup.sh take");
        expect(b.update).toBe("sh ./scripts/operations/backup.sh retain");
        expect(b.triggers).toEqual(["nightly-1"]);
        expect(b.environment).toEqual({
            PGHA_SERVERS:
                "pg1 unix:///var/run/docker.sock pg1-data pg1-archive\npg2 unix:///var/run/docker-b.sock pg2-data pg2-archive\npg3 unix:///var/run/docker-b.sock pg3-data pg3-archive",
            PGHA_BACKUP_LABEL: "nightly-1",
            PGHA_BACKUP_KEEP: "3",
            PGHA_BACKUP_SERVER: "",
        });
    });

    it("runs a restore when its backup, target or id changes (its triggers), and nothing when only the servers change", () => {
        const r = spec(run.byName("pgha-restore", COMMAND));
        expect(r.create).toBe("sh ./scripts/operations/restore.sh");
        expect(r.update).toMatch(/^echo .*nothing to do/);
        expect(r.triggers).toEqual(["nightly-1", "name=before-migration", ""]);
        expect(r.environment).toMatchObject({ PGHA_RESTORE_BACKUP: "nightly-1", PGHA_RESTORE_TARGET: "name=before-migration", PGHA_RESTORE_ID: "" });
    });

    it("carries no password in the backup and restore Commands, so their output is not secret", () => {
        for (const name of ["pgha-backup", "pgha-restore"]) {
            const c = run.byName(name, COMMAND);
            expect(isSecretValue(c.inputs.environment), name).toBe(false);
            expect(JSON.stringify(c.inputs), name).not.toMatch(/Secret-4711|Secret-0815/);
        }
        const needles = [SUPERUSER, REPLICATOR, Buffer.from(SUPERUSER).toString("base64"), Buffer.from(REPLICATOR).toString("base64")];
        for (const r of run.resources)
            for (const text of plaintextStrings(r.inputs)) for (const n of needles) expect(text.includes(n), `${r.name}`).toBe(false);
    });

    it("leaves backup and restore alone on a role swap", async () => {
        const after = await declare({ ...lab, backup, restore, primary: "pg2" });
        const changed = run.resources
            .filter((r) => JSON.stringify(unwrapSecrets(after.byName(r.name, r.type).inputs)) !== JSON.stringify(unwrapSecrets(r.inputs)))
            .map((r) => r.name);
        expect(changed.sort()).toEqual(["pgha-initialize", "pgha-switchover"]);
    });

    it("runs the backup after the switchover, and the restore after both", async () => {
        const slow = await runUnderMocks(
            { ...lab, backup, restore },
            secrets,
            () => new Cluster("pgha", loadConfig()),
            (_t, name) => (name === "pgha-switchover" ? 200 : name === "pgha-backup" ? 100 : 0),
        );
        const order = slow.resources.map((r) => r.name);
        expect(order.indexOf("pgha-backup")).toBeGreaterThan(order.indexOf("pgha-switchover"));
        expect(order.indexOf("pgha-restore")).toBeGreaterThan(order.indexOf("pgha-backup"));
    });

    it("names a configured backup server, and a new keep changes no trigger", async () => {
        const other = await declare({ ...lab, backup: { ...backup, server: "pg2", keep: 5 } });
        const b = spec(other.byName("pgha-backup", COMMAND));
        expect(b.environment).toMatchObject({ PGHA_BACKUP_SERVER: "pg2", PGHA_BACKUP_KEEP: "5" });
        expect(b.triggers).toEqual(["nightly-1"]);
    });

    it("clones in the initialize step when cloneFrom is set, without changing its command", async () => {
        const clone = await declare({ ...lab, cloneFrom: { archiveVolume: "prod-pg2-archive", dockerHost: "ssh://admin@prod-b", backup: "nightly-1" } });
        const init = spec(clone.byName("pgha-initialize", COMMAND));
        expect(init.create).toBe("sh ./scripts/operations/initialize.sh");
        expect(init.environment).toMatchObject({
            PGHA_CLONE_VOLUME: "prod-pg2-archive",
            PGHA_CLONE_DOCKER_HOST: "ssh://admin@prod-b",
            PGHA_CLONE_BACKUP: "nightly-1",
        });
        const fromPath = await declare({ ...lab, cloneFrom: { path: "/backups/nightly-1" } });
        expect(spec(fromPath.byName("pgha-initialize", COMMAND)).environment).toMatchObject({ PGHA_CLONE_PATH: "/backups/nightly-1" });
        expect(spec(run.byName("pgha-initialize", COMMAND)).environment.PGHA_CLONE_VOLUME).toBeUndefined();
    });

    it("reads the backup listing from the backup Command's stdout", () => {
        const listing = [{ label: "b1", server: "pg2", archiveVolume: "pg2-archive", timeline: 1 }];
        expect(parseBackups(JSON.stringify(listing))).toEqual(listing);
        expect(parseBackups("")).toEqual([]);
        expect(parseBackups("not json")).toEqual([]);
        expect(parseBackups("{}")).toEqual([]);
    });
});
