// pgha:postgresql, pgha:replication and pgha:archive: what goes into postgresql.conf. The
// parameters pgha manages itself are refused here; their table sits beside the renderer
// (components/postgresql-managed.ts).

import { hasParameter, PG_PARAMETERS_BY_MAJOR, PgMajor, SUPPORTED_MAJORS } from "../../pg-parameters";
import { ALLOWED_MANAGED_VALUES, MANAGED_PARAMETERS, minimumParameters } from "../../postgresql-managed";
import { RawConfig } from "../types";
import { DURATION, SIZE } from "../units";
import { Draft, isObject, set } from "./rule";

const PARAMETER_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?$/;

/**
 * Why `name` (not a custom `ext.name`) is refused as unknown in `major`, or undefined when that
 * version has it. Without a version (postgresVersionRule refused it): unknown in every supported
 * one. Says which other supported versions have it, and the spelling when only the case is wrong.
 */
function unknownParameter(major: PgMajor | undefined, name: string): string | undefined {
    const majors = major === undefined ? SUPPORTED_MAJORS : [major];
    if (majors.some((m) => hasParameter(m, name))) return undefined;
    const lower = name.toLowerCase();
    const hint = majors.flatMap((m) => Object.keys(PG_PARAMETERS_BY_MAJOR[m].parameters)).find((p) => p.toLowerCase() === lower);
    const elsewhere = SUPPORTED_MAJORS.filter((m) => m !== major && hasParameter(m, name));
    const others = elsewhere.length === 0 ? "" : ` (PostgreSQL ${elsewhere.join(" and ")} ${elsewhere.length === 1 ? "has" : "have"} it)`;
    const what =
        major === undefined
            ? `no supported PostgreSQL version (${SUPPORTED_MAJORS.join(", ")}) has a parameter '${name}'`
            : `PostgreSQL ${major} has no parameter '${name}'${others}`;
    return `${what}${hint ? `; did you mean ${hint}?` : ""}`;
}

/**
 * pgha:postgresql: parameters the configured PostgreSQL major version knows (or extension ones,
 * `ext.name`), scalar values on one line, none of the managed ones (except their allowed
 * values), and the parameters that grow with the servers at least at their floor.
 */
export function postgresqlRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const { servers, postgresql } = draft;
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
                // hasParameter looks at own keys only: `constructor`, `toString` or `__proto__` are names of every object, not parameters.
                const unknown = custom ? undefined : unknownParameter(draft.postgresVersion, name);
                if (unknown !== undefined) {
                    problems.push(`${at}: ${unknown} (remove it: pulumi config rm --path 'postgresql.${name}')`);
                    continue;
                }
                if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
                    problems.push(`${at}: must be a string, number or boolean`);
                    continue;
                }
                if (Object.hasOwn(MANAGED_PARAMETERS, name)) {
                    const allowed = Object.hasOwn(ALLOWED_MANAGED_VALUES, name) ? ALLOWED_MANAGED_VALUES[name] : undefined;
                    if (!allowed || !allowed.includes(String(value))) {
                        problems.push(
                            `${at}: managed by pgha and cannot be set here: ${MANAGED_PARAMETERS[name]} (remove it: pulumi config rm --path 'postgresql.${name}')`,
                        );
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
                    problems.push(
                        `pgha:postgresql.${name}: ${String(v)} is too small for ${servers.length} servers; it must be at least ${floor} (or remove it and pgha sizes it)`,
                    );
                }
            }
        }
    }
    return problems;
}

/** pgha:replication: a size for maxSlotWalKeepSize, a boolean synchronous that has a standby to wait for. */
export function replicationRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const { servers, replication } = draft;
    if (raw.replication !== undefined) {
        if (!isObject(raw.replication)) {
            problems.push(`pgha:replication: must be an object { maxSlotWalKeepSize, synchronous }`);
        } else {
            for (const k of Object.keys(raw.replication)) {
                if (!["maxSlotWalKeepSize", "synchronous"].includes(k))
                    problems.push(`pgha:replication.${k}: unknown key; replication has maxSlotWalKeepSize and synchronous`);
            }
            const m = raw.replication.maxSlotWalKeepSize;
            if (m !== undefined) {
                if (typeof m !== "string" || !SIZE.test(m)) {
                    problems.push(
                        `pgha:replication.maxSlotWalKeepSize: '${String(m)}' is not a size such as 10GB (or -1 for no limit): ${set("replication.maxSlotWalKeepSize", "10GB")}`,
                    );
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
        problems.push(
            `pgha:replication.synchronous: true needs at least two servers, otherwise every commit waits forever; add a server or ${set("replication.synchronous", "false")}`,
        );
    }
    return problems;
}

/** pgha:archive: a duration for timeout. */
export function archiveRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const archive = draft.archive;
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
    return problems;
}
