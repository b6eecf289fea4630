// Evaluates the pgha program (or a piece of it) under Pulumi's mock runtime and records every
// resource it declares, with its inputs exactly as the engine would receive them.

import * as pulumi from "@pulumi/pulumi";

// Internal SDK helpers (no public typings): drain the RPC queue, and the secret wrapper's marker.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const rpc = require("@pulumi/pulumi/runtime/rpc") as { specialSigKey: string; specialSecretSig: string };

export interface DeclaredResource {
    type: string;
    name: string;
    inputs: Record<string, unknown>;
    provider?: string;
    custom: boolean;
}

/** An invoke (a provider function such as command:local:run) the program made. */
export interface Invoke {
    token: string;
    inputs: Record<string, unknown>;
}

export interface ProgramRun {
    resources: DeclaredResource[];
    invokes: Invoke[];
    byName(name: string, type?: string): DeclaredResource;
    ofType(type: string): DeclaredResource[];
}

export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[rpc.specialSigKey] === rpc.specialSecretSig;
}

/** Removes secret wrappers, keeping their values (for assertions on what the engine would apply). */
export function unwrapSecrets(v: unknown): unknown {
    if (isSecretValue(v)) return unwrapSecrets(v.value);
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
    return v;
}

/** Every plaintext string in a value, skipping whatever is inside a secret wrapper. */
export function plaintextStrings(v: unknown, out: string[] = []): string[] {
    if (isSecretValue(v)) return out;
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => plaintextStrings(x, out));
    else if (typeof v === "object" && v !== null) Object.values(v).forEach((x) => plaintextStrings(x, out));
    return out;
}

/**
 * Sets the stack config (values as `pulumi config` stores them: objects and lists as JSON text),
 * installs mocks, runs `body` (which declares resources) and waits until every registration is done.
 */
export async function runUnderMocks(
    config: Record<string, unknown>,
    secrets: Record<string, string>,
    body: () => Promise<unknown> | unknown,
    /** Milliseconds the mock provider takes to create a resource (to expose ordering). */
    latency: (type: string, name: string) => number = () => 0,
    /** What an invoke returns (default: its inputs, e.g. command:local:run with no stdout). */
    answer: (token: string, inputs: Record<string, unknown>) => Record<string, unknown> | undefined = () => undefined,
): Promise<ProgramRun> {
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries(config)) all[`pgha:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    for (const [k, v] of Object.entries(secrets)) all[`pgha:${k}`] = v;
    pulumi.runtime.setAllConfig(
        all,
        Object.keys(secrets).map((k) => `pgha:${k}`),
    );
    const resources: DeclaredResource[] = [];
    const invokes: Invoke[] = [];
    await pulumi.runtime.setMocks(
        {
            async newResource(args: pulumi.runtime.MockResourceArgs) {
                const ms = latency(args.type, args.name);
                if (ms > 0) await new Promise((r) => setTimeout(r, ms));
                resources.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider, custom: args.custom ?? true });
                const state: Record<string, unknown> = { ...args.inputs };
                if (state.name === undefined) state.name = `${args.name}-0000000`;
                // a Command's output, as after a run that printed nothing
                if (args.type === "command:local:Command" && state.stdout === undefined) state.stdout = "";
                return { id: `${args.name}-id`, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                invokes.push({ token: args.token, inputs: args.inputs });
                return answer(args.token, args.inputs) ?? args.inputs;
            },
        },
        "pgha",
        "unit",
        false,
    );
    await body();
    await settings.waitForRPCs();
    return {
        resources,
        invokes,
        byName(name: string, type?: string) {
            const r = resources.find((x) => x.name === name && (type === undefined || x.type === type));
            if (!r)
                throw new Error(
                    `no resource named ${name}${type ? ` of type ${type}` : ""}; declared: ${resources.map((x) => `${x.type} ${x.name}`).join(", ")}`,
                );
            return r;
        },
        ofType(type: string) {
            return resources.filter((x) => x.type === type);
        },
    };
}

/** Resolves an Output to its value (unknowns and secrets included) for assertions. */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => resolve(v)));
}
