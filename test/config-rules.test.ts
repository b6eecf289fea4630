// The validation rules one by one (components/config/rules): each reads its raw key, returns its
// own problems word for word, and records the checked value in the draft for the rules after it.
// test/config.test.ts covers the same ground through validateConfig, one case per refusal.

import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { FAILOVER_DEFAULTS, RawConfig } from "../components/config";
import {
    archiveRule,
    backupRule,
    clientsRule,
    cloneFromRule,
    Draft,
    failoverRule,
    imageRule,
    keysRule,
    lostRule,
    networkRule,
    newDraft,
    postgresqlRule,
    postgresVersionRule,
    primaryRule,
    replicationRule,
    resolveFailover,
    restoreRule,
    rollingRestartRule,
    Rule,
    RULES,
    serversRule,
} from "../components/config/rules";
import { readRawConfig } from "../components/stack-config";

const two = [
    { name: "pg1", node: "a" },
    { name: "pg2", node: "b" },
];

/** Runs one rule on `raw` from a fresh draft (with `before`: what earlier rules recorded). */
function check(rule: Rule, raw: RawConfig, before: Partial<Draft> = {}): { problems: string[]; draft: Draft } {
    const draft = { ...newDraft(), ...before };
    return { problems: rule(raw, draft), draft };
}

describe("the rule list", () => {
    it("runs every rule once, in the order the problems are reported", () => {
        expect(RULES.map((r) => r.name)).toEqual([
            "keysRule",
            "networkRule",
            "imageRule",
            "postgresVersionRule",
            "serversRule",
            "primaryRule",
            "lostRule",
            "rollingRestartRule",
            "failoverRule",
            "postgresqlRule",
            "replicationRule",
            "archiveRule",
            "clientsRule",
            "backupRule",
            "restoreRule",
            "cloneFromRule",
        ]);
    });

    it("leaves the draft as it was when a key is absent, and only the required keys are missed", () => {
        for (const rule of RULES) {
            const { problems, draft } = check(rule, {}, { servers: [...two], primary: "pg1" });
            if (rule === serversRule || rule === primaryRule) expect(problems, rule.name).toHaveLength(1);
            else expect(problems, rule.name).toEqual([]);
            // postgresVersionRule records what it reads from the default image's tag (postgres:15).
            const recorded = rule === postgresVersionRule ? { postgresVersion: 15 } : {};
            expect(draft, rule.name).toEqual({ ...newDraft(), servers: two, primary: "pg1", ...recorded });
        }
    });
});

describe("keysRule", () => {
    it("accepts every key of the table, secrets included", () => {
        expect(check(keysRule, { servers: [], primary: "", backup: {}, superuserPassword: "(secret)" }).problems).toEqual([]);
    });
    it("names an unknown key, the known ones and the fix", () => {
        expect(check(keysRule, { primay: "pg1" }).problems).toEqual([
            "pgha:primay: unknown key; the keys are network, image, postgresVersion, servers, primary, postgresql, replication, archive, clients, lost, rollingRestart, failover, backup, restore, cloneFrom, superuserPassword, replicatorPassword (remove it: pulumi config rm pgha:primay)",
        ]);
    });
    it("does not take an Object.prototype name for a key", () => {
        expect(check(keysRule, { constructor: "x", toString: "y" }).problems.map((p) => p.split(":")[1])).toEqual(["constructor", "toString"]);
    });
});

describe("networkRule", () => {
    it("records the network, the defaults filling what is unset", () => {
        const { problems, draft } = check(networkRule, { network: { cidr: "10.9.0.0/16", gateway: "10.9.0.1" } });
        expect(problems).toEqual([]);
        expect(draft.network).toEqual({ name: "pgha_net", cidr: "10.9.0.0/16", gateway: "10.9.0.1" });
    });
    it("suggests the network of a CIDR with host bits", () => {
        expect(check(networkRule, { network: { cidr: "10.0.200.5/24" } }).problems).toEqual([
            "pgha:network.cidr: '10.0.200.5/24' has host bits set; did you mean 10.0.200.0/24? (pulumi config set --path 'network.cidr' 10.0.200.0/24)",
        ]);
    });
    it("names each Docker subnet a network overlaps", () => {
        expect(check(networkRule, { network: { cidr: "10.0.0.0/8", gateway: "10.0.0.1" } }).problems).toEqual([
            "pgha:network.cidr: '10.0.0.0/8' overlaps 10.0.0.0/24, which Docker uses on every swarm node (ingress, docker0, docker_gwbridge); choose another subnet, e.g. pulumi config set --path 'network.cidr' 10.0.200.0/24",
        ]);
    });
    it("suggests the first address of the subnet as gateway", () => {
        expect(check(networkRule, { network: { cidr: "192.168.50.0/24", gateway: "192.168.50.255" } }).problems).toEqual([
            "pgha:network.gateway: 192.168.50.255 is the network or broadcast address of 192.168.50.0/24; e.g. pulumi config set --path 'network.gateway' 192.168.50.1",
        ]);
    });
    it("refuses a network that is no object, and then checks the defaults only", () => {
        expect(check(networkRule, { network: "pgha_net" }).problems).toEqual([
            "pgha:network: must be an object { name, cidr, gateway }; e.g. pulumi config set --path 'network.cidr' 10.0.200.0/24",
        ]);
    });
    it("refuses values that are not strings and unknown keys", () => {
        expect(check(networkRule, { network: { cidr: 24, mtu: 1400 } }).problems).toEqual([
            "pgha:network.mtu: unknown key; network has name, cidr and gateway",
            "pgha:network.cidr: must be a string",
        ]);
    });
});

describe("imageRule", () => {
    it("records the image", () => expect(check(imageRule, { image: "registry.example.com/postgres:16" }).draft.image).toBe("registry.example.com/postgres:16"));
    it("refuses what is no image reference", () => {
        const { problems, draft } = check(imageRule, { image: "Postgres 15" });
        expect(problems).toEqual(["pgha:image: 'Postgres 15' is not an image reference; e.g. pulumi config set pgha:image registry.example.com/postgres:15"]);
        expect(draft.image).toBe("postgres:15");
    });
});

describe("postgresVersionRule", () => {
    const version = (raw: RawConfig) => check(postgresVersionRule, raw, { image: typeof raw.image === "string" ? raw.image : "postgres:15" });
    it("reads the major version from the image's tag when it is not set", () => {
        const images: [string, number][] = [
            ["postgres:17", 17],
            ["postgres:17.2", 17],
            ["postgres:17-bookworm", 17],
            ["postgres:17.2-alpine", 17],
            ["pgha-postgres:15-lab", 15],
            ["registry:5000/team/postgres:18", 18],
            ["postgres:18beta3-trixie", 18],
            ["postgres:17.2@sha256:" + "a".repeat(64), 17],
            ["pgvector/pgvector:0.8.0-pg17", 17],
            ["timescale/timescaledb:2.17.2-pg15", 15],
        ];
        for (const [image, major] of images)
            expect(version({ image }), image).toEqual({ problems: [], draft: expect.objectContaining({ postgresVersion: major }) });
        expect(check(postgresVersionRule, {}).draft.postgresVersion).toBe(15);
    });
    it("takes a set version as a number or a string of digits", () => {
        expect(version({ image: "postgres:17", postgresVersion: 17 }).draft.postgresVersion).toBe(17);
        expect(version({ image: "postgres:17", postgresVersion: "17" }).draft.postgresVersion).toBe(17);
        expect(version({ image: "example.com/db:bookworm", postgresVersion: "18" }).draft.postgresVersion).toBe(18);
    });
    it("asks for the version when the tag names none: no tag, latest, a digest, a word, a port", () => {
        const why: [string, string][] = [
            ["postgres", "has no tag"],
            ["postgres:latest", "has the tag 'latest', which names no version"],
            ["postgres@sha256:" + "a".repeat(64), "is pinned by a digest, without a tag"],
            ["postgres:bookworm", "has the tag 'bookworm', which does not start with a PostgreSQL major version"],
            ["registry:5000/postgres", "has no tag"],
            ["timescale/timescaledb:2.17.2", "has the tag '2.17.2', which does not start with a PostgreSQL major version"],
        ];
        for (const [image, reason] of why) {
            const { problems, draft } = version({ image });
            expect(problems, image).toEqual([
                `pgha:postgresVersion: not set, and pgha:image '${image}' ${reason}, so the PostgreSQL major version cannot be read from it; set the major version the image runs (15, 17 or 18), e.g. pulumi config set pgha:postgresVersion 18`,
            ]);
            expect(draft.postgresVersion, image).toBeUndefined();
        }
        expect(version({ image: "postgres:latest", postgresVersion: 17 })).toEqual({ problems: [], draft: expect.objectContaining({ postgresVersion: 17 }) });
    });
    it("refuses a set version the tag disagrees with, naming both keys", () => {
        expect(version({ image: "pgha-postgres:15-lab", postgresVersion: 17 }).problems).toEqual([
            "pgha:postgresVersion: 17 disagrees with pgha:image 'pgha-postgres:15-lab', whose tag says PostgreSQL 15; make them agree: pulumi config set pgha:image pgha-postgres:17-lab (an image of PostgreSQL 17), or pulumi config set pgha:postgresVersion 15",
        ]);
        expect(check(postgresVersionRule, { postgresVersion: "18" }).problems).toEqual([
            "pgha:postgresVersion: 18 disagrees with pgha:image 'postgres:15' (the default), whose tag says PostgreSQL 15; make them agree: pulumi config set pgha:image postgres:18 (an image of PostgreSQL 18), or pulumi config set pgha:postgresVersion 15",
        ]);
        const { problems, draft } = version({ image: "postgres:16.4-alpine@sha256:" + "b".repeat(64), postgresVersion: 17 });
        expect(problems).toEqual([
            `pgha:postgresVersion: 17 disagrees with pgha:image 'postgres:16.4-alpine@sha256:${"b".repeat(64)}', whose tag says PostgreSQL 16; make them agree: pulumi config set pgha:image postgres:17-alpine (an image of PostgreSQL 17)`,
        ]);
        expect(draft.postgresVersion).toBeUndefined();
    });
    it("refuses an unsupported version, naming the supported ones", () => {
        expect(version({ image: "postgres:16", postgresVersion: 16 }).problems).toEqual([
            "pgha:postgresVersion: PostgreSQL 16 is not supported; pgha supports 15, 17 and 18: pulumi config set pgha:postgresVersion 17 (with an image of that version in pgha:image)",
        ]);
        expect(version({ image: "postgres:14", postgresVersion: "14" }).problems).toEqual([
            "pgha:postgresVersion: PostgreSQL 14 is not supported; pgha supports 15, 17 and 18: pulumi config set pgha:postgresVersion 15 (with an image of that version in pgha:image)",
        ]);
        expect(version({ image: "registry:5000/team/postgres:16-bookworm" }).problems).toEqual([
            "pgha:image: 'registry:5000/team/postgres:16-bookworm' is PostgreSQL 16 by its tag, which pgha does not support (it supports 15, 17 and 18); run an image of one of them, e.g. pulumi config set pgha:image registry:5000/team/postgres:17-bookworm",
        ]);
        expect(version({ image: "postgres:14.12" }).problems).toEqual([
            "pgha:image: 'postgres:14.12' is PostgreSQL 14 by its tag, which pgha does not support (it supports 15, 17 and 18); run an image of one of them, e.g. pulumi config set pgha:image postgres:15",
        ]);
    });
    it("refuses what is no major version, a release included", () => {
        expect(version({ image: "postgres:17", postgresVersion: "17.2" }).problems).toEqual([
            "pgha:postgresVersion: '17.2' is a release, not a major version; give the major version alone: pulumi config set pgha:postgresVersion 17",
        ]);
        for (const bad of ["seventeen", true, "", [17], "v17"]) {
            expect(version({ image: "postgres:17", postgresVersion: bad }).problems, String(bad)).toEqual([
                `pgha:postgresVersion: '${String(bad)}' is not a PostgreSQL major version; set the major version the image runs (15, 17 or 18), e.g. pulumi config set pgha:postgresVersion 18`,
            ]);
        }
    });
    it("leaves a refused image to imageRule's problem", () => {
        // imageRule did not record it: the draft still holds the default image.
        expect(check(postgresVersionRule, { image: "Postgres 15" })).toEqual({ problems: [], draft: newDraft() });
        expect(check(postgresVersionRule, { image: "Postgres 15", postgresVersion: 17 }).draft.postgresVersion).toBe(17);
    });
});

describe("serversRule", () => {
    it("records the servers, optional fields only when given", () => {
        const { problems, draft } = check(serversRule, {
            servers: [
                { name: "pg1", node: "a" },
                { name: "pg2", node: "b", port: 5433, address: "10.1.2.3" },
            ],
        });
        expect(problems).toEqual([]);
        expect(draft.servers).toEqual([
            { name: "pg1", node: "a" },
            { name: "pg2", node: "b", port: 5433, address: "10.1.2.3" },
        ]);
    });
    it("asks for the list when it is missing", () => {
        expect(check(serversRule, {}).problems).toEqual([
            "pgha:servers: missing; list at least one server { name, node }: pulumi config set --path 'servers[0].name' pg1 && pulumi config set --path 'servers[0].node' <node hostname>",
        ]);
    });
    it("records only the servers that pass, and compares names among those", () => {
        const { problems, draft } = check(serversRule, {
            servers: [
                { name: "pg1", node: "a" },
                { name: "PG2", node: "b" },
                { name: "pg1", node: "c" },
            ],
        });
        expect(problems).toEqual([
            "pgha:servers[1].name: 'PG2' is not a valid server name: it is a DNS name and a replication slot name, so lowercase letters and digits only, starting with a letter, at most 63 (e.g. pg1): pulumi config set --path 'servers[1].name' pg1",
            // The index counts the servers that passed, not the raw list: kept as it was.
            "pgha:servers[1].name: 'pg1' is already the name of servers[0]; every server needs its own name",
        ]);
        expect(draft.servers.map((s) => s.node)).toEqual(["a", "c"]);
    });
    it("refuses one port published twice on a node, and two engines for a node", () => {
        expect(
            check(serversRule, {
                servers: [
                    { name: "pg1", node: "a", port: 5432 },
                    { name: "pg2", node: "a", port: 5432, dockerHost: "ssh://x@a" },
                ],
            }).problems,
        ).toEqual([
            "pgha:servers: pg1 and pg2 both publish port 5432 on node a; give one of them another port",
            "pgha:servers: servers on node a name different dockerHost values (local and ssh://x@a); a node has one engine, give them the same dockerHost",
        ]);
    });
});

describe("primaryRule", () => {
    it("records the primary", () => expect(check(primaryRule, { primary: "pg2" }, { servers: two }).draft.primary).toBe("pg2"));
    it("suggests the first server when it is missing", () => {
        expect(check(primaryRule, {}, { servers: two }).problems).toEqual([
            "pgha:primary: missing; name the server that is primary: pulumi config set pgha:primary pg1",
        ]);
        expect(check(primaryRule, { primary: "" }).problems).toEqual([
            "pgha:primary: missing; name the server that is primary: pulumi config set pgha:primary pg1",
        ]);
    });
    it("names the servers when it is none of them", () => {
        expect(check(primaryRule, { primary: "pg3" }, { servers: two }).problems).toEqual([
            "pgha:primary: 'pg3' is not among pgha:servers (pg1, pg2); set it to one of them: pulumi config set pgha:primary pg1",
        ]);
    });
    it("leaves the comparison to serversRule's problems when no server passed", () => {
        const { problems, draft } = check(primaryRule, { primary: "pg3" });
        expect(problems).toEqual([]);
        expect(draft.primary).toBe("pg3");
    });
});

describe("lostRule", () => {
    it("records the lost servers", () => expect(check(lostRule, { lost: ["pg2"] }, { servers: two, primary: "pg1" }).draft.lost).toEqual(["pg2"]));
    it("refuses a lost primary and names a survivor", () => {
        expect(check(lostRule, { lost: ["pg1"] }, { servers: two, primary: "pg1" }).problems).toEqual([
            "pgha:primary: 'pg1' is declared lost (pgha:lost), and a lost server cannot be primary; for a failover name a surviving server: pulumi config set pgha:primary pg2 (or, if pg1's node is back and it was never replaced, remove it from pgha:lost)",
        ]);
    });
    it("refuses names that are no server, twice listed, and every server lost", () => {
        expect(check(lostRule, { lost: ["pg9", "pg2", "pg2", "pg1"] }, { servers: two, primary: "pg1" }).problems).toEqual([
            "pgha:lost[0]: 'pg9' is not among pgha:servers (pg1, pg2); list only servers whose node is gone, or remove it: pulumi config rm --path 'lost[0]'",
            "pgha:lost[2]: 'pg2' is listed twice; remove it: pulumi config rm --path 'lost[2]'",
            "pgha:lost: lists every server, but one must survive to be primary; remove the servers whose node is back from pgha:lost (e.g. pulumi config rm --path 'lost[0]')",
        ]);
    });
    it("refuses a lost that is no list", () => {
        expect(check(lostRule, { lost: "pg2" }, { servers: two }).problems).toEqual([
            "pgha:lost: must be a list of the servers whose node is gone; e.g. pulumi config set --path 'lost[0]' pg2 (or pulumi config rm pgha:lost when none is)",
        ]);
    });
});

describe("rollingRestartRule", () => {
    it("records where the primary is after a rolling restart, return by default", () => {
        expect(check(rollingRestartRule, {}).draft.rollingRestart).toEqual({ primary: "return" });
        expect(check(rollingRestartRule, { rollingRestart: {} }).draft.rollingRestart).toEqual({ primary: "return" });
        expect(check(rollingRestartRule, { rollingRestart: { primary: "stay" } })).toEqual({
            problems: [],
            draft: { ...newDraft(), rollingRestart: { primary: "stay" } },
        });
    });
    it("refuses a primary that is neither return nor stay", () => {
        const { problems, draft } = check(rollingRestartRule, { rollingRestart: { primary: "back" } });
        expect(problems).toEqual([
            "pgha:rollingRestart.primary: 'back' is neither return nor stay; after a rolling restart, return switches the primary back to the server it was on, stay leaves it on the standby it moved to: pulumi config set --path 'rollingRestart.primary' return (or stay)",
        ]);
        expect(draft.rollingRestart).toEqual({ primary: "return" });
    });
    it("refuses unknown keys and what is no object", () => {
        expect(check(rollingRestartRule, { rollingRestart: { primary: "stay", order: "standbys-first" } }).problems).toEqual([
            "pgha:rollingRestart.order: unknown key; rollingRestart has primary",
        ]);
        expect(check(rollingRestartRule, { rollingRestart: "stay" }).problems).toEqual([
            "pgha:rollingRestart: must be an object { primary: return | stay }; e.g. pulumi config set --path 'rollingRestart.primary' return",
        ]);
    });
});

describe("failoverRule", () => {
    it("records the defaults merged with what is set, in milliseconds and bytes", () => {
        expect(check(failoverRule, {}).draft.failover).toEqual(FAILOVER_DEFAULTS);
        expect(check(failoverRule, { failover: { automatic: false, callTimeout: "500ms", maxLag: "0" } })).toEqual({
            problems: [],
            draft: { ...newDraft(), failover: { ...FAILOVER_DEFAULTS, automatic: false, callTimeoutMs: 500, maxLagBytes: 0 } },
        });
    });
    it("refuses each field word for word, keeping the default of a refused field", () => {
        const { problems, draft } = check(failoverRule, {
            failover: { automatic: "on", ttl: "10 secs", renewInterval: "100ms", callTimeout: 2, maxLag: "-1", arbiterImage: "", retries: 3 },
        });
        expect(problems).toEqual([
            "pgha:failover.retries: unknown key; failover has automatic, ttl, renewInterval, fenceDeadline, callTimeout, maxLag, arbiterImage (remove it: pulumi config rm --path 'failover.retries')",
            "pgha:failover.automatic: 'on' is not true or false: pulumi config set --path 'failover.automatic' true (or false)",
            "pgha:failover.ttl: '10 secs' is not a duration such as 10s or 500ms (units us, ms, s, min, h, d): pulumi config set --path 'failover.ttl' 10s",
            "pgha:failover.renewInterval: 100ms is below 200ms: the primary would call every arbiter several times a second for nothing: pulumi config set --path 'failover.renewInterval' 1s",
            "pgha:failover.callTimeout: 2 has no unit; write the duration with its unit (us, ms, s, min, h, d): pulumi config set --path 'failover.callTimeout' 2s (or 2ms)",
            "pgha:failover.maxLag: -1 is not a size of 0 or more: there is no \"no limit\" here, a standby that far behind would lose the transactions it lacks by taking over: pulumi config set --path 'failover.maxLag' 16MB",
            "pgha:failover.arbiterImage: '' is not an image reference; e.g. pulumi config set --path 'failover.arbiterImage' pgha-arbiter:0.1.0",
        ]);
        expect(draft.failover).toEqual(FAILOVER_DEFAULTS);
    });
    it("refuses the durations against each other, word for word", () => {
        expect(check(failoverRule, { failover: { fenceDeadline: "9s" } }).problems).toEqual([
            "pgha:failover.fenceDeadline: fence deadline 9s + call timeout 1s = 10s is not well below the ttl 10s (at most 80%: 8s): a primary cut off from the arbiters could still be writable when another server takes the lease; lower fenceDeadline to at most 7s (pulumi config set --path 'failover.fenceDeadline' 7s), or raise ttl to at least 13s (pulumi config set --path 'failover.ttl' 13s)",
        ]);
        expect(check(failoverRule, { failover: { renewInterval: "3500ms", ttl: "1min" } }).problems).toEqual([
            "pgha:failover.fenceDeadline: 6s is less than twice renewInterval 3500ms (7s): the primary would fence itself after a single missed renewal; raise fenceDeadline (pulumi config set --path 'failover.fenceDeadline' 7s) or lower renewInterval (pulumi config set --path 'failover.renewInterval' 3s)",
        ]);
        expect(check(failoverRule, { failover: { ttl: "1min", fenceDeadline: "4s", renewInterval: "2s", callTimeout: "3s" } }).problems).toEqual([
            "pgha:failover.fenceDeadline: renewInterval 2s + callTimeout 3s = 5s is not below fenceDeadline 4s: a renewal that times out would leave no time for a retry before the primary fences itself; raise fenceDeadline (pulumi config set --path 'failover.fenceDeadline' 6s) or lower renewInterval or callTimeout",
        ]);
        // When no fence deadline fits the ttl, only the ttl is offered; when no ttl fits either, neither.
        expect(check(failoverRule, { failover: { ttl: "5s", renewInterval: "2s" } }).problems).toEqual([
            "pgha:failover.fenceDeadline: fence deadline 6s + call timeout 1s = 7s is not well below the ttl 5s (at most 80%: 4s): a primary cut off from the arbiters could still be writable when another server takes the lease; raise ttl to at least 9s (pulumi config set --path 'failover.ttl' 9s)",
        ]);
        expect(check(failoverRule, { failover: { ttl: "4min", fenceDeadline: "4min", renewInterval: "2min" } }).problems[0]).toMatch(
            /; lower fenceDeadline and callTimeout, or raise ttl$/,
        );
    });
    it("leaves out a comparison whose field was refused on its own", () => {
        expect(check(failoverRule, { failover: { ttl: "2s", fenceDeadline: "soon" } }).problems.map((p) => p.split(":")[1])).toEqual([
            "failover.ttl",
            "failover.fenceDeadline",
        ]);
    });
    it("reads a partial object like the rule for npm run status (resolveFailover)", () => {
        expect(resolveFailover(undefined)).toEqual({ failover: FAILOVER_DEFAULTS, problems: [] });
        expect(resolveFailover({ automatic: false }).failover).toEqual({ ...FAILOVER_DEFAULTS, automatic: false });
        expect(resolveFailover("off").problems).toEqual([
            "pgha:failover: must be an object { automatic, ttl, renewInterval, fenceDeadline, callTimeout, maxLag, arbiterImage }; e.g. to turn automatic failover off: pulumi config set --path 'failover.automatic' false",
        ]);
    });
});

describe("postgresqlRule", () => {
    it("records the parameters it accepts, wal_level logical included", () => {
        const { problems, draft } = check(
            postgresqlRule,
            { postgresql: { shared_buffers: "1GB", wal_level: "logical", "pg_stat_statements.track": "all" } },
            { servers: two },
        );
        expect(problems).toEqual([]);
        expect(draft.postgresql).toEqual({ shared_buffers: "1GB", wal_level: "logical", "pg_stat_statements.track": "all" });
    });
    it("refuses a managed parameter with the way to change it", () => {
        expect(check(postgresqlRule, { postgresql: { archive_timeout: "5min" } }, { servers: two }).problems).toEqual([
            "pgha:postgresql.archive_timeout: managed by pgha and cannot be set here: use pgha:archive.timeout (remove it: pulumi config rm --path 'postgresql.archive_timeout')",
        ]);
    });
    it("suggests the spelling of an unknown parameter, naming the version", () => {
        expect(check(postgresqlRule, { postgresql: { Work_Mem: "4MB" } }, { servers: two, postgresVersion: 17 }).problems).toEqual([
            "pgha:postgresql.Work_Mem: PostgreSQL 17 has no parameter 'Work_Mem'; did you mean work_mem? (remove it: pulumi config rm --path 'postgresql.Work_Mem')",
        ]);
    });
    it("checks the names against the configured version's parameters, naming the versions that have one", () => {
        const raw = { postgresql: { summarize_wal: "on", old_snapshot_threshold: "1h", io_method: "worker" } };
        expect(check(postgresqlRule, raw, { servers: two, postgresVersion: 15 }).problems).toEqual([
            "pgha:postgresql.summarize_wal: PostgreSQL 15 has no parameter 'summarize_wal' (PostgreSQL 17 and 18 have it) (remove it: pulumi config rm --path 'postgresql.summarize_wal')",
            "pgha:postgresql.io_method: PostgreSQL 15 has no parameter 'io_method' (PostgreSQL 18 has it) (remove it: pulumi config rm --path 'postgresql.io_method')",
        ]);
        const on17 = check(postgresqlRule, raw, { servers: two, postgresVersion: 17 });
        expect(on17.problems).toEqual([
            "pgha:postgresql.old_snapshot_threshold: PostgreSQL 17 has no parameter 'old_snapshot_threshold' (PostgreSQL 15 has it) (remove it: pulumi config rm --path 'postgresql.old_snapshot_threshold')",
            "pgha:postgresql.io_method: PostgreSQL 17 has no parameter 'io_method' (PostgreSQL 18 has it) (remove it: pulumi config rm --path 'postgresql.io_method')",
        ]);
        expect(on17.draft.postgresql).toEqual({ summarize_wal: "on" });
        expect(check(postgresqlRule, { postgresql: { io_method: "worker" } }, { servers: two, postgresVersion: 18 }).problems).toEqual([]);
    });
    it("without a version (postgresVersionRule refused it), refuses only the names no supported version has", () => {
        expect(check(postgresqlRule, { postgresql: { io_method: "worker", shared_bufers: "1GB", WAL_level: "logical" } }, { servers: two }).problems).toEqual([
            "pgha:postgresql.shared_bufers: no supported PostgreSQL version (15, 17, 18) has a parameter 'shared_bufers' (remove it: pulumi config rm --path 'postgresql.shared_bufers')",
            "pgha:postgresql.WAL_level: no supported PostgreSQL version (15, 17, 18) has a parameter 'WAL_level'; did you mean wal_level? (remove it: pulumi config rm --path 'postgresql.WAL_level')",
        ]);
    });
    it("refuses the names every object has (constructor, toString, __proto__) as unknown parameters, never crashing", () => {
        const raw = JSON.parse('{"postgresql": {"constructor": "x", "toString": 1, "__proto__": "y", "hasOwnProperty": true}}');
        const { problems, draft } = check(postgresqlRule, raw, { servers: two, postgresVersion: 15 });
        expect(problems).toEqual(
            ["constructor", "toString", "__proto__", "hasOwnProperty"].map(
                (n) => `pgha:postgresql.${n}: PostgreSQL 15 has no parameter '${n}' (remove it: pulumi config rm --path 'postgresql.${n}')`,
            ),
        );
        expect(Object.keys(draft.postgresql)).toEqual([]);
        expect(Object.getPrototypeOf(draft.postgresql)).toBe(Object.prototype);
    });
    it("holds the replication parameters at their floor for the servers", () => {
        const three = [...two, { name: "pg3", node: "c" }];
        expect(check(postgresqlRule, { postgresql: { max_wal_senders: 4, max_replication_slots: "3" } }, { servers: three }).problems).toEqual([
            "pgha:postgresql.max_wal_senders: 4 is too small for 3 servers; it must be at least 5 (or remove it and pgha sizes it)",
            "pgha:postgresql.max_replication_slots: 3 is too small for 3 servers; it must be at least 4 (or remove it and pgha sizes it)",
        ]);
    });
});

describe("replicationRule", () => {
    it("records the settings", () => {
        expect(check(replicationRule, { replication: { maxSlotWalKeepSize: "-1", synchronous: true } }, { servers: two }).draft.replication).toEqual({
            maxSlotWalKeepSize: "-1",
            synchronous: true,
        });
    });
    it("refuses synchronous replication without a standby", () => {
        expect(check(replicationRule, { replication: { synchronous: true } }, { servers: [two[0]] }).problems).toEqual([
            "pgha:replication.synchronous: true needs at least two servers, otherwise every commit waits forever; add a server or pulumi config set --path 'replication.synchronous' false",
        ]);
    });
    it("refuses a size that is none and unknown keys", () => {
        expect(check(replicationRule, { replication: { maxSlotWalKeepSize: "10 gigs", slots: 3 } }, { servers: two }).problems).toEqual([
            "pgha:replication.slots: unknown key; replication has maxSlotWalKeepSize and synchronous",
            "pgha:replication.maxSlotWalKeepSize: '10 gigs' is not a size such as 10GB (or -1 for no limit): pulumi config set --path 'replication.maxSlotWalKeepSize' 10GB",
        ]);
    });
});

describe("archiveRule", () => {
    it("records the timeout", () => expect(check(archiveRule, { archive: { timeout: "5min" } }).draft.archive).toEqual({ timeout: "5min" }));
    it("refuses what is no duration", () => {
        expect(check(archiveRule, { archive: { timeout: 60 } }).problems).toEqual([
            "pgha:archive.timeout: '60' is not a duration such as 60s or 5min: pulumi config set --path 'archive.timeout' 60s",
        ]);
    });
    it("refuses an archive that is no object", () =>
        expect(check(archiveRule, { archive: "60s" }).problems).toEqual(["pgha:archive: must be an object { timeout }"]));
});

describe("clientsRule", () => {
    it("records the networks that pass", () => {
        const { problems, draft } = check(clientsRule, { clients: { cidrs: ["192.168.1.0/24", "192.168.2.1/24", "10.1.0.0/16"] } });
        expect(problems).toEqual([
            "pgha:clients.cidrs[1]: '192.168.2.1/24' is not an IPv4 network in CIDR form; e.g. pulumi config set --path 'clients.cidrs[1]' 192.168.1.0/24",
        ]);
        expect(draft.clients.cidrs).toEqual(["192.168.1.0/24", "10.1.0.0/16"]);
    });
    it("refuses cidrs that are no list", () => {
        expect(check(clientsRule, { clients: { cidrs: "192.168.1.0/24" } }).problems).toEqual([
            "pgha:clients: must be an object { cidrs: [ ... ] }; e.g. pulumi config set --path 'clients.cidrs[0]' 192.168.1.0/24",
        ]);
    });
});

describe("backupRule", () => {
    it("records the backup with keep 7 by default", () =>
        expect(check(backupRule, { backup: { id: "b1" } }, { servers: two }).draft.backup).toEqual({ id: "b1", keep: 7 }));
    it("records nothing when refused", () => {
        const { problems, draft } = check(backupRule, { backup: { id: "b1", keep: 0 } }, { servers: two });
        expect(problems).toEqual(["pgha:backup.keep: '0' is not a number of backups to keep (1-1000); e.g. pulumi config set --path 'backup.keep' 7"]);
        expect(draft.backup).toBeUndefined();
    });
    it("refuses a lost server as the one to back up from", () => {
        expect(check(backupRule, { backup: { id: "b1", server: "pg2" } }, { servers: two, lost: ["pg2"] }).problems).toEqual([
            "pgha:backup.server: 'pg2' is declared lost (pgha:lost); name a server that runs, or remove it to back up from a standby: pulumi config rm --path backup.server",
        ]);
    });
    it("asks for the id", () => {
        expect(check(backupRule, { backup: {} }, { servers: two }).problems).toEqual([
            "pgha:backup.id: missing (letters, digits, '.', '_', '-', starting with a letter or digit, at most 63); it labels the backup, and a new value takes a new one: pulumi config set --path 'backup.id' $(date -u +%Y%m%dT%H%M%SZ)",
        ]);
    });
});

describe("restoreRule", () => {
    const restore = { backup: "b1", confirm: "b1", target: { lsn: "0/3000a60" } };
    it("records the restore, the LSN in upper case", () =>
        expect(check(restoreRule, { restore }).draft.restore).toEqual({ backup: "b1", target: { lsn: "0/3000A60" } }));
    it("asks to confirm with the backup's label", () => {
        expect(check(restoreRule, { restore: { ...restore, confirm: "yes" } }).problems).toEqual([
            "pgha:restore.confirm: 'yes' is not the backup's label; a restore replaces the data of every server, so confirm it by repeating the label: pulumi config set --path 'restore.confirm' b1",
        ]);
    });
    it("wants exactly one target", () => {
        expect(check(restoreRule, { restore: { ...restore, target: { lsn: "0/1", time: "2025-01-31T12:00:00Z" } } }).problems).toEqual([
            "pgha:restore.target: time and lsn are both set; give exactly one of time, lsn, name: pulumi config set --path 'restore.target.time' 2025-01-31T12:00:00Z (or target.lsn, or target.name)",
        ]);
    });
    it("refuses a time that is no date", () => {
        expect(check(restoreRule, { restore: { ...restore, target: { time: "2025-02-30T25:00:00Z" } } }).problems).toEqual([
            "pgha:restore.target.time: '2025-02-30T25:00:00Z' is not an ISO 8601 timestamp with a time zone; e.g. pulumi config set --path 'restore.target.time' 2025-01-31T12:00:00Z",
        ]);
    });
});

describe("cloneFromRule", () => {
    it("records a clone from a directory or from a volume", () => {
        expect(check(cloneFromRule, { cloneFrom: { path: "/backups/x" } }, { servers: two }).draft.cloneFrom).toEqual({ path: "/backups/x" });
        expect(check(cloneFromRule, { cloneFrom: { archiveVolume: "prod-archive", backup: "b1" } }, { servers: two }).draft.cloneFrom).toEqual({
            archiveVolume: "prod-archive",
            backup: "b1",
        });
    });
    it("refuses this stack's own volumes", () => {
        expect(check(cloneFromRule, { cloneFrom: { archiveVolume: "pg1-data", backup: "b1" } }, { servers: two }).problems).toEqual([
            "pgha:cloneFrom.archiveVolume: 'pg1-data' is a volume of this stack; a clone copies another stack's data: name that stack's archive volume",
        ]);
    });
    it("refuses a path together with a volume", () => {
        expect(check(cloneFromRule, { cloneFrom: { path: "/b", backup: "b1" } }, { servers: two }).problems).toEqual([
            "pgha:cloneFrom: give either path or archiveVolume (with backup and dockerHost), not both",
        ]);
    });
    it("names every missing part of a volume source", () => {
        expect(check(cloneFromRule, { cloneFrom: {} }, { servers: two }).problems).toEqual([
            "pgha:cloneFrom.archiveVolume: missing; name the source stack's archive volume holding the backup (its output 'backups' shows archiveVolume), or set cloneFrom.path: pulumi config set --path 'cloneFrom.archiveVolume' pg2-archive && pulumi config set --path 'cloneFrom.backup' <label>",
            "pgha:cloneFrom.backup: missing; name the source's base backup (its output 'backups'): pulumi config set --path 'cloneFrom.backup' <label>",
        ]);
    });
});

describe("the reader (stack-config.ts)", () => {
    it("parses by the key table: JSON keys as JSON, string keys and unknown keys as text, secrets hidden", () => {
        pulumi.runtime.setAllConfig(
            {
                "pgha:servers": JSON.stringify(two),
                "pgha:primary": "[1]",
                "pgha:image": "123",
                "pgha:lost": "pg2",
                "pgha:superuserPassword": "s3cret-password",
                "pgha:primay": "{}",
                "other:servers": "[]",
            },
            ["pgha:superuserPassword"],
        );
        expect(readRawConfig()).toEqual({ servers: two, primary: "[1]", image: "123", lost: "pg2", superuserPassword: "(secret)", primay: "{}" });
    });
    it("reads postgresVersion and rollingRestart as JSON: a number, an object", () => {
        pulumi.runtime.setAllConfig({ "pgha:postgresVersion": "17", "pgha:rollingRestart": '{"primary":"stay"}' }, []);
        expect(readRawConfig()).toEqual({ postgresVersion: 17, rollingRestart: { primary: "stay" } });
    });
    it("reads failover as JSON, as pulumi config set --path stores it", () => {
        pulumi.runtime.setAllConfig({ "pgha:failover": '{"automatic":false,"ttl":"30s"}' }, []);
        expect(readRawConfig()).toEqual({ failover: { automatic: false, ttl: "30s" } });
    });
});
