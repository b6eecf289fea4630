// The README's main command, as a user runs it: `npm run up` (scripts/up.sh) deploys the dev stack
// (two servers on node-a, published on 15432/15433) with the real Pulumi CLI, generating the
// passwords as secrets; a second run changes nothing; `npm run up -- destroy` takes it down and
// keeps the volumes, `destroy --volumes` deletes them. It runs in a workspace of its own (the
// program linked in, a file backend) so that the repository's Pulumi.dev.yaml and .pulumi/ are
// left as they are.

import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanLab, docker, ENGINES, phase, ROOT, stateFile, waitFor } from "./lab";
import { cliEnv, ensureProject, mustPulumi } from "./pulumi";

const workspace = stateFile("main-job");
const project = ensureProject(workspace);
fs.copyFileSync(path.join(ROOT, "Pulumi.dev.yaml"), path.join(project, "Pulumi.dev.yaml"));

/** `npm run up -- ARGS` without blocking this process (vitest's worker must keep answering). */
function npmRunUp(...args: string[]): Promise<{ status: number; out: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn("sh", ["scripts/up.sh", ...args], { cwd: project, env: cliEnv(workspace), stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        const timer = setTimeout(() => child.kill("SIGTERM"), 20 * 60_000);
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("error", reject);
        child.on("close", (status) => {
            clearTimeout(timer);
            resolve({ status: status ?? -1, out });
        });
    });
}

afterAll(async () => {
    await phase("main job: remove what is left", () => cleanLab(["pg1", "pg2"], "pgha_net"));
}, 300_000);

describe("npm run up (the dev stack)", () => {
    let passwords: string[] = [];

    it("deploys a primary and a streaming standby with the real CLI, generating the passwords", async () => {
        await phase("main job: clean leftovers", () => cleanLab(["pg1", "pg2"], "pgha_net"));
        const r = await phase("main job: npm run up (dev)", () => npmRunUp());
        expect(r.status, r.out.slice(-5000)).toBe(0);
        expect(r.out).toMatch(/generated pgha:superuserPassword/);
        expect(r.out).toMatch(/generated pgha:replicatorPassword/);
        expect(r.out).toMatch(/^Resources:\n\s+\+ \d+ created$/m);
        passwords = ["superuserPassword", "replicatorPassword"].map((k) =>
            mustPulumi(workspace, "dev", ["config", "get", `pgha:${k}`, "--stack", "dev"]).stdout.trim(),
        );
        for (const p of passwords) {
            expect(p.length).toBeGreaterThanOrEqual(8);
            expect(r.out.includes(p), "a generated password in the output").toBe(false);
        }
        // the passwords are secrets in the stack's config file
        const stackFile = fs.readFileSync(path.join(project, "Pulumi.dev.yaml"), "utf8");
        expect(stackFile).toMatch(/pgha:superuserPassword:\n\s+secure: /);
        for (const p of passwords) expect(stackFile.includes(p)).toBe(false);
        const pg1 = docker(ENGINES["node-a"], ["ps", "-q", "--filter", "label=com.docker.swarm.service.name=pg1"]);
        await waitFor(
            "pg2 streaming from pg1",
            () => {
                const out = docker(ENGINES["node-a"], [
                    "exec",
                    "-u",
                    "postgres",
                    pg1,
                    "psql",
                    "-h",
                    "/var/run/postgresql",
                    "-XAtc",
                    "select state from pg_stat_replication where application_name = 'pg2'",
                ]);
                return out === "streaming";
            },
            120_000,
            500,
        );
    });

    it("changes nothing the second time", async () => {
        const r = await npmRunUp();
        expect(r.status, r.out.slice(-5000)).toBe(0);
        expect(r.out).not.toMatch(/generated pgha:/);
        expect(r.out).toMatch(/^Resources:\n\s+\d+ unchanged$/m);
    });

    it("takes the stack down with `destroy`, keeping the volumes, and deletes them with `destroy --volumes`", async () => {
        const down = await npmRunUp("destroy");
        expect(down.status, down.out.slice(-5000)).toBe(0);
        expect(down.out).toMatch(/the data and archive volumes are kept/);
        expect(docker(ENGINES["node-a"], ["service", "ls", "-q", "--filter", "name=pg1"])).toBe("");
        expect(docker(ENGINES["node-a"], ["volume", "ls", "-q", "--filter", "name=pg1-data"])).toBe("pg1-data");
        // up again on the kept volumes, then down for good
        const up = await npmRunUp();
        expect(up.status, up.out.slice(-5000)).toBe(0);
        const gone = await npmRunUp("destroy", "--volumes");
        expect(gone.status, gone.out.slice(-5000)).toBe(0);
        expect(gone.out).toMatch(/removed volumes pg1-data pg1-archive/);
        expect(docker(ENGINES["node-a"], ["volume", "ls", "-q", "--filter", "name=pg1-data"])).toBe("");
    });
});
