// `npm run status` (scripts/status.ts): its arguments and inputs, and the whole command against a
// real primary and hot standby run from this machine's PostgreSQL binaries (no swarm): exit 0 and
// the table when healthy, exit 1 naming the standby once it is stopped, exit 2 when it cannot run.

import { ChildProcess, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildReport } from "../components/health";
import { InputError, parseArgs, renderTable, targetsFromOutputs } from "../scripts/status";
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
            `#!/bin/sh\necho "$*" >> ${log}\ncase "$1 $2" in\n"stack output") cat ${outputsFile} ;;\n"config get") printf '%s\\n' '${password}' ;;\n*) exit 1 ;;\nesac\n`,
            { mode: 0o755 },
        );
        const r = status(["--stack", "prod", "--json"], { PATH: `${bin}:${process.env.PATH}` });
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ healthy: true, primary: "pg1" });
        expect(fs.readFileSync(log, "utf8").trim().split("\n")).toEqual(["stack output --json --stack prod", "config get pgha:superuserPassword --stack prod"]);
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
