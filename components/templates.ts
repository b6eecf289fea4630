// The PostgreSQL configuration files, rendered from the stack config by pure functions.
//
// Every server gets the same postgresql.conf and pg_hba.conf; the only per-server file is a small
// include (server.conf) with the anti-symmetric connection settings. Nothing here knows which
// server is primary: the role lives in the data directory (standby.signal).
// The text is deterministic: the same config gives byte-identical files (a changed file is
// delivered and reloaded, and a changed restart-only parameter rolls the servers: spurious
// differences would cost reloads and restarts).

import { PG_PORT, PghaConfig, ServerConfig } from "./config";
import { minimumParameters } from "./postgresql-managed";

/**
 * Fixed paths inside every server container (docs/container.md). pgha's files live in the server's
 * data volume, outside PGDATA, delivered by the reload, roll and passwords operations: nothing that
 * changes over a cluster's life is in the service spec, so no change restarts every server at once.
 */
export const PATHS = {
    configDir: "/var/lib/pgha/data/pgha",
    entrypoint: "/var/lib/pgha/data/pgha/entrypoint.sh",
    postgresqlConf: "/var/lib/pgha/data/pgha/postgresql.conf",
    serverConf: "/var/lib/pgha/data/pgha/server.conf",
    hbaConf: "/var/lib/pgha/data/pgha/pg_hba.conf",
    peers: "/var/lib/pgha/data/pgha/peers",
    restartKey: "/var/lib/pgha/data/pgha/restart-key",
    secretsDir: "/var/lib/pgha/data/pgha-secrets",
    dataDir: "/var/lib/pgha/data",
    pgdata: "/var/lib/pgha/data/pgdata",
    archiveDir: "/var/lib/pgha/archive",
    socketDir: "/var/run/postgresql",
    pgpass: "/dev/shm/pgha/pgpass",
    superuserPasswordSecret: "pgha-superuser-password",
    replicatorPasswordSecret: "pgha-replicator-password",
} as const;

/** The container paths a rendering refers to (tests render with temporary ones). */
export type Paths = { readonly [K in keyof typeof PATHS]: string };

/** Name of the role standbys (and pg_basebackup) replicate as. */
export const REPLICATION_USER = "replicator";

/** Quotes a value for postgresql.conf: single quotes, embedded quotes doubled. */
export function quoteConfValue(value: string): string {
    return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

function renderValue(value: string | number | boolean): string {
    if (typeof value === "boolean") return value ? "on" : "off";
    if (typeof value === "number") return String(value);
    return quoteConfValue(value);
}

function line(name: string, value: string | number | boolean): string {
    return `${name} = ${renderValue(value)}`;
}

/**
 * The parameters pgha sets, before the user's own (which may override the tunable ones). Every
 * name here is either managed (MANAGED_PARAMETERS: the validator refuses it) or a tunable default
 * (TUNABLE_DEFAULTS), never both: test/templates.test.ts keeps them in agreement.
 */
export function baseParameters(cfg: PghaConfig, paths: Paths = PATHS): Array<[string, string | number | boolean]> {
    const floors = minimumParameters(cfg.servers.length);
    const names = cfg.servers.map((s) => s.name);
    return [
        ["listen_addresses", "*"],
        ["port", PG_PORT],
        ["unix_socket_directories", paths.socketDir],
        ["hba_file", paths.hbaConf],
        ["password_encryption", "scram-sha-256"],
        // Replication: same on every server, so any server can become primary.
        ["wal_level", "replica"],
        ["max_wal_senders", floors.max_wal_senders + 2],
        ["max_replication_slots", floors.max_replication_slots + 2],
        ["hot_standby", true],
        ["wal_log_hints", true],
        ["max_slot_wal_keep_size", cfg.replication.maxSlotWalKeepSize],
        ["synchronous_standby_names", cfg.replication.synchronous ? `ANY 1 (${names.join(", ")})` : ""],
        ["recovery_target_timeline", "latest"],
        // A standby re-finds the primary this fast after a switchover (default 5s).
        ["wal_retrieve_retry_interval", "500ms"],
        ["wal_sender_timeout", "30s"],
        ["wal_receiver_timeout", "30s"],
        // Archiving: every server archives the full WAL stream into its own archive volume.
        ["archive_mode", "always"],
        ["archive_command", `${paths.entrypoint} wal archive "%p" "%f"`],
        ["restore_command", `${paths.entrypoint} wal restore "%f" "%p"`],
        ["archive_timeout", cfg.archive.timeout],
        // Dead peers are noticed in seconds, not hours.
        ["tcp_keepalives_idle", 10],
        ["tcp_keepalives_interval", 5],
        ["tcp_keepalives_count", 3],
        ["log_line_prefix", "%m [%p] %q%u@%d "],
    ];
}

/**
 * Every parameter postgresql.conf sets, as it renders them ("name = value"): pgha's own, then the
 * user's (which replace pgha's where validation allowed it: a tunable or a safe value).
 */
export function renderedParameters(cfg: PghaConfig, paths: Paths = PATHS): { base: string[]; user: string[] } {
    const base = baseParameters(cfg, paths)
        .filter(([n]) => !(n in cfg.postgresql))
        .map(([n, v]) => line(n, v));
    const user = Object.keys(cfg.postgresql)
        .sort()
        .map((n) => line(n, cfg.postgresql[n]));
    return { base, user };
}

/** postgresql.conf, identical for every server. */
export function renderPostgresqlConf(cfg: PghaConfig, paths: Paths = PATHS): string {
    const { base, user } = renderedParameters(cfg, paths);
    const out = [
        `# postgresql.conf rendered by pgha for network ${cfg.network.name}. Identical on every server.`,
        "# Do not edit: change the pgha stack config and run pulumi up.",
        "",
        ...base,
    ];
    if (user.length > 0) out.push("", "# From pgha:postgresql", ...user);
    out.push("", "# Per-server settings (primary_conninfo, primary_slot_name, cluster_name)", `include ${quoteConfValue(paths.serverConf)}`, "");
    return out.join("\n");
}

/** The libpq connection string a server uses to stream from whichever peer is primary. */
export function primaryConninfo(cfg: PghaConfig, server: ServerConfig, paths: Paths = PATHS): string {
    const peers = cfg.servers.filter((s) => s.name !== server.name).map((s) => s.name);
    if (peers.length === 0) return "";
    return [
        `host=${peers.join(",")}`,
        `port=${peers.map(() => PG_PORT).join(",")}`,
        `user=${REPLICATION_USER}`,
        `passfile=${paths.pgpass}`,
        `application_name=${server.name}`,
        "target_session_attrs=read-write",
        "connect_timeout=2",
        "keepalives=1",
        "keepalives_idle=10",
        "keepalives_interval=5",
        "keepalives_count=3",
    ].join(" ");
}

/** server.conf: the per-server include (anti-symmetric settings only). */
export function renderServerConf(cfg: PghaConfig, server: ServerConfig, paths: Paths = PATHS): string {
    const peers = cfg.servers.filter((s) => s.name !== server.name).map((s) => s.name);
    return [
        `# server.conf rendered by pgha for server ${server.name}; peers: ${peers.join(", ") || "(none)"}.`,
        "# Used only while this server is a standby (standby.signal in its data directory).",
        line("cluster_name", server.name),
        line("primary_slot_name", server.name),
        line("primary_conninfo", primaryConninfo(cfg, server, paths)),
        "",
    ].join("\n");
}

/** pg_hba.conf, identical for every server. */
export function renderPgHba(cfg: PghaConfig): string {
    const rows: string[][] = [
        ["# TYPE", "DATABASE", "USER", "ADDRESS", "METHOD"],
        ["# The entrypoint and the operations, as the postgres OS user on the local socket"],
        ["local", "all", "postgres", "", "peer"],
        ["local", "replication", "postgres", "", "peer"],
        ["local", "all", "all", "", "reject"],
        ["local", "replication", "all", "", "reject"],
        [`# Servers and one-off jobs on the overlay network ${cfg.network.name}`],
        ["host", "replication", REPLICATION_USER, cfg.network.cidr, "scram-sha-256"],
        ["host", "all", "all", cfg.network.cidr, "scram-sha-256"],
    ];
    if (cfg.clients.cidrs.length > 0) {
        rows.push(["# Clients through published ports (pgha:clients.cidrs); no replication"]);
        for (const c of cfg.clients.cidrs) rows.push(["host", "all", "all", c, "scram-sha-256"]);
    }
    rows.push(
        ["# Everything else"],
        ["host", "all", "all", "0.0.0.0/0", "reject"],
        ["host", "replication", "all", "0.0.0.0/0", "reject"],
        ["host", "all", "all", "::/0", "reject"],
        ["host", "replication", "all", "::/0", "reject"],
    );
    const widths = [8, 13, 12, 20];
    const text = rows.map((r) =>
        r.length === 1
            ? r[0]
            : r
                  .map((cell, i) => (i < r.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell))
                  .join(" ")
                  .replace(/\s+$/, ""),
    );
    return [`# pg_hba.conf rendered by pgha for network ${cfg.network.name}. Identical on every server.`, ...text, ""].join("\n");
}

/** Client connection strings (no credentials) for use from containers on the overlay network. */
export function connectionStrings(cfg: PghaConfig, database = "postgres"): { readWrite: string; readOnly: string } {
    const hosts = cfg.servers.map((s) => `${s.name}:${PG_PORT}`).join(",");
    return {
        readWrite: `postgresql://${hosts}/${database}?target_session_attrs=read-write`,
        readOnly: `postgresql://${hosts}/${database}?target_session_attrs=prefer-standby`,
    };
}
