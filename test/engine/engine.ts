// The test engine: a stand-in for `pulumi up` / `pulumi preview` / `pulumi destroy` (the Pulumi
// CLI cannot be installed here). It runs the real program under Pulumi's mock runtime and, in the
// mock's registerResource, plans and applies each declared resource for real (Docker Engine API,
// local commands), keeping a state file keyed by URN. Test-only; not part of the product.
import * as crypto from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { commandHandler } from "./command-resource";
import { loadStackConfig, type StackConfig } from "./config";
import { DockerApi } from "./docker-api";
import { dockerHandlers } from "./docker-resources";
import { UntranslatedFieldError } from "./fields";
import type { Ctx, Existing, Goal, Handler } from "./handler";
import { readState, secretBox, writeState, type StateEntry, type StateFile } from "./state";
import {
    applyIgnoreChanges,
    diffProps,
    isPlainObject,
    normalizeSets,
    parsePath,
    pathsOverlap,
    SecretValue,
    secretStrings,
    UNKNOWN,
    type Props,
    type SecretBox,
    type Value,
} from "./values";

/* eslint-disable @typescript-eslint/no-require-imports */
const settings = require("@pulumi/pulumi/runtime/settings");
const rpc = require("@pulumi/pulumi/runtime/rpc");
const outputMod = require("@pulumi/pulumi/output");
const stateStore = require("@pulumi/pulumi/runtime/state");
const resproto = require("@pulumi/pulumi/proto/resource_pb");
const structproto = require("google-protobuf/google/protobuf/struct_pb");

export type Operation = "up" | "preview" | "destroy";

export interface EngineOptions {
    op: Operation;
    stack: string;
    statePath: string;
    programDir: string;
    sets: Record<string, unknown>;
    unprotect: boolean;
    json: boolean;
    /** progress sink (stderr by default) */
    log?: (line: string) => void;
}

export type StepOp = "create" | "update" | "replace" | "delete" | "same";

export interface Step {
    op: StepOp;
    urn: string;
    type: string;
    name: string;
    /** input paths that differ (update / replace) */
    diffs?: string[];
    /** input paths (or reasons) that force the replacement */
    replaceReasons?: string[];
    deleteBeforeReplace?: boolean;
    /** delete: the object is left in place (retainOnDelete) */
    retained?: boolean;
    /** delete of the old instance of a replacement */
    replaced?: boolean;
    durationMs?: number;
}

export interface EngineResult {
    steps: Step[];
    summary: Record<string, number>;
    outputs: Record<string, unknown>;
    errors: string[];
}

const SYMBOL: Record<StepOp, string> = { create: "+", update: "~", replace: "+-", delete: "-", same: "=" };

const handlers: Record<string, Handler> = {
    ...dockerHandlers,
    "command:local:Command": commandHandler,
};

const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

// ------------------------------------------------------------------ value conversion

function fromPulumi(v: any, where: string): Value {
    if (v === undefined || v === null) return null;
    if (v === outputMod.unknown || outputMod.isUnknown(v)) return UNKNOWN;
    if (rpc.isRpcSecret(v)) return new SecretValue(fromPulumi(v.value, where));
    if (pulumi.asset.Asset.isInstance(v) || pulumi.asset.Archive.isInstance(v)) {
        throw new UntranslatedFieldError(`${where}: assets and archives are not supported by the test engine`);
    }
    if (pulumi.Resource.isInstance(v)) {
        throw new UntranslatedFieldError(`${where}: resource references are not supported by the test engine`);
    }
    if (Array.isArray(v)) return v.map((e, i) => fromPulumi(e, `${where}[${i}]`));
    if (typeof v === "object") {
        const o: Record<string, Value> = {};
        for (const [k, e] of Object.entries(v)) if (e !== undefined) o[k] = fromPulumi(e, `${where}.${k}`);
        return o;
    }
    return v;
}

function toPulumi(v: Value | undefined): any {
    if (v === UNKNOWN) return outputMod.unknown;
    if (v instanceof SecretValue) {
        const inner = v.value === undefined ? outputMod.unknown : toPulumi(v.value);
        return { [rpc.specialSigKey]: rpc.specialSecretSig, value: inner };
    }
    if (Array.isArray(v)) return v.map(toPulumi);
    if (isPlainObject(v)) {
        const o: Record<string, any> = {};
        for (const [k, e] of Object.entries(v)) o[k] = toPulumi(e as Value);
        return o;
    }
    return v;
}

/** Stack output value for printing: secrets as "[secret]", unknowns as "[unknown]". */
async function resolveExport(v: unknown): Promise<{ shown: unknown; stored: unknown; secret: boolean }> {
    const o: any = pulumi.output(v as any);
    const known: boolean = await o.isKnown;
    const secret: boolean = (await o.isSecret) === true;
    const value = await o.promise(true);
    const clean = (x: any): any => {
        if (outputMod.isUnknown(x)) return "[unknown]";
        if (Array.isArray(x)) return x.map(clean);
        if (x && typeof x === "object") {
            const r: Record<string, any> = {};
            for (const [k, e] of Object.entries(x)) if (e !== undefined) r[k] = clean(e);
            return r;
        }
        return x;
    };
    if (!known) return { shown: "[unknown]", stored: undefined, secret };
    if (secret) return { shown: "[secret]", stored: undefined, secret };
    const c = clean(value);
    return { shown: c, stored: c, secret };
}

// ------------------------------------------------------------------ options of a registration

interface RegOptions {
    protect: boolean;
    retainOnDelete: boolean;
    ignoreChanges: string[];
    deleteBeforeReplace: boolean;
    replaceOnChanges: string[];
    dependencies: string[];
    provider: string;
    additionalSecretOutputs: string[];
}

function readOptions(req: any, what: string): RegOptions {
    const unsupported = (opt: string) => {
        throw new UntranslatedFieldError(`${what}: resource option ${opt} is not supported by the test engine`);
    };
    if ((req.getAliasesList?.() ?? []).length > 0 || (req.getAliasurnsList?.() ?? []).length > 0) unsupported("aliases");
    if (req.getImportid()) unsupported("import");
    if (req.getDeletedwith?.()) unsupported("deletedWith");
    if ((req.getReplaceWithList?.() ?? []).length > 0) unsupported("replaceWith");
    if (req.hasReplacementTrigger?.() && req.getReplacementTrigger()) unsupported("replacementTrigger");
    if (req.getRemote()) unsupported("remote components");
    const hooks = req.getHooks?.();
    if (hooks) {
        const any = ["BeforeCreate", "AfterCreate", "BeforeUpdate", "AfterUpdate", "BeforeDelete", "AfterDelete"].some(
            (h) => (hooks[`get${h.charAt(0)}${h.substring(1).toLowerCase()}List`]?.() ?? []).length > 0,
        );
        if (any) unsupported("hooks");
    }
    const ct = req.getCustomtimeouts?.();
    if (ct && (ct.getCreate() || ct.getUpdate() || ct.getDelete() || ct.getRead?.())) unsupported("customTimeouts");
    if ((req.getTransformsList?.() ?? []).length > 0) unsupported("transforms");
    const envMap = req.getEnvvarmappingsMap?.();
    if (envMap && envMap.getLength() > 0) unsupported("envVarMappings");
    return {
        protect: req.getProtect() === true,
        retainOnDelete: req.getRetainondelete() === true,
        ignoreChanges: req.getIgnorechangesList(),
        deleteBeforeReplace: req.getDeletebeforereplace() === true,
        replaceOnChanges: req.getReplaceonchangesList(),
        dependencies: req.getDependenciesList(),
        provider: req.getProvider(),
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
    };
}

// ------------------------------------------------------------------ deletion order

/** Dependants first: an entry is deleted only once nothing else in the set depends on it. */
export function deletionOrder(entries: StateEntry[]): StateEntry[] {
    const remaining = [...entries];
    const out: StateEntry[] = [];
    const refs = (e: StateEntry) => {
        const r = new Set(e.dependencies);
        if (e.parent) r.add(e.parent);
        if (e.provider) r.add(e.provider.split("::").slice(0, -1).join("::"));
        return r;
    };
    while (remaining.length) {
        // candidates: no remaining entry (other than itself) refers to their URN
        const cands = remaining.filter((e) => !remaining.some((o) => o !== e && refs(o).has(e.urn) && o.urn !== e.urn));
        const pick = (cands.length ? cands : remaining).sort((a, b) => b.sequence - a.sequence)[0];
        out.push(pick);
        remaining.splice(remaining.indexOf(pick), 1);
    }
    return out;
}

// ------------------------------------------------------------------ the deployment

class Deployment {
    readonly log: (line: string) => void;
    readonly config: StackConfig;
    readonly state: StateFile;
    readonly box: SecretBox;
    readonly preview: boolean;
    private readonly dockers = new Map<string, DockerApi>();
    private readonly secrets = new Set<string>();
    /** live entries of the previous state, by URN */
    private readonly olds = new Map<string, StateEntry>();
    /** entries registered in this run, in registration order */
    private readonly news = new Map<string, StateEntry>();
    /** old instances awaiting deletion (create-before-delete replacements, earlier failed runs) */
    private pending: StateEntry[] = [];
    /** URNs whose old instance was already deleted (delete-before-replace) */
    private readonly goneOlds = new Set<string>();
    private readonly providers = new Map<string, string>(); // provider ref → docker host
    readonly steps: Step[] = [];
    readonly errors: string[] = [];
    private failed: Error | undefined;
    private readonly seen = new Set<string>();

    constructor(readonly opts: EngineOptions) {
        this.log = opts.log ?? ((l) => process.stderr.write(l + "\n"));
        this.preview = opts.op === "preview";
        this.config = loadStackConfig(opts.programDir, opts.stack, opts.sets);
        this.state = readState(opts.statePath, this.config.project, opts.stack);
        this.box = secretBox(opts.statePath, this.state.salt, !this.preview);
        for (const k of Object.keys(this.config.values)) {
            if (k.startsWith("docker:") && k !== "docker:host") {
                throw new UntranslatedFieldError(`config ${k}: default docker provider settings other than docker:host are not supported by the test engine`);
            }
        }
        for (const s of this.config.secretValues) if (s.length >= 4) this.secrets.add(s);
        for (const e of this.state.resources) {
            if (e.pendingDelete) this.pending.push(e);
            else this.olds.set(e.urn, e);
        }
        this.ctx = {
            docker: (host: string) => {
                let d = this.dockers.get(host);
                if (!d) {
                    d = new DockerApi(host);
                    this.dockers.set(host, d);
                }
                return d;
            },
            programDir: opts.programDir,
            log: (l) => this.log(`[engine] ${l}`),
            redact: (text: string) => {
                let t = text;
                for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) t = t.split(s).join("[secret]");
                return t;
            },
        };
    }

    // ---------------------------------------------------------- context for handlers

    readonly ctx: Ctx;

    private learnSecrets(v: unknown) {
        for (const s of secretStrings(v)) this.secrets.add(s);
    }

    // ---------------------------------------------------------- state persistence

    persist() {
        if (this.preview) return;
        const resources: StateEntry[] = [...this.news.values()];
        for (const [urn, e] of this.olds) if (!this.news.has(urn) && !this.goneOlds.has(urn)) resources.push(e);
        resources.push(...this.pending);
        this.state.resources = resources;
        writeState(this.opts.statePath, this.state);
    }

    private existing(e: StateEntry): Existing {
        return {
            id: e.id ?? "",
            inputs: this.box.load(e.inputs) as Props,
            outputs: this.box.load(e.outputs) as Props,
            engine: e.engine,
        };
    }

    private record(step: Step) {
        this.steps.push(step);
        const sym = SYMBOL[step.op];
        const extra: string[] = [];
        if (step.durationMs !== undefined) extra.push(`(${(step.durationMs / 1000).toFixed(1)}s)`);
        if (step.diffs?.length) extra.push(`[diff: ${step.diffs.join(", ")}]`);
        if (step.op === "replace") extra.push(step.deleteBeforeReplace ? "[delete-before-replace]" : "[create-before-delete]");
        if (step.retained) extra.push("[retained, not deleted]");
        if (step.replaced) extra.push("[original of a replacement]");
        this.log(`[engine] ${sym} ${step.op} ${step.type} ${step.name} ${extra.join(" ")}`.trimEnd());
    }

    private fail(e: unknown) {
        const err = e instanceof Error ? e : new Error(String(e));
        if (!this.failed) this.failed = err;
        const msg = this.ctx.redact(err.message);
        if (!this.errors.includes(msg)) this.errors.push(msg);
    }

    // ---------------------------------------------------------- providers

    private dockerHostFor(providerRef: string, what: string): string {
        if (!providerRef) {
            const cfg = this.config.values["docker:host"];
            return cfg ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST;
        }
        const host = this.providers.get(providerRef);
        if (host === undefined) throw new Error(`${what}: unknown provider reference ${providerRef}`);
        return host;
    }

    // ---------------------------------------------------------- registration (the mock monitor)

    async register(req: any, urn: string): Promise<{ id?: string; state: any }> {
        const type: string = req.getType();
        const name: string = req.getName();
        const what = `${type} ${name}`;
        if (this.seen.has(urn)) throw new Error(`Duplicate resource URN '${urn}'; try giving it a unique name`);
        this.seen.add(urn);
        if (this.failed && !this.preview) throw new Error(`${what}: not applied because an earlier step failed`);
        try {
            const opts = readOptions(req, what);
            const inputs = fromPulumi(rpc.deserializeProperties(req.getObject(), true), what) as Props;
            this.learnSecrets(inputs);
            const custom: boolean = req.getCustom();
            const base = {
                urn,
                type,
                name,
                custom,
                provider: opts.provider,
                parent: req.getParent() ?? "",
                dependencies: opts.dependencies,
                protect: opts.protect,
                retainOnDelete: opts.retainOnDelete,
                deleteBeforeReplace: opts.deleteBeforeReplace || undefined,
            };
            const old = this.olds.get(urn);
            if (!custom) return this.registerComponent(base, old, inputs);
            if (type.startsWith("pulumi:providers:")) return this.registerProvider(base, old, inputs, req.getName());
            return await this.registerCustom(base, old, inputs, opts);
        } catch (e) {
            this.fail(e);
            throw e;
        }
    }

    private registerComponent(base: any, old: StateEntry | undefined, inputs: Props) {
        const entry: StateEntry = {
            ...base,
            inputs: this.box.store(inputs) as any,
            outputs: {},
            sequence: old?.sequence ?? this.state.nextSequence++,
        };
        this.news.set(base.urn, entry);
        this.record({ op: old ? "same" : "create", urn: base.urn, type: base.type, name: base.name });
        this.persist();
        return { id: undefined, state: {} };
    }

    private registerProvider(base: any, old: StateEntry | undefined, inputs: Props, name: string) {
        const pkg = base.type.substring("pulumi:providers:".length);
        const allowed = pkg === "docker" ? ["host", "version", "pluginDownloadURL"] : ["version", "pluginDownloadURL"];
        for (const [k, v] of Object.entries(inputs)) {
            if (v !== null && v !== undefined && !allowed.includes(k)) {
                throw new UntranslatedFieldError(`${base.type} ${name}: input ${k} is not translated by the test engine`);
            }
        }
        if (!["docker", "command"].includes(pkg)) {
            throw new UntranslatedFieldError(`${base.type} ${name}: provider package ${pkg} is not supported by the test engine`);
        }
        let host: string | undefined;
        if (pkg === "docker") {
            const h = inputs.host instanceof SecretValue ? inputs.host.value : inputs.host;
            if (h === UNKNOWN) throw new Error(`${base.type} ${name}: host is unknown during preview`);
            host = typeof h === "string" && h !== "" ? h : DEFAULT_DOCKER_HOST;
            new DockerApi(host); // validates the URL (throws for ssh://)
        }
        const id = old?.id ?? crypto.randomUUID();
        const diffs = old ? diffProps(this.box, this.box.load(old.inputs) as Props, inputs) : [];
        const entry: StateEntry = {
            ...base,
            id,
            engine: host,
            inputs: this.box.store(inputs) as any,
            outputs: this.box.store(inputs) as any,
            sequence: old?.sequence ?? this.state.nextSequence++,
        };
        if (host) this.providers.set(`${base.urn}::${id}`, host);
        this.news.set(base.urn, entry);
        this.record({ op: !old ? "create" : diffs.length ? "update" : "same", urn: base.urn, type: base.type, name, diffs });
        this.persist();
        return { id, state: toPulumi(inputs) };
    }

    private async registerCustom(base: any, old: StateEntry | undefined, declared: Props, opts: RegOptions) {
        const { urn, type, name } = base;
        const handler = handlers[type];
        if (!handler) throw new UntranslatedFieldError(`${type} ${name}: resource type ${type} is not supported by the test engine`);
        const engine = handler.usesDocker ? this.dockerHostFor(opts.provider, `${type} ${name}`) : undefined;
        if (engine) new DockerApi(engine); // ssh:// and other hosts fail loudly here

        let existing: Existing | undefined;
        let inputs = declared;
        let diffs: string[] = [];
        let replaceReasons: string[] = [];
        if (old) {
            existing = this.existing(old);
            inputs = applyIgnoreChanges(existing.inputs, declared, opts.ignoreChanges);
            diffs = diffProps(this.box, normalizeSets(existing.inputs, handler.setFields ?? []), normalizeSets(inputs, handler.setFields ?? []));
            replaceReasons = handler.replacePaths(diffs, { urn, type, name, inputs, engine });
            for (const pat of opts.replaceOnChanges) {
                const ps = parsePath(pat);
                for (const d of diffs) if (pathsOverlap(ps, parsePath(d)) && !replaceReasons.includes(d)) replaceReasons.push(d);
            }
            if (handler.usesDocker && old.engine !== engine) {
                diffs.push("(docker host)");
                replaceReasons.push(`(docker host ${old.engine} → ${engine})`);
            }
        }
        const goal: Goal = { urn, type, name, inputs, engine };
        handler.check(goal);

        const asSecretOutputs = (o: Props): Props => {
            const r: Props = { ...o };
            for (const k of opts.additionalSecretOutputs) {
                if (k in r && !(r[k] instanceof SecretValue)) r[k] = new SecretValue(r[k]);
            }
            return r;
        };
        // Secrets are kept as hashes; a command's also as ciphertext, because its delete (and its
        // update's PULUMI_COMMAND_STDOUT) needs the old values. Docker objects need no old secret.
        const encrypt = !handler.usesDocker;
        const entryFor = (id: string | undefined, outputs: Props, seq: number): StateEntry => {
            this.learnSecrets(outputs);
            return {
                ...base,
                id,
                engine,
                inputs: this.box.store(normalizeSets(inputs, handler.setFields ?? []), encrypt) as any,
                outputs: this.box.store(outputs, encrypt) as any,
                sequence: seq,
            };
        };

        // ---- same
        if (old && existing && diffs.length === 0) {
            const entry = { ...old, ...base, engine };
            this.news.set(urn, entry);
            this.record({ op: "same", urn, type, name });
            this.persist();
            // inputs are equal to the recorded ones: the declared values stand for the recorded ones
            // (secret inputs of docker objects are recorded as hashes only)
            const outputs = handler.usesDocker ? { ...existing.outputs, ...asSecretOutputs(inputs) } : existing.outputs;
            return { id: old.id, state: toPulumi(outputs) };
        }

        const started = Date.now();
        // ---- create
        if (!old) {
            if (this.preview) {
                this.record({ op: "create", urn, type, name });
                return { id: undefined, state: toPulumi(asSecretOutputs(handler.previewOutputs(goal))) };
            }
            const res = await handler.create(this.ctx, goal);
            const outputs = asSecretOutputs(res.outputs);
            this.news.set(urn, entryFor(res.id, outputs, this.state.nextSequence++));
            this.persist();
            this.record({ op: "create", urn, type, name, durationMs: Date.now() - started });
            return { id: res.id, state: toPulumi(outputs) };
        }

        // ---- update
        if (replaceReasons.length === 0) {
            if (this.preview) {
                this.record({ op: "update", urn, type, name, diffs });
                const planned = { ...existing!.outputs, ...handler.previewOutputs(goal, existing) };
                return { id: old.id, state: toPulumi(asSecretOutputs(planned)) };
            }
            const res = await handler.update(this.ctx, goal, existing!);
            const outputs = asSecretOutputs(res.outputs);
            this.news.set(urn, entryFor(old.id, outputs, old.sequence));
            this.persist();
            this.record({ op: "update", urn, type, name, diffs, durationMs: Date.now() - started });
            return { id: old.id, state: toPulumi(outputs) };
        }

        // ---- replace
        const dbr = opts.deleteBeforeReplace || handler.deleteBeforeReplace(goal);
        if (opts.protect && old.protect && !this.opts.unprotect) {
            const msg =
                `unable to replace resource "${urn}"\nas it is currently marked for protection. To unprotect the resource, ` +
                "remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`";
            if (this.preview) {
                this.fail(new Error(msg));
                this.record({ op: "replace", urn, type, name, diffs, replaceReasons, deleteBeforeReplace: dbr });
                return { id: undefined, state: toPulumi(asSecretOutputs(handler.previewOutputs(goal))) };
            }
            throw new Error(msg);
        }
        if (this.preview) {
            this.record({ op: "replace", urn, type, name, diffs, replaceReasons, deleteBeforeReplace: dbr });
            return { id: undefined, state: toPulumi(asSecretOutputs(handler.previewOutputs(goal))) };
        }
        if (dbr) {
            await this.deleteEntry(old, handler, true);
            this.goneOlds.add(urn);
            this.persist();
            const res = await handler.create(this.ctx, goal);
            const outputs = asSecretOutputs(res.outputs);
            this.news.set(urn, entryFor(res.id, outputs, this.state.nextSequence++));
            this.persist();
            this.record({ op: "replace", urn, type, name, diffs, replaceReasons, deleteBeforeReplace: true, durationMs: Date.now() - started });
            return { id: res.id, state: toPulumi(outputs) };
        }
        const res = await handler.create(this.ctx, goal);
        const outputs = asSecretOutputs(res.outputs);
        this.goneOlds.add(urn);
        this.pending.push({ ...old, pendingDelete: true });
        this.news.set(urn, entryFor(res.id, outputs, this.state.nextSequence++));
        this.persist();
        this.record({ op: "replace", urn, type, name, diffs, replaceReasons, deleteBeforeReplace: false, durationMs: Date.now() - started });
        return { id: res.id, state: toPulumi(outputs) };
    }

    // ---------------------------------------------------------- deletes

    private async deleteEntry(e: StateEntry, handler: Handler | undefined, replaced: boolean) {
        const started = Date.now();
        if (e.custom && !e.type.startsWith("pulumi:providers:") && !e.retainOnDelete) {
            const h = handler ?? handlers[e.type];
            if (!h) throw new Error(`${e.type} ${e.name}: resource type is not supported by the test engine (cannot delete)`);
            await h.delete(this.ctx, e.type, e.name, this.existing(e));
        }
        this.record({
            op: "delete",
            urn: e.urn,
            type: e.type,
            name: e.name,
            retained: e.retainOnDelete && e.custom ? true : undefined,
            replaced: replaced || undefined,
            durationMs: Date.now() - started,
        });
    }

    protectedDeleteError(e: StateEntry) {
        return new Error(
            `unable to delete resource "${e.urn}"\nas it is currently marked for protection. To unprotect the resource, ` +
                "either remove the `protect` flag from the resource in your Pulumi program or use the command:\n" +
                `\`pulumi state unprotect ${e.urn}\``,
        );
    }

    /** Deletes (or plans to delete) the given entries, dependants first. */
    async deleteAll(entries: StateEntry[]) {
        const ordered = deletionOrder(entries);
        for (const e of ordered) {
            if (this.preview) {
                this.record({ op: "delete", urn: e.urn, type: e.type, name: e.name, retained: e.retainOnDelete && e.custom ? true : undefined, replaced: e.pendingDelete || undefined });
                continue;
            }
            await this.deleteEntry(e, undefined, !!e.pendingDelete);
            if (e.pendingDelete) this.pending = this.pending.filter((p) => p !== e);
            else {
                this.olds.delete(e.urn);
                this.news.delete(e.urn);
            }
            this.persist();
        }
    }

    /** Pending deletes left by an earlier failed run are deleted first, like Pulumi does. */
    async deletePendingFromEarlierRuns() {
        if (this.pending.length === 0) return;
        await this.deleteAll([...this.pending]);
    }

    /** Resources of the old state not declared in this run, plus the originals of replacements. */
    async deleteUndeclared() {
        const undeclared = [...this.olds.values()].filter((e) => !this.seen.has(e.urn));
        if (!this.opts.unprotect) {
            const prot = undeclared.filter((e) => e.protect);
            if (prot.length) {
                for (const p of prot) this.fail(this.protectedDeleteError(p));
                throw this.failed!;
            }
        }
        await this.deleteAll([...undeclared, ...this.pending]);
    }

    // ---------------------------------------------------------- running the program

    async runProgram(): Promise<Record<string, unknown>> {
        const cfg = this.config;
        pulumi.runtime.setAllConfig(cfg.values, cfg.secretKeys);
        await pulumi.runtime.setMocks(
            {
                newResource: () => {
                    throw new Error("internal: the test engine's monitor handles registrations");
                },
                call: (args: pulumi.runtime.MockCallArgs) => {
                    const e: any = new UntranslatedFieldError(`invoke ${args.token} is not supported by the test engine`);
                    e.details = e.message; // the runtime reports invoke errors by their gRPC `details`
                    this.fail(e);
                    throw e;
                },
            },
            cfg.project,
            this.opts.stack,
            this.preview,
            "organization",
        );
        // resources in inputs are sent as their IDs (no resource references)
        stateStore.getStore().supportsResourceReferences = false;
        const monitor = settings.getMonitor();
        monitor.registerResource = (req: any, cb: (err: any, resp?: any) => void) => {
            const urn: string = monitor.newUrn(req.getParent(), req.getType(), req.getName());
            this.inFlight++;
            const reply = (err: any, resp?: any) => {
                this.inFlight--;
                cb(err, resp);
            };
            this.register(req, urn).then(
                async (result) => {
                    let resp: any;
                    try {
                        const serialized = await rpc.serializeProperties("", result.state ?? {});
                        monitor.resources.set(urn, { urn, id: result.id ?? null, state: serialized });
                        resp = new resproto.RegisterResourceResponse();
                        resp.setUrn(urn);
                        resp.setId(result.id || "");
                        resp.setObject(structproto.Struct.fromJavaScript(serialized));
                    } catch (e) {
                        this.fail(e);
                        reply(e, undefined);
                        return;
                    }
                    reply(null, resp);
                },
                (err) => reply(err, undefined),
            );
        };
        monitor.readResource = (req: any, cb: (err: any) => void) => {
            const e: any = new UntranslatedFieldError(
                `${req.getType()} ${req.getName()}: reading existing resources (.get) is not supported by the test engine`,
            );
            e.details = e.message;
            this.fail(e);
            cb(e);
        };

        const onRejection = (e: unknown) => this.fail(e);
        process.on("unhandledRejection", onRejection);
        const prevCwd = process.cwd();
        // keeps the process alive while registrations are pending (a drained event loop would exit silently)
        const keepAlive = setInterval(() => undefined, 1 << 30);
        const exportsOut: Record<string, unknown> = {};
        try {
            process.chdir(this.opts.programDir);
            let mod: any;
            try {
                mod = require(cfg.main);
            } catch (e: any) {
                if (e?.code === "ERR_REQUIRE_ESM" || e?.code === "ERR_REQUIRE_ASYNC_MODULE") {
                    mod = await import(cfg.main);
                } else throw e;
            }
            let exported: Record<string, unknown> = {};
            const keys = Object.keys(mod).filter((k) => k !== "__esModule");
            if (typeof mod === "function") exported = (await mod()) ?? {};
            else if (keys.length === 1 && keys[0] === "default" && typeof mod.default === "function") {
                exported = (await mod.default()) ?? {};
            } else {
                for (const k of keys) if (k !== "default") exported[k] = mod[k];
            }
            // every registration (and its apply) must be finished before outputs are read: outputs of
            // resources that failed, or never registered because a dependency failed, never resolve
            await this.waitForRegistrations();
            if (!this.failed) {
                for (const [k, v] of Object.entries(exported)) {
                    if (v === undefined) continue;
                    try {
                        let timer: NodeJS.Timeout | undefined;
                        const timeout = new Promise<never>((_, rej) => {
                            timer = setTimeout(() => rej(new Error(`stack output ${k} never resolved`)), 30_000);
                        });
                        exportsOut[k] = await Promise.race([resolveExport(v), timeout]);
                        clearTimeout(timer);
                    } catch (e) {
                        this.fail(e);
                    }
                }
                await this.waitForRegistrations();
            }
        } catch (e) {
            this.fail(e);
        } finally {
            process.chdir(prevCwd);
            // let late rejections surface before we detach the handler
            await new Promise((r) => setImmediate(r));
            process.off("unhandledRejection", onRejection);
            clearInterval(keepAlive);
        }
        return exportsOut;
    }

    get failure() {
        return this.failed;
    }

    private inFlight = 0;

    /**
     * Waits until every registration is answered. After a failure, resources that depend on a
     * resource that never registered would wait forever (the Pulumi language host ends the program
     * on the first error): once nothing is in flight for a second, the run stops waiting.
     */
    private async waitForRegistrations() {
        const all = settings.waitForRPCs().then(() => "done");
        let quiet = 0;
        for (;;) {
            const r = await Promise.race([all, new Promise((res) => setTimeout(() => res("tick"), 250))]);
            if (r === "done") return;
            if (this.failed && this.inFlight === 0) {
                if (++quiet >= 4) return;
            } else quiet = 0;
        }
    }

    summary(): Record<string, number> {
        const s: Record<string, number> = {};
        for (const st of this.steps) {
            if (st.op === "delete" && st.replaced) continue; // counted within its replace
            s[st.op] = (s[st.op] ?? 0) + 1;
        }
        return s;
    }
}

function summaryLine(s: Record<string, number>, preview: boolean): string {
    const parts: string[] = [];
    const names: [StepOp, string, string][] = [
        ["create", "created", "to create"],
        ["update", "updated", "to update"],
        ["replace", "replaced", "to replace"],
        ["delete", "deleted", "to delete"],
    ];
    for (const [op, done, planned] of names) if (s[op]) parts.push(`${s[op]} ${preview ? planned : done}`);
    parts.push(`${s.same ?? 0} unchanged`);
    return `Resources: ${parts.join(", ")}`;
}

// ------------------------------------------------------------------ entry points

export async function runEngine(opts: EngineOptions): Promise<EngineResult> {
    const d = new Deployment(opts);
    const finish = (outputs: Record<string, unknown>): EngineResult => ({
        steps: d.steps,
        summary: d.summary(),
        outputs,
        errors: d.errors,
    });

    if (opts.op === "destroy") {
        const all = [...d.state.resources];
        if (!opts.unprotect) {
            const prot = all.filter((e) => e.protect);
            if (prot.length) {
                for (const p of prot) d.errors.push(d.protectedDeleteError(p).message);
                throw new EngineError(d.errors.join("\n"), finish({}));
            }
        }
        try {
            await d.deleteAll(all);
        } catch (e) {
            d.persist();
            throw new EngineError(d.ctx.redact((e as Error).message), finish({}));
        }
        d.state.outputs = {};
        d.persist();
        d.log(`[engine] ${summaryLine(d.summary(), false)}`);
        return finish({});
    }

    if (opts.op === "up") {
        try {
            await d.deletePendingFromEarlierRuns();
        } catch (e) {
            throw new EngineError(d.ctx.redact((e as Error).message), finish({}));
        }
    }
    const exported = await d.runProgram();
    if (d.failure) {
        d.persist();
        throw new EngineError(d.errors.join("\n"), finish({}));
    }
    try {
        await d.deleteUndeclared();
    } catch (e) {
        d.persist();
        if (!d.errors.length) d.errors.push(d.ctx.redact((e as Error).message));
        throw new EngineError(d.errors.join("\n"), finish({}));
    }
    const shown: Record<string, unknown> = {};
    const stored: Record<string, unknown> = {};
    for (const [k, r] of Object.entries(exported) as [string, any][]) {
        shown[k] = r.shown;
        if (r.stored !== undefined) stored[k] = r.stored;
    }
    if (!d.preview) {
        d.state.outputs = stored;
        d.persist();
    }
    d.log(`[engine] ${summaryLine(d.summary(), d.preview)}`);
    if (d.failure) throw new EngineError(d.errors.join("\n"), finish(shown));
    return finish(shown);
}

export class EngineError extends Error {
    constructor(
        message: string,
        readonly result: EngineResult,
    ) {
        super(message);
    }
}

export { summaryLine };
export const _internal = { fromPulumi, toPulumi, deletionOrder };
export const defaultProgramDir = path.resolve(__dirname, "..", "..");
