// Reads the pgha stack config from Pulumi and validates it (see config/) before anything is declared.

import * as pulumi from "@pulumi/pulumi";
import { configKey, PghaConfig, RawConfig, SECRET_KEYS, SecretKey, SecretValue, validateConfig, validateSecrets } from "./config";

export interface LoadedConfig {
    readonly config: PghaConfig;
    readonly superuserPassword: pulumi.Output<string>;
    readonly replicatorPassword: pulumi.Output<string>;
}

const NAMESPACE = "pgha";

// Whether a key was set with --secret. The SDK knows (PULUMI_CONFIG_SECRET_KEYS) but does not
// export the check in its typings; without it, the plaintext check is skipped, never faked.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdkConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret?: (k: string) => boolean };
function isConfigSecret(key: string): boolean {
    return typeof sdkConfig.isConfigSecret === "function" ? sdkConfig.isConfigSecret(key) : true;
}

/**
 * Every `pgha:*` key in the stack config, parsed as the key table says (config/keys.ts: objects
 * and lists as JSON). Secret keys stand as "(secret)": their values are read by loadConfig alone.
 * An unknown key is kept as its text, for the validator to refuse by name.
 */
export function readRawConfig(): RawConfig {
    const raw: Record<string, unknown> = {};
    const all = pulumi.runtime.allConfig();
    for (const [fullKey, text] of Object.entries(all)) {
        const [ns, key] = fullKey.split(":", 2);
        if (ns !== NAMESPACE || key === undefined) continue;
        const spec = configKey(key);
        if (spec?.secret) {
            raw[key] = "(secret)";
            continue;
        }
        if (spec?.parse === "json") {
            try {
                raw[key] = JSON.parse(text);
            } catch {
                raw[key] = text;
            }
        } else {
            raw[key] = text;
        }
    }
    return raw;
}

export function loadConfig(): LoadedConfig {
    const raw = readRawConfig();
    const secrets = Object.fromEntries(
        SECRET_KEYS.map((k) => [k, { value: pulumi.runtime.getConfig(`${NAMESPACE}:${k}`), secret: isConfigSecret(`${NAMESPACE}:${k}`) }]),
    ) as Record<SecretKey, SecretValue>;
    // Both checks run before a single resource is declared; their errors name every bad key.
    const config = validateConfig(raw);
    validateSecrets(secrets);
    return {
        config,
        superuserPassword: pulumi.secret(secrets.superuserPassword.value!),
        replicatorPassword: pulumi.secret(secrets.replicatorPassword.value!),
    };
}
