// The contract between the engine core and the per-type resource implementations.
import type { DockerApi } from "./docker-api";
import type { Props, Value } from "./values";

export interface Goal {
    urn: string;
    type: string;
    /** logical name */
    name: string;
    /** inputs as declared (after ignoreChanges), secrets as SecretValue */
    inputs: Props;
    /** docker host the resource's provider names (docker types only) */
    engine?: string;
}

export interface Existing {
    id: string;
    inputs: Props;
    outputs: Props;
    engine?: string;
}

export interface Ctx {
    docker(host: string): DockerApi;
    /** working directory for local commands (the program directory) */
    programDir: string;
    /** progress output (stderr) */
    log(line: string): void;
    /** replaces every known secret string by [secret] */
    redact(text: string): string;
}

export interface Handler {
    /** Validates and translates the inputs without side effects; throws on any untranslated field. */
    check(goal: Goal): void;
    /** Input paths (of those that differ) that force a replacement, by the provider's rules. */
    replacePaths(diffs: string[], goal: Goal): string[];
    /** True when a replacement must delete the old object first (provider rule, e.g. an explicit name). */
    deleteBeforeReplace(goal: Goal): boolean;
    /** Planned outputs during preview (computed values unknown). */
    previewOutputs(goal: Goal, old?: Existing): Props;
    create(ctx: Ctx, goal: Goal): Promise<{ id: string; outputs: Props }>;
    update(ctx: Ctx, goal: Goal, old: Existing): Promise<{ outputs: Props }>;
    delete(ctx: Ctx, type: string, name: string, old: Existing): Promise<void>;
    /** docker types need an engine */
    readonly usesDocker: boolean;
    /** input paths that are sets in the provider's schema (order is no difference) */
    readonly setFields?: string[];
}

export type { Value };
