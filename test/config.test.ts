// Every validation rule of the stack config, one case each: bad input is refused before anything
// is declared, with a message that names the key and the fix.

import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import {
    arbiterServiceName,
    CONFIG_KEYS,
    ConfigError,
    DEFAULTS,
    durationMs,
    FAILOVER_DEFAULTS,
    formatDuration,
    leaseConfigName,
    RawConfig,
    SECRET_KEYS,
    sizeBytes,
    validateConfig,
    validateSecrets,
} from "../components/config";

const good: RawConfig = {
    servers: [
        { name: "pg1", node: "node-a" },
        { name: "pg2", node: "node-b", dockerHost: "ssh://admin@node-b", port: 5433 },
    ],
    primary: "pg1",
};

function problemsOf(raw: RawConfig): string[] {
    try {
        validateConfig(raw);
    } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return [...(e as ConfigError).problems];
    }
    throw new Error("expected the config to be refused");
}

/** Asserts exactly one problem, naming `key`, and matching each of `fragments`. */
function refused(raw: RawConfig, key: string, ...fragments: (string | RegExp)[]): void {
    const problems = problemsOf(raw);
    expect(problems, problems.join("\n")).toHaveLength(1);
    expect(problems[0].startsWith(key), `problem should start with ${key}: ${problems[0]}`).toBe(true);
    for (const f of fragments) expect(problems[0]).toMatch(f);
}

describe("valid configuration", () => {
    it("applies the defaults", () => {
        const cfg = validateConfig(good);
        expect(cfg.network).toEqual({ name: "pgha_net", cidr: "10.0.200.0/24", gateway: "10.0.200.1" });
        expect(cfg.image).toBe("postgres:15");
        expect(cfg.postgresVersion).toBe(15);
        expect(cfg.rollingRestart).toEqual({ primary: "return" });
        expect(cfg.failover).toEqual({
            automatic: true,
            ttlMs: 10_000,
            renewIntervalMs: 1_000,
            fenceDeadlineMs: 6_000,
            callTimeoutMs: 1_000,
            maxLagBytes: 16 * 1024 * 1024,
            arbiterImage: "pgha-arbiter:0.1.0",
        });
        expect(cfg.replication).toEqual({ maxSlotWalKeepSize: "10GB", synchronous: false });
        expect(cfg.archive).toEqual({ timeout: "60s" });
        expect(cfg.clients.cidrs).toEqual([]);
        expect(cfg.servers[1]).toEqual({ name: "pg2", node: "node-b", dockerHost: "ssh://admin@node-b", port: 5433 });
    });

    it("accepts every committed stack file", () => {
        for (const file of fs.readdirSync(path.join(__dirname, "..")).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f))) {
            const doc = YAML.parse(fs.readFileSync(path.join(__dirname, "..", file), "utf8"));
            const raw = Object.fromEntries(Object.entries(doc.config as Record<string, unknown>).map(([k, v]) => [k.replace(/^pgha:/, ""), v]));
            expect(() => validateConfig(raw), file).not.toThrow();
        }
    });

    it("keeps Pulumi.yaml's declared defaults equal to the program's", () => {
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8"));
        const declared = project.config as Record<string, { default?: unknown; description?: string }>;
        for (const [key, value] of Object.entries(DEFAULTS)) {
            expect(declared[`pgha:${key}`]?.default, key).toEqual(value);
        }
        for (const [key, decl] of Object.entries(declared)) {
            expect(decl.description, `${key} needs a description`).toBeTruthy();
        }
        // The key table carries the same defaults: DEFAULTS is its typed view.
        const tableDefaults = Object.fromEntries(CONFIG_KEYS.filter((k) => "default" in k).map((k) => [k.name, (k as { default: unknown }).default]));
        expect(tableDefaults).toEqual(DEFAULTS);
        for (const k of CONFIG_KEYS) {
            if ("default" in k) expect(declared[`pgha:${k.name}`]?.default, k.name).toEqual(k.default);
        }
    });

    it("keeps Pulumi.yaml's declared keys, secret flags and string types equal to the key table", () => {
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8"));
        const declared = project.config as Record<string, { type?: string; secret?: boolean; default?: unknown }>;
        // Pulumi.yaml leaves out the optional keys without a default (its header comment says why):
        // declaring them without a default would make the CLI require them.
        const undeclared = CONFIG_KEYS.filter((k) => !k.required && !("default" in k)).map((k) => k.name);
        expect(undeclared).toEqual(["postgresVersion", "backup", "restore", "cloneFrom"]);
        const declaredNames = Object.keys(declared).map((k) => {
            expect(k.startsWith("pgha:"), k).toBe(true);
            return k.replace(/^pgha:/, "");
        });
        expect(declaredNames.sort()).toEqual(
            CONFIG_KEYS.map((k) => k.name)
                .filter((n) => !undeclared.includes(n))
                .sort(),
        );
        for (const k of CONFIG_KEYS) {
            const decl = declared[`pgha:${k.name}`];
            if (decl === undefined) continue;
            expect(decl.secret === true, `${k.name}: secret`).toBe(k.secret);
            // `type: string` keys are read as plain strings; the others (objects, lists) as JSON.
            expect(decl.type === "string", `${k.name}: type string`).toBe(k.parse === "string");
            expect(decl.default === undefined, `${k.name}: required`).toBe(k.required);
        }
        expect(SECRET_KEYS).toEqual(["superuserPassword", "replicatorPassword"]);
        for (const k of CONFIG_KEYS) expect(k.description, `${k.name} needs a description`).toBeTruthy();
    });

    it("declares in Pulumi.yaml without a default exactly the keys the program requires", () => {
        // The CLI refuses to run a stack that lacks a value for a declared key without a default
        // ("Stack is missing configuration values"), so that set must be the program's required set.
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8"));
        const declared = project.config as Record<string, { default?: unknown }>;
        const required = Object.entries(declared)
            .filter(([, d]) => d.default === undefined)
            .map(([k]) => k)
            .sort();
        expect(required).toEqual(["pgha:primary", "pgha:replicatorPassword", "pgha:servers", "pgha:superuserPassword"]);
        expect(problemsOf({ servers: good.servers }).join("\n")).toMatch(/pgha:primary/);
        expect(problemsOf({ primary: "pg1" }).join("\n")).toMatch(/pgha:servers/);
        expect(() =>
            validateSecrets({ superuserPassword: { value: undefined, secret: false }, replicatorPassword: { value: "a-long-secret", secret: true } }),
        ).toThrow(/superuserPassword/);
        expect(() =>
            validateSecrets({ superuserPassword: { value: "a-long-secret", secret: true }, replicatorPassword: { value: undefined, secret: false } }),
        ).toThrow(/replicatorPassword/);
    });

    it("reports several problems at once", () => {
        const problems = problemsOf({
            servers: [
                { name: "PG1", node: "a" },
                { name: "pg2", node: "b" },
            ],
            primary: "pg9",
            network: { cidr: "300.1.1.0/24" },
        });
        expect(problems.length).toBeGreaterThanOrEqual(3);
    });
});

describe("network", () => {
    it("refuses a CIDR that is not one", () =>
        refused({ ...good, network: { cidr: "10.0.200.0/33" } }, "pgha:network.cidr", /not an IPv4 CIDR/, /pulumi config set --path 'network.cidr'/));
    it("refuses host bits in the CIDR", () =>
        refused({ ...good, network: { cidr: "10.0.200.5/24", gateway: "10.0.200.1" } }, "pgha:network.cidr", /did you mean 10\.0\.200\.0\/24/));
    it("refuses a prefix too wide or too narrow", () =>
        refused({ ...good, network: { cidr: "10.0.200.0/30", gateway: "10.0.200.1" } }, "pgha:network.cidr", /out of range/));
    it("refuses a subnet overlapping Docker's own", () =>
        refused({ ...good, network: { cidr: "172.17.5.0/24", gateway: "172.17.5.1" } }, "pgha:network.cidr", /overlaps 172\.17\.0\.0\/16/));
    it("refuses the ingress subnet", () =>
        refused({ ...good, network: { cidr: "10.0.0.0/16", gateway: "10.0.0.1" } }, "pgha:network.cidr", /overlaps 10\.0\.0\.0\/24/));
    it("refuses a gateway outside the subnet", () =>
        refused({ ...good, network: { gateway: "10.0.201.1" } }, "pgha:network.gateway", /outside pgha:network.cidr/, /10\.0\.200\.1/));
    it("refuses the network address as gateway", () =>
        refused({ ...good, network: { gateway: "10.0.200.0" } }, "pgha:network.gateway", /network or broadcast/));
    it("refuses a gateway that is no address", () => refused({ ...good, network: { gateway: "gw" } }, "pgha:network.gateway", /not an IPv4 address/));
    it("refuses a bad network name", () => refused({ ...good, network: { name: "my net" } }, "pgha:network.name", /Docker network name/));
    it("refuses unknown network keys", () => refused({ ...good, network: { subnet: "10.0.200.0/24" } }, "pgha:network.subnet", /unknown key/));
});

describe("servers", () => {
    it("requires the list", () => refused({ primary: "pg1" }, "pgha:servers", /missing/, /pulumi config set --path 'servers\[0\]\.name'/));
    it("requires at least one server", () => {
        const problems = problemsOf({ servers: [], primary: "pg1" });
        expect(problems.some((p) => p.startsWith("pgha:servers") && /at least one server/.test(p))).toBe(true);
    });
    it("refuses duplicate names", () =>
        refused(
            {
                servers: [
                    { name: "pg1", node: "a" },
                    { name: "pg1", node: "b" },
                ],
                primary: "pg1",
            },
            "pgha:servers[1].name",
            /already the name of servers\[0\]/,
        ));
    for (const bad of ["PG1", "pg-1", "pg_1", "1pg", "", "a".repeat(64)]) {
        it(`refuses the name '${bad.length > 10 ? bad.slice(0, 5) + "…" : bad}' (DNS label and slot name)`, () =>
            refused({ servers: [{ name: bad, node: "a" }], primary: "pg1" }, "pgha:servers[0].name", /lowercase letters and digits/));
    }
    it("accepts a 63-character name", () =>
        expect(() => validateConfig({ servers: [{ name: "a".repeat(63), node: "n" }], primary: "a".repeat(63) })).not.toThrow());
    it("requires a node", () => refused({ servers: [{ name: "pg1" }], primary: "pg1" }, "pgha:servers[0].node", /docker node ls/));
    it("refuses a dockerHost that is no URL", () =>
        refused({ servers: [{ name: "pg1", node: "a", dockerHost: "node-a" }], primary: "pg1" }, "pgha:servers[0].dockerHost", /ssh:\/\//));
    it("refuses a port out of range", () => refused({ servers: [{ name: "pg1", node: "a", port: 70000 }], primary: "pg1" }, "pgha:servers[0].port", /1-65535/));
    it("refuses two servers publishing one port on one node", () =>
        refused(
            {
                servers: [
                    { name: "pg1", node: "a", port: 5432 },
                    { name: "pg2", node: "a", port: 5432 },
                ],
                primary: "pg1",
            },
            "pgha:servers",
            /pg1 and pg2 both publish port 5432 on node a/,
        ));
    it("allows one port on two nodes", () =>
        expect(() =>
            validateConfig({
                servers: [
                    { name: "pg1", node: "a", port: 5432 },
                    { name: "pg2", node: "b", port: 5432 },
                ],
                primary: "pg1",
            }),
        ).not.toThrow());
    it("refuses two engines for one node", () =>
        refused(
            {
                servers: [
                    { name: "pg1", node: "a", dockerHost: "ssh://x@a" },
                    { name: "pg2", node: "a" },
                ],
                primary: "pg1",
            },
            "pgha:servers",
            /different dockerHost/,
        ));
    it("refuses unknown server keys", () =>
        refused({ servers: [{ name: "pg1", node: "a", role: "primary" }], primary: "pg1" }, "pgha:servers[0].role", /unknown key/));
    it("accepts an address that is a hostname or an IPv4 address", () => {
        for (const address of ["127.0.0.1", "192.168.77.2", "node-b", "db1.example.com"]) {
            const cfg = validateConfig({ servers: [{ name: "pg1", node: "a", port: 5432, address }], primary: "pg1" });
            expect(cfg.servers[0].address).toBe(address);
        }
        expect(validateConfig({ servers: [{ name: "pg1", node: "a", port: 5432 }], primary: "pg1" }).servers[0].address).toBeUndefined();
    });
    for (const bad of ["300.1.1.1", "10.0.0", "-node", "node_b", "tcp://node-b", "a b", "", 42]) {
        it(`refuses the address ${JSON.stringify(bad)}`, () =>
            refused(
                { servers: [{ name: "pg1", node: "a", port: 5432, address: bad }], primary: "pg1" },
                "pgha:servers[0].address",
                /not a hostname or an IPv4 address/,
                /pulumi config set --path 'servers\[0\]\.address'/,
            ));
    }
    it("refuses an address without a published port", () =>
        refused(
            { servers: [{ name: "pg1", node: "a", address: "10.1.2.3" }], primary: "pg1" },
            "pgha:servers[0].address",
            /servers\[0\]\.port is not/,
            /servers\[0\]\.port' 5432/,
        ));
});

describe("primary", () => {
    it("must be set", () => refused({ servers: good.servers }, "pgha:primary", /missing/, /pulumi config set pgha:primary pg1/));
    it("must be among the servers", () => refused({ ...good, primary: "pg3" }, "pgha:primary", /'pg3' is not among pgha:servers \(pg1, pg2\)/));
});

describe("lost (failover)", () => {
    it("defaults to no lost server", () => expect(validateConfig(good).lost).toEqual([]));
    it("accepts a lost server that is not the primary", () => expect(validateConfig({ ...good, lost: ["pg2"] }).lost).toEqual(["pg2"]));
    it("must be a list", () => refused({ ...good, lost: "pg2" }, "pgha:lost", /must be a list/, /pulumi config set --path 'lost\[0\]' pg2/));
    it("names only servers", () =>
        refused({ ...good, lost: ["pg9"] }, "pgha:lost[0]", /'pg9' is not among pgha:servers \(pg1, pg2\)/, /pulumi config rm --path 'lost\[0\]'/));
    it("names each server once", () => refused({ ...good, lost: ["pg2", "pg2"] }, "pgha:lost[1]", /listed twice/, /pulumi config rm --path 'lost\[1\]'/));
    it("never holds the primary: a failover names a surviving server", () =>
        refused({ ...good, primary: "pg2", lost: ["pg2"] }, "pgha:primary", /'pg2' is declared lost/, /pulumi config set pgha:primary pg1/));
    it("leaves at least one server", () =>
        refused({ ...good, lost: ["pg1", "pg2"] }, "pgha:lost", /lists every server/, /remove the servers whose node is back/));
});

describe("failover", () => {
    const failover = (f: unknown) => validateConfig({ ...good, failover: f }).failover;
    const FENCE = "pgha:failover.fenceDeadline";

    it("defaults to automatic failover with a 10s lease, renewed every 1s, fenced after 6s", () => {
        expect(validateConfig(good).failover).toEqual(FAILOVER_DEFAULTS);
        expect(FAILOVER_DEFAULTS).toEqual({
            automatic: true,
            ttlMs: 10_000,
            renewIntervalMs: 1_000,
            fenceDeadlineMs: 6_000,
            callTimeoutMs: 1_000,
            maxLagBytes: 16_777_216,
            arbiterImage: "pgha-arbiter:0.1.0",
        });
        expect(failover({})).toEqual(FAILOVER_DEFAULTS);
    });
    it("merges a partial object with the defaults key by key", () => {
        expect(failover({ automatic: false })).toEqual({ ...FAILOVER_DEFAULTS, automatic: false });
        expect(failover({ ttl: "30s", fenceDeadline: "20s" })).toEqual({ ...FAILOVER_DEFAULTS, ttlMs: 30_000, fenceDeadlineMs: 20_000 });
        expect(failover({ maxLag: "1GB", arbiterImage: "registry:5000/pgha/arbiter:0.2" })).toEqual({
            ...FAILOVER_DEFAULTS,
            maxLagBytes: 1024 ** 3,
            arbiterImage: "registry:5000/pgha/arbiter:0.2",
        });
    });
    it("reads the durations in milliseconds and maxLag in bytes", () => {
        expect(failover({ callTimeout: "500ms", renewInterval: "1500ms", ttl: "1min", fenceDeadline: "40s" })).toMatchObject({
            callTimeoutMs: 500,
            renewIntervalMs: 1_500,
            ttlMs: 60_000,
            fenceDeadlineMs: 40_000,
        });
        expect(failover({ ttl: "5min", fenceDeadline: "3min" })).toMatchObject({ ttlMs: 300_000, fenceDeadlineMs: 180_000 });
        expect(failover({ maxLag: "0" }).maxLagBytes).toBe(0);
        expect(failover({ maxLag: "512kB" }).maxLagBytes).toBe(524_288);
        for (const [text, ms] of [
            ["500ms", 500],
            ["2s", 2_000],
            ["2 s", 2_000],
            ["1min", 60_000],
            ["1h", 3_600_000],
            ["1500us", 1.5],
            ["10", 10_000],
        ] as const) {
            expect(durationMs(text), text).toBe(ms);
        }
        for (const bad of ["2sec", "1.5s", "-1s", "", 2, "s"]) expect(durationMs(bad), String(bad)).toBeUndefined();
        for (const [text, bytes] of [
            ["16MB", 16_777_216],
            ["100B", 100],
            ["1kB", 1024],
            ["2GB", 2 * 1024 ** 3],
            ["1TB", 1024 ** 4],
            ["16", 16_777_216],
            ["-1", -1],
        ] as const) {
            expect(sizeBytes(text), text).toBe(bytes);
        }
        for (const bad of ["16mb", "1.5GB", "lots", 16]) expect(sizeBytes(bad), String(bad)).toBeUndefined();
        expect([10_000, 500, 120_000, 90_000, 7_001, 1.5].map(formatDuration)).toEqual(["10s", "500ms", "2min", "90s", "7001ms", "1500us"]);
    });
    it("accepts one server: automatic failover is then inert", () =>
        expect(validateConfig({ servers: [{ name: "pg1", node: "a" }], primary: "pg1" }).failover.automatic).toBe(true));

    it("accepts fenceDeadline + callTimeout at exactly 80% of the ttl, and refuses just over it", () => {
        expect(failover({ fenceDeadline: "7s" })).toMatchObject({ fenceDeadlineMs: 7_000, callTimeoutMs: 1_000, ttlMs: 10_000 });
        expect(failover({ ttl: "5s", fenceDeadline: "3s", renewInterval: "1s" })).toMatchObject({ ttlMs: 5_000, fenceDeadlineMs: 3_000 });
        refused(
            { ...good, failover: { fenceDeadline: "7001ms" } },
            FENCE,
            /fence deadline 7001ms \+ call timeout 1s = 8001ms is not well below the ttl 10s \(at most 80%: 8s\)/,
            /could still be writable when another server takes the lease/,
            /pulumi config set --path 'failover.fenceDeadline' 7s/,
            /pulumi config set --path 'failover.ttl' 11s/,
        );
        refused({ ...good, failover: { callTimeout: "1001ms", fenceDeadline: "7s" } }, FENCE, /= 8001ms is not well below the ttl 10s/);
        refused({ ...good, failover: { ttl: "8749ms" } }, FENCE, /fence deadline 6s \+ call timeout 1s = 7s is not well below the ttl 8749ms/);
        expect(failover({ ttl: "8750ms" }).ttlMs).toBe(8_750);
    });
    it("states the numbers of the 80% rule, as the issue's example does", () =>
        refused(
            { ...good, failover: { fenceDeadline: "9s" } },
            FENCE,
            /^pgha:failover\.fenceDeadline: fence deadline 9s \+ call timeout 1s = 10s is not well below the ttl 10s \(at most 80%: 8s\): a primary cut off from the arbiters could still be writable when another server takes the lease; lower fenceDeadline to at most 7s/,
        ));
    it("gives the primary a retry before it fences: fenceDeadline at least twice renewInterval, and above renewInterval + callTimeout", () => {
        expect(failover({ renewInterval: "3s" }).renewIntervalMs).toBe(3_000);
        refused(
            { ...good, failover: { renewInterval: "4s" } },
            FENCE,
            /6s is less than twice renewInterval 4s \(8s\): the primary would fence itself after a single missed renewal/,
            /pulumi config set --path 'failover.fenceDeadline' 8s/,
            /pulumi config set --path 'failover.renewInterval' 3s/,
        );
        refused(
            { ...good, failover: { ttl: "1min", renewInterval: "2s", callTimeout: "4s" } },
            FENCE,
            /renewInterval 2s \+ callTimeout 4s = 6s is not below fenceDeadline 6s: a renewal that times out would leave no time for a retry/,
            /pulumi config set --path 'failover.fenceDeadline' 7s/,
        );
    });
    it("holds the ttl between 3s and 5min", () => {
        expect(failover({ ttl: "3s", fenceDeadline: "2s", renewInterval: "800ms", callTimeout: "400ms" }).ttlMs).toBe(3_000);
        expect(failover({ ttl: "5min" }).ttlMs).toBe(300_000);
        for (const ttl of ["2999ms", "301s", "1h"]) {
            const problems = problemsOf({ ...good, failover: { ttl, fenceDeadline: "2s", renewInterval: "800ms", callTimeout: "400ms" } });
            expect(problems, ttl).toEqual([
                expect.stringMatching(/^pgha:failover\.ttl: \S+ is outside 3s to 5min: .*pulumi config set --path 'failover.ttl' 10s$/),
            ]);
        }
    });
    it("holds callTimeout at 100ms or more and renewInterval at 200ms or more", () => {
        expect(failover({ callTimeout: "100ms", renewInterval: "200ms" })).toMatchObject({ callTimeoutMs: 100, renewIntervalMs: 200 });
        refused({ ...good, failover: { callTimeout: "99ms" } }, "pgha:failover.callTimeout", /99ms is below 100ms/, /'failover.callTimeout' 1s/);
        refused({ ...good, failover: { renewInterval: "199ms" } }, "pgha:failover.renewInterval", /199ms is below 200ms/, /'failover.renewInterval' 1s/);
    });
    it("refuses durations that do not parse, have no unit or are 0", () => {
        refused(
            { ...good, failover: { ttl: "ten seconds" } },
            "pgha:failover.ttl",
            /'ten seconds' is not a duration such as 10s or 500ms/,
            /'failover.ttl' 10s/,
        );
        refused({ ...good, failover: { callTimeout: 1 } }, "pgha:failover.callTimeout", /1 has no unit/, /'failover.callTimeout' 1s \(or 1ms\)/);
        refused({ ...good, failover: { renewInterval: "0ms" } }, "pgha:failover.renewInterval", /0ms must be more than 0/, /'failover.renewInterval' 1s/);
        refused({ ...good, failover: { fenceDeadline: "-6s" } }, FENCE, /not a duration/, /'failover.fenceDeadline' 6s/);
    });
    it("refuses an automatic that is no boolean", () =>
        refused({ ...good, failover: { automatic: "yes" } }, "pgha:failover.automatic", /'yes' is not true or false/, /'failover.automatic' true/));
    it("refuses a maxLag that is no size of 0 or more", () => {
        refused({ ...good, failover: { maxLag: "a lot" } }, "pgha:failover.maxLag", /'a lot' is not a size such as 16MB/, /'failover.maxLag' 16MB/);
        refused({ ...good, failover: { maxLag: "-1" } }, "pgha:failover.maxLag", /-1 is not a size of 0 or more/, /'failover.maxLag' 16MB/);
        refused({ ...good, failover: { maxLag: 16 } }, "pgha:failover.maxLag", /16 has no unit/, /'failover.maxLag' 16MB/);
    });
    it("refuses an arbiterImage that is no image reference, as pgha:image", () => {
        refused(
            { ...good, failover: { arbiterImage: "Arbiter 1" } },
            "pgha:failover.arbiterImage",
            /not an image reference/,
            /'failover.arbiterImage' pgha-arbiter:0\.1\.0/,
        );
        refused({ ...good, image: "Arbiter 1" }, "pgha:image", /not an image reference/);
    });
    it("refuses unknown keys by name, and what is no object", () => {
        refused(
            { ...good, failover: { TTL: "10s" } },
            "pgha:failover.TTL",
            /unknown key; failover has automatic, ttl, renewInterval, fenceDeadline, callTimeout, maxLag, arbiterImage; did you mean ttl\?/,
            /pulumi config rm --path 'failover.TTL'/,
        );
        refused({ ...good, failover: false }, "pgha:failover", /must be an object/, /'failover.automatic' false/);
    });
    it("reports every problem together, leaving out the comparisons of a field refused on its own", () => {
        const problems = problemsOf({ ...good, failover: { automatic: 1, ttl: "1s", callTimeout: "2x", maxLag: "-1", lease: "x" } });
        expect(problems.map((p) => p.split(":")[0] + ":" + p.split(":")[1])).toEqual([
            "pgha:failover.lease",
            "pgha:failover.automatic",
            "pgha:failover.ttl",
            "pgha:failover.callTimeout",
            "pgha:failover.maxLag",
        ]);
    });
    it("names the arbiter service and the lease config after the network", () => {
        expect([arbiterServiceName("pgha_net"), leaseConfigName("pgha_net")]).toEqual(["pgha-net-arbiter", "pgha-net-lease"]);
        expect(arbiterServiceName("my.net_2-x")).toBe("my-net-2-x-arbiter");
    });
});

describe("postgresql parameters", () => {
    it("accepts known parameters and extension parameters", () => {
        const cfg = validateConfig({
            ...good,
            postgresql: { shared_buffers: "1GB", max_connections: 200, hot_standby_feedback: true, "pg_stat_statements.track": "all" },
        });
        expect(cfg.postgresql.max_connections).toBe(200);
    });
    it("refuses unknown parameters, naming the version", () =>
        refused({ ...good, postgresql: { shared_bufers: "1GB" } }, "pgha:postgresql.shared_bufers", /PostgreSQL 15 has no parameter 'shared_bufers'/));
    it("checks the names against the configured version's parameters", () => {
        refused(
            { ...good, postgresql: { summarize_wal: "on" } },
            "pgha:postgresql.summarize_wal",
            /PostgreSQL 15 has no parameter/,
            /PostgreSQL 17 and 18 have it/,
        );
        expect(validateConfig({ ...good, image: "postgres:17", postgresql: { summarize_wal: "on" } }).postgresql.summarize_wal).toBe("on");
        expect(validateConfig({ ...good, image: "postgres:15", postgresql: { old_snapshot_threshold: "1h" } }).postgresql.old_snapshot_threshold).toBe("1h");
        refused(
            { ...good, image: "example.com/db:trixie", postgresVersion: 17, postgresql: { old_snapshot_threshold: "1h" } },
            "pgha:postgresql.old_snapshot_threshold",
            /PostgreSQL 17 has no parameter 'old_snapshot_threshold' \(PostgreSQL 15 has it\)/,
        );
        expect(validateConfig({ ...good, image: "postgres:18", postgresql: { io_method: "worker" } }).postgresql.io_method).toBe("worker");
    });
    it("suggests the right spelling", () =>
        refused({ ...good, postgresql: { Shared_Buffers: "1GB" } }, "pgha:postgresql.Shared_Buffers", /did you mean shared_buffers/));
    for (const name of ["archive_mode", "archive_command", "primary_conninfo", "hot_standby", "fsync", "synchronous_standby_names", "listen_addresses"]) {
        it(`refuses the managed parameter ${name}`, () => refused({ ...good, postgresql: { [name]: "off" } }, `pgha:postgresql.${name}`, /managed by pgha/));
    }
    it("refuses wal_level minimal but allows logical", () => {
        refused({ ...good, postgresql: { wal_level: "minimal" } }, "pgha:postgresql.wal_level", /replica/);
        expect(validateConfig({ ...good, postgresql: { wal_level: "logical" } }).postgresql.wal_level).toBe("logical");
    });
    it("refuses max_wal_senders too small for the servers", () =>
        refused({ ...good, postgresql: { max_wal_senders: 1 } }, "pgha:postgresql.max_wal_senders", /at least 4/));
    it("refuses values that are not scalars", () =>
        refused({ ...good, postgresql: { work_mem: ["4MB"] } }, "pgha:postgresql.work_mem", /string, number or boolean/));
    it("refuses line breaks in values", () =>
        refused({ ...good, postgresql: { application_name: "a\nfsync = off" } }, "pgha:postgresql.application_name", /line break/));
});

describe("postgresVersion", () => {
    it("is read from the tag of pgha:image when unset", () => {
        for (const [image, major] of [
            ["postgres:17", 17],
            ["postgres:17.2", 17],
            ["postgres:17-bookworm", 17],
            ["postgres:17.2-alpine", 17],
            ["pgha-postgres:15-lab", 15],
            ["registry:5000/team/postgres:18", 18],
        ] as const) {
            expect(validateConfig({ ...good, image }).postgresVersion, image).toBe(major);
        }
    });
    it("may be set, as a number or a string of digits, and must then agree with the tag", () => {
        expect(validateConfig({ ...good, image: "postgres:17", postgresVersion: 17 }).postgresVersion).toBe(17);
        expect(validateConfig({ ...good, image: "example.com/postgres", postgresVersion: "18" }).postgresVersion).toBe(18);
        expect(validateConfig({ ...good, image: "postgres:latest", postgresVersion: 15 }).postgresVersion).toBe(15);
    });
    for (const image of ["postgres", "postgres:latest", `postgres@sha256:${"c".repeat(64)}`, "registry:5000/postgres"]) {
        it(`must be set when the tag names no version: ${image.slice(0, 24)}`, () =>
            refused({ ...good, image }, "pgha:postgresVersion", /cannot be read from it/, /pulumi config set pgha:postgresVersion/));
    }
    it("refuses a version the tag disagrees with, naming both keys", () =>
        refused(
            { ...good, image: "postgres:17.2-alpine", postgresVersion: 15 },
            "pgha:postgresVersion",
            /pgha:image 'postgres:17.2-alpine'/,
            /pulumi config set pgha:image postgres:15-alpine/,
            /pulumi config set pgha:postgresVersion 17/,
        ));
    it("refuses the default image's 15 against another set version", () =>
        refused({ ...good, postgresVersion: 17 }, "pgha:postgresVersion", /pgha:image 'postgres:15' \(the default\)/));
    for (const v of [16, 14, "19"]) {
        it(`refuses the unsupported version ${v}, naming the supported ones`, () =>
            refused({ ...good, image: "example.com/db", postgresVersion: v }, "pgha:postgresVersion", /is not supported; pgha supports 15, 17 and 18/));
    }
    it("refuses an image of an unsupported version", () =>
        refused({ ...good, image: "postgres:16" }, "pgha:image", /PostgreSQL 16 by its tag, which pgha does not support \(it supports 15, 17 and 18\)/));
    it("refuses what is no major version", () => {
        refused({ ...good, postgresVersion: "17.2" }, "pgha:postgresVersion", /is a release, not a major version/);
        refused({ ...good, postgresVersion: "fifteen" }, "pgha:postgresVersion", /is not a PostgreSQL major version/);
    });
    it("leaves a refused image to its own problem", () => refused({ ...good, image: "Postgres 17" }, "pgha:image", /not an image reference/));
});

describe("rollingRestart", () => {
    it("returns the primary by default, or leaves it", () => {
        expect(validateConfig(good).rollingRestart).toEqual({ primary: "return" });
        expect(validateConfig({ ...good, rollingRestart: { primary: "stay" } }).rollingRestart).toEqual({ primary: "stay" });
    });
    it("refuses a primary that is neither return nor stay", () =>
        refused({ ...good, rollingRestart: { primary: "pg2" } }, "pgha:rollingRestart.primary", /neither return nor stay/, /'rollingRestart.primary' return/));
    it("refuses unknown keys", () =>
        refused({ ...good, rollingRestart: { primary: "stay", parallel: 2 } }, "pgha:rollingRestart.parallel", /unknown key; rollingRestart has primary/));
    it("refuses what is no object", () =>
        refused({ ...good, rollingRestart: "stay" }, "pgha:rollingRestart", /must be an object \{ primary: return \| stay \}/));
});

describe("replication, archive, clients", () => {
    it("refuses a bad maxSlotWalKeepSize", () =>
        refused({ ...good, replication: { maxSlotWalKeepSize: "lots" } }, "pgha:replication.maxSlotWalKeepSize", /10GB/));
    it("refuses a non-boolean synchronous", () => refused({ ...good, replication: { synchronous: "yes" } }, "pgha:replication.synchronous", /true or false/));
    it("refuses synchronous replication with one server", () =>
        refused(
            { servers: [{ name: "pg1", node: "a" }], primary: "pg1", replication: { synchronous: true } },
            "pgha:replication.synchronous",
            /at least two servers/,
        ));
    it("refuses a bad archive timeout", () => refused({ ...good, archive: { timeout: "soon" } }, "pgha:archive.timeout", /60s/));
    it("refuses a client network that is not a CIDR", () => refused({ ...good, clients: { cidrs: ["192.168.1.7/24"] } }, "pgha:clients.cidrs[0]", /CIDR/));
    it("refuses unknown top-level keys", () => refused({ ...good, primay: "pg1" }, "pgha:primay", /unknown key/, /pulumi config rm pgha:primay/));
});

describe("secrets", () => {
    const ok = { value: "s3cret-password", secret: true };
    it("accepts two secret passwords", () => expect(() => validateSecrets({ superuserPassword: ok, replicatorPassword: ok })).not.toThrow());
    it("requires both", () => {
        expect(() => validateSecrets({ superuserPassword: { value: undefined, secret: false }, replicatorPassword: ok })).toThrow(
            /pgha:superuserPassword: missing; set it as a secret: pulumi config set --secret pgha:superuserPassword/,
        );
    });
    it("refuses a password stored in plaintext", () =>
        expect(() => validateSecrets({ superuserPassword: ok, replicatorPassword: { value: "s3cret-password", secret: false } })).toThrow(
            /pgha:replicatorPassword: is stored in plaintext/,
        ));
    it("refuses a password with a line break", () =>
        expect(() => validateSecrets({ superuserPassword: { value: "abc\ndefghij", secret: true }, replicatorPassword: ok })).toThrow(/line break/));
    it("refuses a short password", () =>
        expect(() => validateSecrets({ superuserPassword: { value: "short", secret: true }, replicatorPassword: ok })).toThrow(/shorter than 8/));
    it("never echoes a password in its messages", () => {
        try {
            validateSecrets({ superuserPassword: { value: "leak\nme-please", secret: true }, replicatorPassword: { value: "plaintext-pw", secret: false } });
        } catch (e) {
            expect(String(e)).not.toContain("leak");
            expect(String(e)).not.toContain("plaintext-pw");
            return;
        }
        throw new Error("expected a refusal");
    });
});

describe("backup, restore, cloneFrom", () => {
    it("accepts a backup with defaults and takes keep 7 when unset", () => {
        expect(validateConfig({ ...good, backup: { id: "2025-01-31T0200Z" } }).backup).toEqual({ id: "2025-01-31T0200Z", keep: 7 });
        expect(validateConfig({ ...good, backup: { id: "nightly.42", server: "pg1", keep: 3 } }).backup).toEqual({ id: "nightly.42", server: "pg1", keep: 3 });
        expect(validateConfig(good).backup).toBeUndefined();
    });
    it("requires backup.id", () => refused({ ...good, backup: { keep: 2 } }, "pgha:backup.id", /missing/, /pulumi config set --path 'backup.id'/));
    for (const bad of ["", ".hidden", "-x", "a/b", "a b", "x".repeat(64), 7]) {
        it(`refuses the backup id ${JSON.stringify(bad).slice(0, 12)}`, () =>
            refused({ ...good, backup: { id: bad } }, "pgha:backup.id", /not a backup label/));
    }
    it("refuses a backup server that is not a server", () =>
        refused(
            { ...good, backup: { id: "b1", server: "pg9" } },
            "pgha:backup.server",
            /not among pgha:servers \(pg1, pg2\)/,
            /pulumi config rm --path backup.server/,
        ));
    for (const bad of [0, -1, 2.5, "7", 1001]) {
        it(`refuses backup.keep ${JSON.stringify(bad)}`, () => refused({ ...good, backup: { id: "b1", keep: bad } }, "pgha:backup.keep", /1-1000/));
    }
    it("refuses unknown backup keys", () =>
        refused({ ...good, backup: { id: "b1", label: "x" } }, "pgha:backup.label", /unknown key; backup has id, server, keep/));

    const restore = { backup: "b1", target: { name: "before-migration" }, confirm: "b1" };
    it("accepts a restore to a restore point, an LSN or a time", () => {
        expect(validateConfig({ ...good, restore }).restore).toEqual({ backup: "b1", target: { name: "before-migration" } });
        expect(validateConfig({ ...good, restore: { ...restore, target: { lsn: "0/3000a60" }, id: "2" } }).restore).toEqual({
            backup: "b1",
            target: { lsn: "0/3000A60" },
            id: "2",
        });
        for (const time of ["2025-01-31T12:00:00Z", "2025-01-31 12:00:00.123456+01", "2025-01-31T12:00+05:30"]) {
            expect(validateConfig({ ...good, restore: { ...restore, target: { time } } }).restore?.target).toEqual({ time });
        }
    });
    it("requires the confirmation to repeat the backup label", () => {
        refused({ ...good, restore: { ...restore, confirm: undefined } }, "pgha:restore.confirm", /missing/, /pulumi config set --path 'restore.confirm' b1/);
        refused({ ...good, restore: { ...restore, confirm: "yes" } }, "pgha:restore.confirm", /'yes' is not the backup's label/);
    });
    it("requires a backup label", () => refused({ ...good, restore: { target: { name: "x" }, confirm: "x" } }, "pgha:restore.backup", /missing/));
    it("requires exactly one target", () => {
        refused({ ...good, restore: { ...restore, target: {} } }, "pgha:restore.target", /no target/, /exactly one of time, lsn, name/);
        refused({ ...good, restore: { ...restore, target: { name: "x", lsn: "0/1" } } }, "pgha:restore.target", /lsn and name are both set/);
        refused({ ...good, restore: { backup: "b1", confirm: "b1" } }, "pgha:restore.target", /missing/);
    });
    it("refuses a time without a time zone, or that is no time", () => {
        refused({ ...good, restore: { ...restore, target: { time: "2025-01-31 12:00:00" } } }, "pgha:restore.target.time", /with a time zone/);
        refused({ ...good, restore: { ...restore, target: { time: "yesterday" } } }, "pgha:restore.target.time", /ISO 8601/);
        refused({ ...good, restore: { ...restore, target: { time: "2025-13-45T12:00:00Z" } } }, "pgha:restore.target.time", /ISO 8601/);
    });
    it("refuses an LSN that is none", () => refused({ ...good, restore: { ...restore, target: { lsn: "3000060" } } }, "pgha:restore.target.lsn", /not an LSN/));
    it("refuses a restore point name that needs quoting", () =>
        refused({ ...good, restore: { ...restore, target: { name: "it's" } } }, "pgha:restore.target.name", /pg_create_restore_point/));
    it("refuses unknown restore and target keys", () => {
        refused({ ...good, restore: { ...restore, when: "now" } }, "pgha:restore.when", /unknown key/);
        refused({ ...good, restore: { ...restore, target: { name: "x", xid: "5" } } }, "pgha:restore.target.xid", /unknown key/);
    });

    it("accepts a clone from another stack's archive volume or from a backup directory", () => {
        expect(
            validateConfig({ ...good, cloneFrom: { archiveVolume: "pg2-archive-prod", backup: "nightly", dockerHost: "ssh://admin@prod-b" } }).cloneFrom,
        ).toEqual({
            archiveVolume: "pg2-archive-prod",
            dockerHost: "ssh://admin@prod-b",
            backup: "nightly",
        });
        expect(validateConfig({ ...good, cloneFrom: { path: "/backups/prod/nightly" } }).cloneFrom).toEqual({ path: "/backups/prod/nightly" });
    });
    it("requires the source's backup label", () => refused({ ...good, cloneFrom: { archiveVolume: "prod-archive" } }, "pgha:cloneFrom.backup", /missing/));
    it("requires a source", () => refused({ ...good, cloneFrom: { backup: "b1" } }, "pgha:cloneFrom.archiveVolume", /missing/, /cloneFrom.path/));
    it("refuses this stack's own volumes as the source", () =>
        refused({ ...good, cloneFrom: { archiveVolume: "pg2-archive", backup: "b1" } }, "pgha:cloneFrom.archiveVolume", /a volume of this stack/));
    it("refuses a relative path, and a path together with a volume", () => {
        refused({ ...good, cloneFrom: { path: "backups/nightly" } }, "pgha:cloneFrom.path", /absolute path/);
        refused({ ...good, cloneFrom: { path: "/b", archiveVolume: "v" } }, "pgha:cloneFrom", /either path or archiveVolume/);
    });
    it("refuses a source engine that is no Docker host URL", () =>
        refused({ ...good, cloneFrom: { archiveVolume: "prod-archive", backup: "b1", dockerHost: "node-b" } }, "pgha:cloneFrom.dockerHost", /Docker host URL/));
});

describe("backup and pgha:lost", () => {
    it("refuses a lost server as the backup server", () =>
        refused(
            { ...good, lost: ["pg2"], backup: { id: "b1", server: "pg2" } },
            "pgha:backup.server",
            /declared lost/,
            /pulumi config rm --path backup.server/,
        ));
});
