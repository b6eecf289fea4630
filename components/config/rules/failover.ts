// pgha:failover: automatic failover by a lease the arbiters keep. Each field is checked on its own
// (a boolean, durations, a size, an image), then the durations against each other: the primary
// must get a retry before it fences itself, and must have fenced itself before the lease it held
// can pass to another server.

import { FAILOVER_DEFAULTS } from "../failover";
import { DEFAULTS } from "../keys";
import { FailoverConfig, RawConfig } from "../types";
import { durationMs, formatDuration, sizeBytes } from "../units";
import { Draft, isObject, set } from "./rule";
import { IMAGE_REFERENCE } from "./servers";

/** The fields of pgha:failover, in the order their problems are reported. */
export const FAILOVER_FIELDS = ["automatic", "ttl", "renewInterval", "fenceDeadline", "callTimeout", "maxLag", "arbiterImage"] as const;
type Field = (typeof FAILOVER_FIELDS)[number];
type DurationField = "ttl" | "renewInterval" | "fenceDeadline" | "callTimeout";

/** The bounds the fields are held to, in milliseconds; `fenceShare` is the most of the ttl fenceDeadline + callTimeout may take. */
export const FAILOVER_LIMITS = { ttlMinMs: 3_000, ttlMaxMs: 300_000, callTimeoutMinMs: 100, renewIntervalMinMs: 200, fenceShare: 0.8 } as const;

const AT = "pgha:failover";
const fix = (field: Field, example: string) => set(`failover.${field}`, example);
const fmt = formatDuration;
/** Whole seconds at or above `ms`: a value to suggest that reads well. */
const ceilSeconds = (ms: number) => Math.ceil(ms / 1000) * 1000;

/**
 * pgha:failover resolved: a partial object merged with the defaults key by key, durations in
 * milliseconds and maxLag in bytes, and every problem found (each naming its field and the fix).
 * A field with a problem keeps its default in `failover`. `value` is the raw pgha:failover, or
 * undefined for unset (the defaults, no problem). Used by failoverRule, and by `npm run status`
 * to read the stack's value the same way.
 */
export function resolveFailover(value: unknown): { failover: FailoverConfig; problems: string[] } {
    const problems: string[] = [];
    if (value === undefined) return { failover: { ...FAILOVER_DEFAULTS }, problems };
    if (!isObject(value)) {
        problems.push(`${AT}: must be an object { ${FAILOVER_FIELDS.join(", ")} }; e.g. to turn automatic failover off: ${fix("automatic", "false")}`);
        return { failover: { ...FAILOVER_DEFAULTS }, problems };
    }
    for (const k of Object.keys(value)) {
        if ((FAILOVER_FIELDS as readonly string[]).includes(k)) continue;
        const near = FAILOVER_FIELDS.find((f) => f.toLowerCase() === k.toLowerCase());
        problems.push(
            `${AT}.${k}: unknown key; failover has ${FAILOVER_FIELDS.join(", ")}${near ? `; did you mean ${near}?` : ""} (remove it: pulumi config rm --path 'failover.${k}')`,
        );
    }
    const bad = new Set<Field>();
    const refuse = (field: Field, message: string) => {
        problems.push(`${AT}.${field}: ${message}`);
        bad.add(field);
    };

    let automatic = FAILOVER_DEFAULTS.automatic;
    if (value.automatic !== undefined) {
        if (typeof value.automatic !== "boolean")
            refuse("automatic", `'${String(value.automatic)}' is not true or false: ${fix("automatic", "true")} (or false)`);
        else automatic = value.automatic;
    }

    const L = FAILOVER_LIMITS;
    /** Why a parsed duration is out of its field's bounds, or undefined when it is within them. */
    const outOfBounds: Record<DurationField, (ms: number) => string | undefined> = {
        ttl: (ms) =>
            ms < L.ttlMinMs || ms > L.ttlMaxMs
                ? `${fmt(ms)} is outside ${fmt(L.ttlMinMs)} to ${fmt(L.ttlMaxMs)}: shorter, the lease would pass on any pause of a primary or an arbiter (a slow disk, a busy node) and fail over for nothing; longer, a failover would wait that long`
                : undefined,
        renewInterval: (ms) =>
            ms < L.renewIntervalMinMs
                ? `${fmt(ms)} is below ${fmt(L.renewIntervalMinMs)}: the primary would call every arbiter several times a second for nothing`
                : undefined,
        fenceDeadline: () => undefined,
        callTimeout: (ms) =>
            ms < L.callTimeoutMinMs
                ? `${fmt(ms)} is below ${fmt(L.callTimeoutMinMs)}: a call to an arbiter on another node can take that long on a healthy network, and every call that times out is a missed renewal`
                : undefined,
    };
    /** The field's milliseconds; its default when unset, or (with its problem) when refused. */
    const duration = (field: DurationField, fallback: number): number => {
        const v = value[field];
        if (v === undefined) return fallback;
        const example = DEFAULTS.failover[field];
        if (typeof v === "number") {
            refuse(field, `${v} has no unit; write the duration with its unit (us, ms, s, min, h, d): ${fix(field, `${v}s`)} (or ${v}ms)`);
            return fallback;
        }
        const ms = durationMs(v);
        if (ms === undefined) {
            refuse(field, `'${String(v)}' is not a duration such as ${example} or 500ms (units us, ms, s, min, h, d): ${fix(field, example)}`);
            return fallback;
        }
        if (ms <= 0) {
            refuse(field, `${String(v)} must be more than 0: ${fix(field, example)}`);
            return fallback;
        }
        const why = outOfBounds[field](ms);
        if (why !== undefined) {
            refuse(field, `${why}: ${fix(field, example)}`);
            return fallback;
        }
        return ms;
    };
    const ttlMs = duration("ttl", FAILOVER_DEFAULTS.ttlMs);
    const renewIntervalMs = duration("renewInterval", FAILOVER_DEFAULTS.renewIntervalMs);
    const fenceDeadlineMs = duration("fenceDeadline", FAILOVER_DEFAULTS.fenceDeadlineMs);
    const callTimeoutMs = duration("callTimeout", FAILOVER_DEFAULTS.callTimeoutMs);

    let maxLagBytes = FAILOVER_DEFAULTS.maxLagBytes;
    const lag = value.maxLag;
    if (lag !== undefined) {
        const bytes = sizeBytes(lag);
        if (typeof lag === "number") {
            refuse("maxLag", `${lag} has no unit; write the size with its unit (B, kB, MB, GB, TB): ${fix("maxLag", `${lag}MB`)}`);
        } else if (bytes === undefined) {
            refuse("maxLag", `'${String(lag)}' is not a size such as 16MB (units B, kB, MB, GB, TB): ${fix("maxLag", DEFAULTS.failover.maxLag)}`);
        } else if (bytes < 0) {
            refuse(
                "maxLag",
                `${String(lag)} is not a size of 0 or more: there is no "no limit" here, a standby that far behind would lose the transactions it lacks by taking over: ${fix("maxLag", DEFAULTS.failover.maxLag)}`,
            );
        } else maxLagBytes = bytes;
    }

    let arbiterImage: string = FAILOVER_DEFAULTS.arbiterImage;
    const image = value.arbiterImage;
    if (image !== undefined) {
        if (typeof image !== "string" || !IMAGE_REFERENCE.test(image)) {
            refuse("arbiterImage", `'${String(image)}' is not an image reference; e.g. ${fix("arbiterImage", DEFAULTS.failover.arbiterImage)}`);
        } else arbiterImage = image;
    }

    // The durations against each other, each only when its fields passed on their own.
    const ok = (...fields: DurationField[]) => fields.every((x) => !bad.has(x));
    const r = renewIntervalMs;
    const c = callTimeoutMs;
    const f = fenceDeadlineMs;
    const t = ttlMs;
    /** The smallest fence deadline the two retry rules allow. */
    const fenceFloor = Math.max(2 * r, r + c + 1);
    if (ok("renewInterval", "callTimeout", "fenceDeadline") && !(r + c < f)) {
        problems.push(
            `${AT}.fenceDeadline: renewInterval ${fmt(r)} + callTimeout ${fmt(c)} = ${fmt(r + c)} is not below fenceDeadline ${fmt(f)}: a renewal that times out would leave no time for a retry before the primary fences itself; raise fenceDeadline (${fix("fenceDeadline", fmt(ceilSeconds(fenceFloor)))}) or lower renewInterval or callTimeout`,
        );
    }
    if (ok("renewInterval", "fenceDeadline") && f < 2 * r) {
        problems.push(
            `${AT}.fenceDeadline: ${fmt(f)} is less than twice renewInterval ${fmt(r)} (${fmt(2 * r)}): the primary would fence itself after a single missed renewal; raise fenceDeadline (${fix("fenceDeadline", fmt(ceilSeconds(fenceFloor)))}) or lower renewInterval (${fix("renewInterval", fmt(Math.floor(f / 2)))})`,
        );
    }
    // fenceDeadline + callTimeout ≤ 80% of ttl, in integers: 5 × (f + c) ≤ 4 × t.
    if (ok("ttl", "fenceDeadline", "callTimeout") && 5 * (f + c) > 4 * t) {
        const share = `${Math.round(L.fenceShare * 100)}%`;
        const fenceMax = Math.floor((4 * t) / 5) - c;
        const ttlMin = ceilSeconds((5 * (f + c)) / 4);
        const ways = [
            ...(fenceMax >= fenceFloor ? [`lower fenceDeadline to at most ${fmt(fenceMax)} (${fix("fenceDeadline", fmt(fenceMax))})`] : []),
            ...(ttlMin <= L.ttlMaxMs ? [`raise ttl to at least ${fmt(ttlMin)} (${fix("ttl", fmt(ttlMin))})`] : []),
        ];
        problems.push(
            `${AT}.fenceDeadline: fence deadline ${fmt(f)} + call timeout ${fmt(c)} = ${fmt(f + c)} is not well below the ttl ${fmt(t)} (at most ${share}: ${fmt((4 * t) / 5)}): a primary cut off from the arbiters could still be writable when another server takes the lease; ${ways.length > 0 ? ways.join(", or ") : "lower fenceDeadline and callTimeout, or raise ttl"}`,
        );
    }

    return {
        failover: { automatic, ttlMs, renewIntervalMs, fenceDeadlineMs, callTimeoutMs, maxLagBytes, arbiterImage },
        problems,
    };
}

/**
 * pgha:failover: `{ automatic, ttl, renewInterval, fenceDeadline, callTimeout, maxLag,
 * arbiterImage }`, a partial object merged with the defaults (see resolveFailover). With one
 * server automatic failover has no one to fail over to: it is accepted, and does nothing.
 */
export function failoverRule(raw: RawConfig, draft: Draft): string[] {
    if (raw.failover === undefined) return [];
    const { failover, problems } = resolveFailover(raw.failover);
    draft.failover = failover;
    return problems;
}
