// The IPv4 arithmetic behind the network checks (components/config/ipv4.ts), including the
// addresses above 128.0.0.0, where JavaScript's signed bit operators would turn negative.

import { describe, expect, it } from "vitest";
import { cidrContains, cidrsOverlap, formatIpv4, hostBitsZero, isHostOrIpv4, mask, parseCidr, parseIpv4 } from "../components/config/ipv4";

function cidr(text: string) {
    const c = parseCidr(text);
    if (!c) throw new Error(`not a CIDR: ${text}`);
    return c;
}

describe("parseIpv4 and formatIpv4", () => {
    it("reads dotted quads as unsigned numbers and writes them back", () => {
        expect(parseIpv4("0.0.0.0")).toBe(0);
        expect(parseIpv4("10.0.200.1")).toBe(0x0a00c801);
        expect(parseIpv4("192.168.1.10")).toBe(0xc0a8010a);
        expect(parseIpv4("255.255.255.255")).toBe(0xffffffff);
        for (const ip of ["0.0.0.0", "10.0.200.1", "172.17.0.1", "192.168.1.10", "255.255.255.255"]) expect(formatIpv4(parseIpv4(ip)!)).toBe(ip);
    });
    for (const bad of ["256.0.0.1", "10.0.0", "10.0.0.0.1", "1.2.3.4 ", "a.b.c.d", "", "1234.0.0.1", "-1.0.0.0"]) {
        it(`refuses ${JSON.stringify(bad)}`, () => expect(parseIpv4(bad)).toBeUndefined());
    }
});

describe("parseCidr", () => {
    it("reads a base and a prefix", () => {
        expect(parseCidr("10.0.200.0/24")).toEqual({ base: parseIpv4("10.0.200.0"), prefix: 24 });
        expect(parseCidr("0.0.0.0/0")).toEqual({ base: 0, prefix: 0 });
        expect(parseCidr("192.168.1.7/32")).toEqual({ base: 0xc0a80107, prefix: 32 });
    });
    for (const bad of ["10.0.200.0/33", "10.0.200.0", "10.0.200.0/", "10.0.200.0/024", "300.0.0.0/8", "10.0.0.0/8/8", "::/0"]) {
        it(`refuses ${JSON.stringify(bad)}`, () => expect(parseCidr(bad)).toBeUndefined());
    }
});

describe("mask and hostBitsZero", () => {
    it("gives the network masks, /0 and /32 included", () => {
        expect(mask(0)).toBe(0);
        expect(formatIpv4(mask(8))).toBe("255.0.0.0");
        expect(formatIpv4(mask(20))).toBe("255.255.240.0");
        expect(mask(32)).toBe(0xffffffff);
    });
    it("tells a network from an address inside one", () => {
        expect(hostBitsZero(cidr("10.0.200.0/24"))).toBe(true);
        expect(hostBitsZero(cidr("10.0.200.5/24"))).toBe(false);
        expect(hostBitsZero(cidr("192.168.0.0/16"))).toBe(true);
        expect(hostBitsZero(cidr("192.168.1.0/16"))).toBe(false);
        expect(hostBitsZero(cidr("255.255.255.255/32"))).toBe(true);
        expect(hostBitsZero(cidr("0.0.0.0/0"))).toBe(true);
    });
});

describe("cidrContains and cidrsOverlap", () => {
    it("contains the addresses of the subnet only", () => {
        const c = cidr("192.168.50.0/24");
        expect(cidrContains(c, parseIpv4("192.168.50.0")!)).toBe(true);
        expect(cidrContains(c, parseIpv4("192.168.50.255")!)).toBe(true);
        expect(cidrContains(c, parseIpv4("192.168.51.0")!)).toBe(false);
        expect(cidrContains(cidr("0.0.0.0/0"), parseIpv4("203.0.113.9")!)).toBe(true);
    });
    it("overlaps when one network holds the other, either way round", () => {
        expect(cidrsOverlap(cidr("10.0.0.0/8"), cidr("10.0.0.0/24"))).toBe(true);
        expect(cidrsOverlap(cidr("10.0.0.0/24"), cidr("10.0.0.0/8"))).toBe(true);
        expect(cidrsOverlap(cidr("172.17.5.0/24"), cidr("172.17.0.0/16"))).toBe(true);
        expect(cidrsOverlap(cidr("10.0.200.0/24"), cidr("10.0.0.0/24"))).toBe(false);
        expect(cidrsOverlap(cidr("172.16.0.0/16"), cidr("172.17.0.0/16"))).toBe(false);
        expect(cidrsOverlap(cidr("192.168.0.0/16"), cidr("192.169.0.0/16"))).toBe(false);
    });
});

describe("isHostOrIpv4", () => {
    for (const ok of ["127.0.0.1", "node-b", "db1.example.com", "a", "1node"]) {
        it(`accepts ${ok}`, () => expect(isHostOrIpv4(ok)).toBe(true));
    }
    // All digits and dots: an address or nothing (10.0.0 is no hostname either).
    for (const bad of ["300.1.1.1", "10.0.0", "-node", "node_b", "node-", "a..b", "a b", "", `${"a".repeat(64)}.com`]) {
        it(`refuses ${JSON.stringify(bad.length > 20 ? bad.slice(0, 8) + "…" : bad)}`, () => expect(isHostOrIpv4(bad)).toBe(false));
    }
});
