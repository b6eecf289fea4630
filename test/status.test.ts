// `npm run status` (scripts/status.ts): its arguments and inputs, and the whole command against a
// real primary and hot standby run from this machine's PostgreSQL binaries (no swarm): exit 0 and
// the table when healthy, exit 1 naming the standby once it is stopped, exit 2 when it cannot run.
// The automatic failover report: its decisions from fabricated swarm facts, and the whole command
// with a stand-in `docker` that answers as a swarm would (the real swarm is never asked here).

import { ChildProcess, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLease, primaryMismatch } from "../components/config";
import { buildReport, StatusReport } from "../components/health";
import {
    ArmedInputs,
    armedVerdict,
    automaticSetting,
    countManagers,
    failoverStatus,
    InputError,
    majority,
    managersRunning,
    parseArgs,
    parseNodes,
    parseTasks,
    renderFailover,
    renderTable,
    SwarmFacts,
    swarmEngines,
    targetsFromOutputs,
    withFailoverFindings,
} from "../scripts/status";
import { freePort, pgBinDir, postgresTempDir, runAsPostgres, startPostgres, stopPostgres } from "./helpers/postgres";

const ROOT = path.join(__dirname, "..");
const TSX = path.join(ROOT, "node_modules", ".bin", "tsx");

function status(args: string[], env: Record<string, string | undefined> = {}, input?: string) {
    const r = spawnSync(TSX, ["scripts/status.ts", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        input,
        env: { ...process.env, PGHA_SUPERUSER_PASSWORD: undefined, ...env },
        timeout: 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("arguments and inputs", () => {
    it("parses the options", () => {
        expect(parseArgs([])).toEqual({ stack: undefined, outputs: undefined, json: false, timeoutSeconds: 5, help: false });
        expect(parseArgs(["--stack", "prod", "--json", "--timeout", "2"])).toMatchObject({ stack: "prod", json: true, timeoutSeconds: 2 });
        expect(parseArgs(["--outputs", "-"])).toMatchObject({ outputs: "-" });
        expect(() => parseArgs(["--outputs"])).toThrow(InputError);
        expect(() => parseArgs(["--timeout", "soon"])).toThrow(/seconds/);
        expect(() => parseArgs(["--verbose"])).toThrow(/unknown argument --verbose/);
    });

    it("takes the servers from stack outputs: address (default the node) and published port", () => {
        const outputs = {
            primary: "pg1",
            servers: {
                pg1: { node: "node-a", address: "127.0.0.1", publishedPort: 15432, dataVolume: "pg1-data" },
                pg2: { node: "node-b", publishedPort: 15433 },
                pg3: { node: "node-b", address: "node-b" },
            },
        };
        expect(targetsFromOutputs(outputs, "f")).toEqual({
            declaredPrimary: "pg1",
            servers: [
                { name: "pg1", node: "node-a", address: "127.0.0.1", port: 15432 },
                { name: "pg2", node: "node-b", address: "node-b", port: 15433 },
                { name: "pg3", node: "node-b", address: "node-b" },
            ],
        });
    });

    it("takes the network and the servers' engines from the outputs, when they are there", () => {
        const outputs = {
            primary: "pg1",
            network: "pgha_net",
            servers: {
                pg1: { node: "node-a", dockerHost: "", publishedPort: 5432 },
                pg2: { node: "node-b", dockerHost: "ssh://admin@node-b", publishedPort: 5432 },
                pg3: { node: "node-b", dockerHost: "ssh://admin@node-b" },
            },
        };
        const targets = targetsFromOutputs(outputs, "f");
        expect(targets).toMatchObject({ network: "pgha_net", dockerHosts: ["", "ssh://admin@node-b"] });
        expect(swarmEngines(targets)).toEqual(["", "ssh://admin@node-b"]);
        expect(swarmEngines(targetsFromOutputs({ servers: { pg1: { node: "a" } } }, "f"))).toEqual([""]);
    });

    it("refuses outputs without servers", () => {
        expect(() => targetsFromOutputs({ primary: "pg1" }, "f.json")).toThrow(/f\.json: no 'servers' output/);
        expect(() => targetsFromOutputs([], "f.json")).toThrow(InputError);
        expect(() => targetsFromOutputs({ servers: { pg1: { publishedPort: 1 } } }, "f.json")).toThrow(/servers\.pg1 has no node/);
    });

    it("exits 2 with a message when it cannot run", () => {
        const noPassword = status(["--outputs", "-"], {}, JSON.stringify({ servers: { pg1: { node: "a", address: "127.0.0.1", publishedPort: 1 } } }));
        expect(noPassword.code).toBe(2);
        // Without the Pulumi CLI here: the message says what to do instead.
        expect(noPassword.stderr).toMatch(/PGHA_SUPERUSER_PASSWORD/);
        const usage = status(["--bogus"]);
        expect(usage.code).toBe(2);
        expect(usage.stderr).toMatch(/usage: npm run status/);
        const notJson = status(["--outputs", "-"], { PGHA_SUPERUSER_PASSWORD: "x" }, "nope");
        expect([notJson.code, notJson.stderr]).toEqual([2, expect.stringMatching(/stdin: not JSON/)]);
    });

    it("prints the table of a report", () => {
        const report = buildReport(
            [
                {
                    name: "pg1",
                    node: "node-a",
                    endpoint: "127.0.0.1:15432",
                    role: "primary",
                    clusterName: "pg1",
                    timeline: 2,
                    currentLsn: "0/5000148",
                    replication: [],
                    slots: [],
                    archiver: {
                        archivedCount: 1,
                        lastArchivedWal: "000000020000000000000004",
                        lastArchivedTime: "2025-01-01T10:00:00.000Z",
                        failedCount: 0,
                        lastFailedWal: null,
                        lastFailedTime: null,
                    },
                },
                { name: "pg2", node: "node-b", endpoint: null, role: "unknown", error: "not reachable from here (no published port)" },
            ],
            "pg1",
        );
        const text = renderTable(report);
        expect(text).toMatch(/^server +node +endpoint +role +timeline +LSN +stream/m);
        expect(text).toMatch(/^pg1 +node-a +127\.0\.0\.1:15432 +primary +2 +0\/5000148/m);
        expect(text).toMatch(/^pg2 +node-b +\(no published port\) +unknown +- +- +not connected/m);
        expect(text).toMatch(/^pg1 +000000020000000000000004 +2025-01-01T10:00:00\.000Z +1 +0 +-$/m);
        expect(text).toMatch(/^UNHEALTHY: 3 problems$/m);
        expect(text).toMatch(/error: pg2 \(node node-b\): not reachable from here \(no published port\)/);
    });
});

describe("automatic failover: the decisions", () => {
    const node = (id: string, role: string, state: string, reachability?: string, leader = false) => ({
        ID: id,
        Description: { Hostname: `node-${id}` },
        Spec: { Role: role, Availability: "active" },
        Status: { State: state, Addr: "10.1.0.1" },
        ...(reachability ? { ManagerStatus: { Leader: leader, Reachability: reachability, Addr: "10.1.0.1:2377" } } : {}),
    });
    const inspect = JSON.stringify([
        node("a", "manager", "ready", "reachable", true),
        node("b", "manager", "ready", "reachable"),
        node("c", "manager", "down", "unreachable"),
        node("w", "worker", "ready"),
    ]);
    const armed = (over: Partial<ArmedInputs>) =>
        armedVerdict({
            automatic: true,
            managers: { total: 3, reachable: 3, ready: 3 },
            arbiterService: "pgha-net-arbiter",
            arbiterManagers: 3,
            ...over,
        });

    it("counts the managers, reachable and ready, from docker node inspect", () => {
        const nodes = parseNodes(inspect);
        expect(nodes[0]).toEqual({ id: "a", hostname: "node-a", role: "manager", state: "ready", reachability: "reachable", leader: true });
        expect(nodes[3]).toMatchObject({ role: "worker", reachability: null, leader: false });
        expect(countManagers(nodes)).toEqual({ total: 3, reachable: 2, ready: 2 });
        expect([1, 2, 3, 4, 5, 7].map(majority)).toEqual([1, 2, 2, 3, 3, 4]);
        expect(() => parseNodes("{}")).toThrow(/JSON array/);
    });

    it("counts the managers with a running arbiter task, each once, workers not", () => {
        const nodes = parseNodes(inspect);
        const tasks = parseTasks(
            [
                { CurrentState: "Running 2 hours ago", DesiredState: "Running", Node: "node-a" },
                { CurrentState: "Running 5 seconds ago", DesiredState: "Running", Node: "node-a" },
                { CurrentState: "Preparing 1 second ago", DesiredState: "Running", Node: "node-b" },
                { CurrentState: "Running 1 hour ago", DesiredState: "Running", Node: "node-w" },
                { CurrentState: "Pending 1 hour ago", DesiredState: "Running", Node: "" },
            ]
                .map((t) => JSON.stringify(t))
                .join("\n") + "\n",
        );
        expect(tasks[0]).toEqual({ node: "node-a", state: "Running" });
        expect(managersRunning(tasks, nodes)).toBe(1);
        expect(parseTasks("")).toEqual([]);
    });

    it("reads the lease from its config's labels", () => {
        expect(parseLease('{"pgha.lease.holder":"c2","pgha.lease.term":"3"}\n')).toEqual({ holder: "c2", term: 3 });
        expect(parseLease('{"pgha.lease.holder":"c2"}')).toEqual({ holder: "c2", term: null });
        expect(parseLease('{"pgha.lease.holder":"c2","pgha.lease.term":"three"}')).toEqual({ holder: "c2", term: null });
        expect(parseLease("null")).toBeNull();
        expect(parseLease("{}")).toBeNull();
        expect(parseLease('{"pgha.lease.holder":""}')).toBeNull();
    });

    it("is armed with automatic on, 3 or more managers, a majority reachable, and the arbiter on a majority of them", () => {
        expect(armed({})).toEqual({ armed: true, reason: null, text: "armed" });
        expect(armed({ managers: { total: 3, reachable: 2, ready: 2 }, arbiterManagers: 2 }).armed).toBe(true);
        expect(armed({ managers: { total: 5, reachable: 3, ready: 3 }, arbiterManagers: 3 }).armed).toBe(true);
    });

    it("is not armed with automatic failover off, or not known", () => {
        expect(armed({ automatic: false }).text).toBe("not armed: automatic failover is off (pgha:failover.automatic is false)");
        expect(armed({ automatic: undefined, unknown: "not read: the Pulumi CLI is not installed" }).text).toBe(
            "not armed: pgha:failover is not known here (not read: the Pulumi CLI is not installed)",
        );
    });

    it("is not armed with fewer than 3 managers, saying why 2 are not enough", () => {
        expect(armed({ managers: { total: 2, reachable: 2, ready: 2 }, arbiterManagers: 2 }).text).toBe(
            "not armed: with 2 managers the loss of either loses the swarm's quorum, and with it every lease renewal: the primary would fence itself; automatic failover needs at least 3 managers: promote a node (docker node promote <node>) or add a manager",
        );
        expect(armed({ managers: { total: 1, reachable: 1, ready: 1 }, arbiterManagers: 1 }).reason).toMatch(
            /^with 1 manager the loss of its node loses the swarm, and with it every lease renewal; automatic failover needs at least 3 managers/,
        );
        expect(armed({ managers: { total: 0, reachable: 0, ready: 0 }, arbiterManagers: 0 }).reason).toMatch(/no manager/);
    });

    it("is not armed when the quorum is lost", () => {
        expect(armed({ managers: { total: 3, reachable: 1, ready: 1 } }).text).toBe(
            "not armed: the swarm's quorum is lost: 1 of 3 managers are reachable, a majority is 2; no lease can be renewed or taken, and the primary fences itself",
        );
        expect(armed({ managers: { total: 5, reachable: 2, ready: 5 }, arbiterManagers: 5 }).reason).toMatch(/2 of 5 managers are reachable, a majority is 3/);
        expect(armed({ managers: undefined, quorumLost: true }).reason).toMatch(/^the swarm's quorum is lost: a manager answers that the swarm has no leader/);
        expect(armed({ managers: undefined, unknown: "the docker CLI is not installed, so the swarm was not asked" }).text).toBe(
            "not armed: the swarm could not be asked (the docker CLI is not installed, so the swarm was not asked)",
        );
    });

    it("is not armed when the arbiter does not run on a majority of the managers", () => {
        expect(armed({ arbiterManagers: "no-service" }).text).toBe(
            "not armed: the arbiter is not running: there is no service pgha-net-arbiter (pulumi up creates it)",
        );
        expect(armed({ arbiterManagers: 1 }).text).toBe(
            "not armed: the arbiter is not running on a majority of the managers: pgha-net-arbiter runs on 1 of 3, a majority is 2 (docker service ps pgha-net-arbiter)",
        );
        expect(armed({ arbiterManagers: 0 }).armed).toBe(false);
        expect(armed({ arbiterManagers: "unknown", unknown: "docker service ps pgha-net-arbiter: timeout" }).reason).toMatch(
            /^the arbiter service pgha-net-arbiter could not be asked \(docker service ps pgha-net-arbiter: timeout\)/,
        );
    });

    it("says how to make pgha:primary agree after an automatic failover, and that pulumi up will not switch back", () => {
        expect(primaryMismatch("c1", "c2", { holder: "c2", term: 3 })).toBe(
            "pgha:primary says c1, but c2 is the primary (automatic failover at term 3): run pulumi config set pgha:primary c2 to make the config agree; pulumi up will not switch back on its own",
        );
        expect(primaryMismatch("c1", "c2", { holder: "c2", term: null })).toMatch(/^pgha:primary says c1, but c2 is the primary \(automatic failover\): /);
        // Not explained by the lease: maybe a planned switchover pulumi up has yet to finish.
        expect(primaryMismatch("c1", "c2", null)).toBe(
            "pgha:primary says c1, but c2 is the primary (not by automatic failover): if pgha:primary was changed for a switchover, run pulumi up to finish it; otherwise run pulumi config set pgha:primary c2 to make the config agree",
        );
        expect(primaryMismatch("c1", "c2", { holder: "c3", term: 4 })).toMatch(/\(not by automatic failover; the lease is held by c3 at term 4\)/);
        expect(primaryMismatch("c1", "c1", { holder: "c1", term: 1 })).toBeNull();
        expect(primaryMismatch(null, "c1", null)).toBeNull();
        expect(primaryMismatch("c1", null, null)).toBeNull();
    });

    it("reads pgha:failover.automatic as the program does: the default when unset, a partial object merged", () => {
        expect(automaticSetting(undefined)).toEqual({ automatic: true });
        expect(automaticSetting({ automatic: false })).toEqual({ automatic: false });
        expect(automaticSetting({ ttl: "30s", fenceDeadline: "20s" })).toEqual({ automatic: true });
        // Another field's problem does not hide automatic; automatic's own, or no object, does.
        expect(automaticSetting({ ttl: "1s" })).toEqual({ automatic: true });
        expect(automaticSetting({ automatic: "yes" })).toEqual({
            automatic: undefined,
            why: expect.stringMatching(/^invalid, and pulumi up refuses it: pgha:failover\.automatic: /),
        });
        expect(automaticSetting("on")).toMatchObject({ automatic: undefined, why: expect.stringMatching(/pgha:failover: must be an object/) });
    });

    const facts = (over: Partial<SwarmFacts> = {}): SwarmFacts => ({
        dockerHost: "",
        nodes: parseNodes(inspect),
        quorumLost: false,
        arbiterManagers: 2,
        lease: { holder: "c2", term: 3 },
        notes: [],
        ...over,
    });

    it("puts the facts, the verdict and the mismatch together for --json, and prints them", () => {
        const f = failoverStatus({ automatic: true }, "pgha_net", facts(), "c1", "c2");
        expect(f).toMatchObject({
            automatic: true,
            dockerHost: "",
            managers: { total: 3, reachable: 2, ready: 2, majority: 2 },
            arbiter: { service: "pgha-net-arbiter", state: "running", runningOnManagers: 2 },
            lease: { config: "pgha-net-lease", state: "held", holder: "c2", term: 3 },
            armed: true,
            verdict: "armed",
            primaryMismatch: expect.stringMatching(/^pgha:primary says c1, but c2 is the primary \(automatic failover at term 3\)/),
            notes: [],
        });
        expect(renderFailover(f).split("\n")).toEqual([
            "automatic failover",
            "automatic  on (pgha:failover.automatic)",
            "managers   3 (2 reachable, 2 ready; a majority is 2), asked through the local engine",
            "arbiter    pgha-net-arbiter: running on 2 of 3 managers",
            "lease      held by c2, term 3 (pgha-net-lease)",
            "verdict    armed",
            `primary    ${f.primaryMismatch}`,
        ]);
        const none = failoverStatus({ automatic: true }, "pgha_net", facts({ arbiterManagers: "no-service", lease: "none" }), "c1", "c1");
        expect(none).toMatchObject({
            arbiter: { state: "no-service", runningOnManagers: null },
            lease: { state: "none", holder: null },
            primaryMismatch: null,
        });
        expect(renderFailover(none)).toMatch(/^arbiter +pgha-net-arbiter: not running \(no such service\)$/m);
        expect(renderFailover(none)).toMatch(/^lease +no lease yet$/m);
        const unasked = failoverStatus(
            { automatic: undefined, why: "not read: with --outputs, name the stack (--stack) to read it" },
            undefined,
            facts({ dockerHost: null, nodes: null, arbiterManagers: "unknown", lease: "unknown", notes: ["the swarm was not asked"] }),
            "c1",
            "c1",
        );
        expect(unasked).toMatchObject({
            automatic: null,
            managers: null,
            arbiter: { service: null, state: "unknown" },
            lease: { config: null, state: "unknown" },
        });
        expect(renderFailover(unasked).split("\n").slice(1)).toEqual([
            "automatic  unknown",
            "managers   unknown",
            "arbiter    unknown",
            "lease      unknown",
            "verdict    not armed: pgha:failover is not known here (not read: with --outputs, name the stack (--stack) to read it)",
            "note       the swarm was not asked",
        ]);
    });

    it("words the declared-primary finding as the failover line when the lease explains the mismatch", () => {
        const report: StatusReport = {
            healthy: false,
            primary: "c2",
            declaredPrimary: "c1",
            servers: [],
            findings: [{ severity: "error", check: "declared-primary", server: "c2", message: "c2 is primary, but the stack declares c1 (pgha:primary): ..." }],
        };
        const explained = failoverStatus({ automatic: true }, "pgha_net", facts(), "c1", "c2");
        expect(withFailoverFindings(report, explained).findings).toEqual([{ ...report.findings[0], message: explained.primaryMismatch }]);
        // Without a lease naming the primary, the finding stays as the evaluation wrote it.
        const unexplained = failoverStatus({ automatic: true }, "pgha_net", facts({ lease: "none" }), "c1", "c2");
        expect(withFailoverFindings(report, unexplained)).toBe(report);
    });
});

describe("against a real primary and standby", () => {
    const password = "status-Test-4711";
    let dir: string;
    const ports: Record<string, number> = {};
    const servers: Record<string, ChildProcess | undefined> = {};
    let outputsFile: string;
    const bin = (name: string) => path.join(pgBinDir(), name);
    const psql = (server: string, sql: string) =>
        runAsPostgres([bin("psql"), "-X", "-At", "-h", path.join(dir, "sock"), "-p", String(ports[server]), "-d", "postgres", "-c", sql]).trim();
    const common = (name: string) => [
        "-p",
        String(ports[name]),
        "-k",
        path.join(dir, "sock"),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `cluster_name=${name}`,
        "-c",
        "archive_mode=always",
        "-c",
        `archive_command=test ! -f ${dir}/archive-${name}/%f && cp %p ${dir}/archive-${name}/%f`,
        "-c",
        "wal_level=replica",
        "-c",
        "max_wal_senders=5",
        "-c",
        "max_replication_slots=5",
        "-c",
        "hot_standby=on",
        "-c",
        "wal_receiver_status_interval=1s",
        "-c",
        "fsync=off",
    ];
    const start = async (name: string) => {
        servers[name] = await startPostgres(
            [
                "-D",
                path.join(dir, name),
                ...common(name),
                ...(name === "pg2" ? ["-c", `primary_conninfo=host=127.0.0.1 port=${ports.pg1} user=postgres`, "-c", "primary_slot_name=pg2"] : []),
            ],
            path.join(dir, "sock"),
            ports[name],
            path.join(dir, `${name}.log`),
        );
    };
    const waitStreaming = async () => {
        for (let i = 0; i < 300; i++) {
            if (psql("pg1", "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg2' AND state = 'streaming'") === "1") return;
            await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error("pg2 does not stream from pg1");
    };

    beforeAll(async () => {
        dir = postgresTempDir("pgha-status-");
        ports.pg1 = await freePort();
        ports.pg2 = await freePort();
        runAsPostgres(["mkdir", path.join(dir, "sock"), path.join(dir, "archive-pg1"), path.join(dir, "archive-pg2")]);
        runAsPostgres([bin("initdb"), "-D", path.join(dir, "pg1"), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"]);
        // Streaming needs no password here; clients (status) do.
        const hba = path.join(dir, "pg1", "pg_hba.conf");
        fs.writeFileSync(
            hba,
            "local all all trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        );
        await start("pg1");
        psql("pg1", `ALTER ROLE postgres PASSWORD '${password}'`);
        runAsPostgres([
            bin("pg_basebackup"),
            "-D",
            path.join(dir, "pg2"),
            "-h",
            "127.0.0.1",
            "-p",
            String(ports.pg1),
            "-U",
            "postgres",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            "pg2",
        ]);
        runAsPostgres(["touch", path.join(dir, "pg2", "standby.signal")]);
        await start("pg2");
        // As pgha's entrypoint does: every server keeps an (unreserved) slot for each peer.
        psql("pg2", "SELECT pg_create_physical_replication_slot('pg1')");
        await waitStreaming();
        psql("pg1", "SELECT pg_switch_wal()");
        outputsFile = path.join(dir, "outputs.json");
        fs.writeFileSync(
            outputsFile,
            JSON.stringify({
                primary: "pg1",
                servers: {
                    pg1: { node: "here", address: "127.0.0.1", publishedPort: ports.pg1 },
                    pg2: { node: "here", address: "127.0.0.1", publishedPort: ports.pg2 },
                },
            }),
        );
    }, 120_000);

    afterAll(async () => {
        await stopPostgres(servers.pg2);
        await stopPostgres(servers.pg1);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("exits 0 and shows the primary, the streaming standby, its active slot and the archiver", () => {
        const r = status(["--outputs", outputsFile], { PGHA_SUPERUSER_PASSWORD: password });
        expect(r.stderr).toBe("");
        expect(r.code, r.stdout).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^pg1 +here +127\\.0\\.0\\.1:${ports.pg1} +primary +1 +\\d+/[0-9A-F]+`, "m"));
        expect(r.stdout).toMatch(
            new RegExp(`^pg2 +here +127\\.0\\.0\\.1:${ports.pg2} +standby +1 +receive \\d+/[0-9A-F]+, replay \\d+/[0-9A-F]+ +streaming +\\d+ (B|kB)`, "m"),
        );
        expect(r.stdout).toMatch(/^pg1 \(primary\) +pg2 +yes +\S+ (B|kB|MB) +reserved/m);
        expect(r.stdout).toMatch(/^healthy: pg1 is primary/m);
        expect(r.stdout).not.toContain(password);
    });

    it("prints the same as JSON", () => {
        const r = status(["--outputs", outputsFile, "--json"], { PGHA_SUPERUSER_PASSWORD: password });
        expect(r.code).toBe(0);
        const report = JSON.parse(r.stdout);
        expect(report).toMatchObject({ healthy: true, primary: "pg1", declaredPrimary: "pg1", findings: [] });
        const [p, s] = report.servers;
        expect(p).toMatchObject({ name: "pg1", role: "primary", timeline: 1, slots: [{ name: "pg2", active: true, walStatus: "reserved" }] });
        expect(p.currentLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
        expect(p.archiver.lastArchivedWal).toMatch(/^0{7}1/);
        expect(s).toMatchObject({
            name: "pg2",
            role: "standby",
            receiver: { status: "streaming", slotName: "pg2" },
            stream: { applicationName: "pg2", state: "streaming" },
        });
        expect(s.slots).toEqual([
            { name: "pg1", type: "physical", temporary: false, active: false, restartLsn: null, walStatus: null, retainedBytes: null, safeWalBytes: null },
        ]);
        expect(typeof s.stream.sentReplayBytes).toBe("number");
        expect(r.stdout).not.toContain(password);
    });

    it("reads the outputs and the password with the Pulumi CLI for --stack", () => {
        // A stand-in that records how the CLI is called (the real CLI answers it in the end-to-end
        // proof, test/e2e/status.test.ts).
        const bin = path.join(dir, "fake-bin");
        const log = path.join(dir, "pulumi.log");
        fs.mkdirSync(bin, { recursive: true });
        fs.writeFileSync(
            path.join(bin, "pulumi"),
            `#!/bin/sh\necho "$*" >> ${log}\ncase "$1 $2 $3" in\n"stack output --json") cat ${outputsFile} ;;\n"config get pgha:superuserPassword") printf '%s\\n' '${password}' ;;\n"config get pgha:failover") echo '{"automatic":false}' ;;\n*) exit 1 ;;\nesac\n`,
            { mode: 0o755 },
        );
        const r = status(["--stack", "prod", "--json"], { PATH: `${bin}:${process.env.PATH}` });
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({
            healthy: true,
            primary: "pg1",
            failover: { automatic: false, armed: false, verdict: "not armed: automatic failover is off (pgha:failover.automatic is false)" },
        });
        expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual([
            "stack output --json --stack prod",
            "config get pgha:superuserPassword --stack prod",
            "config get pgha:failover --stack prod",
        ]);
        expect(r.stdout + r.stderr).not.toContain(password);
    });

    it("reports a wrong password as the servers not answering, without printing it", () => {
        const r = status(["--outputs", outputsFile, "--json"], { PGHA_SUPERUSER_PASSWORD: "wrong-Password-1" });
        expect(r.code).toBe(1);
        const report = JSON.parse(r.stdout);
        expect(report.servers.map((s: { role: string }) => s.role)).toEqual(["down", "down"]);
        expect(report.findings[0].message).toMatch(/password authentication failed/);
        expect(r.stdout).not.toContain("wrong-Password-1");
    });

    describe("automatic failover, with a stand-in docker that answers as a swarm", () => {
        let fake: string;
        let scenario: string;
        const setScenario = (files: Record<string, string>) => {
            scenario = fs.mkdtempSync(path.join(dir, "swarm-"));
            for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(scenario, name), text);
        };
        const outputs = (declared: string) => ({
            primary: declared,
            network: "pgha_net",
            servers: {
                pg1: { node: "node-a", dockerHost: "", address: "127.0.0.1", publishedPort: ports.pg1 },
                pg2: { node: "node-b", dockerHost: "ssh://admin@node-b", address: "127.0.0.1", publishedPort: ports.pg2 },
            },
        });
        const nodes = JSON.stringify(
            ["a", "b", "c"].map((n, i) => ({
                ID: `id-${n}`,
                Description: { Hostname: `node-${n}` },
                Spec: { Role: "manager" },
                Status: { State: "ready" },
                ManagerStatus: { Leader: i === 0, Reachability: "reachable" },
            })),
        );
        const tasks = ["node-a", "node-b", "node-c"]
            .map((n) => JSON.stringify({ CurrentState: "Running 1 minute ago", DesiredState: "Running", Node: n }))
            .join("\n");
        const run = (declared: string, json = false) => {
            const file = path.join(scenario, "outputs.json");
            fs.writeFileSync(file, JSON.stringify(outputs(declared)));
            // pgha:failover is unset in the stack: an older CLI says "not found", the default applies.
            const pulumiBin = path.join(scenario, "pulumi");
            fs.writeFileSync(
                pulumiBin,
                `#!/bin/sh\ncase "$1 $2 $3" in\n"config get pgha:failover") echo "error: configuration key 'failover' not found for stack 'prod'" >&2; exit 1 ;;\n*) exit 1 ;;\nesac\n`,
                { mode: 0o755 },
            );
            fs.copyFileSync(pulumiBin, path.join(fake, "pulumi"));
            return status(["--outputs", file, "--stack", "prod", ...(json ? ["--json"] : [])], {
                PGHA_SUPERUSER_PASSWORD: password,
                PATH: `${fake}:${process.env.PATH}`,
                DOCKER_HOST: undefined,
                FAKE_DOCKER_DIR: scenario,
            });
        };
        const calls = () => fs.readFileSync(path.join(scenario, "log"), "utf8").trim().split("\n");

        beforeAll(() => {
            fake = path.join(dir, "fake-docker-bin");
            fs.mkdirSync(fake, { recursive: true });
            // The local engine is no manager here: status goes on to the servers' engines.
            fs.writeFileSync(
                path.join(fake, "docker"),
                `#!/bin/sh
d=$FAKE_DOCKER_DIR
echo "\${DOCKER_HOST:-local}|$*" >> "$d/log"
if [ -z "\${DOCKER_HOST:-}" ]; then echo "Error response from daemon: This node is not a swarm manager." >&2; exit 1; fi
case "$1 $2" in
"node ls") if [ -f "$d/no-leader" ]; then cat "$d/no-leader" >&2; exit 1; fi; echo id-a; echo id-b; echo id-c ;;
"node inspect") cat "$d/nodes.json" ;;
"service ps") if [ -f "$d/tasks" ]; then cat "$d/tasks"; else echo "no such service: $3" >&2; exit 1; fi ;;
"config inspect") if [ -f "$d/labels.json" ]; then cat "$d/labels.json"; else echo "Error response from daemon: config $5 not found" >&2; exit 1; fi ;;
*) exit 1 ;;
esac
`,
                { mode: 0o755 },
            );
        });

        it("is armed with 3 managers and the arbiter on each, and shows the lease", () => {
            setScenario({ "nodes.json": nodes, tasks, "labels.json": '{"pgha.lease.holder":"pg1","pgha.lease.term":"2"}' });
            const r = run("pg1");
            expect(r.code, r.stdout + r.stderr).toBe(0);
            expect(r.stdout).toMatch(/^automatic failover$/m);
            expect(r.stdout).toMatch(/^automatic +on \(pgha:failover\.automatic\)$/m);
            expect(r.stdout).toMatch(/^managers +3 \(3 reachable, 3 ready; a majority is 2\), asked through ssh:\/\/admin@node-b$/m);
            expect(r.stdout).toMatch(/^arbiter +pgha-net-arbiter: running on 3 of 3 managers$/m);
            expect(r.stdout).toMatch(/^lease +held by pg1, term 2 \(pgha-net-lease\)$/m);
            expect(r.stdout).toMatch(/^verdict +armed$/m);
            expect(r.stdout).toMatch(/^healthy: pg1 is primary/m);
            expect(calls()).toEqual([
                "local|node ls -q",
                "ssh://admin@node-b|node ls -q",
                "ssh://admin@node-b|node inspect id-a id-b id-c",
                "ssh://admin@node-b|service ps pgha-net-arbiter --filter desired-state=running --format {{json .}}",
                "ssh://admin@node-b|config inspect --format {{json .Spec.Labels}} pgha-net-lease",
            ]);
        });

        it("after an automatic failover, says to make pgha:primary agree instead of finishing a switchover", () => {
            setScenario({ "nodes.json": nodes, tasks, "labels.json": '{"pgha.lease.holder":"pg1","pgha.lease.term":"3"}' });
            const line =
                "pgha:primary says pg2, but pg1 is the primary (automatic failover at term 3): run pulumi config set pgha:primary pg1 to make the config agree; pulumi up will not switch back on its own";
            const r = run("pg2");
            expect(r.code, r.stdout).toBe(1);
            expect(r.stdout).toContain(`primary    ${line}`);
            expect(r.stdout).toContain(`  error: ${line}`);
            expect(r.stdout).not.toMatch(/run pulumi up to finish the switchover/);
            const j = run("pg2", true);
            const report = JSON.parse(j.stdout);
            expect(report).toMatchObject({
                healthy: false,
                primary: "pg1",
                declaredPrimary: "pg2",
                findings: [{ severity: "error", check: "declared-primary", server: "pg1", message: line }],
                failover: { automatic: true, armed: true, lease: { state: "held", holder: "pg1", term: 3 }, primaryMismatch: line },
            });
        });

        it("is not armed without the arbiter, or without a quorum, and says there is no lease yet", () => {
            setScenario({ "nodes.json": nodes });
            const r = run("pg1");
            expect(r.code, r.stdout).toBe(0);
            expect(r.stdout).toMatch(/^arbiter +pgha-net-arbiter: not running \(no such service\)$/m);
            expect(r.stdout).toMatch(/^lease +no lease yet$/m);
            expect(r.stdout).toMatch(/^verdict +not armed: the arbiter is not running: there is no service pgha-net-arbiter/m);
            setScenario({
                "no-leader":
                    "Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.",
            });
            const q = run("pg1", true);
            expect(q.code, q.stdout).toBe(0);
            expect(JSON.parse(q.stdout).failover).toMatchObject({
                armed: false,
                verdict: expect.stringMatching(/^not armed: the swarm's quorum is lost: a manager answers that the swarm has no leader/),
                managers: null,
                dockerHost: "ssh://admin@node-b",
            });
        });
    });

    it("exits 1 naming the standby once it is stopped, and 0 again once it streams", async () => {
        await stopPostgres(servers.pg2);
        const r = status(["--outputs", outputsFile], { PGHA_SUPERUSER_PASSWORD: password });
        expect(r.code, r.stdout).toBe(1);
        expect(r.stdout).toMatch(/^pg2 +here +\S+ +down/m);
        expect(r.stdout).toMatch(/^UNHEALTHY: 3 problems$/m);
        expect(r.stdout).toMatch(/error: pg2 \(node here\) does not answer at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
        expect(r.stdout).toMatch(/error: pg2 does not stream from pg1 \(not connected\)/);
        expect(r.stdout).toMatch(/error: slot pg2 on pg1 is not active/);
        await start("pg2");
        await waitStreaming();
        expect(status(["--outputs", outputsFile], { PGHA_SUPERUSER_PASSWORD: password }).code).toBe(0);
    }, 60_000);
});
