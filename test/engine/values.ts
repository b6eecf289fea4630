// Values of resource properties inside the test engine: plain JSON plus two markers,
// SecretValue (a Pulumi secret) and UNKNOWN (a preview-time unknown). Also the stored
// form of secrets (hash + ciphertext, never plaintext), structural diffs and property paths.
import * as crypto from "node:crypto";

export class SecretValue {
    constructor(
        readonly value: Value | undefined,
        /** set when the plaintext is not available (e.g. preview without the state key) */
        readonly knownHash?: string,
    ) {}
}

export const UNKNOWN: { readonly __unknown: true } = Object.freeze({ __unknown: true as const });
export type Unknown = typeof UNKNOWN;

export type Value =
    | null
    | boolean
    | number
    | string
    | Value[]
    | { [k: string]: Value }
    | SecretValue
    | Unknown;

export type Props = Record<string, Value>;

export function isUnknown(v: unknown): v is Unknown {
    return v === UNKNOWN;
}

export function isPlainObject(v: unknown): v is Record<string, any> {
    return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof SecretValue) && v !== UNKNOWN;
}

export function containsUnknown(v: unknown): boolean {
    if (v === UNKNOWN) return true;
    if (v instanceof SecretValue) return containsUnknown(v.value);
    if (Array.isArray(v)) return v.some(containsUnknown);
    if (isPlainObject(v)) return Object.values(v).some(containsUnknown);
    return false;
}

export function containsSecret(v: unknown): boolean {
    if (v instanceof SecretValue) return true;
    if (Array.isArray(v)) return v.some(containsSecret);
    if (isPlainObject(v)) return Object.values(v).some(containsSecret);
    return false;
}

/** Removes secret markers (for use when the plaintext is really needed, e.g. to apply). */
export function reveal(v: Value | undefined, where = "value"): any {
    if (v === UNKNOWN) throw new Error(`${where}: value is unknown`);
    if (v instanceof SecretValue) {
        if (v.value === undefined && v.knownHash !== undefined) {
            throw new Error(`${where}: the secret's plaintext is not available (state key missing?)`);
        }
        return reveal(v.value, where);
    }
    if (Array.isArray(v)) return v.map((e, i) => reveal(e, `${where}[${i}]`));
    if (isPlainObject(v)) {
        const o: Record<string, any> = {};
        for (const [k, e] of Object.entries(v)) o[k] = reveal(e as Value, `${where}.${k}`);
        return o;
    }
    return v;
}

/** Deterministic JSON (sorted keys) of a value; secrets are revealed. */
export function canonicalJson(v: unknown): string {
    if (v instanceof SecretValue) return canonicalJson(v.value);
    if (v === UNKNOWN) return '"<unknown>"';
    if (Array.isArray(v)) return "[" + v.map(canonicalJson).join(",") + "]";
    if (isPlainObject(v)) {
        return (
            "{" +
            Object.keys(v)
                .sort()
                .filter((k) => v[k] !== undefined)
                .map((k) => JSON.stringify(k) + ":" + canonicalJson(v[k]))
                .join(",") +
            "}"
        );
    }
    return JSON.stringify(v ?? null);
}

// ---------------------------------------------------------------- secret storage

export interface SecretRecord {
    secretHash: string;
    ciphertext?: string;
}

export function isSecretRecord(v: unknown): v is SecretRecord {
    return (
        isPlainObject(v) &&
        typeof (v as any).secretHash === "string" &&
        Object.keys(v).every((k) => k === "secretHash" || k === "ciphertext")
    );
}

export class SecretBox {
    constructor(
        readonly salt: string,
        private readonly key: Buffer | undefined,
    ) {}

    hash(v: Value | undefined): string {
        if (v instanceof SecretValue && v.value === undefined && v.knownHash) return v.knownHash;
        return crypto
            .createHash("sha256")
            .update(this.salt + "\0" + canonicalJson(v))
            .digest("hex");
    }

    seal(v: SecretValue, encrypt: boolean): SecretRecord {
        const secretHash = this.hash(v);
        if (v.value === undefined || !encrypt) return { secretHash };
        if (!this.key) throw new Error("internal: no state key to encrypt a secret");
        const iv = crypto.randomBytes(12);
        const c = crypto.createCipheriv("aes-256-gcm", this.key, iv);
        const ct = Buffer.concat([c.update(canonicalJson(v.value), "utf8"), c.final()]);
        const tag = c.getAuthTag();
        return { secretHash, ciphertext: Buffer.concat([iv, tag, ct]).toString("base64") };
    }

    open(r: SecretRecord): SecretValue {
        if (!r.ciphertext || !this.key) return new SecretValue(undefined, r.secretHash);
        const raw = Buffer.from(r.ciphertext, "base64");
        const d = crypto.createDecipheriv("aes-256-gcm", this.key, raw.subarray(0, 12));
        d.setAuthTag(raw.subarray(12, 28));
        let text: string;
        try {
            text = Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
        } catch {
            throw new Error("cannot decrypt a secret in the state file: wrong state key (PGHA_ENGINE_PASSPHRASE / <state>.key)");
        }
        return new SecretValue(JSON.parse(text) as Value);
    }

    /**
     * Value → JSON for the state file: secrets become records, never plaintext — the hash only, or
     * the hash and the ciphertext when the value must be recovered later (`encrypt`).
     */
    store(v: Value | undefined, encrypt = false): unknown {
        if (v instanceof SecretValue) return this.seal(v, encrypt);
        if (v === UNKNOWN) return null;
        if (Array.isArray(v)) return v.map((e) => this.store(e, encrypt));
        if (isPlainObject(v)) {
            const o: Record<string, unknown> = {};
            for (const [k, e] of Object.entries(v)) if (e !== undefined) o[k] = this.store(e as Value, encrypt);
            return o;
        }
        return v ?? null;
    }

    load(v: unknown): Value {
        if (isSecretRecord(v)) return this.open(v);
        if (Array.isArray(v)) return v.map((e) => this.load(e));
        if (isPlainObject(v)) {
            const o: Record<string, Value> = {};
            for (const [k, e] of Object.entries(v)) o[k] = this.load(e);
            return o;
        }
        return v as Value;
    }
}

// ---------------------------------------------------------------- property paths

export type Segment = string | number | "*";

export function formatPath(segs: Segment[]): string {
    let s = "";
    for (const seg of segs) {
        if (typeof seg === "number") s += `[${seg}]`;
        else if (seg === "*") s += "[*]";
        else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(seg)) s += (s ? "." : "") + seg;
        else s += `[${JSON.stringify(seg)}]`;
    }
    return s;
}

export function parsePath(p: string): Segment[] {
    const segs: Segment[] = [];
    let i = 0;
    while (i < p.length) {
        const ch = p[i];
        if (ch === ".") {
            i++;
            continue;
        }
        if (ch === "[") {
            const end = p.indexOf("]", i);
            if (end < 0) throw new Error(`bad property path ${JSON.stringify(p)}`);
            const inner = p.substring(i + 1, end);
            if (inner === "*") segs.push("*");
            else if (/^\d+$/.test(inner)) segs.push(Number(inner));
            else if (inner.startsWith('"')) segs.push(JSON.parse(inner));
            else throw new Error(`bad property path ${JSON.stringify(p)}`);
            i = end + 1;
            continue;
        }
        let j = i;
        while (j < p.length && p[j] !== "." && p[j] !== "[") j++;
        const name = p.substring(i, j);
        segs.push(name === "*" ? "*" : name);
        i = j;
    }
    return segs;
}

/** True when one path is a prefix of the other (wildcards match any segment). */
export function pathsOverlap(a: Segment[], b: Segment[]): boolean {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
        if (a[i] === "*" || b[i] === "*") continue;
        if (a[i] !== b[i]) return false;
    }
    return true;
}

// ---------------------------------------------------------------- diff

/** Comparable form: secrets reduce to their hash, unknowns to a marker. */
function comparable(box: SecretBox, v: Value | undefined): unknown {
    if (v instanceof SecretValue) return { "@secret": box.hash(v) };
    if (v === UNKNOWN) return { "@unknown": true };
    if (Array.isArray(v)) return v.map((e) => comparable(box, e));
    if (isPlainObject(v)) {
        const o: Record<string, unknown> = {};
        for (const [k, e] of Object.entries(v)) if (e !== undefined && e !== null) o[k] = comparable(box, e as Value);
        return o;
    }
    return v ?? undefined;
}

/** Paths (formatted) where `next` differs from `prev`. Null and absent are the same. */
export function diffProps(box: SecretBox, prev: Props, next: Props): string[] {
    const out: string[] = [];
    const walk = (a: unknown, b: unknown, segs: Segment[]) => {
        if (a === undefined && b === undefined) return;
        const au = isPlainObject(a) && (a as any)["@unknown"];
        const bu = isPlainObject(b) && (b as any)["@unknown"];
        if (au || bu) {
            out.push(formatPath(segs));
            return;
        }
        const as = isPlainObject(a) && "@secret" in a;
        const bs = isPlainObject(b) && "@secret" in b;
        if (as || bs) {
            if (!(as && bs && (a as any)["@secret"] === (b as any)["@secret"])) out.push(formatPath(segs));
            return;
        }
        if (Array.isArray(a) && Array.isArray(b)) {
            const n = Math.max(a.length, b.length);
            for (let i = 0; i < n; i++) walk(a[i], b[i], [...segs, i]);
            return;
        }
        if (isPlainObject(a) && isPlainObject(b)) {
            const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
            for (const k of [...keys].sort()) walk(a[k], b[k], [...segs, k]);
            return;
        }
        if (canonicalJson(a) !== canonicalJson(b)) out.push(formatPath(segs));
    };
    const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
    for (const k of [...keys].sort()) {
        const a = comparable(box, prev[k]);
        const b = comparable(box, next[k]);
        // a secret/plain change of a whole top-level property is reported at the top level
        const before = out.length;
        walk(a, b, [k]);
        if (out.length > before && (prev[k] instanceof SecretValue || next[k] instanceof SecretValue)) {
            out.splice(before, out.length - before, k);
        }
    }
    return out;
}

// ---------------------------------------------------------------- ignoreChanges

function getAt(v: any, segs: Segment[]): { found: boolean; value?: any } {
    let cur = v;
    for (const s of segs) {
        if (cur instanceof SecretValue) cur = cur.value;
        if (cur === null || cur === undefined || typeof cur !== "object") return { found: false };
        if (!(s in cur)) return { found: false };
        cur = cur[s as any];
    }
    return { found: cur !== undefined, value: cur };
}

function setAt(root: any, segs: Segment[], found: boolean, value: any) {
    let cur = root;
    for (let i = 0; i < segs.length - 1; i++) {
        const s = segs[i];
        if (cur[s as any] instanceof SecretValue) {
            throw new Error(`ignoreChanges path into a secret property is not supported by the test engine`);
        }
        if (cur[s as any] === undefined || cur[s as any] === null) {
            if (!found) return;
            cur[s as any] = typeof segs[i + 1] === "number" ? [] : {};
        }
        cur = cur[s as any];
    }
    const last = segs[segs.length - 1];
    if (found) cur[last as any] = value;
    else if (Array.isArray(cur) && typeof last === "number") cur[last] = null as any;
    else delete cur[last as any];
}

/** Expands wildcards of `segs` against the keys present in either value. */
function expand(a: any, b: any, segs: Segment[], prefix: Segment[] = []): Segment[][] {
    const i = segs.indexOf("*");
    if (i < 0) return [[...prefix, ...segs]];
    const head = segs.slice(0, i);
    const tail = segs.slice(i + 1);
    const ka = getAt(a, [...prefix, ...head]).value;
    const kb = getAt(b, [...prefix, ...head]).value;
    const keys = new Set<Segment>();
    for (const c of [ka, kb]) {
        if (Array.isArray(c)) c.forEach((_, j) => keys.add(j));
        else if (isPlainObject(c)) Object.keys(c).forEach((k) => keys.add(k));
    }
    const res: Segment[][] = [];
    for (const k of keys) res.push(...expand(a, b, tail, [...prefix, ...head, k]));
    return res;
}

/** Returns a copy of `next` where every ignored path holds the value it had in `prev`. */
export function applyIgnoreChanges(prev: Props, next: Props, ignore: string[]): Props {
    if (ignore.length === 0) return next;
    const out: Props = structuredCloneValue(next) as Props;
    for (const p of ignore) {
        const segs = parsePath(p);
        for (const concrete of expand(prev, out, segs)) {
            const old = getAt(prev, concrete);
            setAt(out, concrete, old.found, structuredCloneValue(old.value));
        }
    }
    return out;
}

export function structuredCloneValue(v: any): any {
    if (v instanceof SecretValue) return new SecretValue(structuredCloneValue(v.value), v.knownHash);
    if (v === UNKNOWN) return v;
    if (Array.isArray(v)) return v.map(structuredCloneValue);
    if (isPlainObject(v)) {
        const o: Record<string, any> = {};
        for (const [k, e] of Object.entries(v)) o[k] = structuredCloneValue(e);
        return o;
    }
    return v;
}

/** All leaf strings of the plaintext of secrets inside v (for log redaction). */
export function secretStrings(v: unknown, inSecret = false, acc: Set<string> = new Set()): Set<string> {
    if (v instanceof SecretValue) secretStrings(v.value, true, acc);
    else if (Array.isArray(v)) v.forEach((e) => secretStrings(e, inSecret, acc));
    else if (isPlainObject(v)) Object.values(v).forEach((e) => secretStrings(e, inSecret, acc));
    else if (inSecret && typeof v === "string" && v.length >= 4) acc.add(v);
    return acc;
}

// ---------------------------------------------------------------- set-typed fields

/**
 * Sorts the arrays at the given paths (wildcards allowed) by their canonical JSON: fields that are
 * sets in the provider's schema, whose order is no difference. Secrets are normalized inside.
 */
export function normalizeSets(props: Props, patterns: string[]): Props {
    if (patterns.length === 0) return props;
    const out = structuredCloneValue(props) as Props;
    const sortAt = (v: any, segs: Segment[]): any => {
        if (v instanceof SecretValue) {
            return v.value === undefined ? v : new SecretValue(sortAt(v.value, segs), v.knownHash);
        }
        if (segs.length === 0) {
            if (!Array.isArray(v)) return v;
            return [...v].sort((a, b) => (canonicalJson(a) < canonicalJson(b) ? -1 : canonicalJson(a) > canonicalJson(b) ? 1 : 0));
        }
        const [head, ...rest] = segs;
        if (head === "*") {
            if (Array.isArray(v)) return v.map((e) => sortAt(e, rest));
            if (isPlainObject(v)) {
                const o: Record<string, any> = {};
                for (const [k, e] of Object.entries(v)) o[k] = sortAt(e, rest);
                return o;
            }
            return v;
        }
        if (isPlainObject(v) && head in v) return { ...v, [head]: sortAt(v[head as string], rest) };
        return v;
    };
    let cur: any = out;
    for (const p of patterns) cur = sortAt(cur, parsePath(p));
    return cur as Props;
}
