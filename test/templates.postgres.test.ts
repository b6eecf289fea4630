// The rendered files, fed to a real PostgreSQL server (this machine's binaries): no parameter or
// hba line may be rejected. Rendered with temporary paths in place of the container's.

import { ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateConfig } from "../components/config";
import { PATHS, Paths, renderPgHba, renderPostgresqlConf, renderServerConf } from "../components/templates";
import { freePort, pgBinDir, postgresTempDir, runAsPostgres, startPostgres, stopPostgres } from "./helpers/postgres";

const cfg = validateConfig({
    servers: [
        { name: "pg1", node: "a" },
        { name: "pg2", node: "b" },
    ],
    primary: "pg1",
    postgresql: { shared_buffers: "64MB", hot_standby_feedback: true, "pg_stat_statements.track": "all", log_min_duration_statement: 250 },
    replication: { maxSlotWalKeepSize: "1GB", synchronous: true },
    clients: { cidrs: ["192.168.10.0/24"] },
});

describe("rendered files accepted by PostgreSQL", () => {
    let dir: string;
    let port: number;
    let server: ChildProcess | undefined;
    const psql = (sql: string) =>
        runAsPostgres([path.join(pgBinDir(), "psql"), "-X", "-At", "-h", path.join(dir, "sock"), "-p", String(port), "-d", "postgres", "-c", sql]).trim();

    beforeAll(async () => {
        dir = postgresTempDir("pgha-templates-");
        port = await freePort();
        const paths: Paths = {
            ...PATHS,
            postgresqlConf: path.join(dir, "postgresql.conf"),
            serverConf: path.join(dir, "server.conf"),
            hbaConf: path.join(dir, "pg_hba.conf"),
            socketDir: path.join(dir, "sock"),
            pgpass: path.join(dir, "pgpass"),
            entrypoint: "/bin/true",
        };
        runAsPostgres(["mkdir", paths.socketDir]);
        runAsPostgres([path.join(pgBinDir(), "initdb"), "-D", path.join(dir, "data"), "-U", "postgres", "--auth-local=peer"]);
        for (const [file, text] of [
            [paths.postgresqlConf, renderPostgresqlConf(cfg, paths)],
            [paths.serverConf, renderServerConf(cfg, cfg.servers[0], paths)],
            [paths.hbaConf, renderPgHba(cfg)],
        ])
            fs.writeFileSync(file, text);
        server = await startPostgres(
            ["-D", path.join(dir, "data"), "-c", `config_file=${paths.postgresqlConf}`, "-c", `port=${port}`, "-c", "listen_addresses=127.0.0.1"],
            paths.socketDir,
            port,
            path.join(dir, "server.log"),
        );
    });

    afterAll(async () => {
        await stopPostgres(server);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("reports no error in pg_file_settings", () => {
        expect(psql("SELECT count(*) FROM pg_file_settings")).not.toBe("0");
        // port and listen_addresses are overridden on the command line (a free loopback port for
        // the test), which PostgreSQL reports as "could not be applied": that, and nothing else.
        const overridden = "('port', 'listen_addresses')";
        expect(
            psql(`SELECT coalesce(string_agg(name || ': ' || error, '; '), '') FROM pg_file_settings WHERE error IS NOT NULL AND name NOT IN ${overridden}`),
        ).toBe("");
        expect(psql(`SELECT string_agg(DISTINCT error, '; ') FROM pg_file_settings WHERE name IN ${overridden}`)).toBe("setting could not be applied");
    });

    it("read the per-server include", () => {
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'primary_slot_name'")).toBe("pg1");
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'cluster_name'")).toBe("pg1");
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")).toMatch(/^host=pg2 /);
    });

    it("applied the replication and archiving settings", () => {
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'archive_mode'")).toBe("always");
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'wal_log_hints'")).toBe("on");
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'")).toBe("ANY 1 (pg1, pg2)");
        expect(psql("SELECT setting FROM pg_settings WHERE name = 'hot_standby_feedback'")).toBe("on");
    });

    it("reports no error in pg_hba_file_rules, and has the overlay rules", () => {
        expect(psql("SELECT coalesce(string_agg(line_number || ': ' || error, '; '), '') FROM pg_hba_file_rules WHERE error IS NOT NULL")).toBe("");
        const rules = psql(
            "SELECT type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',') || ' ' || coalesce(address, '') || ' ' || auth_method FROM pg_hba_file_rules ORDER BY line_number",
        );
        expect(rules).toContain("host replication replicator 10.0.200.0 scram-sha-256");
        expect(rules).not.toMatch(/ trust$/m);
    });
});
