// Durations and sizes as the stack config writes them (PostgreSQL's own syntax: `60s`, `5min`,
// `10GB`), and their values in milliseconds and bytes. pgha:archive.timeout and
// pgha:replication.maxSlotWalKeepSize go into postgresql.conf as they are written; pgha:failover's
// durations and maxLag are read as numbers (rules/failover.ts).

/** A duration: digits, then optionally one of PostgreSQL's time units. Without a unit: seconds. */
export const DURATION = /^\d+\s*(us|ms|s|min|h|d)?$/;
/** A size: -1 (no limit, where a key allows it) or digits, then optionally one of PostgreSQL's memory units. */
export const SIZE = /^(-1|\d+\s*(B|kB|MB|GB|TB)?)$/;

const MS_PER: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTES_PER: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/**
 * The milliseconds of a duration in the syntax DURATION accepts (`500ms`, `2s`, `1min`; digits
 * alone are seconds, as for archive_timeout), or undefined for anything else (numbers included:
 * a duration is written with its unit).
 */
export function durationMs(text: unknown): number | undefined {
    if (typeof text !== "string" || !DURATION.test(text)) return undefined;
    const m = /^(\d+)\s*([a-z]*)$/.exec(text)!;
    return Number(m[1]) * MS_PER[m[2] || "s"];
}

/**
 * The bytes of a size in the syntax SIZE accepts (`16MB`, `0`; digits alone are megabytes, as for
 * max_slot_wal_keep_size; `-1` is -1), or undefined for anything else. kB, MB, GB, TB are
 * PostgreSQL's: powers of 1024.
 */
export function sizeBytes(text: unknown): number | undefined {
    if (typeof text !== "string" || !SIZE.test(text)) return undefined;
    if (text === "-1") return -1;
    const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text)!;
    return Number(m[1]) * BYTES_PER[m[2] || "MB"];
}

/**
 * A number of milliseconds written in the largest unit that keeps it whole (`10s`, `500ms`,
 * `2min`, `1500us`): what a message shows, and what it suggests setting (DURATION accepts it).
 */
export function formatDuration(ms: number): string {
    if (!Number.isInteger(ms)) return `${Math.round(ms * 1000)}us`;
    if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}min`;
    if (ms !== 0 && ms % 1000 === 0) return `${ms / 1000}s`;
    return `${ms}ms`;
}
