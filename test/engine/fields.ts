// Strict readers for declared inputs: every field the program sets must be consumed by a
// translation, otherwise the test engine throws naming the resource and the field path.
import { UNKNOWN } from "./values";

export class UntranslatedFieldError extends Error {}

export class Fields {
    private readonly used = new Set<string>();

    /** the whole object is unknown (preview): every field reads as unknown */
    readonly unknown: boolean;

    constructor(
        readonly obj: Record<string, any>,
        readonly path: string,
        readonly resource: string,
    ) {
        this.unknown = obj === UNKNOWN;
        if (obj === UNKNOWN) {
            this.obj = {};
        } else if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
            throw new Error(`${resource}: input ${path || "(inputs)"} must be an object`);
        }
    }

    private p(k: string) {
        return this.path ? `${this.path}.${k}` : k;
    }

    /** The raw value (null and undefined both mean absent). */
    get(k: string): any {
        this.used.add(k);
        if (this.unknown) return UNKNOWN;
        const v = this.obj[k];
        return v === null ? undefined : v;
    }

    has(k: string): boolean {
        const v = this.obj[k];
        return v !== null && v !== undefined;
    }

    /** Marks a field as not translated: throws if the program set it. */
    reject(k: string, why = "is not translated by the test engine") {
        if (this.has(k)) {
            throw new UntranslatedFieldError(`${this.resource}: input ${this.p(k)} ${why}`);
        }
        this.used.add(k);
    }

    str(k: string, required = false): string | undefined {
        const v = this.get(k);
        if (v === undefined) {
            if (required) throw new Error(`${this.resource}: input ${this.p(k)} is required`);
            return undefined;
        }
        if (v !== UNKNOWN && typeof v !== "string") {
            throw new Error(`${this.resource}: input ${this.p(k)} must be a string, got ${JSON.stringify(v)}`);
        }
        return v;
    }

    num(k: string): number | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        if (v !== UNKNOWN && typeof v !== "number") {
            throw new Error(`${this.resource}: input ${this.p(k)} must be a number, got ${JSON.stringify(v)}`);
        }
        return v;
    }

    bool(k: string): boolean | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        if (v !== UNKNOWN && typeof v !== "boolean") {
            throw new Error(`${this.resource}: input ${this.p(k)} must be a boolean, got ${JSON.stringify(v)}`);
        }
        return v;
    }

    strList(k: string): string[] | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        if (v === UNKNOWN) return [];
        if (!Array.isArray(v)) throw new Error(`${this.resource}: input ${this.p(k)} must be a list`);
        v.forEach((e, i) => {
            if (e !== UNKNOWN && typeof e !== "string") {
                throw new Error(`${this.resource}: input ${this.p(k)}[${i}] must be a string`);
            }
        });
        return v;
    }

    strMap(k: string): Record<string, string> | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        if (v === UNKNOWN) return {};
        if (typeof v !== "object" || Array.isArray(v)) {
            throw new Error(`${this.resource}: input ${this.p(k)} must be a map of strings`);
        }
        for (const [kk, e] of Object.entries(v)) {
            if (e !== UNKNOWN && typeof e !== "string") {
                throw new Error(`${this.resource}: input ${this.p(k)}.${kk} must be a string`);
            }
        }
        return v as Record<string, string>;
    }

    /** A nested object as a strict reader (undefined when absent). */
    obj_(k: string): Fields | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        return new Fields(v, this.p(k), this.resource);
    }

    /** A list of nested objects as strict readers. */
    objList(k: string): Fields[] | undefined {
        const v = this.get(k);
        if (v === undefined) return undefined;
        if (v === UNKNOWN) return [];
        if (!Array.isArray(v)) throw new Error(`${this.resource}: input ${this.p(k)} must be a list`);
        return v.map((e, i) => new Fields(e ?? {}, `${this.p(k)}[${i}]`, this.resource));
    }

    /** Throws if any field was set but not consumed. */
    done(): void {
        for (const [k, v] of Object.entries(this.obj)) {
            if (v === null || v === undefined) continue;
            if (!this.used.has(k)) {
                throw new UntranslatedFieldError(
                    `${this.resource}: input ${this.p(k)} is not translated by the test engine`,
                );
            }
        }
    }
}

/** Go's time.ParseDuration, in nanoseconds. */
export function parseGoDuration(s: string, where: string): number {
    if (s === "0") return 0;
    const re = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
    if (!re.test(s)) throw new Error(`${where}: invalid duration ${JSON.stringify(s)}`);
    const units: Record<string, number> = {
        ns: 1,
        us: 1e3,
        "µs": 1e3,
        "μs": 1e3,
        ms: 1e6,
        s: 1e9,
        m: 60e9,
        h: 3600e9,
    };
    let total = 0;
    const sign = s.startsWith("-") ? -1 : 1;
    const body = s.replace(/^[+-]/, "");
    const part = /((?:\d+(?:\.\d*)?|\.\d+))(ns|us|µs|μs|ms|s|m|h)/g;
    let m: RegExpExecArray | null;
    while ((m = part.exec(body)) !== null) total += parseFloat(m[1]) * units[m[2]];
    return sign * Math.round(total);
}
