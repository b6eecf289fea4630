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

/** The lease, from the labels of its swarm config. */
export interface Lease {
    /** The server holding it (pgha.lease.holder). */
    readonly holder: string;
    /** pgha.lease.term: grows by one with each new holder; null when the label is missing or no number. */
    readonly term: number | null;
}

/** The lease from `docker config inspect --format '{{json .Spec.Labels}}'`; null when it names no holder (no lease yet). */
export function parseLease(labelsJson: string): Lease | null {
    const labels: unknown = JSON.parse(labelsJson.trim() || "null");
    if (typeof labels !== "object" || labels === null) return null;
    const l = labels as Record<string, unknown>;
    const holder = l[LEASE_LABELS.holder];
    if (typeof holder !== "string" || holder === "") return null;
    const term = l[LEASE_LABELS.term];
    return { holder, term: typeof term === "string" && /^\d+$/.test(term) ? Number(term) : null };
}

/**
 * The line to print when the cluster's actual primary is not pgha:primary; null when they agree
 * (or either is unknown). When the lease names the actual primary, automatic failover moved it
 * there: the config is what must change. Otherwise the mismatch may be a planned switchover
 * that `pulumi up` has yet to finish.
 */
export function primaryMismatch(declaredPrimary: string | null, actualPrimary: string | null, lease: Lease | null): string | null {
    if (declaredPrimary === null || actualPrimary === null || declaredPrimary === actualPrimary) return null;
    if (lease !== null && lease.holder === actualPrimary) {
        const term = lease.term === null ? "" : ` at term ${lease.term}`;
        return `pgha:primary says ${declaredPrimary}, but ${actualPrimary} is the primary (automatic failover${term}): run pulumi config set pgha:primary ${actualPrimary} to make the config agree; pulumi up will not switch back on its own`;
    }
    const held = lease === null ? "" : `; the lease is held by ${lease.holder}${lease.term === null ? "" : ` at term ${lease.term}`}`;
    return `pgha:primary says ${declaredPrimary}, but ${actualPrimary} is the primary (not by automatic failover${held}): if pgha:primary was changed for a switchover, run pulumi up to finish it; otherwise run pulumi config set pgha:primary ${actualPrimary} to make the config agree`;
}

/**
 * The warning the program prints on every preview and update when the lease names another primary
 * than pgha:primary (`leaseLabels`: the lease config's labels as JSON, empty when there is none or
 * the swarm could not be asked); null when they agree or nothing is known. The program cannot tell
 * whether pgha:primary was just changed (a planned switchover this update makes) or automatic
 * failover moved the primary away from it: the line says what happens in either case.
 */
export function leaseDriftWarning(declaredPrimary: string, leaseLabels: string): string | null {
    let lease: Lease | null;
    try {
        lease = parseLease(leaseLabels);
    } catch {
        return null;
    }
    if (lease === null || lease.holder === "-" || lease.holder === declaredPrimary) return null;
    const term = lease.term === null ? "" : `, term ${lease.term}`;
    return (
        `pgha:primary says ${declaredPrimary}, but ${lease.holder} holds the lease${term}: ${lease.holder} is the primary. ` +
        `If automatic failover moved it there, pulumi up keeps ${lease.holder} (it never switches back on its own): ` +
        `run pulumi config set pgha:primary ${lease.holder} to make config and cluster agree (no action). ` +
        `If pgha:primary was just changed to ${declaredPrimary}, this update switches over to it (the switchover Command is replaced).`
    );
}
