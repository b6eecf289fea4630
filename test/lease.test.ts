// Automatic failover's decisions, as pure steps of scripts/server/lease.sh run with fabricated
// states (no Docker, no PostgreSQL): what a starting server may do, when a primary fences, who
// may promote. Then the lease client against a stand-in arbiter on loopback (a real TCP server
// of this test): the token goes over the connection and never onto a command line, an arbiter
// that does not answer costs one call timeout, "unavailable" answers are counted.
// The end-to-end proofs (test/e2e/autofailover.test.ts) run the same steps on real servers.

import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const LEASE = path.join(__dirname, "..", "scripts", "server", "lease.sh");

function step(fn: string, ...args: string[]): string {
    const r = spawnSync("sh", ["-c", `. "$0"; ${fn} "$@"`, LEASE, ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${fn} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
    return r.stdout.trim();
}

/** An arbiter's answer to `read`. */
const read = (holder: string, term: number, expired: 0 | 1, ageMs = 0, managers = 3) => `ok ${holder} ${term} ${expired} ${ageMs} ${managers}`;

describe("a starting server (no standby.signal) comes up writable", () => {
    it("when it holds the current term", () => {
        expect(step("lease_start_plan", "pg1", read("pg1", 4, 0), "3")).toBe("writable");
    });
    it("never when another server holds it, expired or not (it was superseded)", () => {
        expect(step("lease_start_plan", "pg1", read("pg2", 5, 0), "4")).toBe("standby");
        expect(step("lease_start_plan", "pg1", read("pg2", 5, 1, 60000), "4")).toBe("standby");
    });
    it("never when no arbiter answers: read-only until the agent knows", () => {
        expect(step("lease_start_plan", "pg1", "", "4")).toBe("standby");
        expect(step("lease_start_plan", "pg1", "unavailable no_leader", "4")).toBe("standby");
    });
    it("after acquiring a free lease whose term is still its own (nobody took one since)", () => {
        expect(step("lease_start_plan", "pg1", read("-", 4, 1), "4")).toBe("acquire");
        expect(step("lease_start_plan", "pg1", read("-", 5, 1), "4")).toBe("standby");
        expect(step("lease_start_plan", "pg1", read("-", 4, 1), "")).toBe("standby");
    });
    it("after acquiring a lease never held (a new cluster, or automatic failover switched on for a running one)", () => {
        expect(step("lease_start_plan", "pg1", read("-", 0, 0), "")).toBe("acquire");
        expect(step("lease_start_plan", "pg1", read("-", 0, 1, 20000), "3")).toBe("acquire");
        expect(step("lease_start_plan", "pg1", read("pg2", 1, 0), "")).toBe("standby");
    });
});

describe("a standby PostgreSQL could not start (PID 1, after pg_rewind --dry-run against the writable peer)", () => {
    it("is rewound when the timelines diverged (the old primary of a failover)", () => {
        const out =
            "pg_rewind: servers diverged at WAL location 0/8035D70 on timeline 5\npg_rewind: rewinding from last common checkpoint at 0/8000060 on timeline 5\npg_rewind: Done!";
        expect(step("lease_diverged_step", "0", out)).toBe("rewind");
    });
    it("is left alone when no rewind is required: its start failed for another reason", () => {
        expect(step("lease_diverged_step", "0", "pg_rewind: source and target cluster are on the same timeline\npg_rewind: no rewind required")).toBe("none");
    });
    it("is rewound or copied afresh when the dry run found the divergence and failed after it", () => {
        expect(
            step(
                "lease_diverged_step",
                "1",
                "pg_rewind: servers diverged at WAL location 0/80000A0 on timeline 4\npg_rewind: error: could not find previous WAL record at 0/8000028",
            ),
        ).toBe("rewind");
    });
    it("is left alone when the dry run failed before it could tell, or said neither", () => {
        expect(step("lease_diverged_step", "1", "pg_rewind: error: could not connect to server")).toBe("unknown");
        expect(step("lease_diverged_step", "1", "pg_rewind: no rewind required")).toBe("unknown");
        expect(step("lease_diverged_step", "0", "")).toBe("unknown");
    });
});

describe("the primary's agent", () => {
    it("keeps going after a renewal", () => {
        expect(step("lease_primary_step", "10000", "9000", "6000", "ok pg1 3")).toBe("renewed");
    });
    it("fences at once when another server holds the lease", () => {
        expect(step("lease_primary_step", "10000", "9999", "6000", "lost pg2 4")).toBe("fence lost");
    });
    it("waits while the fence deadline has not passed since the last renewal was sent", () => {
        expect(step("lease_primary_step", "15999", "10000", "6000", "")).toBe("wait");
    });
    it("fences once it has not renewed for the fence deadline", () => {
        expect(step("lease_primary_step", "16000", "10000", "6000", "")).toBe("fence deadline");
        expect(step("lease_primary_step", "30000", "10000", "6000", "unavailable no_leader")).toBe("fence deadline");
    });
});

describe("a store without a leader", () => {
    it("counts like a renewal only when a majority of the managers' arbiters say so", () => {
        expect(step("lease_extends", "2", "3")).toBe("yes");
        expect(step("lease_extends", "3", "5")).toBe("yes");
    });
    it("does not when only the primary's own node's arbiter answers (it is the one cut off)", () => {
        expect(step("lease_extends", "1", "3")).toBe("no");
        expect(step("lease_extends", "2", "5")).toBe("no");
    });
    it("never with fewer than three managers, or an unknown count", () => {
        expect(step("lease_extends", "2", "2")).toBe("no");
        expect(step("lease_extends", "1", "1")).toBe("no");
        expect(step("lease_extends", "5", "0")).toBe("no");
    });
});

describe("a standby's agent", () => {
    const ttl = "10000";
    it("acquires an expired lease when it streamed recently and nobody is ahead", () => {
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 10500), "-", "yes", "-", "0", ttl)).toBe("acquire");
    });
    it("acquires a free lease (released) on the same conditions", () => {
        expect(step("lease_standby_step", "pg2", read("-", 3, 0), "-", "yes", "-", "0", ttl)).toBe("acquire");
    });
    it("waits while the lease is held and not expired", () => {
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 0, 9000), "-", "yes", "-", "0", ttl)).toBe("wait held");
    });
    it("never acquires when it did not stream recently or lagged beyond the bound", () => {
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 20000), "-", "no", "-", "0", ttl)).toBe("wait stale");
    });
    it("defers to a standby ahead of it for one more TTL, then may take over itself", () => {
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 12000), "-", "yes", "pg3", "0", ttl)).toBe("wait defer pg3");
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 20000), "-", "yes", "pg3", "0", ttl)).toBe("acquire");
    });
    it("follows a writable peer instead of taking a lease (never two writable servers)", () => {
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 30000), "pg1", "yes", "-", "0", ttl)).toBe("follow pg1");
        expect(step("lease_standby_step", "pg2", read("-", 3, 0), "pg1", "yes", "-", "0", ttl)).toBe("follow pg1");
    });
    it("promotes when the lease is its own (a blip fenced it, or a handover), unless a peer is writable", () => {
        expect(step("lease_standby_step", "pg1", read("pg1", 3, 0), "-", "no", "-", "0", ttl)).toBe("promote");
        expect(step("lease_standby_step", "pg1", read("pg1", 3, 0), "pg2", "no", "-", "0", ttl)).toBe("wait conflict");
    });
    it("does nothing without an arbiter's answer, or when declared lost (pgha:lost)", () => {
        expect(step("lease_standby_step", "pg2", "", "-", "yes", "-", "0", ttl)).toBe("wait unknown");
        expect(step("lease_standby_step", "pg2", "unavailable no_leader", "-", "yes", "-", "0", ttl)).toBe("wait unknown");
        expect(step("lease_standby_step", "pg2", read("pg1", 3, 1, 30000), "-", "yes", "-", "1", ttl)).toBe("wait fenced");
    });
});

describe("an answer's words", () => {
    it("are read by position, empty past the end", () => {
        expect(step("lease_field", "ok - 0 1 2 3", "2")).toBe("-");
        expect(step("lease_field", "ok - 0 1 2 3", "3")).toBe("0");
        expect(step("lease_field", "ok af1 4", "9")).toBe("");
        expect(step("lease_field", "", "3")).toBe("");
    });
});

describe("the lag bound and LSNs", () => {
    it("reads LSNs as byte counts", () => {
        expect(step("lease_lsn_bytes", "0/0")).toBe("0");
        expect(step("lease_lsn_bytes", "1/10")).toBe(String(2 ** 32 + 16));
        expect(step("lease_lsn_bytes", "A/FF000000")).toBe(String(10 * 2 ** 32 + 0xff000000));
        expect(step("lease_lsn_bytes", "")).toBe("0");
    });
    it("accepts a streaming receiver within the bound only", () => {
        expect(step("lease_lag_ok", "streaming", "1000", "1000", "16")).toBe("yes");
        expect(step("lease_lag_ok", "streaming", "1000", "1016", "16")).toBe("yes");
        expect(step("lease_lag_ok", "streaming", "1000", "1017", "16")).toBe("no");
        expect(step("lease_lag_ok", "stopping", "1000", "1000", "16")).toBe("no");
        expect(step("lease_lag_ok", "", "0", "0", "16")).toBe("no");
    });
});

describe("the settings file", () => {
    let dir: string;
    beforeAll(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgha-lease-"));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const settings = (text: string | undefined) => {
        const conf = path.join(dir, "failover.conf");
        if (text === undefined) fs.rmSync(conf, { force: true });
        else fs.writeFileSync(conf, text);
        const r = spawnSync("sh", ["-c", `. "$0"; if lease_settings; then echo "on $lf_arbiter $lf_ttl $lf_fence"; else echo off; fi`, LEASE], {
            encoding: "utf8",
            env: { ...process.env, PGHA_CONFIG_DIR: dir },
        });
        return r.stdout.trim();
    };
    it("turns the agent on only with automatic=1 and an arbiter", () => {
        expect(settings("automatic=1\narbiter=x-arbiter\nttl_ms=12000\nfence_ms=7000\n")).toBe("on x-arbiter 12000 7000");
        expect(settings("automatic=0\narbiter=x-arbiter\n")).toBe("off");
        expect(settings("automatic=1\n")).toBe("off");
        expect(settings(undefined)).toBe("off");
    });
    it("ignores values that are not plain words (the file is never sourced)", () => {
        expect(settings("automatic=1\narbiter=x-arbiter\nttl_ms=$(touch /tmp/x)\n")).toBe("on x-arbiter 10000 6000");
    });
});

describe("the lease client, against stand-in arbiters on loopback", () => {
    let dir: string;
    const servers: net.Server[] = [];
    const ports: Record<string, number> = {};
    const seen: string[] = [];
    /** Stand-ins: one that answers ok (a read's six words), one that never answers, one whose store has no leader. */
    const answers: Record<string, string | undefined> = {
        ok: "ok pg1 7 0 120 3\n",
        silent: undefined,
        unavailable: "unavailable no_leader\n",
        // arbiters that disagree: one watched the lease long enough to call it expired, one saw a newer term
        expired: "ok pg1 7 1 10200 3\n",
        newer: "ok pg2 8 0 40 3\n",
        held: "refused pg1 7 held\n",
        term: "refused pg1 8 term\n",
    };
    beforeAll(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgha-lease-client-"));
        fs.writeFileSync(path.join(dir, "pgha-arbiter-token"), "s3cret-token\n", { mode: 0o400 });
        for (const kind of Object.keys(answers)) {
            const server = net.createServer((c) => {
                let buf = "";
                c.on("data", (d) => {
                    buf += d.toString();
                    if (!buf.includes("\n")) return;
                    seen.push(`${kind}: ${buf.trim()}`);
                    const a = answers[kind];
                    if (a !== undefined) c.end(a); // the silent one never answers: the client's timeout must end it
                });
                c.on("error", () => undefined);
            });
            await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
            ports[kind] = (server.address() as net.AddressInfo).port;
            servers.push(server);
        }
    });
    afterAll(() => {
        for (const s of servers) s.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Runs lease_call REQUEST with the given stand-ins as the arbiters (addresses 127.0.0.1:PORT),
     * a call timeout of 400 ms.
     */
    function call(request: string, arbiters: string[]): Promise<{ out: string; stats: string; ms: number; status: number | null; cmdlines: string }> {
        const list = arbiters.map((a) => (a.includes(":") ? a : `127.0.0.1:${ports[a]}`)).join(" ");
        const script = `. "$0"; lf_call=400; lease_stats="$PGHA_SECRETS_DIR/stats"; rm -f "$lease_stats"
            lease_addresses() { for a in ${list}; do echo "$a"; done; }
            ( while :; do cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; sleep 0.05; done ) > "$PGHA_SECRETS_DIR/cmdlines" & w=$!
            lease_call "$1"; s=$?; kill $w; exit $s`;
        const t0 = Date.now();
        return new Promise((resolve) => {
            const p = spawn("sh", ["-c", script, LEASE, request], { env: { ...process.env, PGHA_SECRETS_DIR: dir, PGHA_RUNTIME_DIR: dir } });
            let out = "";
            p.stdout.on("data", (d) => (out += d));
            p.on("close", (status) => {
                const stats = fs.existsSync(path.join(dir, "stats")) ? fs.readFileSync(path.join(dir, "stats"), "utf8").trim() : "";
                resolve({ out: out.trim(), stats, ms: Date.now() - t0, status, cmdlines: fs.readFileSync(path.join(dir, "cmdlines"), "utf8") });
            });
        });
    }

    it("sends the token and the request on one line, and prints the answer and the manager count", async () => {
        const r = await call("read", ["ok"]);
        expect(r.status).toBe(0);
        expect(r.out).toBe("ok pg1 7 0 120 3");
        expect(r.stats).toBe("0 3");
        expect(seen.at(-1)).toBe("ok: s3cret-token read");
    });
    it("never puts the token on a command line", async () => {
        const r = await call("renew pg1 7", ["ok"]);
        expect(r.cmdlines).toContain("sleep");
        expect(r.cmdlines).not.toContain("s3cret-token");
    });
    it("gives up on an arbiter that does not answer after one call timeout", async () => {
        const r = await call("read", ["silent"]);
        expect(r.status).not.toBe(0);
        expect(r.ms).toBeGreaterThanOrEqual(400);
        expect(r.ms).toBeLessThan(2000);
    });
    it("asks every arbiter at once for a read or a renewal: one call timeout for the round, every answer counted", async () => {
        const r = await call("renew pg1 7", ["silent", "unavailable", "silent", "unavailable", "ok"]);
        expect(r.status).toBe(0);
        expect(r.out).toBe("ok pg1 7 0 120 3");
        expect(r.stats.split(" ")[0]).toBe("2");
        expect(r.ms).toBeLessThan(1200); // not five timeouts one after the other
        const none = await call("renew pg1 7", ["unavailable", "silent", "unavailable"]);
        expect(none.status).not.toBe(0);
        expect(none.stats).toBe("2 0");
    });
    it("connects again every 250 ms while an arbiter's connection is not up, within the round", async () => {
        // a port nothing listens on yet (refused, as a dropped SYN would never answer), then an
        // arbiter on it 150 ms later: the second attempt, 250 ms after the first, gets the answer
        const probe = net.createServer();
        await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
        const port = (probe.address() as net.AddressInfo).port;
        await new Promise<void>((resolve) => probe.close(() => resolve()));
        const late = net.createServer((c) => c.once("data", () => c.end("ok pg1 7 0 120 3\n")));
        const timer = setTimeout(() => late.listen(port, "127.0.0.1"), 150);
        try {
            const r = await call("renew pg1 7", [`127.0.0.1:${port}`]);
            expect(r.status).toBe(0);
            expect(r.out).toBe("ok pg1 7 0 120 3");
            expect(r.ms).toBeGreaterThanOrEqual(250);
        } finally {
            clearTimeout(timer);
            late.close();
        }
    });
    it("sends one request per round to an arbiter that accepted the connection, however long it takes to answer", async () => {
        const before = seen.filter((l) => l.startsWith("silent:")).length;
        const r = await call("renew pg1 7", ["silent"]);
        expect(r.status).not.toBe(0);
        expect(r.ms).toBeGreaterThanOrEqual(400);
        expect(seen.filter((l) => l.startsWith("silent:")).length - before).toBe(1);
    });
    it("of several reads, takes the highest term's answer, and an expired one before one that is not", async () => {
        expect((await call("read", ["ok", "expired", "ok"])).out).toBe("ok pg1 7 1 10200 3");
        expect((await call("read", ["expired", "newer"])).out).toBe("ok pg2 8 0 40 3");
        expect((await call("read", ["newer", "expired"])).out).toBe("ok pg2 8 0 40 3");
    });
    it("goes on to the next arbiter when an acquire is refused as held (it took no effect), not when refused for its term", async () => {
        let before = seen.length;
        const r = await call("acquire pg2 7", ["held", "ok"]);
        expect(r.out).toBe("ok pg1 7 0 120 3");
        expect(seen.slice(before)).toEqual(["held: s3cret-token acquire pg2 7", "ok: s3cret-token acquire pg2 7"]);
        before = seen.length;
        expect((await call("acquire pg2 7", ["held", "held"])).out).toBe("refused pg1 7 held");
        expect(seen.length - before).toBe(2);
        before = seen.length;
        expect((await call("acquire pg2 7", ["term", "ok"])).out).toBe("refused pg1 8 term");
        expect(seen.slice(before)).toEqual(["term: s3cret-token acquire pg2 7"]);
    });
    it("asks one arbiter after the other for what must take effect once (acquire), stopping at the first answer", async () => {
        const before = seen.length;
        const r = await call("acquire pg2 7", ["unavailable", "ok", "ok"]);
        expect(r.status).toBe(0);
        expect(seen.slice(before)).toEqual(["unavailable: s3cret-token acquire pg2 7", "ok: s3cret-token acquire pg2 7"]);
    });
});
