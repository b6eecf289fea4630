// The stack configuration (namespace `pgha`), by concern:
//   types.ts     what validateConfig returns (PghaConfig) and reads (RawConfig)
//   keys.ts      the one table of every pgha key, and the defaults
//   validate.ts  validateConfig: the rules (rules/) in order, one ConfigError with every problem
//   rules/       one named rule per concern (network, servers, postgresVersion, primary, lost, failover, postgresql, ...)
//   failover.ts  pgha:failover's resolved defaults, the names of its swarm objects (arbiter service, lease config),
//                the lease's labels and how a lease that names another primary than pgha:primary is reported
//   units.ts     durations and sizes: their syntax, and their values in milliseconds and bytes
//   secrets.ts   validateSecrets: the two passwords
//   ipv4.ts      IPv4 arithmetic for the network checks
//   error.ts     ConfigError
// The postgresql.conf parameters pgha manages live beside their renderer (../postgresql-managed.ts),
// the supported major versions and their parameter tables in ../pg-parameters.ts.

export { ConfigError } from "./error";
export {
    arbiterServiceName,
    FAILOVER_DEFAULTS,
    failoverPrefix,
    LEASE_LABELS,
    leaseConfigName,
    leaseDriftWarning,
    parseLease,
    primaryMismatch,
} from "./failover";
export type { Lease } from "./failover";
export { cidrContains, cidrsOverlap, isHostOrIpv4, parseCidr, parseIpv4 } from "./ipv4";
export type { Cidr } from "./ipv4";
export { CONFIG_KEYS, configKey, DEFAULTS, SECRET_KEYS } from "./keys";
export type { ConfigKey, SecretKey } from "./keys";
export {
    BACKUP_KEEP_DEFAULT,
    BACKUP_LABEL,
    DOCKER_DEFAULT_SUBNETS,
    FAILOVER_FIELDS,
    FAILOVER_LIMITS,
    imageTagMajor,
    resolveFailover,
    SERVER_NAME,
} from "./rules";
export type { ImageTagMajor } from "./rules";
export { validateSecrets } from "./secrets";
export type { SecretValue } from "./secrets";
export { PG_PORT } from "./types";
export type {
    ArchiveConfig,
    BackupConfig,
    ClientsConfig,
    CloneFromConfig,
    FailoverConfig,
    NetworkConfig,
    PghaConfig,
    RawConfig,
    ReplicationConfig,
    RestoreConfig,
    RollingRestartConfig,
    ServerConfig,
} from "./types";
export { DURATION, durationMs, formatDuration, SIZE, sizeBytes } from "./units";
export { validateConfig } from "./validate";
// Exported by config.ts before they moved beside the renderer; kept so the old import still works.
export { MANAGED_PARAMETERS, minimumParameters } from "../postgresql-managed";
