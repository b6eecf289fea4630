// IPv4 arithmetic for the network checks: addresses as unsigned 32-bit numbers, networks as a
// base address and a prefix length. Everything is `>>> 0`'d because JavaScript's bit operators
// work on signed 32-bit integers, and 10.0.0.0/8 and 192.168.0.0/16 would otherwise compare negative.

export interface Cidr {
    readonly base: number;
    readonly prefix: number;
}

export function parseIpv4(text: string): number | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
    if (!m) return undefined;
    const octets = m.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
}

export function parseCidr(text: string): Cidr | undefined {
    const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
    if (!m) return undefined;
    const base = parseIpv4(m[1]);
    const prefix = Number(m[2]);
    if (base === undefined || prefix > 32) return undefined;
    return { base, prefix };
}

/** The network mask of a prefix length, e.g. 24 -> 255.255.255.0. */
export function mask(prefix: number): number {
    return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Whether the CIDR names a network (10.0.200.0/24), not an address inside one (10.0.200.5/24). */
export function hostBitsZero(c: Cidr): boolean {
    return (c.base & ~mask(c.prefix)) >>> 0 === 0;
}

export function cidrContains(c: Cidr, ip: number): boolean {
    return (ip & mask(c.prefix)) >>> 0 === (c.base & mask(c.prefix)) >>> 0;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
    const p = Math.min(a.prefix, b.prefix);
    return (a.base & mask(p)) >>> 0 === (b.base & mask(p)) >>> 0;
}

export function formatIpv4(ip: number): string {
    return [24, 16, 8, 0].map((s) => (ip >>> s) & 255).join(".");
}

/** A DNS hostname (RFC 1123 labels); an all-numeric dotted name must be a valid IPv4 address instead. */
const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** A hostname (RFC 1123) or a dotted IPv4 address; a name made of digits and dots only must be a valid IPv4 address. */
export function isHostOrIpv4(text: string): boolean {
    if (/^[0-9.]+$/.test(text)) return parseIpv4(text) !== undefined;
    return HOSTNAME.test(text);
}
