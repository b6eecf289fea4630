// End-to-end environment cloning: stack "labclone" (its own network, CIDR, servers cl1/cl2 and
// passwords) is created with pgha:cloneFrom naming a base backup in the archive volume of stack
// "labbk" (bk2's, on node-b). The clone starts with the source's data up to its archived WAL, on a
// timeline of its own; the two clusters are independent afterwards, and the source's archive
// volume is byte-for-byte unchanged.

import * as crypto from "crypto";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanLab, containerOf, docker, ENDPOINTS, engine, ENGINES, mustEngine, phase, query, stateFile, waitFor } from "./lab";
import { ensureStack } from "./pulumi";

const SOURCE = { stack: "labbk", network: "pgha_bk", servers: ["bk1", "bk2"] };
const CLONE = { stack: "labclone", network: "pgha_clone", servers: ["cl1", "cl2"] };
const NODE: Record<string, string> = { bk1: "node-a", bk2: "node-b", cl1: "node-a", cl2: "node-b" };
// one workspace (one backend) for both stacks: the clone's config is copied from the source's
const workspace = stateFile("clone");
const sourceState = workspace;
/** The clone stack has passwords of its own: the clone must set them on the copied roles. */
const CLONE_PASSWORDS = {
    superuserPassword: `su-clone-${crypto.randomBytes(8).toString("hex")}`,
    replicatorPassword: `repl-clone-${crypto.randomBytes(8).toString("hex")}`,
};

/**
 * The real CLI on the clone stack, made the way a user clones an environment: `pulumi stack init
 * labclone --copy-config-from labbk` in the source's backend, then the clone's own keys
 * (Pulumi.labclone.yaml: servers, network, cloneFrom) and its own passwords.
 */
function cloneEngine(verb: "up" | "destroy", extra: string[] = []): string {
    ensureStack(
        workspace,
        CLONE.stack,
        { "pgha:superuserPassword": CLONE_PASSWORDS.superuserPassword, "pgha:replicatorPassword": CLONE_PASSWORDS.replicatorPassword },
        SOURCE.stack,
    );
    const r = engine(verb, CLONE.stack, workspace, extra);
    const out = r.stdout + r.stderr;
    for (const secret of Object.values(CLONE_PASSWORDS)) if (out.includes(secret)) throw new Error("the CLI's output shows a clone password in plaintext");
    if (r.status !== 0) throw new Error(`pulumi ${verb} (clone) failed (${r.status}):\n${r.stderr.slice(-6000)}`);
    return r.stdout;
}
async function cloneQuery<T = any>(server: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const { host, port } = ENDPOINTS[server];
    const c = new Client({ host, port, user: "postgres", password: CLONE_PASSWORDS.superuserPassword, database: "postgres", connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
        return (await c.query(sql, params)).rows as T[];
    } finally {
        await c.end();
    }
}

function sh(server: string, script: string): string {
    return docker(ENGINES[NODE[server]], ["exec", containerOf(server, NODE[server]), "sh", "-c", script]);
}
/** Every file of a volume with its size, mode, mtime and checksum, read by a one-off read-only container. */
function volumeFingerprint(engine: string, volume: string): string {
    return docker(engine, [
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        `${volume}:/v:ro`,
        "--entrypoint",
        "/bin/sh",
        "pgha-postgres:15-lab",
        "-c",
        "cd /v && find . -printf '%p %s %m %T@\\n' | sort && find . -type f -exec md5sum {} + | sort -k2",
    ]);
}
async function streaming(q: typeof query, primary: string, standby: string): Promise<boolean> {
    return (await q(primary, "select state from pg_stat_replication where application_name = $1", [standby]))[0]?.state === "streaming";
}
async function notes(q: typeof query, server: string): Promise<string[]> {
    return (await q<{ note: string }>(server, "select note from origin order by id")).map((r) => r.note);
}

beforeAll(async () => {
    await phase("clone: clean leftovers of earlier runs", () => {
        cleanLab(CLONE.servers, CLONE.network);
        cleanLab(SOURCE.servers, SOURCE.network);
    });
    await phase("clone: apply the source stack labbk from empty", () => mustEngine("up", SOURCE.stack, sourceState));
    await phase("clone: source bk2 streams", () =>
        waitFor("bk2 streaming", async () => (await query("bk2", "select 1 as ok"))[0].ok === 1 && streaming(query, "bk1", "bk2"), 120_000, 500),
    );
}, 900_000);

afterAll(async () => {
    await phase("clone: destroy both stacks and remove their volumes", () => {
        try {
            cloneEngine("destroy", ["--unprotect"]);
        } finally {
            mustEngine("destroy", SOURCE.stack, sourceState, ["--unprotect"]);
            cleanLab(CLONE.servers, CLONE.network);
            cleanLab(SOURCE.servers, SOURCE.network);
        }
    });
}, 300_000);

describe("a new stack cloned from another stack's backup and archive (labclone from labbk)", () => {
    let sourceTimeline = 0;

    it("starts with the source's data up to its archived WAL, on a timeline of its own, with its own passwords", async () => {
        await query("bk1", "create table origin (id serial primary key, note text)");
        await query("bk1", "insert into origin (note) values ('before the backup')");
        await phase("clone: backup clonesrc on bk2 (the source)", () =>
            mustEngine("up", SOURCE.stack, sourceState, ["--set", 'pgha:backup={"id":"clonesrc","server":"bk2"}']),
        );
        await query("bk1", "insert into origin (note) values ('after the backup, archived')");
        const [{ walfile }] = await query("bk1", "select pg_walfile_name(pg_switch_wal()) as walfile");
        await waitFor(`${walfile} in bk2's archive`, () => sh("bk2", "ls /var/lib/pgha/archive/wal").split("\n").includes(walfile), 60_000, 250);
        sourceTimeline = Number((await query("bk1", "select timeline_id from pg_control_checkpoint()"))[0].timeline_id);

        // Nothing may write into the source's archive volume: PostgreSQL on bk2 is held (its own
        // archiver stopped) so that the volume can be compared byte for byte.
        sh("bk2", "/var/lib/pgha/data/pgha/entrypoint.sh restore hold");
        const before = volumeFingerprint(ENGINES["node-b"], "bk2-archive");
        try {
            await phase("clone: apply the labclone stack (cloneFrom bk2-archive / clonesrc)", () => cloneEngine("up"));
        } finally {
            const after = volumeFingerprint(ENGINES["node-b"], "bk2-archive");
            sh("bk2", "/var/lib/pgha/data/pgha/entrypoint.sh restore resume");
            expect(after, "the source archive volume changed").toBe(before);
        }

        expect(await notes(cloneQuery, "cl1")).toEqual(["before the backup", "after the backup, archived"]);
        expect((await cloneQuery("cl1", "select pg_is_in_recovery() as r"))[0].r).toBe(false);
        const cloneTimeline = Number((await cloneQuery("cl1", "select timeline_id from pg_control_checkpoint()"))[0].timeline_id);
        expect(cloneTimeline).toBeGreaterThan(sourceTimeline);
        // A copy: the same system identifier; its own servers, network and archives.
        const sysid = async (q: typeof query, s: string) => (await q(s, "select system_identifier::text as id from pg_control_system()"))[0].id;
        expect(await sysid(cloneQuery, "cl1")).toBe(await sysid(query, "bk1"));
        expect((await cloneQuery("cl1", "select current_setting('cluster_name') as n"))[0].n).toBe("cl1");
        // The source's password does not open the clone: the roles carry the clone stack's.
        await expect(query("cl1", "select 1")).rejects.toThrow(/password authentication failed/);
        // Standby bootstrapped as usual, streaming with the clone's replicator password.
        await waitFor("cl2 streaming from cl1", () => streaming(cloneQuery, "cl1", "cl2"), 60_000, 250);
        expect(sh("cl1", `ls /var/lib/pgha/archive/wal`).split("\n")).toContain(`${cloneTimeline.toString(16).toUpperCase().padStart(8, "0")}.history`);
        expect(sh("cl1", "ls -A /var/lib/pgha/data")).not.toMatch(/pgha-restore-wal|pgdata\.restore/);
    });

    it("is independent: writes to the clone do not reach the source, and writes to the source do not reach the clone", async () => {
        await cloneQuery("cl1", "insert into origin (note) values ('only in the clone')");
        await query("bk1", "insert into origin (note) values ('only in the source')");
        await waitFor("the clone's row on cl2", async () => (await notes(cloneQuery, "cl2")).includes("only in the clone"), 10_000, 100);
        await waitFor("the source's row on bk2", async () => (await notes(query, "bk2")).includes("only in the source"), 30_000, 100);
        expect(await notes(cloneQuery, "cl1")).toEqual(["before the backup", "after the backup, archived", "only in the clone"]);
        expect(await notes(query, "bk1")).toEqual(["before the backup", "after the backup, archived", "only in the source"]);
        expect(await notes(query, "bk2")).toEqual(["before the backup", "after the backup, archived", "only in the source"]);
        const [{ walfile }] = await cloneQuery("cl1", "select pg_walfile_name(pg_switch_wal()) as walfile");
        await waitFor(`${walfile} in cl1's own archive`, () => sh("cl1", "ls /var/lib/pgha/archive/wal").split("\n").includes(walfile), 60_000, 250);
        expect(sh("bk1", "ls /var/lib/pgha/archive/wal").split("\n")).not.toContain(walfile);
        for (const s of ["cl1", "cl2"]) expect(Number((await cloneQuery(s, "select failed_count from pg_stat_archiver"))[0].failed_count), s).toBe(0);
        expect(Number((await query("bk2", "select failed_count from pg_stat_archiver"))[0].failed_count)).toBe(0);
    });
});
