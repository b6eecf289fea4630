// The two passwords, checked apart from the rest: the reader never puts them in the raw config,
// and no message may echo them.

import { ConfigError } from "./error";
import { SecretKey } from "./keys";

/** A secret key's value as the stack holds it, and whether it was set with --secret. */
export interface SecretValue {
    readonly value: string | undefined;
    readonly secret: boolean;
}

/**
 * Checks the two passwords (plaintext here, before they are wrapped as secrets): present, stored
 * as secrets, and usable in a libpq password file.
 */
export function validateSecrets(values: Readonly<Record<SecretKey, SecretValue>>): void {
    const problems: string[] = [];
    for (const [key, { value, secret }] of Object.entries(values)) {
        const fix = `pulumi config set --secret pgha:${key} <password>`;
        if (value === undefined || value === "") problems.push(`pgha:${key}: missing; set it as a secret: ${fix}`);
        else if (!secret) problems.push(`pgha:${key}: is stored in plaintext in the stack config; set it again as a secret: ${fix}`);
        else if (/[\n\r\0]/.test(value))
            problems.push(`pgha:${key}: contains a line break or NUL, which a libpq password file cannot hold; choose another: ${fix}`);
        else if (value.length < 8) problems.push(`pgha:${key}: shorter than 8 characters; choose a longer one: ${fix}`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
}
