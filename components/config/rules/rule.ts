// What a validation rule is, and the helpers the rules share.
//
// A rule checks one concern of the raw stack config (usually one key): it returns its problems,
// each naming the key and the fix, and records the checked value in the draft. Rules run in a
// fixed order (rules/index.ts) and a later rule may read what an earlier one recorded: the primary
// must be among the servers, a lost server cannot be the primary, and so on.

import type { PgMajor } from "../../pg-parameters";
import { FAILOVER_DEFAULTS } from "../failover";
import { DEFAULTS } from "../keys";
import { BackupConfig, CloneFromConfig, FailoverConfig, RawConfig, RestoreConfig, RollingRestartConfig, ServerConfig } from "../types";

/** The configuration as the rules build it: defaults first, each rule replacing its own part. */
export interface Draft {
    network: { name: string; cidr: string; gateway: string };
    image: string;
    /** Undefined until postgresVersionRule has settled it, and when it could not (its problem says why). */
    postgresVersion?: PgMajor;
    /** Only the servers that passed their own checks: the rules after serversRule compare against these. */
    servers: ServerConfig[];
    /** "" when pgha:primary is missing. */
    primary: string;
    lost: string[];
    rollingRestart: RollingRestartConfig;
    failover: FailoverConfig;
    postgresql: Record<string, string | number | boolean>;
    replication: { maxSlotWalKeepSize: string; synchronous: boolean };
    archive: { timeout: string };
    clients: { cidrs: string[] };
    backup?: BackupConfig;
    restore?: RestoreConfig;
    cloneFrom?: CloneFromConfig;
}

/** Checks one concern of `raw`, records the checked value in `draft`, returns the problems found. */
export type Rule = (raw: RawConfig, draft: Draft) => string[];

/** A draft holding the defaults, as validateConfig starts from (copies: rules change them). */
export function newDraft(): Draft {
    return {
        network: { ...DEFAULTS.network },
        image: DEFAULTS.image,
        servers: [],
        primary: "",
        lost: [],
        rollingRestart: { ...DEFAULTS.rollingRestart },
        failover: { ...FAILOVER_DEFAULTS },
        postgresql: {},
        replication: { ...DEFAULTS.replication },
        archive: { ...DEFAULTS.archive },
        clients: { cidrs: [] },
    };
}

export function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The command that sets one value, for the fix a problem suggests. */
export function set(path: string, example: string): string {
    return `pulumi config set --path '${path}' ${example}`;
}

/** Pushes a problem for every key of `value` not in `allowed`; `at` is the value's own key (pgha:backup). */
export function unknownKeys(value: Record<string, unknown>, at: string, allowed: readonly string[], problems: string[]): void {
    for (const k of Object.keys(value)) {
        if (!allowed.includes(k)) problems.push(`${at}.${k}: unknown key; ${at.replace(/^pgha:/, "")} has ${allowed.join(", ")}`);
    }
}

/** How a server's (or a clone source's) Docker engine is reached. */
export const DOCKER_HOST = /^(unix|tcp|ssh|npipe):\/\/\S+$/;
