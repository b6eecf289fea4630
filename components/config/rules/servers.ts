// pgha:image, pgha:servers, pgha:primary, pgha:lost and pgha:rollingRestart: what the servers
// run, where, which of them is primary or gone, and where the primary is after a rolling restart.
// (pgha:postgresVersion, read from the image's tag, has its own file: version.ts.)

import { isHostOrIpv4 } from "../ipv4";
import { RawConfig } from "../types";
import { Draft, DOCKER_HOST, isObject, set, unknownKeys } from "./rule";

/** A server name is a DNS label, a Docker service name and a PostgreSQL slot name at once. */
export const SERVER_NAME = /^[a-z][a-z0-9]{0,62}$/;
const NODE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/;
/** An image reference (pgha:image, pgha:failover.arbiterImage). */
export const IMAGE_REFERENCE = /^[a-z0-9][a-zA-Z0-9._\-/:@]*$/;

/** pgha:image: an image reference. */
export function imageRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    if (raw.image !== undefined) {
        if (typeof raw.image !== "string" || !IMAGE_REFERENCE.test(raw.image)) {
            problems.push(`pgha:image: '${String(raw.image)}' is not an image reference; e.g. pulumi config set pgha:image registry.example.com/postgres:15`);
        } else draft.image = raw.image;
    }
    return problems;
}

/**
 * pgha:servers: at least one, each with a valid name and node (and dockerHost, port, address when
 * given); names unique, no port published twice on a node, one engine per node. Only the servers
 * that pass their own checks are recorded, so the later rules compare against valid names.
 */
export function serversRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const servers = draft.servers;
    const example = `pulumi config set --path 'servers[0].name' pg1 && pulumi config set --path 'servers[0].node' <node hostname>`;
    if (raw.servers === undefined) {
        problems.push(`pgha:servers: missing; list at least one server { name, node }: ${example}`);
    } else if (!Array.isArray(raw.servers)) {
        problems.push(`pgha:servers: must be a list of { name, node, dockerHost?, port?, address? }: ${example}`);
    } else if (raw.servers.length < 1) {
        problems.push(`pgha:servers: at least one server is needed: ${example}`);
    } else {
        raw.servers.forEach((s: unknown, i: number) => {
            const at = `pgha:servers[${i}]`;
            if (!isObject(s)) {
                problems.push(`${at}: must be an object { name, node, dockerHost?, port?, address? }`);
                return;
            }
            for (const k of Object.keys(s)) {
                if (!["name", "node", "dockerHost", "port", "address"].includes(k)) {
                    problems.push(`${at}.${k}: unknown key; a server has name, node, dockerHost, port and address`);
                }
            }
            let ok = true;
            if (typeof s.name !== "string" || !SERVER_NAME.test(s.name)) {
                problems.push(
                    `${at}.name: '${String(s.name)}' is not a valid server name: it is a DNS name and a replication slot name, so lowercase letters and digits only, starting with a letter, at most 63 (e.g. pg1): ${set(`servers[${i}].name`, "pg1")}`,
                );
                ok = false;
            }
            if (typeof s.node !== "string" || !NODE_NAME.test(s.node)) {
                problems.push(
                    `${at}.node: '${String(s.node)}' is not a node hostname; use a HOSTNAME from 'docker node ls': ${set(`servers[${i}].node`, "<hostname>")}`,
                );
                ok = false;
            }
            if (s.dockerHost !== undefined && (typeof s.dockerHost !== "string" || !DOCKER_HOST.test(s.dockerHost))) {
                problems.push(
                    `${at}.dockerHost: '${String(s.dockerHost)}' is not a Docker host URL (unix://, tcp://, ssh://user@host); e.g. ${set(`servers[${i}].dockerHost`, "ssh://admin@node-b")}`,
                );
                ok = false;
            }
            if (s.port !== undefined && (typeof s.port !== "number" || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535)) {
                problems.push(`${at}.port: '${String(s.port)}' is not a TCP port (1-65535); e.g. ${set(`servers[${i}].port`, "5432")}`);
                ok = false;
            }
            if (s.address !== undefined) {
                if (typeof s.address !== "string" || !isHostOrIpv4(s.address)) {
                    problems.push(
                        `${at}.address: '${String(s.address)}' is not a hostname or an IPv4 address; it is where clients outside the swarm reach this server's published port (the node's address), e.g. ${set(`servers[${i}].address`, "192.168.1.10")}`,
                    );
                    ok = false;
                } else if (s.port === undefined) {
                    problems.push(
                        `${at}.address: set, but servers[${i}].port is not, so nothing is published there; publish a port (${set(`servers[${i}].port`, "5432")}) or remove the address (pulumi config rm --path 'servers[${i}].address')`,
                    );
                    ok = false;
                }
            }
            if (ok) {
                servers.push({
                    name: s.name as string,
                    node: s.node as string,
                    ...(s.dockerHost !== undefined ? { dockerHost: s.dockerHost as string } : {}),
                    ...(s.port !== undefined ? { port: s.port as number } : {}),
                    ...(s.address !== undefined ? { address: s.address as string } : {}),
                });
            }
        });
        const seen = new Map<string, number>();
        servers.forEach((s, i) => {
            if (seen.has(s.name)) {
                problems.push(`pgha:servers[${i}].name: '${s.name}' is already the name of servers[${seen.get(s.name)}]; every server needs its own name`);
            } else seen.set(s.name, i);
        });
        const ports = new Map<string, string>();
        const hosts = new Map<string, string | undefined>();
        for (const s of servers) {
            if (s.port !== undefined) {
                const key = `${s.node}:${s.port}`;
                const other = ports.get(key);
                if (other !== undefined) {
                    problems.push(`pgha:servers: ${other} and ${s.name} both publish port ${s.port} on node ${s.node}; give one of them another port`);
                } else ports.set(key, s.name);
            }
            if (hosts.has(s.node) && hosts.get(s.node) !== s.dockerHost) {
                problems.push(
                    `pgha:servers: servers on node ${s.node} name different dockerHost values (${hosts.get(s.node) ?? "local"} and ${s.dockerHost ?? "local"}); a node has one engine, give them the same dockerHost`,
                );
            } else hosts.set(s.node, s.dockerHost);
        }
    }
    return problems;
}

/** pgha:primary: set, and among the servers. */
export function primaryRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const servers = draft.servers;
    if (typeof raw.primary !== "string" || raw.primary === "") {
        problems.push(`pgha:primary: missing; name the server that is primary: pulumi config set pgha:primary ${servers[0]?.name ?? "pg1"}`);
    } else {
        const primary = raw.primary;
        draft.primary = primary;
        if (servers.length > 0 && !servers.some((s) => s.name === primary)) {
            problems.push(
                `pgha:primary: '${primary}' is not among pgha:servers (${servers.map((s) => s.name).join(", ")}); set it to one of them: pulumi config set pgha:primary ${servers[0].name}`,
            );
        }
    }
    return problems;
}

/**
 * pgha:lost: servers whose node is gone, declared by the operator for a failover (never a role):
 * each a server, listed once; one server must survive, and the primary cannot be lost.
 */
export function lostRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const { servers, primary, lost } = draft;
    if (raw.lost !== undefined) {
        if (!Array.isArray(raw.lost)) {
            problems.push(
                `pgha:lost: must be a list of the servers whose node is gone; e.g. ${set("lost[0]", "pg2")} (or pulumi config rm pgha:lost when none is)`,
            );
        } else {
            raw.lost.forEach((n: unknown, i: number) => {
                const names = servers.map((s) => s.name);
                if (typeof n !== "string" || (servers.length > 0 && !names.includes(n))) {
                    problems.push(
                        `pgha:lost[${i}]: '${String(n)}' is not among pgha:servers (${names.join(", ")}); list only servers whose node is gone, or remove it: pulumi config rm --path 'lost[${i}]'`,
                    );
                } else if (lost.includes(n)) {
                    problems.push(`pgha:lost[${i}]: '${n}' is listed twice; remove it: pulumi config rm --path 'lost[${i}]'`);
                } else lost.push(n);
            });
        }
    }
    if (servers.length > 0 && servers.every((s) => lost.includes(s.name))) {
        problems.push(
            `pgha:lost: lists every server, but one must survive to be primary; remove the servers whose node is back from pgha:lost (e.g. pulumi config rm --path 'lost[0]')`,
        );
    } else if (primary !== "" && lost.includes(primary)) {
        const survivor = servers.find((s) => !lost.includes(s.name))?.name ?? "<server>";
        problems.push(
            `pgha:primary: '${primary}' is declared lost (pgha:lost), and a lost server cannot be primary; for a failover name a surviving server: pulumi config set pgha:primary ${survivor} (or, if ${primary}'s node is back and it was never replaced, remove it from pgha:lost)`,
        );
    }
    return problems;
}

/**
 * pgha:rollingRestart: `{ primary: "return" | "stay" }`. A rolling restart restarts the servers one
 * at a time and moves the primary to a restarted standby by a planned switchover first; `return`
 * switches it back afterwards, `stay` leaves it there.
 */
export function rollingRestartRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const r = raw.rollingRestart;
    if (r === undefined) return problems;
    if (!isObject(r)) {
        problems.push(`pgha:rollingRestart: must be an object { primary: return | stay }; e.g. ${set("rollingRestart.primary", "return")}`);
        return problems;
    }
    unknownKeys(r, "pgha:rollingRestart", ["primary"], problems);
    if (r.primary !== undefined) {
        if (r.primary !== "return" && r.primary !== "stay") {
            problems.push(
                `pgha:rollingRestart.primary: '${String(r.primary)}' is neither return nor stay; after a rolling restart, return switches the primary back to the server it was on, stay leaves it on the standby it moved to: ${set("rollingRestart.primary", "return")} (or stay)`,
            );
        } else draft.rollingRestart = { primary: r.primary };
    }
    return problems;
}
