// Provisioning and the planned switchover on another PostgreSQL major version (the lab's
// pgha-postgres:<major>-lab image, built by scripts/lab.sh from the Debian release that ships it:
// 17 from trixie, 18 from testing): the same program and the same container files as on 15,
// proven the same way (test/e2e/versions.test.ts on 17, versions18.test.ts on 18). The stack
// starts from empty:
//  - both servers run that major version; the first is primary, the second a hot standby
//    streaming through its own active slot, and every server archives the WAL;
//  - `pulumi refresh` finds no drift;
//  - the primary moves to v2 and back through `pulumi up` with a writer and a sampler running: no
//    lost commit, never two writable servers, no service re-created (test/e2e/swap.ts).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, engineAsync, labImage, mustEngine, phase, query, stateFile, waitFor } from "./lab";
import { resourceSummary } from "./pulumi";
import { streaming, swapThereAndBack } from "./swap";

export interface VersionProof {
    readonly major: number;
    readonly stack: string;
    readonly network: string;
    /** [primary, standby], on node-a and node-b. */
    readonly servers: readonly [string, string];
}

export function versionProof(p: VersionProof): void {
    const MAJOR = p.major;
    const STACK = p.stack;
    const NETWORK = p.network;
    const SERVERS = [...p.servers];
    const [v1, v2] = p.servers;
    const state = stateFile(`versions${MAJOR}`);

    beforeAll(async () => {
        await phase(`the lab's PostgreSQL ${MAJOR} image (built once, then cached)`, () => labImage(MAJOR));
        await phase("clean leftovers of earlier runs", () => cleanLab(SERVERS, NETWORK));
        await phase(`apply the lab${MAJOR} stack from empty`, () => engineAsync("up", STACK, state));
        await waitFor(`${v2} streaming from ${v1}`, () => streaming(v1, v2), 120_000, 500);
    }, 1_200_000);

    afterAll(async () => {
        await phase("destroy and remove the volumes", async () => {
            await engineAsync("destroy", STACK, state, ["--unprotect"]);
            cleanLab(SERVERS, NETWORK);
        });
    }, 300_000);

    describe(`PostgreSQL ${MAJOR}: provisioning and the planned switchover`, () => {
        it(`runs PostgreSQL ${MAJOR} on both servers: ${v1} primary, ${v2} a standby streaming through its own active slot`, async () => {
            for (const s of SERVERS) {
                const [{ v }] = await query(s, "SELECT current_setting('server_version_num')::int AS v");
                expect(Math.floor(v / 10000), s).toBe(MAJOR);
            }
            expect((await query(v1, "SELECT pg_is_in_recovery() AS r"))[0].r).toBe(false);
            expect((await query(v2, "SELECT pg_is_in_recovery() AS r"))[0].r).toBe(true);
            const slots = await query(v1, "SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = $1", [v2]);
            expect(slots).toEqual([{ slot_name: v2, active: true }]);
            const receiver = await query(v2, "SELECT status, slot_name FROM pg_stat_wal_receiver");
            expect(receiver).toEqual([{ status: "streaming", slot_name: v2 }]);
        });

        it("archives the WAL on both servers", async () => {
            // Some WAL first: a switch at a segment boundary (nothing written since the last one, as
            // after the bootstrap's backup) closes nothing, and the segment would wait for archive_timeout.
            await query(v1, "CREATE TABLE IF NOT EXISTS archive_probe (at timestamptz DEFAULT clock_timestamp()); INSERT INTO archive_probe DEFAULT VALUES");
            const [{ walfile }] = await query(v1, "SELECT pg_walfile_name(pg_switch_wal()) AS walfile");
            for (const s of SERVERS) {
                const t0 = Date.now();
                await waitFor(
                    `${walfile} archived by ${s}`,
                    async () =>
                        Number((await query(s, "SELECT count(*) AS n FROM pg_ls_dir('/var/lib/pgha/archive/wal') AS name WHERE name = $1", [walfile]))[0].n) ===
                        1,
                    60_000,
                    500,
                );
                console.log(`[e2e] ${walfile} archived by ${s} after ${Date.now() - t0} ms`);
                expect(Number((await query(s, "SELECT failed_count FROM pg_stat_archiver"))[0].failed_count), s).toBe(0);
            }
        });

        it("shows no drift on `pulumi refresh`", () => {
            const r = mustEngine("refresh", STACK, state);
            expect(resourceSummary(r.stderr), r.stderr.slice(-3000)).toMatch(/^\d+ unchanged$/);
        });

        it(`moves the primary to ${v2} and back with no lost commit and never two writable servers`, async () => {
            await swapThereAndBack({
                stack: STACK,
                state,
                servers: [
                    [v1, "node-a"],
                    [v2, "node-b"],
                ],
                table: "version_writes",
            });
        }, 600_000);
    });
}
