// Tests for the container side, scripts/server/ (entrypoint.sh and the files it
// dispatches to; contract: docs/container.md), run against the
// real PostgreSQL 15 binaries of this machine, outside any container: every
// path of the contract is pointed into a temporary directory through the
// PGHA_*_DIR variables, the server listens on 127.0.0.1 and a free port only.
// Needs root (the entrypoint drops privileges to the `postgres` OS user).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const SERVER_DIR = path.resolve(__dirname, "../scripts/server");

/** The server files in DIR, as the service mounts them: the entrypoint executable, the rest read only. */
function installServerFiles(dir: string): string {
    for (const f of fs.readdirSync(SERVER_DIR).filter((n) => n.endsWith(".sh"))) {
        fs.copyFileSync(path.join(SERVER_DIR, f), path.join(dir, f));
        fs.chmodSync(path.join(dir, f), f === "entrypoint.sh" ? 0o555 : 0o444);
    }
    return path.join(dir, "entrypoint.sh");
}
// PATH without /usr/local/bin (which has a postgres symlink on the build
// machines): the entrypoint has to find the binaries by itself.
const PLAIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

const isRoot = process.getuid?.() === 0;
const idOf = (flag: string) => {
    const r = spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
    return r.status === 0 ? Number(r.stdout.trim()) : undefined;
};
const pgUid = idOf("-u");
const pgGid = idOf("-g");
// The entrypoint runs as root and drops to the postgres user, against real PostgreSQL binaries:
// without them these tests cannot mean anything, so they fail (never skip) with what is missing.
// (scripts/test.sh installs PostgreSQL; CI runs as root.)
const missing = [
    ...(isRoot ? [] : ["root (the entrypoint drops privileges)"]),
    ...(pgUid !== undefined ? [] : ["a postgres OS user"]),
    ...(fs.existsSync(`${PG_BIN}/postgres`) ? [] : [`PostgreSQL server binaries in ${PG_BIN}`]),
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
    const deadline = Date.now() + ms;
    let last: unknown;
    for (;;) {
        try {
            const v = await fn();
            if (v !== undefined && v !== false) return v as T;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
        await sleep(50);
    }
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

/** One temporary "container": its mounts, rendered config and secrets. */
interface Box {
    root: string;
    port: number;
    etc: string;
    env: Record<string, string>;
}

function makeBox(root: string, port: number, superPw: string, replPw: string): Box {
    fs.mkdirSync(root, { recursive: true });
    fs.chmodSync(root, 0o755); // postgres must traverse it
    const etc = path.join(root, "etc");
    const secrets = path.join(root, "secrets");
    const sock = path.join(root, "sock");
    fs.mkdirSync(etc);
    fs.mkdirSync(secrets, { mode: 0o700 });
    // The server files are shipped as Docker configs in /var/lib/pgha/data/pgha/;
    // archive_command and restore_command call the entrypoint there.
    const ep = installServerFiles(etc);
    fs.writeFileSync(path.join(secrets, "pgha-superuser-password"), superPw, { mode: 0o400 });
    fs.writeFileSync(path.join(secrets, "pgha-replicator-password"), `${replPw}\n`, { mode: 0o400 });
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    fs.writeFileSync(
        path.join(etc, "postgresql.conf"),
        [
            `listen_addresses = '127.0.0.1'`,
            `port = ${port}`,
            `unix_socket_directories = ${q(sock)}`,
            `hba_file = ${q(path.join(etc, "pg_hba.conf"))}`,
            `wal_level = replica`,
            `archive_mode = always`,
            `archive_command = ${q(`${ep} wal archive "%p" "%f"`)}`,
            `restore_command = ${q(`${ep} wal restore "%f" "%p"`)}`,
            `max_connections = 20`,
            `shared_buffers = 16MB`,
            `fsync = off`,
            `log_statement = 'all'`, // prove the replicator password is not logged
            `include ${q(path.join(etc, "server.conf"))}`,
            ``,
        ].join("\n"),
    );
    fs.writeFileSync(path.join(etc, "server.conf"), `cluster_name = 'pg1'\nprimary_slot_name = 'pg1'\n`);
    fs.writeFileSync(
        path.join(etc, "pg_hba.conf"),
        ["local all all peer", "host all all 127.0.0.1/32 scram-sha-256", "host replication replicator 127.0.0.1/32 scram-sha-256", ""].join("\n"),
    );
    return {
        root,
        port,
        etc,
        env: {
            PATH: PLAIN_PATH,
            PGHA_SERVER: "pg1",
            PGHA_PEERS: "pg2, pg3",
            PGHA_DATA_DIR: path.join(root, "data"),
            PGHA_ARCHIVE_DIR: path.join(root, "archive"),
            PGHA_CONFIG_DIR: etc,
            PGHA_SECRETS_DIR: secrets,
            PGHA_RUNTIME_DIR: path.join(root, "run"),
            PGHA_SOCKET_DIR: sock,
        },
    };
}

/** A running entrypoint.sh (the container's PID 1). */
class Entrypoint {
    readonly proc: ChildProcess;
    output = "";
    exitCode: number | null = null;
    exitSignal: NodeJS.Signals | null = null;
    readonly exited: Promise<void>;

    constructor(script: string, env: Record<string, string>, args: string[] = []) {
        this.proc = spawn(script, args, { env, cwd: os.tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
        this.proc.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
        this.proc.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
        this.exited = new Promise((resolve) =>
            this.proc.on("exit", (code, signal) => {
                this.exitCode = code;
                this.exitSignal = signal;
                resolve();
            }),
        );
        running.add(this);
        void this.exited.then(() => running.delete(this));
    }

    get alive(): boolean {
        return this.exitCode === null && this.exitSignal === null;
    }

    async waitFor(re: RegExp, ms = 15_000): Promise<void> {
        await until(`${re} in the entrypoint's output`, () => re.test(this.output) || undefined, ms).catch((e) => {
            throw new Error(`${(e as Error).message}\n--- output ---\n${this.output}`);
        });
    }

    async stop(ms = 15_000): Promise<void> {
        if (!this.alive) return;
        this.proc.kill("SIGTERM");
        await Promise.race([this.exited, sleep(ms)]);
        if (this.alive) {
            this.proc.kill("SIGKILL");
            await this.exited;
        }
    }
}

const running = new Set<Entrypoint>();
const dataDirs = new Set<string>();

function startEntrypoint(box: Box, extra: Record<string, string> = {}): Entrypoint {
    dataDirs.add(path.join(extra.PGHA_DATA_DIR ?? box.env.PGHA_DATA_DIR, "pgdata"));
    return new Entrypoint(path.join(box.etc, "entrypoint.sh"), { ...box.env, ...extra });
}

/** Kill a postmaster we started (through an entrypoint) that outlived it. */
function killLeftoverPostmaster(pgdata: string): void {
    for (const dir of [pgdata, `${pgdata}.init`]) {
        let pid: number;
        try {
            pid = Number(fs.readFileSync(path.join(dir, "postmaster.pid"), "utf8").split("\n")[0]);
        } catch {
            continue;
        }
        try {
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
            if (cmdline.includes(dir)) process.kill(pid, "SIGQUIT");
        } catch {
            /* not running */
        }
    }
}

async function connect(box: Box, user: string, password: string, ms = 15_000): Promise<Client> {
    return until(
        `a connection as ${user}`,
        async () => {
            const c = new Client({ host: "127.0.0.1", port: box.port, user, password, database: "postgres" });
            c.on("error", () => {});
            try {
                await c.connect();
                return c;
            } catch (e) {
                await c.end().catch(() => {});
                throw e;
            }
        },
        ms,
    );
}

async function query<T = Record<string, unknown>>(box: Box, pw: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const c = await connect(box, "postgres", pw);
    try {
        return (await c.query(sql, params)).rows as T[];
    } finally {
        await c.end();
    }
}

function asPostgres(cmd: string, args: string[], env: Record<string, string> = {}) {
    return spawnSync("setpriv", [`--reuid=${pgUid}`, `--regid=${pgGid}`, "--init-groups", cmd, ...args], {
        encoding: "utf8",
        cwd: "/",
        timeout: 15_000,
        env: { PATH: PLAIN_PATH, ...env },
    });
}

function controlData(pgdata: string): string {
    const r = spawnSync(`${PG_BIN}/pg_controldata`, [pgdata], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
}

function health(box: Box, extra: Record<string, string> = {}) {
    return spawnSync(path.join(box.etc, "entrypoint.sh"), ["health"], { encoding: "utf8", env: { ...box.env, ...extra } });
}

const rand = crypto.randomBytes(6).toString("hex");
// Both contain what libpq's password file and SQL literals must escape.
const SUPER_PW = `Su:per\\pw'"$x ${rand}`;
const REPL_PW = `re:pl\\i'ca-${rand}`;

let tmpRoot = "";

beforeAll(() => {
    if (missing.length > 0) throw new Error(`the entrypoint tests need ${missing.join(", ")}: run them as root after scripts/test.sh installed PostgreSQL`);
    tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgha-entrypoint-"));
    fs.chmodSync(tmpRoot, 0o755);
});

afterAll(async () => {
    await Promise.all([...running].map((e) => e.stop(5_000)));
    for (const d of dataDirs) killLeftoverPostmaster(d);
    if (tmpRoot) {
        await sleep(100);
        fs.rmSync(tmpRoot, { recursive: true, force: true });
    }
});

describe("entrypoint.sh runs the server", () => {
    let box: Box;
    let pgdata: string;
    let prepared: string; // a cleanly stopped copy, for the bootstrap test
    let systemId = "";
    let primary: Entrypoint | undefined; // started by the first test, stopped by the SIGTERM test

    beforeAll(async () => {
        box = makeBox(path.join(tmpRoot, "primary"), await freePort(), SUPER_PW, REPL_PW);
        pgdata = path.join(box.env.PGHA_DATA_DIR, "pgdata");
        prepared = path.join(tmpRoot, "prepared-pgdata");
    });

    it("initializes the first primary when the marker exists", async () => {
        const marker = path.join(box.env.PGHA_DATA_DIR, "pgha-initialize");
        fs.mkdirSync(box.env.PGHA_DATA_DIR);
        fs.writeFileSync(marker, "");
        // leftover of an initialization that died half-way: redone
        fs.mkdirSync(path.join(box.env.PGHA_DATA_DIR, "pgdata.init", "global"), { recursive: true });
        const ep = startEntrypoint(box);
        primary = ep;

        const su = await connect(box, "postgres", SUPER_PW); // scram over TCP
        try {
            expect(ep.output).toMatch(/^pgha: pg1: PostgreSQL binaries in \/usr\/lib\/postgresql\/15\/bin/m);
            expect(ep.output).toMatch(/pgha: pg1: removing .*pgdata\.init left by an interrupted initialization/);
            expect(ep.output).toMatch(/pgha: pg1: initdb: .*Data page checksums are enabled/);
            expect(fs.existsSync(marker)).toBe(false);
            expect(fs.existsSync(path.join(box.env.PGHA_DATA_DIR, "pgdata.init"))).toBe(false);
            expect(fs.existsSync(path.join(pgdata, "PG_VERSION"))).toBe(true);
            expect(fs.statSync(pgdata).mode & 0o777).toBe(0o700);
            expect(fs.statSync(pgdata).uid).toBe(pgUid);
            for (const d of ["archive", "archive/wal", "archive/backups", "run", "sock"]) {
                expect(fs.statSync(path.join(box.root, d)).uid, d).toBe(pgUid);
            }
            expect((await su.query("SHOW data_checksums")).rows[0].data_checksums).toBe("on");
            const roles = await su.query(
                "SELECT rolname, rolreplication, rolcanlogin, rolpassword FROM pg_authid WHERE rolname IN ('postgres', 'replicator') ORDER BY 1",
            );
            expect(roles.rows.map((r) => [r.rolname, r.rolreplication, r.rolcanlogin])).toEqual([
                ["postgres", true, true],
                ["replicator", true, true],
            ]);
            for (const r of roles.rows) expect(r.rolpassword).toMatch(/^SCRAM-SHA-256\$/);

            // the replicator logs in with its password (scram over TCP)
            const rep = await connect(box, "replicator", REPL_PW);
            expect((await rep.query("SELECT current_user AS u")).rows[0].u).toBe("replicator");
            await rep.end();

            // slots for PGHA_PEERS ("pg2, pg3"), created in the background
            await until("the peers' slots", async () => {
                const r = await su.query("SELECT slot_name, slot_type FROM pg_replication_slots ORDER BY 1");
                return r.rows.length === 2 ? r.rows : undefined;
            }).then((rows) =>
                expect(rows).toEqual([
                    { slot_name: "pg2", slot_type: "physical" },
                    { slot_name: "pg3", slot_type: "physical" },
                ]),
            );
            await ep.waitFor(/pgha: pg1: created replication slot pg3/);

            // archive_command goes through the entrypoint into archive/wal
            const seg = (await su.query("SELECT pg_walfile_name(pg_current_wal_lsn()) AS f")).rows[0].f as string;
            await su.query("SELECT pg_switch_wal()");
            const archived = path.join(box.env.PGHA_ARCHIVE_DIR, "wal", seg);
            await until(`${seg} archived`, () => fs.existsSync(archived) || undefined);
            expect(fs.readdirSync(path.join(box.env.PGHA_ARCHIVE_DIR, "wal")).filter((f) => f.startsWith("."))).toEqual([]);

            // passwords: not on a command line, not in postgres's environment
            const pid = Number(fs.readFileSync(path.join(pgdata, "postmaster.pid"), "utf8").split("\n")[0]);
            for (const f of ["cmdline", "environ"]) {
                const s = fs.readFileSync(`/proc/${pid}/${f}`, "latin1");
                expect(s).not.toContain(SUPER_PW);
                expect(s).not.toContain(REPL_PW);
            }
            const epEnv = fs.readFileSync(`/proc/${ep.proc.pid}/environ`, "latin1");
            expect(epEnv).not.toContain(REPL_PW);

            await su.query("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restarts')");
            const sid = await su.query("SELECT system_identifier::text AS s FROM pg_control_system()");
            systemId = sid.rows[0].s;
        } finally {
            await su.end();
        }

        // health: accepts connections on the local socket
        const h = health(box);
        expect(h.status, h.stderr).toBe(0);

        // nothing left that held the superuser password in clear (beside the libpq password file,
        // the entrypoint's state and the pid of automatic failover's agent, idle here: no failover.conf)
        expect(fs.readdirSync(box.env.PGHA_RUNTIME_DIR).sort()).toEqual(["agent.pid", "pgpass", "state"]);
        // never a password in the entrypoint's output nor in the server log
        // (log_statement = 'all' in this config), nor failed logins there
        // (the health check logs in as postgres by peer authentication)
        for (const pw of [SUPER_PW, REPL_PW, "Su\\:per", "re\\:pl", "i''ca"]) expect(ep.output).not.toContain(pw);
        expect(ep.output).not.toMatch(/FATAL: .*(authentication failed|does not exist|no pg_hba)/);
        expect(ep.output).not.toMatch(/ERROR/);
        expect(ep.output).toMatch(/pgha: pg1: created role replicator/);
        expect(ep.alive).toBe(true);
    }, 40_000);

    it("writes pgpass with : and \\ escaped, usable by libpq", () => {
        const pgpass = path.join(box.env.PGHA_RUNTIME_DIR, "pgpass");
        const st = fs.statSync(pgpass);
        expect(st.mode & 0o777).toBe(0o600);
        expect(st.uid).toBe(pgUid);
        const esc = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);
        expect(fs.readFileSync(pgpass, "utf8")).toBe(`*:*:*:replicator:${esc(REPL_PW)}\n*:*:*:postgres:${esc(SUPER_PW)}\n`);
        // a replication connection as primary_conninfo makes it (passfile=...)
        const r = spawnSync(
            `${PG_BIN}/psql`,
            [`host=127.0.0.1 port=${box.port} user=replicator dbname=replication replication=true passfile=${pgpass}`, "-XAtc", "IDENTIFY_SYSTEM"],
            { encoding: "utf8", env: { PATH: PLAIN_PATH } },
        );
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.split("|")[0]).toBe(systemId);
        const s = spawnSync(`${PG_BIN}/psql`, [`host=127.0.0.1 port=${box.port} user=postgres dbname=postgres passfile=${pgpass}`, "-XAtc", "SELECT 1"], {
            encoding: "utf8",
            env: { PATH: PLAIN_PATH },
        });
        expect(s.status, s.stderr).toBe(0);
    });

    it("SIGTERM is a fast shutdown; the entrypoint exits 0 once PostgreSQL has stopped", async () => {
        const ep = primary!;
        expect(ep.alive).toBe(true);
        ep.proc.kill("SIGTERM");
        await Promise.race([ep.exited, sleep(10_000)]);
        expect(ep.alive).toBe(false);
        expect(ep.exitCode).toBe(0);
        expect(ep.output).toMatch(/pgha: pg1: received SIGTERM: fast shutdown/);
        expect(ep.output).toMatch(/LOG: {2}received fast shutdown request/);
        expect(controlData(pgdata)).toMatch(/Database cluster state:\s+shut down\n/);
        expect(health(box).status).not.toBe(0);
        fs.cpSync(pgdata, prepared, { recursive: true }); // root-owned copy
    }, 20_000);

    it("restarts on an existing data directory without initdb, keeping the data (runuser)", async () => {
        // a marker left by a container that died between the rename of
        // pgdata.init and the removal of the marker: removed, no initdb
        const marker = path.join(box.env.PGHA_DATA_DIR, "pgha-initialize");
        fs.writeFileSync(marker, "");
        const ep = startEntrypoint(box, { PGHA_SETUID_TOOL: "runuser" });
        const rows = await query(box, SUPER_PW, "SELECT v, (SELECT system_identifier::text FROM pg_control_system()) AS s FROM kept");
        expect(rows).toEqual([{ v: "survives restarts", s: systemId }]);
        expect(ep.output).toMatch(/via runuser/);
        expect(ep.output).not.toMatch(/initdb|initializing/);
        expect(ep.output).toMatch(/already holds a cluster: removing stale .*pgha-initialize/);
        expect(fs.existsSync(marker)).toBe(false);
        await sleep(300); // let the slot job run: nothing to create
        expect(ep.output).not.toMatch(/created replication slot|could not ensure/);
        // with runuser between them, the signal still reaches the postmaster as SIGINT
        ep.proc.kill("SIGTERM");
        await Promise.race([ep.exited, sleep(10_000)]);
        expect(ep.exitCode).toBe(0);
        expect(ep.output).toMatch(/received fast shutdown request/);
        expect(controlData(pgdata)).toMatch(/Database cluster state:\s+shut down\n/);
    }, 30_000);

    it("starts no second server on a data volume one already runs on: it waits until the first has stopped", async () => {
        // the swarm's replacement task of a node that was down and came back, beside the old one
        const first = startEntrypoint(box);
        await query(box, SUPER_PW, "SELECT 1");
        const second = startEntrypoint(box, { PGHA_RUNTIME_DIR: path.join(box.root, "run-second") });
        await second.waitFor(/another container of pg1 still runs on this data volume .*waiting until it has stopped/);
        await sleep(1500);
        expect(second.output).not.toMatch(/starting PostgreSQL/);
        expect(second.alive).toBe(true);
        await first.stop();
        expect(first.exitCode).toBe(0);
        await second.waitFor(/the other container has stopped: starting/);
        await second.waitFor(/starting PostgreSQL on/);
        expect((await query(box, SUPER_PW, "SELECT v FROM kept"))[0]).toEqual({ v: "survives restarts" });
        await second.stop();
        expect(second.exitCode).toBe(0);
        expect(controlData(pgdata)).toMatch(/Database cluster state:\s+shut down\n/);
    }, 40_000);

    it("holds a stopped PostgreSQL while the hold file exists, then starts it again", async () => {
        const hold = path.join(box.env.PGHA_RUNTIME_DIR, "hold");
        const ep = startEntrypoint(box);
        await query(box, SUPER_PW, "SELECT 1");
        fs.writeFileSync(hold, "");
        const stop = asPostgres(`${PG_BIN}/pg_ctl`, ["stop", "-m", "fast", "-D", pgdata]);
        expect(stop.status, stop.stderr).toBe(0);
        await ep.waitFor(/pgha: pg1: PostgreSQL stopped \(exit status 0\); .*hold exists/);
        await sleep(400);
        expect(ep.alive).toBe(true);
        expect(controlData(pgdata)).toMatch(/Database cluster state:\s+shut down\n/);
        // held on purpose by an operation: healthy, so that swarm does not replace the task
        expect(health(box).status).toBe(0);
        fs.rmSync(hold);
        await ep.waitFor(/hold removed: starting PostgreSQL again/, 2_000);
        expect(await query(box, SUPER_PW, "SELECT v FROM kept")).toEqual([{ v: "survives restarts" }]);
        expect(health(box).status).toBe(0);

        // SIGHUP is passed on: reload
        ep.proc.kill("SIGHUP");
        await ep.waitFor(/received SIGHUP, reloading configuration files/, 5_000);
        expect(ep.alive).toBe(true);

        // without a hold file, PostgreSQL stopping ends the entrypoint with its status
        const stop2 = asPostgres(`${PG_BIN}/pg_ctl`, ["stop", "-m", "fast", "-D", pgdata]);
        expect(stop2.status, stop2.stderr).toBe(0);
        await Promise.race([ep.exited, sleep(10_000)]);
        expect(ep.exitCode).toBe(0);
        expect(ep.output).toMatch(/PostgreSQL exited with status 0; exiting/);
    }, 30_000);

    it("does not start an empty standby; starts once bootstrap renames pgdata.partial to pgdata", async () => {
        const dataDir = path.join(box.root, "standby-data");
        const ep = startEntrypoint(box, { PGHA_DATA_DIR: dataDir, PGHA_ARCHIVE_DIR: path.join(box.root, "standby-archive") });
        await ep.waitFor(
            new RegExp(`pgha: pg1: data directory ${dataDir}/pgdata is empty; waiting for the bootstrap operation \\(pg_basebackup\\) to fill it`),
        );
        await sleep(1_500);
        expect(ep.alive).toBe(true);
        expect(ep.output.match(/is empty; waiting/g)).toHaveLength(1); // then every 30 s only
        expect(fs.existsSync(path.join(dataDir, "pgdata"))).toBe(false);
        expect(ep.output).not.toMatch(/starting PostgreSQL|initdb/);
        await expect(connect(box, "postgres", SUPER_PW, 200)).rejects.toThrow();
        // waiting for its copy on purpose: healthy, so that swarm does not replace the task
        expect(health(box, { PGHA_DATA_DIR: dataDir }).status).toBe(0);

        // the bootstrap operation: copy into pgdata.partial (as root here), rename
        const partial = path.join(dataDir, "pgdata.partial");
        fs.cpSync(prepared, partial, { recursive: true });
        fs.renameSync(partial, path.join(dataDir, "pgdata"));
        expect(await query(box, SUPER_PW, "SELECT v FROM kept")).toEqual([{ v: "survives restarts" }]);
        const st = fs.statSync(path.join(dataDir, "pgdata", "global", "pg_control"));
        expect(st.uid).toBe(pgUid); // ownership fixed before the start
        await ep.stop();
        expect(ep.exitCode).toBe(0);
    }, 30_000);

    it("runs PostgreSQL as the current user when not started as root", async () => {
        const dataDir = path.join(box.root, "standby-data"); // owned by postgres now
        const secrets = path.join(box.root, "postgres-secrets");
        fs.cpSync(box.env.PGHA_SECRETS_DIR, secrets, { recursive: true });
        for (const f of [secrets, ...fs.readdirSync(secrets).map((f) => path.join(secrets, f))]) fs.chownSync(f, pgUid!, pgGid!);
        const env = { ...box.env, PGHA_DATA_DIR: dataDir, PGHA_ARCHIVE_DIR: path.join(box.root, "standby-archive"), PGHA_SECRETS_DIR: secrets };
        dataDirs.add(path.join(dataDir, "pgdata"));
        const ep = new Entrypoint("setpriv", env, [`--reuid=${pgUid}`, `--regid=${pgGid}`, "--init-groups", path.join(box.etc, "entrypoint.sh")]);
        expect(await query(box, SUPER_PW, "SELECT v FROM kept")).toEqual([{ v: "survives restarts" }]);
        expect(ep.output).toMatch(/^pgha: pg1: PostgreSQL binaries in \/usr\/lib\/postgresql\/15\/bin; running as postgres$/m);
        const pgpass = fs.readFileSync(path.join(box.env.PGHA_RUNTIME_DIR, "pgpass"), "utf8");
        expect(pgpass.split("\n").map((l) => l.split(":").slice(0, 4).join(":"))).toEqual(["*:*:*:replicator", "*:*:*:postgres", ""]);
        ep.proc.kill("SIGTERM");
        await Promise.race([ep.exited, sleep(10_000)]);
        expect(ep.exitCode).toBe(0);
        expect(controlData(path.join(dataDir, "pgdata"))).toMatch(/Database cluster state:\s+shut down\n/);
    }, 30_000);

    it("SIGTERM while waiting for a data directory exits 0 at once", async () => {
        const ep = startEntrypoint(box, { PGHA_DATA_DIR: path.join(box.root, "empty-data") });
        await ep.waitFor(/is empty; waiting/);
        const t0 = Date.now();
        ep.proc.kill("SIGTERM");
        await Promise.race([ep.exited, sleep(5_000)]);
        expect(ep.exitCode).toBe(0);
        expect(Date.now() - t0).toBeLessThan(900);
    }, 15_000);

    it("starts a fenced server (PGHA_FENCED=1: declared lost) read-only, and never promotes it", async () => {
        // a former primary's data directory: no standby.signal
        const dataDir = path.join(box.root, "fenced-data");
        fs.mkdirSync(dataDir);
        fs.cpSync(prepared, path.join(dataDir, "pgdata"), { recursive: true });
        const signal = path.join(dataDir, "pgdata", "standby.signal");
        expect(fs.existsSync(signal)).toBe(false);
        const fenced = { PGHA_DATA_DIR: dataDir, PGHA_ARCHIVE_DIR: path.join(box.root, "fenced-archive"), PGHA_FENCED: "1" };
        const ep = startEntrypoint(box, fenced);
        await ep.waitFor(/FENCED: wrote .*standby\.signal: this server is declared lost/);
        expect(ep.output).toMatch(/FENCED: starting read-only as a standby.*remove it from pgha:lost and run pulumi up/);
        // standby.signal went in before PostgreSQL started
        expect(ep.output.indexOf("FENCED: wrote")).toBeLessThan(ep.output.indexOf("starting PostgreSQL"));
        expect(await query(box, SUPER_PW, "SELECT pg_is_in_recovery() AS r, current_setting('data_directory') AS d")).toEqual([
            { r: true, d: path.join(dataDir, "pgdata") },
        ]);
        for (const args of [
            ["failover", "promote", "5"],
            ["switchover", "promote", "5"],
            ["switchover", "undemote"],
        ]) {
            const r = spawnSync(path.join(box.etc, "entrypoint.sh"), args, { encoding: "utf8", env: { ...box.env, ...fenced } });
            expect(r.status, args.join(" ")).not.toBe(0);
            expect(r.stderr).toMatch(/is fenced \(declared lost in pgha:lost\)/);
        }
        expect(fs.existsSync(signal)).toBe(true);
        expect(await query(box, SUPER_PW, "SELECT pg_is_in_recovery() AS r")).toEqual([{ r: true }]);
        await ep.stop();
        expect(ep.exitCode).toBe(0);

        // unfenced (its rejoin ran): still a standby, and `failover promote` promotes it at once
        const unfenced = { ...fenced, PGHA_FENCED: "" };
        const ep2 = startEntrypoint(box, unfenced);
        expect(await query(box, SUPER_PW, "SELECT pg_is_in_recovery() AS r")).toEqual([{ r: true }]);
        expect(ep2.output).not.toMatch(/FENCED/);
        const p = spawnSync(path.join(box.etc, "entrypoint.sh"), ["failover", "promote", "10"], { encoding: "utf8", env: { ...box.env, ...unfenced } });
        expect(p.status, p.stderr).toBe(0);
        expect(p.stdout.trim()).toBe("t");
        expect(await query(box, SUPER_PW, "SELECT pg_is_in_recovery() AS r")).toEqual([{ r: false }]);
        expect(fs.existsSync(signal)).toBe(false);
        const again = spawnSync(path.join(box.etc, "entrypoint.sh"), ["failover", "promote", "10"], { encoding: "utf8", env: { ...box.env, ...unfenced } });
        expect(again.status).not.toBe(0);
        expect(again.stderr).toMatch(/is not a standby/);
        await ep2.stop();
        expect(ep2.exitCode).toBe(0);
    }, 40_000);
});

describe("entrypoint.sh wal archive / wal restore", () => {
    let dir: string;
    let pgdata: string;
    let env: Record<string, string>;
    const seg = "000000010000000000000003";
    const ep = () => path.join(dir, "entrypoint.sh");
    const run = (args: string[], cwd: string) => spawnSync(ep(), args, { encoding: "utf8", cwd, env });

    beforeAll(() => {
        dir = path.join(tmpRoot, "archive-test");
        pgdata = path.join(dir, "pgdata");
        fs.mkdirSync(path.join(pgdata, "pg_wal"), { recursive: true });
        fs.mkdirSync(path.join(dir, "archive", "wal"), { recursive: true });
        installServerFiles(dir);
        fs.writeFileSync(path.join(pgdata, "pg_wal", seg), crypto.randomBytes(64 * 1024));
        env = { PATH: PLAIN_PATH, PGHA_SERVER: "pg9", PGHA_ARCHIVE_DIR: path.join(dir, "archive") };
    });

    it("copies a WAL file (path relative to PGDATA) into archive/wal", () => {
        const r = run(["wal", "archive", `pg_wal/${seg}`, seg], pgdata);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toBe("");
        expect(fs.readFileSync(path.join(dir, "archive", "wal", seg))).toEqual(fs.readFileSync(path.join(pgdata, "pg_wal", seg)));
        expect(fs.readdirSync(path.join(dir, "archive", "wal"))).toEqual([seg]); // no temp file left
    });

    it("succeeds without copying when the archived file is identical", () => {
        const dest = path.join(dir, "archive", "wal", seg);
        const before = fs.statSync(dest);
        const r = run(["wal", "archive", `pg_wal/${seg}`, seg], pgdata);
        expect(r.status, r.stderr).toBe(0);
        expect(fs.statSync(dest).ino).toBe(before.ino);
    });

    it("refuses loudly to overwrite a different archived file", () => {
        const dest = path.join(dir, "archive", "wal", seg);
        const archived = fs.readFileSync(dest);
        fs.writeFileSync(path.join(pgdata, "pg_wal", seg), crypto.randomBytes(64 * 1024));
        const r = run(["wal", "archive", `pg_wal/${seg}`, seg], pgdata);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/^pgha: pg9: ARCHIVE CONFLICT: refusing to overwrite/m);
        expect(r.stderr).toContain(dest);
        expect(r.stderr).toContain(path.join(pgdata, "pg_wal", seg));
        expect(fs.readFileSync(dest)).toEqual(archived);
        expect(fs.readdirSync(path.join(dir, "archive", "wal"))).toEqual([seg]);
    });

    it("fails when the file to archive does not exist", () => {
        const r = run(["wal", "archive", "pg_wal/000000010000000000000009", "000000010000000000000009"], pgdata);
        expect(r.status).not.toBe(0);
        expect(fs.readdirSync(path.join(dir, "archive", "wal"))).toEqual([seg]);
    });

    it("restores an archived file and fails silently for a missing one", () => {
        const target = path.join(pgdata, "pg_wal", "RECOVERYXLOG");
        const r = run(["wal", "restore", seg, "pg_wal/RECOVERYXLOG"], pgdata);
        expect(r.status, r.stderr).toBe(0);
        expect(fs.readFileSync(target)).toEqual(fs.readFileSync(path.join(dir, "archive", "wal", seg)));
        const m = run(["wal", "restore", "00000002.history", "pg_wal/RECOVERYHISTORY"], pgdata);
        expect(m.status).toBe(1);
        expect(m.stderr).toBe("");
        expect(fs.existsSync(path.join(pgdata, "pg_wal", "RECOVERYHISTORY"))).toBe(false);
    });
});

describe("entrypoint.sh backups: listing, retention, WAL for a restore", () => {
    let dir: string;
    let env: Record<string, string>;
    const ep = () => path.join(dir, "entrypoint.sh");
    const run = (args: string[], cwd = dir) => spawnSync(ep(), args, { encoding: "utf8", cwd, env });
    const wal = () => fs.readdirSync(path.join(dir, "archive", "wal")).sort();
    const backupJson = (label: string, stopTime: string, startWal: string) =>
        `{"label":"${label}","server":"pg9","backupFrom":"standby","timeline":2,"startLsn":"0/5000028","stopLsn":"0/5000100","stopTimeline":2,"startWal":"${startWal}","startTime":"${stopTime}","stopTime":"${stopTime}","bytes":1}`;

    beforeAll(() => {
        dir = path.join(tmpRoot, "backups-test");
        for (const d of [
            "archive/wal",
            "archive/backups/b1",
            "archive/backups/b2",
            "archive/backups/.b3.partial",
            "data/pgha-restore-wal",
            "data/pgdata/pg_wal",
        ]) {
            fs.mkdirSync(path.join(dir, d), { recursive: true });
        }
        installServerFiles(dir);
        fs.writeFileSync(path.join(dir, "archive/backups/b1/backup.json"), backupJson("b1", "2025-01-01T00:00:00.000Z", "000000010000000000000003") + "\n");
        fs.writeFileSync(path.join(dir, "archive/backups/b2/backup.json"), backupJson("b2", "2025-01-02T00:00:00.000Z", "000000020000000000000005") + "\n");
        for (const f of [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000004.partial",
            "00000002.history",
            "000000020000000000000005",
            "000000020000000000000006",
            "000000020000000000000004.00000028.backup",
            "00000003.history",
        ]) {
            fs.writeFileSync(path.join(dir, "archive/wal", f), f);
        }
        spawnSync("chown", ["-R", `${pgUid}:${pgGid}`, path.join(dir, "archive")]);
        env = { PATH: PLAIN_PATH, PGHA_SERVER: "pg9", PGHA_ARCHIVE_DIR: path.join(dir, "archive"), PGHA_DATA_DIR: path.join(dir, "data") };
    });

    it("lists complete backups (stop time, label, first WAL file, backup.json), not partial ones", () => {
        const r = run(["backup", "list"]);
        expect(r.status, r.stderr).toBe(0);
        const lines = r.stdout.trim().split("\n").sort();
        expect(lines).toEqual([
            ["2025-01-01T00:00:00.000Z", "b1", "000000010000000000000003", backupJson("b1", "2025-01-01T00:00:00.000Z", "000000010000000000000003")].join("\t"),
            ["2025-01-02T00:00:00.000Z", "b2", "000000020000000000000005", backupJson("b2", "2025-01-02T00:00:00.000Z", "000000020000000000000005")].join("\t"),
        ]);
    });

    it("refuses to prune with a WAL file name or label that is none", () => {
        expect(run(["backup", "prune", "../x"]).status).not.toBe(0);
        expect(run(["backup", "prune", "-", "../b1"]).status).not.toBe(0);
        expect(fs.existsSync(path.join(dir, "archive/backups/b1/backup.json"))).toBe(true);
    });

    it("prunes the named backups, and the WAL before the oldest kept backup of every timeline, keeping history files", () => {
        const r = run(["backup", "prune", "000000020000000000000005", "b1"]);
        expect(r.status, r.stderr).toBe(0);
        expect(fs.readdirSync(path.join(dir, "archive/backups")).sort()).toEqual([".b3.partial", "b2"]);
        expect(wal()).toEqual([
            "00000002.history",
            "000000020000000000000004.00000028.backup",
            "000000020000000000000005",
            "000000020000000000000006",
            "00000003.history",
        ]);
        expect(run(["backup", "prune", "-"]).status).toBe(0);
        expect(wal()).toHaveLength(5);
    });

    it("restores WAL from the archive first, then from the restore's staging directory in the data volume", () => {
        fs.writeFileSync(path.join(dir, "data/pgha-restore-wal/000000020000000000000006"), "partial copy");
        fs.writeFileSync(path.join(dir, "data/pgha-restore-wal/000000020000000000000007"), "from the other archive");
        const pgdata = path.join(dir, "data/pgdata");
        expect(run(["wal", "restore", "000000020000000000000006", "pg_wal/RECOVERYXLOG"], pgdata).status).toBe(0);
        expect(fs.readFileSync(path.join(pgdata, "pg_wal/RECOVERYXLOG"), "utf8")).toBe("000000020000000000000006");
        expect(run(["wal", "restore", "000000020000000000000007", "pg_wal/RECOVERYXLOG"], pgdata).status).toBe(0);
        expect(fs.readFileSync(path.join(pgdata, "pg_wal/RECOVERYXLOG"), "utf8")).toBe("from the other archive");
        const missing = run(["wal", "restore", "000000020000000000000008", "pg_wal/RECOVERYXLOG"], pgdata);
        expect([missing.status, missing.stderr]).toEqual([1, ""]);
    });

    it("refuses a label that is no directory name", () => {
        const r = run(["backup", "take", "../escape"]);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/not a backup label/);
    });
});

describe("entrypoint.sh finds PostgreSQL's binaries", () => {
    let dir: string;
    beforeAll(() => {
        dir = path.join(tmpRoot, "bin-test");
        fs.mkdirSync(dir, { recursive: true });
        installServerFiles(dir);
    });
    const run = (args: string[], env: Record<string, string>) =>
        spawnSync(path.join(dir, "entrypoint.sh"), args, {
            encoding: "utf8",
            env: { PGHA_SERVER: "pg1", PGHA_CONFIG_DIR: path.join(dir, "no-config"), PGHA_DATA_DIR: path.join(dir, "data"), ...env },
        });

    it("fails with a clear message when there are none", () => {
        const r = run([], { PATH: PLAIN_PATH, PGHA_PG_BIN_SEARCH: `${dir}/nothing/*/bin /nonexistent/pgsql/bin` });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/^pgha: pg1: error: cannot find the PostgreSQL server binaries: no 'postgres' on PATH .* and none in PGHA_PG_BIN_SEARCH/m);
        expect(fs.existsSync(path.join(dir, "data"))).toBe(false);
    });

    it("picks the newest major version among the search globs", () => {
        for (const v of ["9.6.24", "16.4", "15.18 (Debian 15.18-0+deb12u1)"]) {
            const bin = path.join(dir, "fake", v.split(" ")[0], "bin");
            fs.mkdirSync(bin, { recursive: true });
            fs.writeFileSync(path.join(bin, "postgres"), `#!/bin/sh\necho "postgres (PostgreSQL) ${v}"\n`, { mode: 0o755 });
            fs.writeFileSync(path.join(bin, "pg_isready"), `#!/bin/sh\necho "pg_isready=$0"\n`, { mode: 0o755 });
        }
        // `health` runs pg_isready from the directory it found
        const r = run(["health"], { PATH: PLAIN_PATH, PGHA_PG_BIN_SEARCH: `/nonexistent/*/bin ${dir}/fake/*/bin /usr/lib/postgresql/*/bin` });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.trim()).toBe(`pg_isready=${dir}/fake/16.4/bin/pg_isready`);
    });

    it("follows a postgres symlink on PATH to the directory of the real binaries", () => {
        const link = path.join(dir, "linkbin");
        fs.mkdirSync(link, { recursive: true });
        fs.symlinkSync(`${PG_BIN}/postgres`, path.join(link, "postgres"));
        const r = run([], { PATH: `${link}:${PLAIN_PATH}` });
        expect(r.status).toBe(1); // no config in this test
        expect(r.stderr).toMatch(/^pgha: pg1: PostgreSQL binaries in \/usr\/lib\/postgresql\/15\/bin;/m);
        expect(r.stderr).toMatch(/^pgha: pg1: error: cannot read .*no-config\/postgresql\.conf$/m);
    });
});
