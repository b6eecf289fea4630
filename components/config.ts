// The stack configuration (namespace `pgha`): its types, its defaults and its validation.
//
// validateConfig() is a pure function from the raw values (as `pulumi config` stores them) to a
// typed, checked PghaConfig. It collects every problem and throws one ConfigError that names each
// key and how to fix it, before the program declares a single resource.

import { PG_PARAMETERS } from "./pg-parameters";

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

/** Plain, validated configuration. Secrets are carried separately (see PghaSecrets). */
export interface PghaConfig {
    readonly network: NetworkConfig;
    readonly image: string;
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
export type CloneFromConfig =
    | { readonly archiveVolume: string; readonly dockerHost?: string; readonly backup: string }
    | { readonly path: string };

/** The raw configuration as read from the stack: anything may be missing or of the wrong type. */
export type RawConfig = { readonly [key: string]: unknown };

/** Defaults for every key that has one (mirrored in Pulumi.yaml's `config:` schema; a test keeps them equal). */
export const DEFAULTS = {
    network: { name: "pgha_net", cidr: "10.0.200.0/24", gateway: "10.0.200.1" },
    image: "postgres:15",
    postgresql: {},
    replication: { maxSlotWalKeepSize: "10GB", synchronous: false },
    archive: { timeout: "60s" },
    clients: { cidrs: [] as string[] },
    lost: [] as string[],
} as const;

/**
 * Subnets Docker itself uses on a default swarm node: the ingress network, the default bridge and
 * docker_gwbridge. An overlay network overlapping them makes containers unreachable.
 */
export const DOCKER_DEFAULT_SUBNETS: readonly string[] = ["10.0.0.0/24", "172.17.0.0/16", "172.18.0.0/16"];

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
const ALLOWED_MANAGED_VALUES: Readonly<Record<string, readonly string[]>> = {
    wal_level: ["replica", "logical"],
};

export class ConfigError extends Error {
    constructor(public readonly problems: readonly string[]) {
        super(
            `invalid pgha configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}); nothing was changed:\n` +
                problems.map((p) => `  - ${p}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

// ---------------------------------------------------------------------------------------------
// IPv4 helpers

export interface Cidr {
    readonly base: number;
    readonly prefix: number;
}

export function parseIpv4(text: string): number | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
    if (!m) return undefined;
    const octets = m.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
}

export function parseCidr(text: string): Cidr | undefined {
    const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
    if (!m) return undefined;
    const base = parseIpv4(m[1]);
    const prefix = Number(m[2]);
    if (base === undefined || prefix > 32) return undefined;
    return { base, prefix };
}

function mask(prefix: number): number {
    return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function hostBitsZero(c: Cidr): boolean {
    return ((c.base & ~mask(c.prefix)) >>> 0) === 0;
}

export function cidrContains(c: Cidr, ip: number): boolean {
    return ((ip & mask(c.prefix)) >>> 0) === ((c.base & mask(c.prefix)) >>> 0);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
    const p = Math.min(a.prefix, b.prefix);
    return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

function formatIpv4(ip: number): string {
    return [24, 16, 8, 0].map((s) => (ip >>> s) & 255).join(".");
}

// ---------------------------------------------------------------------------------------------
// Validation

/** A server name is a DNS label, a Docker service name and a PostgreSQL slot name at once. */
export const SERVER_NAME = /^[a-z][a-z0-9]{0,62}$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const NODE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/;
const DOCKER_HOST = /^(unix|tcp|ssh|npipe):\/\/\S+$/;
/** A DNS hostname (RFC 1123 labels); an all-numeric dotted name must be a valid IPv4 address instead. */
const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const IMAGE = /^[a-z0-9][a-zA-Z0-9._\-/:@]*$/;
const SIZE = /^(-1|\d+\s*(B|kB|MB|GB|TB)?)$/;
const DURATION = /^\d+\s*(us|ms|s|min|h|d)?$/;
const PARAMETER_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A hostname (RFC 1123) or a dotted IPv4 address; a name made of digits and dots only must be a valid IPv4 address. */
export function isHostOrIpv4(text: string): boolean {
    if (/^[0-9.]+$/.test(text)) return parseIpv4(text) !== undefined;
    return HOSTNAME.test(text);
}

function set(path: string, example: string): string {
    return `pulumi config set --path '${path}' ${example}`;
}

/**
 * Checks the raw stack configuration and returns it typed, with defaults applied.
 * Throws a ConfigError naming every problem (key, what is wrong, how to fix it).
 */
export function validateConfig(raw: RawConfig): PghaConfig {
    const problems: string[] = [];
    const known = new Set([
        "network",
        "image",
        "servers",
        "primary",
        "postgresql",
        "replication",
        "archive",
        "clients",
        "lost",
        "backup",
        "restore",
        "cloneFrom",
        "superuserPassword",
        "replicatorPassword",
    ]);
    for (const key of Object.keys(raw)) {
        if (!known.has(key)) {
            problems.push(`pgha:${key}: unknown key; the keys are ${[...known].join(", ")} (remove it: pulumi config rm pgha:${key})`);
        }
    }

    // network ---------------------------------------------------------------------------------
    const network = { ...DEFAULTS.network } as { name: string; cidr: string; gateway: string };
    if (raw.network !== undefined) {
        if (!isObject(raw.network)) {
            problems.push(`pgha:network: must be an object { name, cidr, gateway }; e.g. ${set("network.cidr", "10.0.200.0/24")}`);
        } else {
            for (const k of Object.keys(raw.network)) {
                if (!["name", "cidr", "gateway"].includes(k)) {
                    problems.push(`pgha:network.${k}: unknown key; network has name, cidr and gateway`);
                }
            }
            for (const k of ["name", "cidr", "gateway"] as const) {
                const v = raw.network[k];
                if (v === undefined) continue;
                if (typeof v !== "string") problems.push(`pgha:network.${k}: must be a string`);
                else network[k] = v;
            }
        }
    }
    if (!NETWORK_NAME.test(network.name)) {
        problems.push(`pgha:network.name: '${network.name}' is not a valid Docker network name (letters, digits, _ . -); e.g. ${set("network.name", "pgha_net")}`);
    }
    const cidr = parseCidr(network.cidr);
    if (!cidr) {
        problems.push(`pgha:network.cidr: '${network.cidr}' is not an IPv4 CIDR; e.g. ${set("network.cidr", "10.0.200.0/24")}`);
    } else if (!hostBitsZero(cidr)) {
        const fixed = `${formatIpv4((cidr.base & mask(cidr.prefix)) >>> 0)}/${cidr.prefix}`;
        problems.push(`pgha:network.cidr: '${network.cidr}' has host bits set; did you mean ${fixed}? (${set("network.cidr", fixed)})`);
    } else if (cidr.prefix < 8 || cidr.prefix > 29) {
        problems.push(`pgha:network.cidr: prefix /${cidr.prefix} is out of range; use /8 to /29, e.g. ${set("network.cidr", "10.0.200.0/24")}`);
    } else {
        for (const used of DOCKER_DEFAULT_SUBNETS) {
            if (cidrsOverlap(cidr, parseCidr(used)!)) {
                problems.push(`pgha:network.cidr: '${network.cidr}' overlaps ${used}, which Docker uses on every swarm node (ingress, docker0, docker_gwbridge); choose another subnet, e.g. ${set("network.cidr", "10.0.200.0/24")}`);
            }
        }
    }
    const gateway = parseIpv4(network.gateway);
    if (gateway === undefined) {
        problems.push(`pgha:network.gateway: '${network.gateway}' is not an IPv4 address; e.g. ${set("network.gateway", "10.0.200.1")}`);
    } else if (cidr && hostBitsZero(cidr)) {
        const broadcast = (cidr.base | ~mask(cidr.prefix)) >>> 0;
        if (!cidrContains(cidr, gateway)) {
            problems.push(`pgha:network.gateway: ${network.gateway} is outside pgha:network.cidr ${network.cidr}; e.g. ${set("network.gateway", formatIpv4(cidr.base + 1))}`);
        } else if (gateway === cidr.base || gateway === broadcast) {
            problems.push(`pgha:network.gateway: ${network.gateway} is the network or broadcast address of ${network.cidr}; e.g. ${set("network.gateway", formatIpv4(cidr.base + 1))}`);
        }
    }

    // image -----------------------------------------------------------------------------------
    let image: string = DEFAULTS.image;
    if (raw.image !== undefined) {
        if (typeof raw.image !== "string" || !IMAGE.test(raw.image)) {
            problems.push(`pgha:image: '${String(raw.image)}' is not an image reference; e.g. pulumi config set pgha:image registry.example.com/postgres:15`);
        } else image = raw.image;
    }

    // servers ---------------------------------------------------------------------------------
    const servers: ServerConfig[] = [];
    const example = `pulumi config set --path 'servers[0].name' pg1 && pulumi config set --path 'servers[0].node' <node hostname>`;
    if (raw.servers === undefined) {
        problems.push(`pgha:servers: missing; list at least one server { name, node }: ${example}`);
    } else if (!Array.isArray(raw.servers)) {
        problems.push(`pgha:servers: must be a list of { name, node, dockerHost?, port?, address? }: ${example}`);
    } else if (raw.servers.length < 1) {
        problems.push(`pgha:servers: at least one server is needed: ${example}`);
    } else {
        raw.servers.forEach((s: unknown, i: number) => {
            const at = `pgha:servers[${i}]`;
            if (!isObject(s)) {
                problems.push(`${at}: must be an object { name, node, dockerHost?, port?, address? }`);
                return;
            }
            for (const k of Object.keys(s)) {
                if (!["name", "node", "dockerHost", "port", "address"].includes(k)) {
                    problems.push(`${at}.${k}: unknown key; a server has name, node, dockerHost, port and address`);
                }
            }
            let ok = true;
            if (typeof s.name !== "string" || !SERVER_NAME.test(s.name)) {
                problems.push(`${at}.name: '${String(s.name)}' is not a valid server name: it is a DNS name and a replication slot name, so lowercase letters and digits only, starting with a letter, at most 63 (e.g. pg1): ${set(`servers[${i}].name`, "pg1")}`);
                ok = false;
            }
            if (typeof s.node !== "string" || !NODE_NAME.test(s.node)) {
                problems.push(`${at}.node: '${String(s.node)}' is not a node hostname; use a HOSTNAME from 'docker node ls': ${set(`servers[${i}].node`, "<hostname>")}`);
                ok = false;
            }
            if (s.dockerHost !== undefined && (typeof s.dockerHost !== "string" || !DOCKER_HOST.test(s.dockerHost))) {
                problems.push(`${at}.dockerHost: '${String(s.dockerHost)}' is not a Docker host URL (unix://, tcp://, ssh://user@host); e.g. ${set(`servers[${i}].dockerHost`, "ssh://admin@node-b")}`);
                ok = false;
            }
            if (s.port !== undefined && (typeof s.port !== "number" || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535)) {
                problems.push(`${at}.port: '${String(s.port)}' is not a TCP port (1-65535); e.g. ${set(`servers[${i}].port`, "5432")}`);
                ok = false;
            }
            if (s.address !== undefined) {
                if (typeof s.address !== "string" || !isHostOrIpv4(s.address)) {
                    problems.push(`${at}.address: '${String(s.address)}' is not a hostname or an IPv4 address; it is where clients outside the swarm reach this server's published port (the node's address), e.g. ${set(`servers[${i}].address`, "192.168.1.10")}`);
                    ok = false;
                } else if (s.port === undefined) {
                    problems.push(`${at}.address: set, but servers[${i}].port is not, so nothing is published there; publish a port (${set(`servers[${i}].port`, "5432")}) or remove the address (pulumi config rm --path 'servers[${i}].address')`);
                    ok = false;
                }
            }
            if (ok) {
                servers.push({
                    name: s.name as string,
                    node: s.node as string,
                    ...(s.dockerHost !== undefined ? { dockerHost: s.dockerHost as string } : {}),
                    ...(s.port !== undefined ? { port: s.port as number } : {}),
                    ...(s.address !== undefined ? { address: s.address as string } : {}),
                });
            }
        });
        const seen = new Map<string, number>();
        servers.forEach((s, i) => {
            if (seen.has(s.name)) {
                problems.push(`pgha:servers[${i}].name: '${s.name}' is already the name of servers[${seen.get(s.name)}]; every server needs its own name`);
            } else seen.set(s.name, i);
        });
        const ports = new Map<string, string>();
        const hosts = new Map<string, string | undefined>();
        for (const s of servers) {
            if (s.port !== undefined) {
                const key = `${s.node}:${s.port}`;
                const other = ports.get(key);
                if (other !== undefined) {
                    problems.push(`pgha:servers: ${other} and ${s.name} both publish port ${s.port} on node ${s.node}; give one of them another port`);
                } else ports.set(key, s.name);
            }
            if (hosts.has(s.node) && hosts.get(s.node) !== s.dockerHost) {
                problems.push(`pgha:servers: servers on node ${s.node} name different dockerHost values (${hosts.get(s.node) ?? "local"} and ${s.dockerHost ?? "local"}); a node has one engine, give them the same dockerHost`);
            } else hosts.set(s.node, s.dockerHost);
        }
    }

    // primary ---------------------------------------------------------------------------------
    let primary = "";
    if (typeof raw.primary !== "string" || raw.primary === "") {
        problems.push(`pgha:primary: missing; name the server that is primary: pulumi config set pgha:primary ${servers[0]?.name ?? "pg1"}`);
    } else {
        primary = raw.primary;
        if (servers.length > 0 && !servers.some((s) => s.name === primary)) {
            problems.push(`pgha:primary: '${primary}' is not among pgha:servers (${servers.map((s) => s.name).join(", ")}); set it to one of them: pulumi config set pgha:primary ${servers[0].name}`);
        }
    }

    // lost ------------------------------------------------------------------------------------
    // Servers whose node is gone, declared by the operator for a failover (never a role).
    const lost: string[] = [];
    if (raw.lost !== undefined) {
        if (!Array.isArray(raw.lost)) {
            problems.push(`pgha:lost: must be a list of the servers whose node is gone; e.g. ${set("lost[0]", "pg2")} (or pulumi config rm pgha:lost when none is)`);
        } else {
            raw.lost.forEach((n: unknown, i: number) => {
                const names = servers.map((s) => s.name);
                if (typeof n !== "string" || (servers.length > 0 && !names.includes(n))) {
                    problems.push(`pgha:lost[${i}]: '${String(n)}' is not among pgha:servers (${names.join(", ")}); list only servers whose node is gone, or remove it: pulumi config rm --path 'lost[${i}]'`);
                } else if (lost.includes(n)) {
                    problems.push(`pgha:lost[${i}]: '${n}' is listed twice; remove it: pulumi config rm --path 'lost[${i}]'`);
                } else lost.push(n);
            });
        }
    }
    if (servers.length > 0 && servers.every((s) => lost.includes(s.name))) {
        problems.push(`pgha:lost: lists every server, but one must survive to be primary; remove the servers whose node is back from pgha:lost (e.g. pulumi config rm --path 'lost[0]')`);
    } else if (primary !== "" && lost.includes(primary)) {
        const survivor = servers.find((s) => !lost.includes(s.name))?.name ?? "<server>";
        problems.push(`pgha:primary: '${primary}' is declared lost (pgha:lost), and a lost server cannot be primary; for a failover name a surviving server: pulumi config set pgha:primary ${survivor} (or, if ${primary}'s node is back and it was never replaced, remove it from pgha:lost)`);
    }

    // postgresql ------------------------------------------------------------------------------
    const postgresql: Record<string, string | number | boolean> = {};
    if (raw.postgresql !== undefined) {
        if (!isObject(raw.postgresql)) {
            problems.push(`pgha:postgresql: must be a map of postgresql.conf parameters; e.g. ${set("postgresql.shared_buffers", "1GB")}`);
        } else {
            for (const [name, value] of Object.entries(raw.postgresql)) {
                const at = `pgha:postgresql.${name}`;
                if (!PARAMETER_NAME.test(name)) {
                    problems.push(`${at}: not a parameter name`);
                    continue;
                }
                const custom = name.includes(".");
                if (!custom && !(name in PG_PARAMETERS)) {
                    const lower = name.toLowerCase();
                    const hint = Object.keys(PG_PARAMETERS).find((p) => p.toLowerCase() === lower);
                    problems.push(`${at}: unknown PostgreSQL parameter${hint ? `; did you mean ${hint}?` : ""} (remove it: pulumi config rm --path 'postgresql.${name}')`);
                    continue;
                }
                if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
                    problems.push(`${at}: must be a string, number or boolean`);
                    continue;
                }
                if (name in MANAGED_PARAMETERS) {
                    const allowed = ALLOWED_MANAGED_VALUES[name];
                    if (!allowed || !allowed.includes(String(value))) {
                        problems.push(`${at}: managed by pgha and cannot be set here: ${MANAGED_PARAMETERS[name]} (remove it: pulumi config rm --path 'postgresql.${name}')`);
                        continue;
                    }
                }
                if (typeof value === "string" && /[\n\r\0]/.test(value)) {
                    problems.push(`${at}: the value contains a line break`);
                    continue;
                }
                postgresql[name] = value;
            }
            for (const [name, floor] of Object.entries(minimumParameters(servers.length))) {
                const v = postgresql[name];
                if (v !== undefined && !(Number(v) >= floor)) {
                    problems.push(`pgha:postgresql.${name}: ${String(v)} is too small for ${servers.length} servers; it must be at least ${floor} (or remove it and pgha sizes it)`);
                }
            }
        }
    }

    // replication, archive, clients -----------------------------------------------------------
    const replication = { ...DEFAULTS.replication } as { maxSlotWalKeepSize: string; synchronous: boolean };
    if (raw.replication !== undefined) {
        if (!isObject(raw.replication)) {
            problems.push(`pgha:replication: must be an object { maxSlotWalKeepSize, synchronous }`);
        } else {
            for (const k of Object.keys(raw.replication)) {
                if (!["maxSlotWalKeepSize", "synchronous"].includes(k)) problems.push(`pgha:replication.${k}: unknown key; replication has maxSlotWalKeepSize and synchronous`);
            }
            const m = raw.replication.maxSlotWalKeepSize;
            if (m !== undefined) {
                if (typeof m !== "string" || !SIZE.test(m)) {
                    problems.push(`pgha:replication.maxSlotWalKeepSize: '${String(m)}' is not a size such as 10GB (or -1 for no limit): ${set("replication.maxSlotWalKeepSize", "10GB")}`);
                } else replication.maxSlotWalKeepSize = m;
            }
            const sync = raw.replication.synchronous;
            if (sync !== undefined) {
                if (typeof sync !== "boolean") problems.push(`pgha:replication.synchronous: must be true or false: ${set("replication.synchronous", "true")}`);
                else replication.synchronous = sync;
            }
        }
    }
    if (replication.synchronous && servers.length < 2) {
        problems.push(`pgha:replication.synchronous: true needs at least two servers, otherwise every commit waits forever; add a server or ${set("replication.synchronous", "false")}`);
    }

    const archive = { ...DEFAULTS.archive } as { timeout: string };
    if (raw.archive !== undefined) {
        if (!isObject(raw.archive)) {
            problems.push(`pgha:archive: must be an object { timeout }`);
        } else {
            for (const k of Object.keys(raw.archive)) {
                if (k !== "timeout") problems.push(`pgha:archive.${k}: unknown key; archive has timeout`);
            }
            const t = raw.archive.timeout;
            if (t !== undefined) {
                if (typeof t !== "string" || !DURATION.test(t)) {
                    problems.push(`pgha:archive.timeout: '${String(t)}' is not a duration such as 60s or 5min: ${set("archive.timeout", "60s")}`);
                } else archive.timeout = t;
            }
        }
    }

    const clients = { cidrs: [] as string[] };
    if (raw.clients !== undefined) {
        if (!isObject(raw.clients) || (raw.clients.cidrs !== undefined && !Array.isArray(raw.clients.cidrs))) {
            problems.push(`pgha:clients: must be an object { cidrs: [ ... ] }; e.g. ${set("clients.cidrs[0]", "192.168.1.0/24")}`);
        } else {
            for (const k of Object.keys(raw.clients)) {
                if (k !== "cidrs") problems.push(`pgha:clients.${k}: unknown key; clients has cidrs`);
            }
            ((raw.clients.cidrs as unknown[] | undefined) ?? []).forEach((c, i) => {
                const parsed = typeof c === "string" ? parseCidr(c) : undefined;
                if (!parsed || !hostBitsZero(parsed)) {
                    problems.push(`pgha:clients.cidrs[${i}]: '${String(c)}' is not an IPv4 network in CIDR form; e.g. ${set(`clients.cidrs[${i}]`, "192.168.1.0/24")}`);
                } else clients.cidrs.push(c as string);
            });
        }
    }

    // backup, restore, cloneFrom -------------------------------------------------------------
    const backup = validateBackup(raw.backup, servers, lost, problems);
    const restore = validateRestore(raw.restore, problems);
    const cloneFrom = validateCloneFrom(raw.cloneFrom, servers, problems);

    if (problems.length > 0) throw new ConfigError(problems);
    return {
        network, image, servers, primary, postgresql, replication, archive, clients, lost,
        ...(backup ? { backup } : {}),
        ...(restore ? { restore } : {}),
        ...(cloneFrom ? { cloneFrom } : {}),
    };
}

// ---------------------------------------------------------------------------------------------
// Backups, point-in-time recovery, cloning

/** pgha:backup.keep when unset. */
export const BACKUP_KEEP_DEFAULT = 7;
/** A backup label: a directory name in the archive volume and pg_basebackup's label. */
export const BACKUP_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** An ISO 8601 timestamp with a time zone (Z or ±hh[:mm]), as PostgreSQL's recovery_target_time reads it. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
/** A restore point name (pg_create_restore_point): kept to characters that need no quoting. */
const RESTORE_POINT = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;
const LABEL_RULE = "letters, digits, '.', '_', '-', starting with a letter or digit, at most 63";

/** The timestamp in the form Date.parse reads (T separator, ±hh:mm offset), to check it is a real date. */
function isoForDate(time: string): string {
    return time.replace(" ", "T").replace(/([+-]\d{2})$/, "$1:00").replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
}

function unknownKeys(value: Record<string, unknown>, at: string, allowed: readonly string[], problems: string[]): void {
    for (const k of Object.keys(value)) {
        if (!allowed.includes(k)) problems.push(`${at}.${k}: unknown key; ${at.replace(/^pgha:/, "")} has ${allowed.join(", ")}`);
    }
}

function validateBackup(raw: unknown, servers: readonly ServerConfig[], lost: readonly string[], problems: string[]): BackupConfig | undefined {
    if (raw === undefined) return undefined;
    const example = set("backup.id", "$(date -u +%Y%m%dT%H%M%SZ)");
    if (!isObject(raw)) {
        problems.push(`pgha:backup: must be an object { id, server?, keep? }; e.g. ${example}`);
        return undefined;
    }
    unknownKeys(raw, "pgha:backup", ["id", "server", "keep"], problems);
    let ok = true;
    if (typeof raw.id !== "string" || !BACKUP_LABEL.test(raw.id)) {
        problems.push(`pgha:backup.id: ${raw.id === undefined ? "missing" : `'${String(raw.id)}' is not a backup label`} (${LABEL_RULE}); it labels the backup, and a new value takes a new one: ${example}`);
        ok = false;
    }
    if (raw.server !== undefined && (typeof raw.server !== "string" || !servers.some((s) => s.name === raw.server))) {
        problems.push(`pgha:backup.server: '${String(raw.server)}' is not among pgha:servers (${servers.map((s) => s.name).join(", ")}); name one of them, or remove it to back up from a standby: pulumi config rm --path backup.server`);
        ok = false;
    } else if (typeof raw.server === "string" && lost.includes(raw.server)) {
        problems.push(`pgha:backup.server: '${raw.server}' is declared lost (pgha:lost); name a server that runs, or remove it to back up from a standby: pulumi config rm --path backup.server`);
        ok = false;
    }
    if (raw.keep !== undefined && (typeof raw.keep !== "number" || !Number.isInteger(raw.keep) || raw.keep < 1 || raw.keep > 1000)) {
        problems.push(`pgha:backup.keep: '${String(raw.keep)}' is not a number of backups to keep (1-1000); e.g. ${set("backup.keep", String(BACKUP_KEEP_DEFAULT))}`);
        ok = false;
    }
    if (!ok) return undefined;
    return {
        id: raw.id as string,
        ...(raw.server !== undefined ? { server: raw.server as string } : {}),
        keep: (raw.keep as number | undefined) ?? BACKUP_KEEP_DEFAULT,
    };
}

function validateRestore(raw: unknown, problems: string[]): RestoreConfig | undefined {
    if (raw === undefined) return undefined;
    const shape = "{ backup, target: { time | lsn | name }, confirm, id? }";
    if (!isObject(raw)) {
        problems.push(`pgha:restore: must be an object ${shape}; e.g. ${set("restore.backup", "<label>")}`);
        return undefined;
    }
    unknownKeys(raw, "pgha:restore", ["backup", "target", "confirm", "id"], problems);
    let ok = true;
    const backup = raw.backup;
    if (typeof backup !== "string" || !BACKUP_LABEL.test(backup)) {
        problems.push(`pgha:restore.backup: ${backup === undefined ? "missing" : `'${String(backup)}' is not a backup label`}; name the base backup to restore (stack output 'backups'): ${set("restore.backup", "<label>")}`);
        ok = false;
    } else if (raw.confirm !== backup) {
        problems.push(`pgha:restore.confirm: ${raw.confirm === undefined ? "missing" : `'${String(raw.confirm)}' is not the backup's label`}; a restore replaces the data of every server, so confirm it by repeating the label: ${set("restore.confirm", backup)}`);
        ok = false;
    }
    let target: RestoreConfig["target"] | undefined;
    const t = raw.target;
    const targetExample = `${set("restore.target.time", "2025-01-31T12:00:00Z")} (or target.lsn, or target.name)`;
    if (!isObject(t)) {
        problems.push(`pgha:restore.target: ${t === undefined ? "missing" : "must be an object"}; give exactly one of time, lsn, name: ${targetExample}`);
        ok = false;
    } else {
        unknownKeys(t, "pgha:restore.target", ["time", "lsn", "name"], problems);
        const given = (["time", "lsn", "name"] as const).filter((k) => t[k] !== undefined);
        if (given.length !== 1) {
            problems.push(`pgha:restore.target: ${given.length === 0 ? "no target" : `${given.join(" and ")} are both set`}; give exactly one of time, lsn, name: ${targetExample}`);
            ok = false;
        } else if (given[0] === "time") {
            if (typeof t.time !== "string" || !TIMESTAMP.test(t.time) || Number.isNaN(Date.parse(isoForDate(t.time)))) {
                problems.push(`pgha:restore.target.time: '${String(t.time)}' is not an ISO 8601 timestamp with a time zone; e.g. ${set("restore.target.time", "2025-01-31T12:00:00Z")}`);
                ok = false;
            } else target = { time: t.time };
        } else if (given[0] === "lsn") {
            if (typeof t.lsn !== "string" || !LSN.test(t.lsn)) {
                problems.push(`pgha:restore.target.lsn: '${String(t.lsn)}' is not an LSN such as 0/3000060 (SELECT pg_current_wal_lsn()); e.g. ${set("restore.target.lsn", "0/3000060")}`);
                ok = false;
            } else target = { lsn: t.lsn.toUpperCase() };
        } else if (typeof t.name !== "string" || !RESTORE_POINT.test(t.name)) {
            problems.push(`pgha:restore.target.name: '${String(t.name)}' is not a restore point name pgha accepts (${LABEL_RULE}, also ':'), as created by SELECT pg_create_restore_point('before-migration'); e.g. ${set("restore.target.name", "before-migration")}`);
            ok = false;
        } else target = { name: t.name };
    }
    if (raw.id !== undefined && (typeof raw.id !== "string" || !BACKUP_LABEL.test(raw.id))) {
        problems.push(`pgha:restore.id: '${String(raw.id)}' is not an id (${LABEL_RULE}); change it to run the same restore again: ${set("restore.id", "2")}`);
        ok = false;
    }
    if (!ok || !target) return undefined;
    return { backup: backup as string, target, ...(raw.id !== undefined ? { id: raw.id as string } : {}) };
}

function validateCloneFrom(raw: unknown, servers: readonly ServerConfig[], problems: string[]): CloneFromConfig | undefined {
    if (raw === undefined) return undefined;
    const shape = "{ archiveVolume, dockerHost?, backup } or { path }";
    const example = `${set("cloneFrom.archiveVolume", "pg2-archive")} && ${set("cloneFrom.backup", "<label>")}`;
    if (!isObject(raw)) {
        problems.push(`pgha:cloneFrom: must be an object ${shape}; e.g. ${example}`);
        return undefined;
    }
    unknownKeys(raw, "pgha:cloneFrom", ["archiveVolume", "dockerHost", "backup", "path"], problems);
    if (raw.path !== undefined) {
        if (raw.archiveVolume !== undefined || raw.backup !== undefined || raw.dockerHost !== undefined) {
            problems.push(`pgha:cloneFrom: give either path or archiveVolume (with backup and dockerHost), not both`);
            return undefined;
        }
        if (typeof raw.path !== "string" || !raw.path.startsWith("/") || /[\n\r\0]/.test(raw.path)) {
            problems.push(`pgha:cloneFrom.path: '${String(raw.path)}' is not an absolute path of a backup directory (base.tar.gz, pg_wal.tar.gz) on the machine that runs pulumi; e.g. ${set("cloneFrom.path", "/backups/prod/nightly")}`);
            return undefined;
        }
        return { path: raw.path };
    }
    let ok = true;
    const volume = raw.archiveVolume;
    if (typeof volume !== "string" || !VOLUME_NAME.test(volume)) {
        problems.push(`pgha:cloneFrom.archiveVolume: ${volume === undefined ? "missing" : `'${String(volume)}' is not a Docker volume name`}; name the source stack's archive volume holding the backup (its output 'backups' shows archiveVolume), or set cloneFrom.path: ${example}`);
        ok = false;
    } else if (servers.some((s) => volume === `${s.name}-archive` || volume === `${s.name}-data`)) {
        problems.push(`pgha:cloneFrom.archiveVolume: '${volume}' is a volume of this stack; a clone copies another stack's data: name that stack's archive volume`);
        ok = false;
    }
    if (raw.dockerHost !== undefined && (typeof raw.dockerHost !== "string" || !DOCKER_HOST.test(raw.dockerHost))) {
        problems.push(`pgha:cloneFrom.dockerHost: '${String(raw.dockerHost)}' is not a Docker host URL (unix://, tcp://, ssh://user@host) of the node holding the source volume; e.g. ${set("cloneFrom.dockerHost", "ssh://admin@node-b")}`);
        ok = false;
    }
    if (typeof raw.backup !== "string" || !BACKUP_LABEL.test(raw.backup)) {
        problems.push(`pgha:cloneFrom.backup: ${raw.backup === undefined ? "missing" : `'${String(raw.backup)}' is not a backup label`}; name the source's base backup (its output 'backups'): ${set("cloneFrom.backup", "<label>")}`);
        ok = false;
    }
    if (!ok) return undefined;
    return {
        archiveVolume: volume as string,
        ...(raw.dockerHost !== undefined ? { dockerHost: raw.dockerHost as string } : {}),
        backup: raw.backup as string,
    };
}

/** Parameters whose value must grow with the number of servers, and their floor. */
export function minimumParameters(serverCount: number): Record<string, number> {
    // Each peer streams through one WAL sender and holds one slot; pg_basebackup of a new server
    // and pg_rewind use one more sender each, pg_basebackup -X stream two.
    const peers = Math.max(serverCount - 1, 1);
    return { max_wal_senders: peers + 3, max_replication_slots: peers + 2 };
}

/**
 * Checks the two passwords (plaintext here, before they are wrapped as secrets): present, stored
 * as secrets, and usable in a libpq password file.
 */
export function validateSecrets(values: Readonly<Record<"superuserPassword" | "replicatorPassword", { value: string | undefined; secret: boolean }>>): void {
    const problems: string[] = [];
    for (const [key, { value, secret }] of Object.entries(values)) {
        const fix = `pulumi config set --secret pgha:${key} <password>`;
        if (value === undefined || value === "") problems.push(`pgha:${key}: missing; set it as a secret: ${fix}`);
        else if (!secret) problems.push(`pgha:${key}: is stored in plaintext in the stack config; set it again as a secret: ${fix}`);
        else if (/[\n\r\0]/.test(value)) problems.push(`pgha:${key}: contains a line break or NUL, which a libpq password file cannot hold; choose another: ${fix}`);
        else if (value.length < 8) problems.push(`pgha:${key}: shorter than 8 characters; choose a longer one: ${fix}`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
}
