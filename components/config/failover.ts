// pgha:failover beyond its rule (rules/failover.ts): the defaults resolved to numbers, and the
// names of the swarm objects automatic failover uses, which the program that declares them and
// `npm run status`, which reads them, must agree on.

import { DEFAULTS } from "./keys";
import { FailoverConfig } from "./types";
import { durationMs, sizeBytes } from "./units";

/** DEFAULTS.failover resolved: what pgha:failover is when unset, and what a partial object is merged with. */
export const FAILOVER_DEFAULTS: FailoverConfig = {
    automatic: DEFAULTS.failover.automatic,
    ttlMs: durationMs(DEFAULTS.failover.ttl)!,
    renewIntervalMs: durationMs(DEFAULTS.failover.renewInterval)!,
    fenceDeadlineMs: durationMs(DEFAULTS.failover.fenceDeadline)!,
    callTimeoutMs: durationMs(DEFAULTS.failover.callTimeout)!,
    maxLagBytes: sizeBytes(DEFAULTS.failover.maxLag)!,
    arbiterImage: DEFAULTS.failover.arbiterImage,
};

/**
 * The prefix of the cluster's failover objects in the swarm: pgha:network.name with every character
 * outside [a-zA-Z0-9-] replaced by "-" (`pgha_net` is `pgha-net`).
 */
export function failoverPrefix(networkName: string): string {
    return networkName.replace(/[^a-zA-Z0-9-]/g, "-");
}

/** The arbiter service (one task on every manager): `<prefix>-arbiter`, e.g. `pgha-net-arbiter`. */
export function arbiterServiceName(networkName: string): string {
    return `${failoverPrefix(networkName)}-arbiter`;
}

/** The swarm config whose labels hold the lease: `<prefix>-lease`, e.g. `pgha-net-lease`. */
export function leaseConfigName(networkName: string): string {
    return `${failoverPrefix(networkName)}-lease`;
}

/** The labels of the lease config: the server holding the lease, and the term (a number that grows with each new holder). */
export const LEASE_LABELS = { holder: "pgha.lease.holder", term: "pgha.lease.term" } as const;
