// The decisions that must never go wrong, as pure steps: scripts/operations/plan.sh (the host-side
// operations) and the rejoin's own steps in scripts/server/rejoin.sh, run here with fabricated
// states — no Docker, no PostgreSQL. The end-to-end proofs run the same steps on real servers.

import { spawnSync } from "child_process";
import * as path from "path";
import { describe, expect, it } from "vitest";

const PLAN = path.join(__dirname, "..", "scripts", "operations", "plan.sh");
const REJOIN = path.join(__dirname, "..", "scripts", "server", "rejoin.sh");

/** Runs one step of FILE with ARGS; its one-line (or multi-line) answer. */
function step(file: string, fn: string, ...args: string[]): string {
    const r = spawnSync("sh", ["-c", `. "$0"; ${fn} "$@"`, file, ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${fn} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    return r.stdout.trim();
}
const plan = (fn: string, ...args: string[]) => step(PLAN, fn, ...args);
const rejoin = (fn: string, ...args: string[]) => step(REJOIN, fn, ...args);
const roles = (r: Record<string, string>) =>
    Object.entries(r)
        .map(([n, role]) => `${n} ${role}`)
        .join("\n");

describe("the current primary", () => {
    it("is the one writable server", () => {
        expect(plan("current_primary", roles({ pg1: "standby", pg2: "primary", pg3: "down" }))).toBe("one pg2");
    });
    it("is none when nobody is writable (down and lost servers are not)", () => {
        expect(plan("current_primary", roles({ pg1: "standby", pg2: "down", pg3: "lost" }))).toBe("none");
        expect(plan("current_primary", "")).toBe("none");
    });
    it("is never chosen among several writable servers", () => {
        expect(plan("current_primary", roles({ pg1: "primary", pg2: "standby", pg3: "primary" }))).toBe("many pg1 pg3");
    });
});

describe("the switchover's plan", () => {
    it("does nothing when the target is the primary already", () => {
        expect(plan("switchover_plan", "pg1", "", roles({ pg1: "primary", pg2: "standby" }))).toBe("nothing");
    });
    it("switches over from the current primary", () => {
        expect(plan("switchover_plan", "pg2", "", roles({ pg1: "primary", pg2: "standby" }))).toBe("switchover pg1");
    });
    it("refuses a target that is declared lost, whatever the roles", () => {
        expect(plan("switchover_plan", "pg2", "pg2", roles({ pg1: "primary", pg2: "lost" }))).toBe("refuse target-lost");
        expect(plan("switchover_plan", "pg2", "pg1,pg2", roles({ pg1: "lost", pg2: "lost" }))).toBe("refuse target-lost");
    });
    it("refuses to act with two writable servers (never resolved automatically)", () => {
        expect(plan("switchover_plan", "pg1", "", roles({ pg1: "primary", pg2: "primary" }))).toBe("refuse many pg1 pg2");
    });
    it("is a failover only when nobody is writable and some server is lost", () => {
        expect(plan("switchover_plan", "pg1", "pg2", roles({ pg1: "standby", pg2: "lost" }))).toBe("failover");
        expect(plan("switchover_plan", "pg1", "", roles({ pg1: "standby", pg2: "down" }))).toBe("refuse no-primary");
    });
    it("does not fail over when a lost server's absence leaves a primary reachable", () => {
        expect(plan("switchover_plan", "pg1", "pg3", roles({ pg1: "standby", pg2: "primary", pg3: "lost" }))).toBe("switchover pg2");
    });
    it("demotes only when the target streams from the old primary", () => {
        expect(plan("switchover_ready", "streaming 0")).toBe("go 0");
        expect(plan("switchover_ready", "streaming 8192")).toBe("go 8192");
        for (const state of ["", "catchup 100", "startup -1", "backup 0"]) expect(plan("switchover_ready", state), state).toBe("refuse not-streaming");
    });
});

describe("the failover's plan", () => {
    const fence = (rows: string[][]) => rows.map((r) => r.join(" ")).join("\n");
    it("promotes a running standby when the lost servers' nodes are silent or run them fenced", () => {
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "standby" }), "")).toBe("promote");
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "standby", pg3: "standby" }), fence([["pg2", "c0ffee", "fenced"]]))).toBe("promote");
    });
    it("refuses a target that is not a running standby", () => {
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "down" }), "")).toBe("refuse target down");
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "primary" }), "")).toBe("refuse target primary");
        expect(plan("failover_plan", "pg1", "pg2", "", "")).toBe("refuse target down");
    });
    it("refuses when a lost server's node still runs it unfenced (it may be a primary nobody sees)", () => {
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "standby" }), fence([["pg2", "c0ffee", "unfenced"]]))).toBe("refuse unfenced pg2 c0ffee");
    });
    it("never promotes beside another writable server", () => {
        expect(plan("failover_plan", "pg1", "pg2", roles({ pg1: "standby", pg3: "primary" }), "")).toBe("refuse writable pg3");
    });
});

describe("the backup's source", () => {
    it("is a standby when there is one, found when it runs (it follows every swap)", () => {
        expect(plan("backup_source", "", roles({ pg1: "primary", pg2: "standby", pg3: "standby" }))).toBe("take pg2 standby");
        expect(plan("backup_source", "", roles({ pg1: "standby", pg2: "primary" }))).toBe("take pg1 standby");
    });
    it("is the primary when no standby answers, and refuses when nobody does", () => {
        expect(plan("backup_source", "", roles({ pg1: "primary", pg2: "down" }))).toBe("take pg1 primary");
        expect(plan("backup_source", "", roles({ pg1: "down", pg2: "down" }))).toBe("refuse none");
    });
    it("is the configured server, which must answer", () => {
        expect(plan("backup_source", "pg1", roles({ pg1: "primary", pg2: "standby" }))).toBe("take pg1 primary");
        expect(plan("backup_source", "pg2", roles({ pg1: "primary", pg2: "down" }))).toBe("refuse down pg2");
    });
});

describe("retention", () => {
    const row = (server: string, stop: string, label: string, wal: string) => [server, stop, label, wal, "{}"].join("\t");
    const backups = [
        row("pg2", "2025-01-01T00:00:00.000Z", "b1", "000000010000000000000003"),
        row("pg1", "2025-01-03T00:00:00.000Z", "b3", "000000020000000000000009"),
        row("pg2", "2025-01-02T00:00:00.000Z", "b2", "000000020000000000000005"),
    ].join("\n");
    it("keeps the newest KEEP backups by stop time, drops the others where they are, and keeps WAL from the oldest kept one on", () => {
        expect(plan("retention_plan", "2", backups).split("\n")).toEqual(["000000020000000000000005", "drop pg2 b1"]);
        expect(plan("retention_plan", "1", backups).split("\n")).toEqual(["000000020000000000000009", "drop pg2 b2", "drop pg2 b1"]);
        expect(plan("retention_plan", "5", backups)).toBe("000000010000000000000003");
    });
    it("removes no WAL when no backup is kept", () => {
        expect(plan("retention_plan", "3", "")).toBe("-");
    });
});

describe("the restore's primary", () => {
    it("is the one primary; anything else is refused", () => {
        expect(plan("restore_primary", roles({ pg1: "standby", pg2: "primary" }))).toBe("restore pg2");
        expect(plan("restore_primary", roles({ pg1: "standby", pg2: "down" }))).toBe("refuse none");
        expect(plan("restore_primary", roles({ pg1: "primary", pg2: "primary" }))).toBe("refuse many pg1 pg2");
    });
});

describe("initialize and bootstrap", () => {
    it("initializes only an empty first primary, and never beside another server's data", () => {
        expect(plan("initialize_plan", "data", "", "0")).toBe("nothing data");
        expect(plan("initialize_plan", "initialize", "", "0")).toBe("nothing marked");
        expect(plan("initialize_plan", "foreign", "", "0")).toBe("refuse foreign");
        expect(plan("initialize_plan", "empty", "pg2,pg3", "0")).toBe("refuse other-data pg2,pg3");
        expect(plan("initialize_plan", "partial", "pg2", "1")).toBe("refuse other-data pg2");
        expect(plan("initialize_plan", "empty", "", "0")).toBe("mark");
        expect(plan("initialize_plan", "partial", "", "0")).toBe("mark");
        expect(plan("initialize_plan", "empty", "", "1")).toBe("clone");
    });
    it("copies the primary only into a volume without data, from a peer", () => {
        expect(plan("bootstrap_plan", "data", "pg1")).toBe("nothing data");
        expect(plan("bootstrap_plan", "initialize", "pg2")).toBe("nothing initialize");
        expect(plan("bootstrap_plan", "foreign", "pg1")).toBe("refuse foreign");
        expect(plan("bootstrap_plan", "empty", "")).toBe("refuse no-peer");
        expect(plan("bootstrap_plan", "empty", "pg1,pg3")).toBe("copy");
        expect(plan("bootstrap_plan", "partial", "pg1")).toBe("copy");
    });
});

describe("the rolling restart's plan", () => {
    const states = (r: Record<string, string>) =>
        Object.entries(r)
            .map(([n, st]) => `${n} ${st}`)
            .join("\n");
    it("does nothing when every running server has the new key and image (down and lost ones start with the new files)", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary ok", pg2: "standby ok", pg3: "down -" }))).toBe("nothing");
        expect(plan("roll_plan", "return", states({ pg1: "lost -", pg2: "primary ok" }))).toBe("nothing");
        expect(plan("roll_plan", "return", "")).toBe("nothing");
    });
    it("restarts the standbys first, then switches over to one, restarts the old primary and switches back", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary restart", pg2: "standby restart", pg3: "standby image" })).split("\n")).toEqual([
            "restart pg2",
            "image pg3",
            "switchover pg2",
            "restart pg1",
            "switchover pg1",
        ]);
    });
    it("leaves the primary on the standby it moved to with mode stay", () => {
        expect(plan("roll_plan", "stay", states({ pg1: "standby restart", pg2: "primary image" })).split("\n")).toEqual([
            "restart pg1",
            "switchover pg1",
            "image pg2",
        ]);
    });
    it("touches the primary only when it needs it (no switchover for standbys alone)", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary ok", pg2: "standby restart", pg3: "down -" }))).toBe("restart pg2");
    });
    it("hands over to a standby that is up, never to a down or lost one", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary restart", pg2: "down -", pg3: "lost -", pg4: "standby ok" })).split("\n")).toEqual([
            "switchover pg4",
            "restart pg1",
            "switchover pg1",
        ]);
    });
    it("restarts a primary in place only when there is no standby at all", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary restart" }))).toBe("alone restart pg1");
        expect(plan("roll_plan", "return", states({ pg1: "primary image", pg2: "down -" }))).toBe("alone image pg1");
    });
    it("refuses with two writable servers, and with none while a running server needs a restart", () => {
        expect(plan("roll_plan", "return", states({ pg1: "primary ok", pg2: "primary ok" }))).toBe("refuse many pg1 pg2");
        expect(plan("roll_plan", "return", states({ pg1: "down -", pg2: "standby restart" }))).toBe("refuse no-primary");
    });
});

describe("the rejoin's plan (in the server's container)", () => {
    it("leaves the primary alone when it is the only writable server, and refuses two primaries", () => {
        expect(rejoin("rejoin_plan", "primary", "", "cluster")).toBe("primary");
        expect(rejoin("rejoin_plan", "primary", "pg1", "cluster")).toBe("refuse two-primaries");
    });
    it("needs the primary for anything else", () => {
        for (const role of ["standby", "down"])
            for (const data of ["cluster", "empty", "foreign"]) expect(rejoin("rejoin_plan", role, "", data)).toBe("refuse no-primary");
    });
    it("copies into an empty data directory, refuses a foreign one, checks a standby, rewinds a stopped server", () => {
        expect(rejoin("rejoin_plan", "down", "pg1", "empty")).toBe("copy");
        expect(rejoin("rejoin_plan", "down", "pg1", "foreign")).toBe("refuse foreign");
        expect(rejoin("rejoin_plan", "standby", "pg1", "cluster")).toBe("check");
        expect(rejoin("rejoin_plan", "down", "pg1", "cluster")).toBe("rewind");
    });
    it("runs pg_rewind as-is after a clean shutdown, after crash recovery otherwise", () => {
        expect(rejoin("rewind_start", "shut down")).toBe("as-is");
        expect(rejoin("rewind_start", "shut down in recovery")).toBe("as-is");
        for (const state of ["in production", "in archive recovery", "in crash recovery", ""])
            expect(rejoin("rewind_start", state), state).toBe("crash-recovery");
    });
    it("is done after a rewind that streams, and makes a fresh copy otherwise (the old data kept aside)", () => {
        expect(rejoin("rejoin_after_rewind", "0", "yes")).toBe("rewound");
        expect(rejoin("rejoin_after_rewind", "0", "no")).toBe("copy");
        expect(rejoin("rejoin_after_rewind", "1", "no")).toBe("copy");
        expect(rejoin("rejoin_after_rewind", "1", "yes")).toBe("copy");
    });
});

describe("automatic failover's topology check", () => {
    it("arms with three managers or more", () => {
        expect(plan("manager_verdict", "3")).toBe("ok");
        expect(plan("manager_verdict", "5")).toBe("ok");
    });
    it("refuses two managers (either one lost loses the majority) and one, saying why", () => {
        expect(plan("manager_verdict", "2")).toMatch(/^refuse with two managers the loss of either loses the store's majority/);
        expect(plan("manager_verdict", "1")).toMatch(/^refuse with one manager/);
        expect(plan("manager_verdict", "0")).toMatch(/^refuse/);
    });
});

describe("the switchover after an automatic failover", () => {
    it("never moves the primary back on an update run (another input changed) with automatic failover", () => {
        expect(plan("switchover_keep", "update", "1", "switchover pg2")).toBe("keep pg2");
    });
    it("switches over when pgha:primary itself changed (the operator's intent), or without automatic failover", () => {
        expect(plan("switchover_keep", "create", "1", "switchover pg2")).toBe("switchover pg2");
        expect(plan("switchover_keep", "update", "0", "switchover pg2")).toBe("switchover pg2");
    });
    it("leaves every other plan alone", () => {
        expect(plan("switchover_keep", "update", "1", "nothing")).toBe("nothing");
        expect(plan("switchover_keep", "update", "1", "failover")).toBe("failover");
        expect(plan("switchover_keep", "update", "1", "refuse no-primary")).toBe("refuse no-primary");
    });
});
