// The stack configuration's types: what validateConfig() returns (PghaConfig and its parts) and
// what it reads (RawConfig). Secrets are not part of PghaConfig: see secrets.ts.

import type { PgMajor } from "../pg-parameters";

/** The PostgreSQL port inside every container (clients outside use a server's published `port`). */
export const PG_PORT = 5432;

export interface NetworkConfig {
    /** Docker network name. */
    readonly name: string;
    /** IPv4 subnet of the overlay network, e.g. 10.0.200.0/24. */
    readonly cidr: string;
    /** Gateway address inside `cidr`. */
    readonly gateway: string;
}

export interface ServerConfig {
    /** Identity of the server: service name, hostname, DNS name, slot name, application_name. */
    readonly name: string;
    /** Hostname of the swarm node the server is tethered to (`docker node ls`). */
    readonly node: string;
    /** How to reach that node's Docker engine (`unix://…`, `tcp://…`, `ssh://user@host`); default: the local engine. */
    readonly dockerHost?: string;
    /** Port published on the node (host mode) for clients outside the overlay network. */
    readonly port?: number;
    /**
     * Hostname or IPv4 address where clients outside the swarm reach the published `port` (the
     * node's address as seen from them; `npm run status` connects there). Default: `node`.
     */
    readonly address?: string;
}

export interface ReplicationConfig {
    /** max_slot_wal_keep_size: the most WAL a slot may hold back (e.g. "10GB", "-1" for no limit). */
    readonly maxSlotWalKeepSize: string;
    /** Synchronous replication: a commit waits until one standby has flushed it. */
    readonly synchronous: boolean;
}

export interface ArchiveConfig {
    /** archive_timeout: force a WAL segment switch after this long (e.g. "60s"). */
    readonly timeout: string;
}

export interface ClientsConfig {
    /** Extra IPv4 networks allowed to connect (password, not replication) through published ports. */
    readonly cidrs: readonly string[];
}

/** pgha:rollingRestart: how a rolling restart (servers restarted one at a time) ends. */
export interface RollingRestartConfig {
    /**
     * Where the primary is afterwards. A rolling restart moves the primary to a restarted standby
     * by a planned switchover before restarting it: `return` switches the primary back to the
     * server it was on, `stay` leaves it on the standby it moved to.
     */
    readonly primary: "return" | "stay";
}

/**
 * pgha:failover: automatic failover by a lease the arbiters keep (one arbiter task on every swarm
 * manager). The primary renews the lease every `renewIntervalMs`; a primary that has not renewed
 * for `fenceDeadlineMs` stops PostgreSQL at once and comes back as a standby; once `ttlMs` passed
 * without a renewal, as each arbiter judges on its own clock, a standby may take the lease and be
 * promoted. All durations in milliseconds, already checked against each other (rules/failover.ts):
 * fenceDeadlineMs + callTimeoutMs ≤ 80% of ttlMs, so a primary cut off from the arbiters has
 * fenced itself before anyone else can hold the lease.
 */
export interface FailoverConfig {
    /** Automatic failover on (true) or off (false: only the operator's pgha:primary and pgha:lost move the primary). */
    readonly automatic: boolean;
    /** How long a holder that stops renewing keeps the lease, as judged by each arbiter on its own clock (3 s to 5 min). */
    readonly ttlMs: number;
    /** How often the primary renews the lease (at least 200 ms). */
    readonly renewIntervalMs: number;
    /** A primary that has not renewed for this long stops PostgreSQL immediately and comes back as a standby. */
    readonly fenceDeadlineMs: number;
    /** The timeout of one call to an arbiter (at least 100 ms). */
    readonly callTimeoutMs: number;
    /** The most a standby's received WAL may lag behind the most advanced standby for it to take over, in bytes. */
    readonly maxLagBytes: number;
    /** The image of the arbiter service (runs on every manager; the only container with the Docker socket). */
    readonly arbiterImage: string;
}

/** Plain, validated configuration. Secrets are carried separately (see PghaSecrets). */
export interface PghaConfig {
    readonly network: NetworkConfig;
    readonly image: string;
    /**
     * The PostgreSQL major version the image runs: pgha:postgresVersion, or read from the tag of
     * pgha:image (postgres:17.2-alpine is 17). Its parameter table checks pgha:postgresql.
     */
    readonly postgresVersion: PgMajor;
    readonly servers: readonly ServerConfig[];
    readonly primary: string;
    readonly postgresql: Readonly<Record<string, string | number | boolean>>;
    readonly replication: ReplicationConfig;
    readonly archive: ArchiveConfig;
    readonly clients: ClientsConfig;
    /**
     * Servers whose node is gone (failover): never contacted by the operations, and fenced (their
     * service starts them read-only if their node returns) until removed from the list (rejoin).
     */
    readonly lost: readonly string[];
    /** How a rolling restart ends: see RollingRestartConfig. */
    readonly rollingRestart: RollingRestartConfig;
    /** Automatic failover by lease: see FailoverConfig. Always present (defaults applied). */
    readonly failover: FailoverConfig;
    /** Base backups (absent: none are taken): see BackupConfig. */
    readonly backup?: BackupConfig;
    /** A point-in-time recovery of the cluster (absent: none). */
    readonly restore?: RestoreConfig;
    /** Where a new stack's first primary takes its data from instead of initdb (absent: initdb). */
    readonly cloneFrom?: CloneFromConfig;
}

/** pgha:backup: a base backup, taken when `id` changes, and retention. */
export interface BackupConfig {
    /** The backup's label (a directory name): a new value takes a new backup. */
    readonly id: string;
    /** The server whose archive volume receives it; undefined: a standby, found when it runs. */
    readonly server?: string;
    /** How many backups the cluster keeps (the newest); older ones and their WAL are removed. */
    readonly keep: number;
}

/** pgha:restore: point-in-time recovery from one of the cluster's base backups. */
export interface RestoreConfig {
    /** Label of the base backup to start from. */
    readonly backup: string;
    /** Exactly one recovery target. */
    readonly target: { readonly time: string } | { readonly lsn: string } | { readonly name: string };
    /** Optional: a new value runs the same restore again. */
    readonly id?: string;
}

/** pgha:cloneFrom: another stack's archive volume and backup, or a backup directory on this machine. */
export type CloneFromConfig = { readonly archiveVolume: string; readonly dockerHost?: string; readonly backup: string } | { readonly path: string };

/** The raw configuration as read from the stack: anything may be missing or of the wrong type. */
export type RawConfig = { readonly [key: string]: unknown };
