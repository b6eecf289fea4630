// Every validation rule of the stack config, one case each: bad input is refused before anything
// is declared, with a message that names the key and the fix.

import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { ConfigError, DEFAULTS, RawConfig, validateConfig, validateSecrets } from "../components/config";

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
    });

    it("reports several problems at once", () => {
        const problems = problemsOf({ servers: [{ name: "PG1", node: "a" }, { name: "pg2", node: "b" }], primary: "pg9", network: { cidr: "300.1.1.0/24" } });
        expect(problems.length).toBeGreaterThanOrEqual(3);
    });
});

describe("network", () => {
    it("refuses a CIDR that is not one", () => refused({ ...good, network: { cidr: "10.0.200.0/33" } }, "pgha:network.cidr", /not an IPv4 CIDR/, /pulumi config set --path 'network.cidr'/));
    it("refuses host bits in the CIDR", () => refused({ ...good, network: { cidr: "10.0.200.5/24", gateway: "10.0.200.1" } }, "pgha:network.cidr", /did you mean 10\.0\.200\.0\/24/));
    it("refuses a prefix too wide or too narrow", () => refused({ ...good, network: { cidr: "10.0.200.0/30", gateway: "10.0.200.1" } }, "pgha:network.cidr", /out of range/));
    it("refuses a subnet overlapping Docker's own", () => refused({ ...good, network: { cidr: "172.17.5.0/24", gateway: "172.17.5.1" } }, "pgha:network.cidr", /overlaps 172\.17\.0\.0\/16/));
    it("refuses the ingress subnet", () => refused({ ...good, network: { cidr: "10.0.0.0/16", gateway: "10.0.0.1" } }, "pgha:network.cidr", /overlaps 10\.0\.0\.0\/24/));
    it("refuses a gateway outside the subnet", () => refused({ ...good, network: { gateway: "10.0.201.1" } }, "pgha:network.gateway", /outside pgha:network.cidr/, /10\.0\.200\.1/));
    it("refuses the network address as gateway", () => refused({ ...good, network: { gateway: "10.0.200.0" } }, "pgha:network.gateway", /network or broadcast/));
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
        refused({ servers: [{ name: "pg1", node: "a" }, { name: "pg1", node: "b" }], primary: "pg1" }, "pgha:servers[1].name", /already the name of servers\[0\]/));
    for (const bad of ["PG1", "pg-1", "pg_1", "1pg", "", "a".repeat(64)]) {
        it(`refuses the name '${bad.length > 10 ? bad.slice(0, 5) + "…" : bad}' (DNS label and slot name)`, () =>
            refused({ servers: [{ name: bad, node: "a" }], primary: "pg1" }, "pgha:servers[0].name", /lowercase letters and digits/));
    }
    it("accepts a 63-character name", () => expect(() => validateConfig({ servers: [{ name: "a".repeat(63), node: "n" }], primary: "a".repeat(63) })).not.toThrow());
    it("requires a node", () => refused({ servers: [{ name: "pg1" }], primary: "pg1" }, "pgha:servers[0].node", /docker node ls/));
    it("refuses a dockerHost that is no URL", () =>
        refused({ servers: [{ name: "pg1", node: "a", dockerHost: "node-a" }], primary: "pg1" }, "pgha:servers[0].dockerHost", /ssh:\/\//));
    it("refuses a port out of range", () => refused({ servers: [{ name: "pg1", node: "a", port: 70000 }], primary: "pg1" }, "pgha:servers[0].port", /1-65535/));
    it("refuses two servers publishing one port on one node", () =>
        refused(
            { servers: [{ name: "pg1", node: "a", port: 5432 }, { name: "pg2", node: "a", port: 5432 }], primary: "pg1" },
            "pgha:servers",
            /pg1 and pg2 both publish port 5432 on node a/,
        ));
    it("allows one port on two nodes", () =>
        expect(() => validateConfig({ servers: [{ name: "pg1", node: "a", port: 5432 }, { name: "pg2", node: "b", port: 5432 }], primary: "pg1" })).not.toThrow());
    it("refuses two engines for one node", () =>
        refused(
            { servers: [{ name: "pg1", node: "a", dockerHost: "ssh://x@a" }, { name: "pg2", node: "a" }], primary: "pg1" },
            "pgha:servers",
            /different dockerHost/,
        ));
    it("refuses unknown server keys", () => refused({ servers: [{ name: "pg1", node: "a", role: "primary" }], primary: "pg1" }, "pgha:servers[0].role", /unknown key/));
});

describe("primary", () => {
    it("must be set", () => refused({ servers: good.servers }, "pgha:primary", /missing/, /pulumi config set pgha:primary pg1/));
    it("must be among the servers", () => refused({ ...good, primary: "pg3" }, "pgha:primary", /'pg3' is not among pgha:servers \(pg1, pg2\)/));
});

describe("postgresql parameters", () => {
    it("accepts known parameters and extension parameters", () => {
        const cfg = validateConfig({ ...good, postgresql: { shared_buffers: "1GB", max_connections: 200, hot_standby_feedback: true, "pg_stat_statements.track": "all" } });
        expect(cfg.postgresql.max_connections).toBe(200);
    });
    it("refuses unknown parameters", () => refused({ ...good, postgresql: { shared_bufers: "1GB" } }, "pgha:postgresql.shared_bufers", /unknown PostgreSQL parameter/));
    it("suggests the right spelling", () => refused({ ...good, postgresql: { Shared_Buffers: "1GB" } }, "pgha:postgresql.Shared_Buffers", /did you mean shared_buffers/));
    for (const name of ["archive_mode", "archive_command", "primary_conninfo", "hot_standby", "fsync", "synchronous_standby_names", "listen_addresses"]) {
        it(`refuses the managed parameter ${name}`, () => refused({ ...good, postgresql: { [name]: "off" } }, `pgha:postgresql.${name}`, /managed by pgha/));
    }
    it("refuses wal_level minimal but allows logical", () => {
        refused({ ...good, postgresql: { wal_level: "minimal" } }, "pgha:postgresql.wal_level", /replica/);
        expect(validateConfig({ ...good, postgresql: { wal_level: "logical" } }).postgresql.wal_level).toBe("logical");
    });
    it("refuses max_wal_senders too small for the servers", () => refused({ ...good, postgresql: { max_wal_senders: 1 } }, "pgha:postgresql.max_wal_senders", /at least 4/));
    it("refuses values that are not scalars", () => refused({ ...good, postgresql: { work_mem: ["4MB"] } }, "pgha:postgresql.work_mem", /string, number or boolean/));
    it("refuses line breaks in values", () => refused({ ...good, postgresql: { application_name: "a\nfsync = off" } }, "pgha:postgresql.application_name", /line break/));
});

describe("replication, archive, clients", () => {
    it("refuses a bad maxSlotWalKeepSize", () => refused({ ...good, replication: { maxSlotWalKeepSize: "lots" } }, "pgha:replication.maxSlotWalKeepSize", /10GB/));
    it("refuses a non-boolean synchronous", () => refused({ ...good, replication: { synchronous: "yes" } }, "pgha:replication.synchronous", /true or false/));
    it("refuses synchronous replication with one server", () =>
        refused({ servers: [{ name: "pg1", node: "a" }], primary: "pg1", replication: { synchronous: true } }, "pgha:replication.synchronous", /at least two servers/));
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
        expect(() => validateSecrets({ superuserPassword: ok, replicatorPassword: { value: "s3cret-password", secret: false } })).toThrow(/pgha:replicatorPassword: is stored in plaintext/));
    it("refuses a password with a line break", () =>
        expect(() => validateSecrets({ superuserPassword: { value: "abc\ndefghij", secret: true }, replicatorPassword: ok })).toThrow(/line break/));
    it("refuses a short password", () => expect(() => validateSecrets({ superuserPassword: { value: "short", secret: true }, replicatorPassword: ok })).toThrow(/shorter than 8/));
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
