// The top-level keys: a misspelt key would otherwise be ignored silently, and its default used.

import { CONFIG_KEYS, configKey } from "../keys";
import { RawConfig } from "../types";
import { Draft } from "./rule";

/** Every `pgha:*` key must be one of the key table's (keys.ts). */
export function keysRule(raw: RawConfig, _draft: Draft): string[] {
    const problems: string[] = [];
    for (const key of Object.keys(raw)) {
        if (configKey(key) === undefined) {
            problems.push(`pgha:${key}: unknown key; the keys are ${CONFIG_KEYS.map((k) => k.name).join(", ")} (remove it: pulumi config rm pgha:${key})`);
        }
    }
    return problems;
}
