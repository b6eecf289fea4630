// Planned switchover through the program: change pgha:primary, apply, and again back — with a
// writer committing every 10 ms through a libpq multi-host connection and a sampler asking both
// servers every 10 ms whether they are writable. No acknowledged commit may be lost, no sample may
// see two writable servers, no service may be re-created or restarted, and the preview of a swap
// shows the switchover Command replaced and nothing else.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, mustEngine, PASSWORDS, phase, query, stateFile, waitFor } from "./lab";
import { spawnSync } from "child_process";
import { changes, cliEnv, parsePreview, projectDir, resetConfig, resourceSummary, setConfig } from "./pulumi";
import { streaming, swapThereAndBack } from "./swap";

const STACK = "lab";
const NETWORK = "pgha_lab";
const state = stateFile("switchover");
const swap = (primary: string) => ["--set", `pgha:primary=${JSON.stringify(primary)}`];

beforeAll(async () => {
    await phase("clean leftovers of earlier runs", () => cleanLab(["pg1", "pg2"], NETWORK));
    await phase("apply the lab stack from empty", () => mustEngine("up", STACK, state));
    await waitFor("pg2 streaming from pg1", () => streaming("pg1", "pg2"), 120_000, 500);
}, 900_000);

afterAll(async () => {
    await phase("destroy and remove the volumes", () => {
        mustEngine("destroy", STACK, state, ["--unprotect"]);
        cleanLab(["pg1", "pg2"], NETWORK);
    });
}, 300_000);

describe("planned switchover by `pulumi up`", () => {
    it("previews as one replaced Command and nothing else", () => {
        const plan = mustEngine("preview", STACK, state, [...swap("pg2"), "--json"]);
        expect(changes(parsePreview(plan.stdout).steps)).toEqual(["replace pgha-switchover"]);
    });

    it("previews the same through the pull-request command (`npm run up -- preview`)", () => {
        // what .github/workflows/pgha.yml comments on a pull request that changes pgha:primary
        setConfig(state, STACK, { "pgha:primary": "pg2" });
        try {
            const r = spawnSync("sh", ["scripts/up.sh", "preview"], {
                cwd: projectDir(state),
                env: { ...cliEnv(state), PGHA_STACK: STACK },
                encoding: "utf8",
                timeout: 600_000,
            });
            const out = `${r.stdout}${r.stderr}`;
            expect(r.status, out.slice(-4000)).toBe(0);
            for (const secret of Object.values(PASSWORDS)) expect(out.includes(secret), "a password in the preview").toBe(false);
            expect(out).toMatch(/\+-command:local:Command: \(replace\)\n\s+\[id=[^\]]*\]\n\s+\[urn=[^\]]*::pgha-switchover\]/);
            expect(out.match(/: \((replace|update|create|delete)\)/g)).toEqual([": (replace)"]);
            expect(out).toMatch(/~ triggers/);
            expect(out).toMatch(/^Resources:\n\s+\+-1 to replace\n\s+\d+ unchanged$/m);
        } finally {
            resetConfig(state, STACK);
        }
    });

    it("moves the primary to pg2 and back with no lost commit and never two writable servers", async () => {
        await swapThereAndBack({
            stack: STACK,
            state,
            servers: [
                ["pg1", "node-a"],
                ["pg2", "node-b"],
            ],
            table: "switch_writes",
        });
    }, 600_000);

    it("keeps archiving on both servers across the swaps, with the timeline history archived", async () => {
        const [{ walfile }] = await query("pg1", "SELECT pg_walfile_name(pg_switch_wal()) AS walfile");
        // Two promotions: pg2 took timeline 2, pg1 timeline 3 (the first 8 hex digits of a WAL file name).
        expect(parseInt(walfile.slice(0, 8), 16)).toBe(3);
        const history = `${walfile.slice(0, 8)}.history`;
        for (const server of ["pg1", "pg2"]) {
            await waitFor(
                `${walfile} and ${history} archived by ${server}`,
                async () => {
                    const rows = await query(
                        server,
                        "SELECT count(*) FILTER (WHERE name = $1) AS w, count(*) FILTER (WHERE name = $2) AS h FROM pg_ls_dir('/var/lib/pgha/archive/wal') AS name",
                        [walfile, history],
                    );
                    return Number(rows[0].w) === 1 && Number(rows[0].h) === 1;
                },
                60_000,
                500,
            );
            expect(Number((await query(server, "SELECT failed_count FROM pg_stat_archiver"))[0].failed_count)).toBe(0);
        }
    });

    it("leaves the primary's slot for the standby active, and the standby holding no WAL for its slot", async () => {
        expect(await query("pg1", "SELECT slot_name, active, wal_status FROM pg_replication_slots")).toEqual([
            { slot_name: "pg2", active: true, wal_status: "reserved" },
        ]);
        expect(await query("pg2", "SELECT slot_name, active, restart_lsn FROM pg_replication_slots")).toEqual([
            { slot_name: "pg1", active: false, restart_lsn: null },
        ]);
    });

    it("shows no drift on `pulumi refresh` after the switchovers, and no change in a preview after it", () => {
        const r = mustEngine("refresh", STACK, state);
        expect(resourceSummary(r.stderr), r.stderr.slice(-3000)).toMatch(/^\d+ unchanged$/);
        expect(changes(parsePreview(mustEngine("preview", STACK, state, ["--json"]).stdout).steps)).toEqual([]);
    });

    it("does nothing when the primary is named again", () => {
        const out = mustEngine("up", STACK, state, swap("pg1"));
        expect(out.stderr).toMatch(/^Resources:\n\s+\d+ unchanged$/m);
    });
});
