// validateConfig() is a pure function from the raw values (as `pulumi config` stores them) to a
// typed, checked PghaConfig. It collects every problem and throws one ConfigError that names each
// key and how to fix it, before the program declares a single resource.

import { ConfigError } from "./error";
import { newDraft, RULES } from "./rules";
import { PghaConfig, RawConfig } from "./types";

/**
 * Checks the raw stack configuration and returns it typed, with defaults applied.
 * Throws a ConfigError naming every problem (key, what is wrong, how to fix it).
 */
export function validateConfig(raw: RawConfig): PghaConfig {
    const draft = newDraft();
    const problems = RULES.flatMap((rule) => rule(raw, draft));
    if (problems.length > 0) throw new ConfigError(problems);
    const {
        network,
        image,
        postgresVersion,
        servers,
        primary,
        postgresql,
        replication,
        archive,
        clients,
        lost,
        rollingRestart,
        failover,
        backup,
        restore,
        cloneFrom,
    } = draft;
    // postgresVersionRule records a version or reports why it could not.
    if (postgresVersion === undefined) throw new Error("pgha: internal error: no PostgreSQL version was recorded, and no problem reported");
    return {
        network,
        image,
        postgresVersion,
        servers,
        primary,
        postgresql,
        replication,
        archive,
        clients,
        lost,
        rollingRestart,
        failover,
        ...(backup ? { backup } : {}),
        ...(restore ? { restore } : {}),
        ...(cloneFrom ? { cloneFrom } : {}),
    };
}
