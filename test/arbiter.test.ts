// pgha-arbiter (scripts/arbiter/, Go, the standard library only): its own Go tests, run here as part
// of the unit suite — the lease's rules and the observation clock with fabricated states, the
// compare-and-swap loop against a fake Docker API on a unix socket in a temporary directory, lost
// races, the store failing, the protocol over TCP on loopback. No Docker, no network. Then the
// sources' formatting (gofmt) and the build script's promises.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const DIR = path.join(__dirname, "..", "scripts", "arbiter");

// The toolchain installed here, as scripts/arbiter/build.sh uses it: nothing downloaded (no
// modules to fetch, GOTOOLCHAIN=local), Go's caches outside the repository.
const GO_ENV = {
    ...process.env,
    PATH: `${process.env.PATH ?? "/usr/bin:/bin"}:/usr/local/go/bin`,
    CGO_ENABLED: "0",
    GOTOOLCHAIN: "local",
    GOFLAGS: "-mod=mod",
    GOCACHE: process.env.GOCACHE || "/var/cache/pgha-go/build",
    GOMODCACHE: process.env.GOMODCACHE || "/var/cache/pgha-go/mod",
};

/** Runs CMD ARGS in scripts/arbiter; its exit status and everything it printed. */
function run(cmd: string, args: string[]): { status: number | null; output: string } {
    const r = spawnSync(cmd, args, { cwd: DIR, env: GO_ENV, encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.error) return { status: null, output: `${cmd}: ${r.error.message} (Go 1.26 is needed: /usr/local/go/bin or PATH)` };
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("pgha-arbiter (scripts/arbiter)", () => {
    it("passes its Go tests (go test ./...)", { timeout: 600_000 }, () => {
        // -count=1: run them, never a cached result
        const r = run("go", ["test", "-count=1", "./..."]);
        expect(r.status, r.output).toBe(0);
        expect(r.output).toMatch(/^ok\s+pgha\.local\/arbiter\s/m);
    });

    it("is gofmt-formatted, with lines of at most 120 columns", () => {
        const r = run("gofmt", ["-l", "."]);
        expect(r.status, r.output).toBe(0);
        expect(r.output.trim(), "gofmt -l lists the files it would change").toBe("");
        for (const f of fs.readdirSync(DIR).filter((n) => n.endsWith(".go") || n.endsWith(".sh"))) {
            fs.readFileSync(path.join(DIR, f), "utf8")
                .split("\n")
                .forEach((line, i) => expect(line.replace(/\t/g, "    ").length, `${f}:${i + 1}`).toBeLessThanOrEqual(120));
        }
    });

    it("depends on nothing but Go's standard library", () => {
        const mod = fs.readFileSync(path.join(DIR, "go.mod"), "utf8");
        expect(mod).toMatch(/^module pgha\.local\/arbiter$/m);
        expect(mod).toMatch(/^go 1\.26$/m);
        expect(mod).not.toMatch(/^\s*require\b/m);
        expect(fs.existsSync(path.join(DIR, "go.sum"))).toBe(false);
    });

    it("is built by build.sh as a static binary, cached and labelled by the hash of its sources", () => {
        const sh = fs.readFileSync(path.join(DIR, "build.sh"), "utf8");
        expect(sh).toMatch(/^export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod$/m);
        expect(sh).toContain(`--change 'ENTRYPOINT ["/pgha-arbiter"]'`);
        expect(sh).toContain('--change "LABEL $LABEL=$hash"');
        const hash = run("sh", ["build.sh", "hash"]);
        expect(hash.status, hash.output).toBe(0);
        expect(hash.output.trim()).toMatch(/^[0-9a-f]{16}$/);
        expect(run("sh", ["build.sh", "hash"]).output).toBe(hash.output);
    });
});
