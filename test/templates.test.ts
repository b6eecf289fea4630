// The rendered configuration text: deterministic, symmetric, and saying what pgha promises.

import { describe, expect, it } from "vitest";
import { PghaConfig, validateConfig } from "../components/config";
import { connectionStrings, primaryConninfo, renderPgHba, renderPostgresqlConf, renderServerConf } from "../components/templates";

const cfg: PghaConfig = validateConfig({
    servers: [
        { name: "pg1", node: "a" },
        { name: "pg2", node: "b" },
        { name: "pg3", node: "c" },
    ],
    primary: "pg1",
    postgresql: { shared_buffers: "256MB", max_connections: 150, hot_standby_feedback: true, application_name: "it's" },
    replication: { maxSlotWalKeepSize: "4GB", synchronous: true },
    archive: { timeout: "30s" },
    clients: { cidrs: ["192.168.10.0/24"] },
});

/** Parameter name -> value text, from rendered postgresql.conf lines. */
function settings(text: string): Map<string, string> {
    const m = new Map<string, string>();
    for (const l of text.split("\n")) {
        const r = /^([a-z_.]+) = (.*)$/.exec(l);
        if (r) {
            expect(m.has(r[1]), `${r[1]} set twice`).toBe(false);
            m.set(r[1], r[2]);
        }
    }
    return m;
}

describe("postgresql.conf", () => {
    const text = renderPostgresqlConf(cfg);
    const s = settings(text);

    it("is deterministic", () => {
        expect(renderPostgresqlConf(cfg)).toBe(text);
        const reordered = validateConfig({ ...cfg, postgresql: { max_connections: 150, hot_standby_feedback: true, application_name: "it's", shared_buffers: "256MB" } });
        expect(renderPostgresqlConf(reordered)).toBe(text);
    });

    it("does not depend on which server is primary", () => {
        expect(renderPostgresqlConf({ ...cfg, primary: "pg2" })).toBe(text);
        expect(renderPgHba({ ...cfg, primary: "pg2" })).toBe(renderPgHba(cfg));
        for (const server of cfg.servers) expect(renderServerConf({ ...cfg, primary: "pg3" }, server)).toBe(renderServerConf(cfg, server));
    });

    it("sets up streaming replication with slots on every server", () => {
        expect(s.get("listen_addresses")).toBe("'*'");
        expect(s.get("wal_level")).toBe("'replica'");
        expect(s.get("hot_standby")).toBe("on");
        expect(s.get("wal_log_hints")).toBe("on");
        expect(Number(s.get("max_wal_senders"))).toBeGreaterThanOrEqual(5);
        expect(Number(s.get("max_replication_slots"))).toBeGreaterThanOrEqual(4);
        expect(s.get("max_slot_wal_keep_size")).toBe("'4GB'");
        expect(s.get("recovery_target_timeline")).toBe("'latest'");
        expect(s.get("synchronous_standby_names")).toBe("'ANY 1 (pg1, pg2, pg3)'");
        expect(s.get("tcp_keepalives_idle")).toBe("10");
    });

    it("archives the full WAL stream on every server, never overwriting", () => {
        expect(s.get("archive_mode")).toBe("'always'");
        expect(s.get("archive_command")).toBe(`'/etc/pgha/entrypoint.sh archive "%p" "%f"'`);
        expect(s.get("restore_command")).toBe(`'/etc/pgha/entrypoint.sh restore "%f" "%p"'`);
        expect(s.get("archive_timeout")).toBe("'30s'");
    });

    it("adds the user's parameters, quoted, and includes the per-server file last", () => {
        expect(s.get("shared_buffers")).toBe("'256MB'");
        expect(s.get("max_connections")).toBe("150");
        expect(s.get("hot_standby_feedback")).toBe("on");
        expect(s.get("application_name")).toBe("'it''s'");
        expect(text.trimEnd().split("\n").pop()).toBe("include '/etc/pgha/server.conf'");
    });

    it("lets the user replace a tunable default without setting it twice", () => {
        const t = renderPostgresqlConf(validateConfig({ ...cfg, postgresql: { wal_level: "logical", wal_retrieve_retry_interval: "2s" } }));
        expect(settings(t).get("wal_level")).toBe("'logical'");
        expect(settings(t).get("wal_retrieve_retry_interval")).toBe("'2s'");
    });

    it("turns synchronous replication off by default", () => {
        const t = renderPostgresqlConf(validateConfig({ servers: cfg.servers, primary: "pg1" }));
        expect(settings(t).get("synchronous_standby_names")).toBe("''");
    });
});

describe("server.conf", () => {
    it("names the peers, not the server itself, and reads the password from a file", () => {
        const t = renderServerConf(cfg, cfg.servers[1]);
        expect(t).toContain("cluster_name = 'pg2'");
        expect(t).toContain("primary_slot_name = 'pg2'");
        expect(primaryConninfo(cfg, cfg.servers[1])).toMatch(/^host=pg1,pg3 port=5432,5432 user=replicator passfile=\/dev\/shm\/pgha\/pgpass application_name=pg2 target_session_attrs=read-write /);
        expect(t).not.toMatch(/password=/);
    });

    it("is anti-symmetric: each server's conninfo names the others", () => {
        for (const server of cfg.servers) {
            const hosts = /host=([^ ]+)/.exec(primaryConninfo(cfg, server))![1].split(",");
            expect(hosts.sort()).toEqual(cfg.servers.map((x) => x.name).filter((n) => n !== server.name).sort());
        }
    });

    it("leaves primary_conninfo empty for a single server", () => {
        const one = validateConfig({ servers: [{ name: "pg1", node: "a" }], primary: "pg1" });
        expect(renderServerConf(one, one.servers[0])).toContain("primary_conninfo = ''");
    });
});

describe("pg_hba.conf", () => {
    const text = renderPgHba(cfg);
    const rules = text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(/\s+/));

    it("allows replication and clients only from the overlay network, with scram", () => {
        expect(rules).toContainEqual(["host", "replication", "replicator", "10.0.200.0/24", "scram-sha-256"]);
        expect(rules).toContainEqual(["host", "all", "all", "10.0.200.0/24", "scram-sha-256"]);
        expect(rules).toContainEqual(["host", "all", "all", "192.168.10.0/24", "scram-sha-256"]);
        expect(rules.filter((r) => r[1] === "replication" && r[0] === "host" && r[4] !== "reject").map((r) => r[3])).toEqual(["10.0.200.0/24"]);
    });

    it("gives the local socket to the postgres OS user only", () => {
        expect(rules.filter((r) => r[0] === "local" && r[r.length - 1] !== "reject")).toEqual([
            ["local", "all", "postgres", "peer"],
            ["local", "replication", "postgres", "peer"],
        ]);
    });

    it("never trusts a host and rejects everything else", () => {
        expect(rules.some((r) => r[0].startsWith("host") && r[r.length - 1] === "trust")).toBe(false);
        expect(rules.slice(-4).every((r) => r[r.length - 1] === "reject")).toBe(true);
    });
});

describe("connection strings", () => {
    it("lists every server and lets libpq pick by role", () => {
        const c = connectionStrings(cfg);
        expect(c.readWrite).toBe("postgresql://pg1:5432,pg2:5432,pg3:5432/postgres?target_session_attrs=read-write");
        expect(c.readOnly).toBe("postgresql://pg1:5432,pg2:5432,pg3:5432/postgres?target_session_attrs=prefer-standby");
    });
});
