// The rendered configuration text: deterministic, symmetric, and saying what pgha promises.

import { describe, expect, it } from "vitest";
import { ConfigError, PghaConfig, validateConfig } from "../components/config";
import { PG_PARAMETERS_IN_EVERY_MAJOR as PG_PARAMETERS } from "../components/pg-parameters";
import {
    ALLOWED_MANAGED_VALUES,
    MANAGED_NOT_IN_POSTGRESQL_CONF,
    MANAGED_PARAMETERS,
    minimumParameters,
    TUNABLE_DEFAULTS,
} from "../components/postgresql-managed";
import { baseParameters, connectionStrings, primaryConninfo, renderPgHba, renderPostgresqlConf, renderServerConf } from "../components/templates";

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

/** A validated config as raw config again (pgha:failover is resolved to milliseconds: left out, so its defaults apply). */
function asRaw(c: PghaConfig): Record<string, unknown> {
    const { failover: _failover, ...rest } = c;
    return rest;
}

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
        const reordered = validateConfig({
            ...asRaw(cfg),
            postgresql: { max_connections: 150, hot_standby_feedback: true, application_name: "it's", shared_buffers: "256MB" },
        });
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
        expect(s.get("archive_command")).toBe(`'/var/lib/pgha/data/pgha/entrypoint.sh wal archive "%p" "%f"'`);
        expect(s.get("restore_command")).toBe(`'/var/lib/pgha/data/pgha/entrypoint.sh wal restore "%f" "%p"'`);
        expect(s.get("archive_timeout")).toBe("'30s'");
    });

    it("adds the user's parameters, quoted, and includes the per-server file last", () => {
        expect(s.get("shared_buffers")).toBe("'256MB'");
        expect(s.get("max_connections")).toBe("150");
        expect(s.get("hot_standby_feedback")).toBe("on");
        expect(s.get("application_name")).toBe("'it''s'");
        expect(text.trimEnd().split("\n").pop()).toBe("include '/var/lib/pgha/data/pgha/server.conf'");
    });

    it("lets the user replace a tunable default without setting it twice", () => {
        const t = renderPostgresqlConf(validateConfig({ ...asRaw(cfg), postgresql: { wal_level: "logical", wal_retrieve_retry_interval: "2s" } }));
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
        expect(primaryConninfo(cfg, cfg.servers[1])).toMatch(
            /^host=pg1,pg3 port=5432,5432 user=replicator passfile=\/dev\/shm\/pgha\/pgpass application_name=pg2 target_session_attrs=read-write /,
        );
        expect(t).not.toMatch(/password=/);
    });

    it("is anti-symmetric: each server's conninfo names the others", () => {
        for (const server of cfg.servers) {
            const hosts = /host=([^ ]+)/.exec(primaryConninfo(cfg, server))![1].split(",");
            expect(hosts.sort()).toEqual(
                cfg.servers
                    .map((x) => x.name)
                    .filter((n) => n !== server.name)
                    .sort(),
            );
        }
    });

    it("leaves primary_conninfo empty for a single server", () => {
        const one = validateConfig({ servers: [{ name: "pg1", node: "a" }], primary: "pg1" });
        expect(renderServerConf(one, one.servers[0])).toContain("primary_conninfo = ''");
    });
});

describe("pg_hba.conf", () => {
    const text = renderPgHba(cfg);
    const rules = text
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split(/\s+/));

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

describe("the parameters pgha manages and the renderer", () => {
    const one = validateConfig({ servers: [{ name: "pg1", node: "a" }], primary: "pg1" });
    const rendered = new Map(baseParameters(cfg));
    const names = [...rendered.keys()];
    const managed = Object.keys(MANAGED_PARAMETERS);
    const tunable = Object.keys(TUNABLE_DEFAULTS);

    it("render the same names whatever the config", () => {
        expect(baseParameters(one).map(([n]) => n)).toEqual(names);
        expect(new Set(names).size).toBe(names.length);
    });

    it("render every name as either managed or a tunable default, never both", () => {
        for (const name of names) expect([managed.includes(name), tunable.includes(name)], name).toSatisfy(([m, t]: boolean[]) => m !== t);
        expect(
            tunable.filter((n) => !names.includes(n)),
            "tunable defaults baseParameters does not render",
        ).toEqual([]);
    });

    it("render every managed parameter, or say where else it is set", () => {
        const elsewhere = Object.keys(MANAGED_NOT_IN_POSTGRESQL_CONF);
        for (const name of managed) expect([names.includes(name), elsewhere.includes(name)], name).toSatisfy(([r, e]: boolean[]) => r !== e);
        expect(
            elsewhere.filter((n) => !managed.includes(n)),
            "listed as managed elsewhere, but not managed",
        ).toEqual([]);
    });

    it("render in server.conf only managed parameters listed as set there", () => {
        const perServer = [...settings(renderServerConf(cfg, cfg.servers[0])).keys()];
        expect(perServer.sort()).toEqual(["cluster_name", "primary_conninfo", "primary_slot_name"]);
        for (const name of perServer) expect(MANAGED_NOT_IN_POSTGRESQL_CONF[name], name).toMatch(/server\.conf/);
    });

    it("name real PostgreSQL parameters only", () => {
        for (const name of [...managed, ...tunable]) expect(PG_PARAMETERS, name).toHaveProperty([name]);
    });

    it("render a managed parameter the user may set at one of its allowed values", () => {
        for (const [name, values] of Object.entries(ALLOWED_MANAGED_VALUES)) {
            expect(managed, name).toContain(name);
            expect(values, name).toContain(String(rendered.get(name)));
        }
    });

    it("render the parameters that grow with the servers above their floor", () => {
        for (const c of [one, cfg]) {
            const base = new Map(baseParameters(c));
            for (const [name, floor] of Object.entries(minimumParameters(c.servers.length))) {
                expect(tunable, name).toContain(name);
                expect(Number(base.get(name)), name).toBeGreaterThanOrEqual(floor);
            }
        }
    });

    it("let the user replace every tunable default, and refuse every managed parameter", () => {
        for (const name of tunable) {
            const value = rendered.get(name)!;
            expect(validateConfig({ ...asRaw(cfg), postgresql: { [name]: value } }).postgresql[name], name).toBe(value);
        }
        for (const name of managed) {
            try {
                validateConfig({ ...asRaw(cfg), postgresql: { [name]: "x" } });
                throw new Error(`${name} accepted`);
            } catch (e) {
                expect(e, name).toBeInstanceOf(ConfigError);
                expect((e as ConfigError).problems, name).toEqual([
                    `pgha:postgresql.${name}: managed by pgha and cannot be set here: ${MANAGED_PARAMETERS[name]} (remove it: pulumi config rm --path 'postgresql.${name}')`,
                ]);
            }
        }
    });
});
