// The PostgreSQL major versions pgha supports, and each one's postgresql.conf parameters
// (pg_settings: name -> [context, type]). The tables are generated from real server binaries into
// pg-parameters/pg<major>.ts by scripts/gen-pg-parameters.sh, which reads SUPPORTED_MAJORS below:
// to support another major, add it here, run `scripts/gen-pg-parameters.sh <major>` and import its
// table. The validator (config/rules/postgresql.ts) checks pgha:postgresql against the configured
// major's table; needsRestart() tells a reload from a restart.
// This file imports nothing from config: config imports it.

import * as pg15 from "./pg-parameters/pg15";
import * as pg17 from "./pg-parameters/pg17";
import * as pg18 from "./pg-parameters/pg18";

/** The major versions pgha supports, oldest first (scripts/gen-pg-parameters.sh reads this line). */
export const SUPPORTED_MAJORS = [15, 17, 18] as const;

/** A supported PostgreSQL major version. */
export type PgMajor = (typeof SUPPORTED_MAJORS)[number];

/** One major version's parameters, as its pg_settings lists them (context 'internal' left out: those cannot be set). */
export interface PgParameterTable {
    /** The release the table was generated from, e.g. "17.12". */
    readonly version: string;
    /** Parameter name (as pg_settings spells it) -> [context, type], e.g. shared_buffers -> ["postmaster", "integer"]. */
    readonly parameters: Readonly<Record<string, readonly [context: string, type: string]>>;
}

export const PG_PARAMETERS_BY_MAJOR: Readonly<Record<PgMajor, PgParameterTable>> = {
    15: { version: pg15.VERSION, parameters: pg15.PARAMETERS },
    17: { version: pg17.VERSION, parameters: pg17.PARAMETERS },
    18: { version: pg18.VERSION, parameters: pg18.PARAMETERS },
};

/** Whether `n` is a supported major version (a number: 17, not "17"). */
export function isPgMajor(n: unknown): n is PgMajor {
    return (SUPPORTED_MAJORS as readonly unknown[]).includes(n);
}

/** Whether `major` has a parameter of that exact name (own keys only: `constructor` is no parameter). */
export function hasParameter(major: PgMajor, name: string): boolean {
    return Object.hasOwn(PG_PARAMETERS_BY_MAJOR[major].parameters, name);
}

/**
 * The parameter's context in `major` (when a change takes effect): 'postmaster' (a server
 * restart), 'sighup' (a reload), 'superuser-backend' / 'backend' (a reload, for new sessions),
 * 'superuser' / 'user' (a reload, or SET). Undefined for a name the table does not hold: a custom
 * `ext.name` parameter, or one that version does not have.
 */
export function parameterContext(major: PgMajor, name: string): string | undefined {
    return hasParameter(major, name) ? PG_PARAMETERS_BY_MAJOR[major].parameters[name][0] : undefined;
}

/**
 * Whether a change of the parameter in postgresql.conf takes a server restart rather than a
 * reload: true for context 'postmaster', and true whenever the context is unknown (a custom
 * dotted name such as `pg_stat_statements.max` belongs to a library that may read it only at
 * start: conservative).
 */
export function needsRestart(major: PgMajor, name: string): boolean {
    const context = parameterContext(major, name);
    return context === undefined || context === "postmaster";
}

/**
 * The parameters every supported major has, with their context and type as the oldest one lists
 * them: what pgha may render whatever the version (test/templates.test.ts checks its own against it).
 */
export const PG_PARAMETERS_IN_EVERY_MAJOR: Readonly<Record<string, readonly [context: string, type: string]>> = Object.fromEntries(
    Object.entries(PG_PARAMETERS_BY_MAJOR[SUPPORTED_MAJORS[0]].parameters).filter(([name]) => SUPPORTED_MAJORS.every((m) => hasParameter(m, name))),
);
