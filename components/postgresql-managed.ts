// The postgresql.conf parameters pgha sets, beside the renderer that sets them (templates.ts): the
// validator (config/rules/postgresql.ts) refuses the managed ones in pgha:postgresql, and a unit
// test keeps these tables and baseParameters() in agreement.
// This file imports nothing from config: templates.ts imports config, and config imports this.

/**
 * postgresql.conf parameters that pgha manages itself. Each maps to the way to change it, if any.
 * Setting them in `pgha:postgresql` would break replication, archiving or the role swap.
 */
export const MANAGED_PARAMETERS: Readonly<Record<string, string>> = {
    listen_addresses: "pgha listens on all addresses of the container; restrict clients with pg_hba (pgha:clients)",
    port: "the port inside the container is fixed; publish another one with servers[i].port",
    hba_file: "pg_hba.conf is rendered by pgha",
    ident_file: "pgha uses the data directory's pg_ident.conf",
    config_file: "postgresql.conf is rendered by pgha",
    data_directory: "the data directory is the server's data volume",
    unix_socket_directories: "the entrypoint and the operations use /var/run/postgresql",
    archive_mode: "pgha archives the full WAL stream on every server (archive_mode = always)",
    archive_command: "pgha archives into each server's archive volume",
    archive_library: "pgha archives with archive_command",
    restore_command: "pgha restores from the server's archive volume",
    recovery_target_timeline: "standbys must follow every new primary (latest)",
    primary_conninfo: "rendered per server from pgha:servers",
    primary_slot_name: "each server's slot is its own name",
    cluster_name: "each server's cluster_name is its own name",
    synchronous_standby_names: "use pgha:replication.synchronous",
    max_slot_wal_keep_size: "use pgha:replication.maxSlotWalKeepSize",
    archive_timeout: "use pgha:archive.timeout",
    hot_standby: "standbys must accept read-only queries and report their state (on)",
    wal_log_hints: "pg_rewind needs it after a failover (on)",
    full_page_writes: "turning it off can corrupt data after a crash and breaks pg_rewind",
    fsync: "turning it off can lose committed data",
    wal_level: "replication needs replica (or logical): set pgha:postgresql.wal_level only to logical",
};

/** Managed parameters the user may still set, to one of these values. */
export const ALLOWED_MANAGED_VALUES: Readonly<Record<string, readonly string[]>> = {
    wal_level: ["replica", "logical"],
};

/**
 * Managed parameters that postgresql.conf does not render, and why: pgha's guarantee is that
 * nobody changes them, not a value of its own.
 */
export const MANAGED_NOT_IN_POSTGRESQL_CONF: Readonly<Record<string, string>> = {
    config_file: "set on the postgres command line by the entrypoint (-c config_file)",
    data_directory: "set on the postgres command line by the entrypoint (-D)",
    ident_file: "left at PostgreSQL's default, the data directory's pg_ident.conf",
    archive_library: "left at PostgreSQL's default (empty), so archive_command is used",
    fsync: "left at PostgreSQL's default (on)",
    full_page_writes: "left at PostgreSQL's default (on)",
    cluster_name: "rendered per server in server.conf (renderServerConf)",
    primary_slot_name: "rendered per server in server.conf (renderServerConf)",
    primary_conninfo: "rendered per server in server.conf (renderServerConf)",
};

/**
 * Parameters postgresql.conf sets to a default of pgha's that the user may replace in
 * `pgha:postgresql` (renderPostgresqlConf then renders the user's value instead), and why pgha
 * does not leave PostgreSQL's default.
 */
export const TUNABLE_DEFAULTS: Readonly<Record<string, string>> = {
    password_encryption: "pg_hba.conf asks for scram-sha-256; stated, not left to the default of the image's PostgreSQL version",
    max_wal_senders: "sized for the servers (at least minimumParameters), with two to spare",
    max_replication_slots: "sized for the servers (at least minimumParameters), with two to spare",
    wal_retrieve_retry_interval: "a standby re-finds the primary this fast after a switchover (default 5s)",
    wal_sender_timeout: "a dead standby is noticed in 30s (default 60s)",
    wal_receiver_timeout: "a dead primary is noticed in 30s (default 60s)",
    tcp_keepalives_idle: "dead peers are noticed in seconds, not hours",
    tcp_keepalives_interval: "dead peers are noticed in seconds, not hours",
    tcp_keepalives_count: "dead peers are noticed in seconds, not hours",
    log_line_prefix: "user@database in the service logs, beside the timestamp and process id",
};

/** Parameters whose value must grow with the number of servers, and their floor. */
export function minimumParameters(serverCount: number): Record<string, number> {
    // Each peer streams through one WAL sender and holds one slot; pg_basebackup of a new server
    // and pg_rewind use one more sender each, pg_basebackup -X stream two.
    const peers = Math.max(serverCount - 1, 1);
    return { max_wal_senders: peers + 3, max_replication_slots: peers + 2 };
}
