// pgha:network and pgha:clients: the IPv4 networks of the overlay network and of the clients
// pg_hba.conf lets in.

import { cidrContains, cidrsOverlap, formatIpv4, hostBitsZero, mask, parseCidr, parseIpv4 } from "../ipv4";
import { RawConfig } from "../types";
import { Draft, isObject, set } from "./rule";

/**
 * Subnets Docker itself uses on a default swarm node: the ingress network, the default bridge and
 * docker_gwbridge. An overlay network overlapping them makes containers unreachable.
 */
export const DOCKER_DEFAULT_SUBNETS: readonly string[] = ["10.0.0.0/24", "172.17.0.0/16", "172.18.0.0/16"];

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** pgha:network: a valid Docker network name, a /8../29 subnet clear of Docker's own, a usable gateway in it. */
export function networkRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const network = draft.network;
    if (raw.network !== undefined) {
        if (!isObject(raw.network)) {
            problems.push(`pgha:network: must be an object { name, cidr, gateway }; e.g. ${set("network.cidr", "10.0.200.0/24")}`);
        } else {
            for (const k of Object.keys(raw.network)) {
                if (!["name", "cidr", "gateway"].includes(k)) {
                    problems.push(`pgha:network.${k}: unknown key; network has name, cidr and gateway`);
                }
            }
            for (const k of ["name", "cidr", "gateway"] as const) {
                const v = raw.network[k];
                if (v === undefined) continue;
                if (typeof v !== "string") problems.push(`pgha:network.${k}: must be a string`);
                else network[k] = v;
            }
        }
    }
    if (!NETWORK_NAME.test(network.name)) {
        problems.push(
            `pgha:network.name: '${network.name}' is not a valid Docker network name (letters, digits, _ . -); e.g. ${set("network.name", "pgha_net")}`,
        );
    }
    const cidr = parseCidr(network.cidr);
    if (!cidr) {
        problems.push(`pgha:network.cidr: '${network.cidr}' is not an IPv4 CIDR; e.g. ${set("network.cidr", "10.0.200.0/24")}`);
    } else if (!hostBitsZero(cidr)) {
        const fixed = `${formatIpv4((cidr.base & mask(cidr.prefix)) >>> 0)}/${cidr.prefix}`;
        problems.push(`pgha:network.cidr: '${network.cidr}' has host bits set; did you mean ${fixed}? (${set("network.cidr", fixed)})`);
    } else if (cidr.prefix < 8 || cidr.prefix > 29) {
        problems.push(`pgha:network.cidr: prefix /${cidr.prefix} is out of range; use /8 to /29, e.g. ${set("network.cidr", "10.0.200.0/24")}`);
    } else {
        for (const used of DOCKER_DEFAULT_SUBNETS) {
            if (cidrsOverlap(cidr, parseCidr(used)!)) {
                problems.push(
                    `pgha:network.cidr: '${network.cidr}' overlaps ${used}, which Docker uses on every swarm node (ingress, docker0, docker_gwbridge); choose another subnet, e.g. ${set("network.cidr", "10.0.200.0/24")}`,
                );
            }
        }
    }
    const gateway = parseIpv4(network.gateway);
    if (gateway === undefined) {
        problems.push(`pgha:network.gateway: '${network.gateway}' is not an IPv4 address; e.g. ${set("network.gateway", "10.0.200.1")}`);
    } else if (cidr && hostBitsZero(cidr)) {
        const broadcast = (cidr.base | ~mask(cidr.prefix)) >>> 0;
        if (!cidrContains(cidr, gateway)) {
            problems.push(
                `pgha:network.gateway: ${network.gateway} is outside pgha:network.cidr ${network.cidr}; e.g. ${set("network.gateway", formatIpv4(cidr.base + 1))}`,
            );
        } else if (gateway === cidr.base || gateway === broadcast) {
            problems.push(
                `pgha:network.gateway: ${network.gateway} is the network or broadcast address of ${network.cidr}; e.g. ${set("network.gateway", formatIpv4(cidr.base + 1))}`,
            );
        }
    }
    return problems;
}

/** pgha:clients: the extra client networks, each an IPv4 network in CIDR form (no host bits). */
export function clientsRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    if (raw.clients !== undefined) {
        if (!isObject(raw.clients) || (raw.clients.cidrs !== undefined && !Array.isArray(raw.clients.cidrs))) {
            problems.push(`pgha:clients: must be an object { cidrs: [ ... ] }; e.g. ${set("clients.cidrs[0]", "192.168.1.0/24")}`);
        } else {
            for (const k of Object.keys(raw.clients)) {
                if (k !== "cidrs") problems.push(`pgha:clients.${k}: unknown key; clients has cidrs`);
            }
            ((raw.clients.cidrs as unknown[] | undefined) ?? []).forEach((c, i) => {
                const parsed = typeof c === "string" ? parseCidr(c) : undefined;
                if (!parsed || !hostBitsZero(parsed)) {
                    problems.push(
                        `pgha:clients.cidrs[${i}]: '${String(c)}' is not an IPv4 network in CIDR form; e.g. ${set(`clients.cidrs[${i}]`, "192.168.1.0/24")}`,
                    );
                } else draft.clients.cidrs.push(c as string);
            });
        }
    }
    return problems;
}
