// End-to-end `npm run status` on the real two-node swarm: the program (stack "labst": st1 on node-a,
// st2 on node-b, its own network, ports and volumes) applied by the real Pulumi CLI, then the
// status command, fed the stack's outputs, asked from this host through the published ports: healthy;
// unhealthy naming st2 while st2's PostgreSQL is stopped (held by its entrypoint); healthy again
// once it is released.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, containerOf, docker, ENGINES, mustEngine, PASSWORDS, phase, query, ROOT, stateFile, waitFor } from "./lab";
import { cliEnv, projectDir } from "./pulumi";

const STACK = "labst";
const NETWORK = "pgha_st";
const SERVERS = ["st1", "st2"];
const state = stateFile("status");
const outputsFile = path.join(state, "outputs.json");
const PGDATA = "/var/lib/pgha/data/pgdata";

interface StatusRun {
    code: number | null;
    stdout: string;
    stderr: string;
    ms: number;
}

/**
 * Runs `npm run status` (the same script, through tsx): with the password in the environment, or
 * (viaCli) in the stack's project directory with nothing but the Pulumi CLI to ask.
 */
function status(...args: string[]): StatusRun {
    return statusRun(false, args);
}
function statusViaCli(...args: string[]): StatusRun {
    return statusRun(true, args);
}
function statusRun(viaCli: boolean, args: string[]): StatusRun {
    const start = Date.now();
    const r = spawnSync(path.join(ROOT, "node_modules", ".bin", "tsx"), [path.join(ROOT, "scripts", "status.ts"), ...args], {
        cwd: viaCli ? projectDir(state) : ROOT,
        encoding: "utf8",
        env: viaCli ? cliEnv(state) : { ...process.env, PGHA_SUPERUSER_PASSWORD: PASSWORDS.superuserPassword },
        timeout: 60_000,
    });
    const run = { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ms: Date.now() - start };
    for (const secret of Object.values(PASSWORDS)) {
        if (run.stdout.includes(secret) || run.stderr.includes(secret)) throw new Error("status printed a password");
    }
    return run;
}

function json(run: StatusRun): any {
    return JSON.parse(run.stdout);
}

beforeAll(async () => {
    await phase("status: clean leftovers of earlier runs", () => cleanLab(SERVERS, NETWORK));
    const r = await phase("status: apply the labst stack from empty", () => mustEngine("up", STACK, state));
    fs.writeFileSync(outputsFile, r.stdout.slice(r.stdout.indexOf("{")));
    await phase("status: st2 streams from st1", () =>
        waitFor(
            "st2 streaming from st1",
            async () => (await query("st1", "select state from pg_stat_replication where application_name = 'st2'"))[0]?.state === "streaming",
            120_000,
            500,
        ),
    );
}, 900_000);

afterAll(async () => {
    await phase("status: destroy (unprotected) and remove the volumes", () => {
        try {
            mustEngine("destroy", STACK, state, ["--unprotect"]);
        } finally {
            cleanLab(SERVERS, NETWORK);
        }
    });
}, 300_000);

describe("npm run status on the lab swarm", () => {
    it("exports where each server's published port is reached", () => {
        const outputs = JSON.parse(fs.readFileSync(outputsFile, "utf8"));
        expect(outputs.servers.st1).toMatchObject({ node: "node-a", address: "127.0.0.1", publishedPort: 15472 });
        expect(outputs.servers.st2).toMatchObject({ node: "node-b", address: "192.168.77.2", publishedPort: 15473 });
    });

    it("exits 0 with st1 primary and st2 a standby streaming through its active slot", async () => {
        // The slot is active and the archivers have run a moment after streaming starts.
        const run = await waitFor(
            "status to report healthy",
            () => {
                const r = status("--outputs", outputsFile, "--json");
                return r.code === 0 ? r : undefined;
            },
            60_000,
            1000,
        );
        console.log(`[e2e] status answered in ${run.ms} ms`);
        const report = json(run);
        expect(report).toMatchObject({ healthy: true, primary: "st1", declaredPrimary: "st1", findings: [] });
        const [st1, st2] = report.servers;
        expect(st1).toMatchObject({ name: "st1", node: "node-a", endpoint: "127.0.0.1:15472", role: "primary", clusterName: "st1", timeline: 1 });
        expect(st1.slots).toContainEqual(expect.objectContaining({ name: "st2", active: true, walStatus: "reserved" }));
        expect(st2).toMatchObject({ name: "st2", node: "node-b", endpoint: "192.168.77.2:15473", role: "standby", timeline: 1 });
        expect(st2.receiver).toMatchObject({ status: "streaming", slotName: "st2", senderHost: "st1" });
        expect(st2.stream).toMatchObject({ applicationName: "st2", state: "streaming" });
        expect(st1.archiver.failedCount).toBe(0);
    });

    it("prints the table, asking the Pulumi CLI for the outputs and the password", () => {
        const run = statusViaCli("--stack", STACK);
        expect(run.code, run.stdout + run.stderr).toBe(0);
        console.log(run.stdout);
        expect(run.stdout).toMatch(/^st1 +node-a +127\.0\.0\.1:15472 +primary +1 +[0-9A-F]+\/[0-9A-F]+/m);
        expect(run.stdout).toMatch(/^st2 +node-b +192\.168\.77\.2:15473 +standby +1 +receive [0-9A-F/]+, replay [0-9A-F/]+ +streaming/m);
        expect(run.stdout).toMatch(/^st1 \(primary\) +st2 +yes +\S+ \S+ +reserved/m);
        expect(run.stdout).toMatch(/^healthy: st1 is primary/m);
    });

    it("exits non-zero naming st2 while st2's PostgreSQL is stopped, and 0 once it is released", async () => {
        const st2 = containerOf("st2", "node-b");
        await phase("status: hold st2 and stop its PostgreSQL", () =>
            docker(ENGINES["node-b"], [
                "exec",
                "-u",
                "postgres",
                st2,
                "/bin/sh",
                "-c",
                `touch /dev/shm/pgha/hold && "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/pg_ctl" stop -D ${PGDATA} -m fast -w`,
            ]),
        );
        try {
            const down = status("--outputs", outputsFile, "--json");
            expect(down.code, down.stdout + down.stderr).toBe(1);
            const report = json(down);
            expect(report.healthy).toBe(false);
            expect(report.servers[1]).toMatchObject({ name: "st2", role: "down" });
            expect(report.findings.filter((f: any) => f.server === "st2").map((f: any) => f.check)).toEqual(["unreachable", "not-streaming", "slot-inactive"]);
            const table = status("--outputs", outputsFile);
            expect(table.code).toBe(1);
            console.log(table.stdout);
            expect(table.stdout).toMatch(/^UNHEALTHY: 3 problems$/m);
            expect(table.stdout).toMatch(/error: st2 \(node node-b\) does not answer at 192\.168\.77\.2:15473/);
            expect(table.stdout).toMatch(/error: st2 does not stream from st1/);
            expect(table.stdout).toMatch(/error: slot st2 on st1 is not active/);
            // The service was not restarted meanwhile: the entrypoint holds PostgreSQL stopped.
            expect(containerOf("st2", "node-b")).toBe(st2);
        } finally {
            docker(ENGINES["node-b"], ["exec", st2, "/bin/sh", "/var/lib/pgha/data/pgha/entrypoint.sh", "restore", "resume"]);
        }
        const healthy = await phase("status: st2 released, healthy again", () =>
            waitFor(
                "status to report healthy again",
                () => {
                    const r = status("--outputs", outputsFile, "--json");
                    return r.code === 0 ? r : undefined;
                },
                60_000,
                500,
            ),
        );
        expect(json(healthy)).toMatchObject({ healthy: true, primary: "st1" });
        expect(containerOf("st2", "node-b")).toBe(st2);
    });
});
