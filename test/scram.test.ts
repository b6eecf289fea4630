// scripts/operations/scram.mjs against a real PostgreSQL (this machine's binaries): a role whose
// password is set with ALTER ROLE ... PASSWORD '<verifier printed by the script>' logs in over TCP
// with scram-sha-256, and for a given salt the script's verifier is, byte for byte, what
// PostgreSQL itself stores for the same password set in plaintext (SASLprep included).

import { ChildProcess, spawnSync } from "child_process";
import { createHash, createHmac } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import { pathToFileURL } from "url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asPostgres, freePort, pgBinDir, postgresTempDir, startPostgres, stopPostgres } from "./helpers/postgres";

const SCRIPT = path.join(__dirname, "..", "scripts", "operations", "scram.mjs");

// The module is plain JavaScript without type declarations: its API, as the tests use it.
interface ScramModule {
    DEFAULT_ITERATIONS: number;
    SALT_LENGTH: number;
    scramVerifier(password: Uint8Array | string, salt?: Uint8Array, iterations?: number): string;
    saslprep(password: Uint8Array | string): Buffer | null;
    parseVerifier(verifier: string): { iterations: number; salt: Buffer; storedKey: Buffer; serverKey: Buffer } | null;
}

/** Runs the script as the operations do: the password on standard input. */
function runScript(input: Buffer | string, args: string[] = []) {
    const r = spawnSync(process.execPath, [SCRIPT, ...args], { input: typeof input === "string" ? Buffer.from(input, "utf8") : input, timeout: 30_000 });
    return { status: r.status, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
}

/** A single-quoted SQL literal of raw bytes (standard_conforming_strings: only ' is special). */
function sqlLiteral(bytes: Buffer): Buffer {
    const parts: Buffer[] = [Buffer.from("'")];
    let start = 0;
    for (let i = 0; i < bytes.length; i++)
        if (bytes[i] === 0x27) {
            parts.push(bytes.subarray(start, i + 1), Buffer.from("'"));
            start = i + 1;
        }
    parts.push(bytes.subarray(start), Buffer.from("'"));
    return Buffer.concat(parts);
}

/** A libpq password file line field: \ and : escaped. */
function pgpassField(bytes: Buffer): Buffer {
    const out: number[] = [];
    for (const b of bytes) {
        if (b === 0x5c || b === 0x3a) out.push(0x5c);
        out.push(b);
    }
    return Buffer.from(out);
}

interface Case {
    name: string;
    password: Buffer;
    /** the database the plaintext ALTER ROLE runs in (its encoding decides which bytes the server takes) */
    db: "postgres" | "rawbytes";
    /** what SASLprep makes of it: the password PostgreSQL derives the keys from (null: SASLprep fails, the bytes are used) */
    prepared: Buffer | null;
}

const utf8 = (s: string) => Buffer.from(s, "utf8");

const CASES: Case[] = [
    // ASCII is used as it is (PostgreSQL does no SASLprep check on it: the tab stays)
    { name: "ascii", password: utf8(`Tr0ub4dor&3 it's "quoted" \\back\\slash :colon\ttab`), db: "postgres", prepared: null },
    { name: "latin", password: utf8("pässwörd"), db: "postgres", prepared: utf8("pässwörd") },
    // the same letters decomposed (a + U+0308): NFKC composes them
    { name: "decomposed", password: utf8("pa\u0308sswo\u0308rd"), db: "postgres", prepared: utf8("pässwörd") },
    // U+00A0 NO-BREAK SPACE becomes a space, U+00AD SOFT HYPHEN is mapped to nothing
    { name: "nbsp_shy", password: utf8("correct\u00A0horse\u00ADbattery"), db: "postgres", prepared: utf8("correct horsebattery") },
    // U+200B is in both tables C.1.2 and B.1: PostgreSQL maps it to a space
    { name: "zwsp", password: utf8("zero\u200Bwidth"), db: "postgres", prepared: utf8("zero width") },
    // compatibility forms: the ligature U+FB01 and the Kelvin sign U+212A
    { name: "nfkc", password: utf8("\uFB01ve\u212A"), db: "postgres", prepared: utf8("fiveK") },
    // a prohibited character (U+0007, C.2.1) in a non-ASCII password: SASLprep fails, the bytes
    // are used as they are (the ligature is not decomposed)
    { name: "prohibited", password: utf8("\uFB01ve\u0007"), db: "postgres", prepared: null },
    // unassigned in Unicode 3.2 (an emoji): prohibited too
    { name: "unassigned", password: utf8("\uFB01ve\u{1F600}"), db: "postgres", prepared: null },
    // right-to-left: Hebrew throughout is fine (U+FB2A decomposes), mixed with Latin it is not
    { name: "rtl", password: utf8("\uFB2A\u05DC\u05D5\u05DD"), db: "postgres", prepared: utf8("\u05E9\u05C1\u05DC\u05D5\u05DD") },
    { name: "mixed_bidi", password: utf8("abc\uFB2A"), db: "postgres", prepared: null },
    // nothing left after the mapping: the bytes are used
    { name: "only_shy", password: utf8("\u00AD"), db: "postgres", prepared: null },
    // not UTF-8 at all (0xFF, and 0xC3 without its continuation byte): the bytes are used. A UTF8
    // database refuses such a literal, so it is set in a SQL_ASCII one (pg_authid is shared)
    { name: "invalid_utf8", password: Buffer.from([0x70, 0x61, 0x73, 0x73, 0xff, 0x77, 0xc3, 0x28, 0x72, 0x64]), db: "rawbytes", prepared: null },
];

describe("scram.mjs: SCRAM-SHA-256 verifiers that PostgreSQL accepts and would have computed itself", () => {
    let scram: ScramModule;
    let dir: string;
    let sock: string;
    let port: number;
    let server: ChildProcess | undefined;

    /** Runs SQL (raw bytes allowed) through psql on the Unix socket as the superuser. */
    function sql(text: Buffer | string, db = "postgres"): { status: number | null; stdout: string; stderr: string } {
        const [cmd, ...args] = asPostgres([
            path.join(pgBinDir(), "psql"),
            "-X",
            "-At",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            sock,
            "-p",
            String(port),
            "-d",
            db,
            "-f",
            "-",
        ]);
        // the client encoding is the database's own: psql sends the bytes as they are
        const r = spawnSync(cmd, args, {
            input: typeof text === "string" ? Buffer.from(text, "utf8") : text,
            env: { PATH: process.env.PATH, PGCLIENTENCODING: db === "rawbytes" ? "SQL_ASCII" : "UTF8" },
        });
        return { status: r.status, stdout: r.stdout.toString("utf8").trim(), stderr: r.stderr.toString("utf8") };
    }
    function sqlOk(text: Buffer | string, db = "postgres"): string {
        const r = sql(text, db);
        if (r.status !== 0) throw new Error(`psql failed (${r.status}): ${r.stderr}`);
        return r.stdout;
    }
    const rolpassword = (role: string) => sqlOk(`SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`);

    /** Logs in over TCP with libpq (psql), the password from a password file (any bytes). */
    let passfiles = 0;
    function libpqLogin(role: string, password: Buffer): { ok: boolean; stdout: string; stderr: string } {
        const passfile = path.join(dir, `pgpass-${++passfiles}`);
        fs.writeFileSync(passfile, Buffer.concat([Buffer.from(`127.0.0.1:${port}:postgres:${role}:`), pgpassField(password), Buffer.from("\n")]), {
            mode: 0o600,
        });
        const r = spawnSync(
            path.join(pgBinDir(), "psql"),
            ["-X", "-At", "-w", "-h", "127.0.0.1", "-p", String(port), "-U", role, "-d", "postgres", "-c", "SELECT current_user"],
            {
                encoding: "utf8",
                env: { PATH: process.env.PATH, PGPASSFILE: passfile, PGCONNECT_TIMEOUT: "10" },
            },
        );
        fs.rmSync(passfile);
        return { ok: r.status === 0, stdout: r.stdout.trim(), stderr: r.stderr };
    }

    async function pgLogin(user: string, password: string): Promise<string> {
        const c = new Client({ host: "127.0.0.1", port, user, password, database: "postgres", connectionTimeoutMillis: 10_000 });
        await c.connect();
        try {
            return (await c.query("SELECT current_user AS u")).rows[0].u;
        } finally {
            await c.end();
        }
    }

    beforeAll(async () => {
        scram = (await import(pathToFileURL(SCRIPT).href)) as ScramModule;
        dir = postgresTempDir("pgha-scram-");
        sock = path.join(dir, "sock");
        port = await freePort();
        const run = (argv: string[]) => {
            const [cmd, ...args] = asPostgres(argv);
            const r = spawnSync(cmd, args, { encoding: "utf8" });
            if (r.status !== 0) throw new Error(`${argv[0]} failed: ${r.stderr}`);
        };
        run(["mkdir", sock]);
        run([
            path.join(pgBinDir(), "initdb"),
            "-D",
            path.join(dir, "data"),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=peer",
            "--auth-host=reject",
        ]);
        // the superuser over the socket (peer), everyone else over TCP with scram-sha-256 only
        fs.writeFileSync(path.join(dir, "data", "pg_hba.conf"), "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n");
        server = await startPostgres(
            [
                "-D",
                path.join(dir, "data"),
                "-c",
                `port=${port}`,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                `unix_socket_directories=${sock}`,
                "-c",
                "password_encryption=scram-sha-256",
                // every statement in the log, to show what the verifier keeps out of it
                "-c",
                "log_statement=all",
                "-c",
                "fsync=off",
            ],
            sock,
            port,
            path.join(dir, "server.log"),
        );
        sqlOk("CREATE DATABASE rawbytes ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    });

    afterAll(async () => {
        await stopPostgres(server);
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("uses the server's hba rule and password_encryption", () => {
        expect(
            sqlOk("SELECT type || ' ' || array_to_string(user_name, ',') || ' ' || address || ' ' || auth_method FROM pg_hba_file_rules WHERE type = 'host'"),
        ).toBe("host all 127.0.0.1 scram-sha-256");
        expect(sqlOk("SHOW password_encryption")).toBe("scram-sha-256");
    });

    it("sets a role's password from the printed verifier: TCP login works with it and only with it", async () => {
        const password = `rotated 'S3cret' "pw" \\ ${Date.now()}`;
        const out = runScript(`${password}\n`);
        expect(out.stderr).toBe("");
        expect(out.status).toBe(0);
        expect(out.stdout).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=\n$/);
        const verifier = out.stdout.trimEnd();

        sqlOk("CREATE ROLE app LOGIN");
        sqlOk(`ALTER ROLE app PASSWORD '${verifier}'`);
        // stored as it is (a string PostgreSQL could not parse as a verifier would be hashed as a password)
        expect(rolpassword("app")).toBe(verifier);

        expect(await pgLogin("app", password)).toBe("app");
        expect(libpqLogin("app", utf8(password))).toMatchObject({ ok: true, stdout: "app" });
        await expect(pgLogin("app", `${password}x`)).rejects.toMatchObject({ code: "28P01" });
        await expect(pgLogin("app", password.slice(0, -1))).rejects.toMatchObject({ code: "28P01" });
        const wrong = libpqLogin("app", utf8("not the password"));
        expect(wrong.ok).toBe(false);
        expect(wrong.stderr).toContain('password authentication failed for user "app"');

        // the server log has every statement, the verifier's, and never the password
        const log = fs.readFileSync(path.join(dir, "server.log"), "utf8");
        expect(log).toContain(verifier);
        expect(log).not.toContain(password);
    });

    it("accepts another iteration count (--iterations), which PostgreSQL keeps", async () => {
        const out = runScript("iterated password", ["--iterations", "10000"]);
        expect(out.status).toBe(0);
        const verifier = out.stdout.trimEnd();
        expect(scram.parseVerifier(verifier)?.iterations).toBe(10000);
        sqlOk("CREATE ROLE iterated LOGIN");
        sqlOk(`ALTER ROLE iterated PASSWORD '${verifier}'`);
        expect(rolpassword("iterated")).toBe(verifier);
        expect(await pgLogin("iterated", "iterated password")).toBe("iterated");
    });

    describe.each(CASES)("password $name", ({ name, password, db, prepared }) => {
        it("gives, for PostgreSQL's salt and count, the verifier PostgreSQL stores for it", () => {
            // PostgreSQL computes this one itself, from the plaintext, on a throwaway role
            const role = `plain_${name}`;
            sqlOk(`CREATE ROLE ${role}`);
            const set = Buffer.concat([
                Buffer.from(`SET password_encryption = 'scram-sha-256';\nALTER ROLE ${role} PASSWORD `),
                sqlLiteral(password),
                Buffer.from(";\n"),
            ]);
            sqlOk(set, db);
            const stored = rolpassword(role);
            const parts = scram.parseVerifier(stored);
            expect(parts).not.toBeNull();
            expect(parts!.iterations).toBe(scram.DEFAULT_ITERATIONS);
            expect(parts!.salt.length).toBe(scram.SALT_LENGTH);
            expect(scram.scramVerifier(password, parts!.salt, parts!.iterations)).toBe(stored);

            // and SASLprep did what the case says (null: PostgreSQL uses the bytes unchanged)
            const isAscii = password.every((b) => b < 0x80);
            expect(scram.saslprep(password)).toEqual(isAscii ? password : prepared);
            expect(scram.scramVerifier(prepared ?? password, parts!.salt, parts!.iterations)).toBe(stored);
        });

        it("sets it through the script's verifier; libpq logs in with it over TCP", () => {
            const out = runScript(Buffer.concat([password, Buffer.from("\n")]));
            expect(out.stderr).toBe("");
            expect(out.status).toBe(0);
            const verifier = out.stdout.trimEnd();
            const role = `set_${name}`;
            sqlOk(`CREATE ROLE ${role} LOGIN`);
            sqlOk(`ALTER ROLE ${role} PASSWORD '${verifier}'`);
            expect(rolpassword(role)).toBe(verifier);
            expect(libpqLogin(role, password)).toMatchObject({ ok: true, stdout: role });
            expect(libpqLogin(role, Buffer.concat([password, Buffer.from("!")])).ok).toBe(false);
        });
    });

    it("the invalid UTF-8 password cannot be set through a UTF8 database (hence the SQL_ASCII one)", () => {
        const bad = CASES.find((c) => c.name === "invalid_utf8")!;
        const r = sql(Buffer.concat([Buffer.from("ALTER ROLE plain_invalid_utf8 PASSWORD "), sqlLiteral(bad.password), Buffer.from(";\n")]), "postgres");
        expect(r.status).not.toBe(0);
        expect(r.stderr).toContain('invalid byte sequence for encoding "UTF8"');
    });

    it("the pg client (node-postgres, its own SASLprep) logs in with the valid UTF-8 ones that SASLprep accepts", async () => {
        for (const c of CASES.filter((x) => x.prepared !== null)) expect(await pgLogin(`set_${c.name}`, c.password.toString("utf8"))).toBe(`set_${c.name}`);
    });
});

describe("scram.mjs command line", () => {
    let scram: ScramModule;
    beforeAll(async () => {
        scram = (await import(pathToFileURL(SCRIPT).href)) as ScramModule;
    });

    it("prints one line; two runs give different salts", () => {
        const a = runScript("same password");
        const b = runScript("same password");
        for (const r of [a, b]) {
            expect(r.status).toBe(0);
            expect(r.stderr).toBe("");
            expect(r.stdout.split("\n")).toHaveLength(2);
            expect(r.stdout.endsWith("\n")).toBe(true);
        }
        const pa = scram.parseVerifier(a.stdout.trimEnd())!;
        const pb = scram.parseVerifier(b.stdout.trimEnd())!;
        expect(pa.salt.length).toBe(16);
        expect(pb.salt.length).toBe(16);
        expect(pa.iterations).toBe(4096);
        expect(pa.salt.equals(pb.salt)).toBe(false);
        expect(a.stdout).not.toBe(b.stdout);
        // both are the same password's
        expect(scram.scramVerifier("same password", pa.salt)).toBe(a.stdout.trimEnd());
        expect(scram.scramVerifier("same password", pb.salt)).toBe(b.stdout.trimEnd());
    });

    it.each([
        ["no newline", "pw-1", "pw-1"],
        ['"\\n"', "pw-1\n", "pw-1"],
        ['"\\r\\n"', "pw-1\r\n", "pw-1"],
        ['only one "\\n"', "pw-1\n\n", "pw-1\n"],
        ['a lone "\\r" kept', "pw-1\r", "pw-1\r"],
        ["spaces kept", "  pw-1  \n", "  pw-1  "],
    ])("takes the whole of stdin, less one trailing newline: %s", (_label, input, password) => {
        const r = runScript(input);
        expect(r.status).toBe(0);
        const verifier = r.stdout.trimEnd();
        expect(scram.scramVerifier(password, scram.parseVerifier(verifier)!.salt)).toBe(verifier);
    });

    it.each([
        ["empty stdin", ""],
        ['only "\\n"', "\n"],
        ['only "\\r\\n"', "\r\n"],
    ])("refuses an empty password with exit status 2: %s", (_label, input) => {
        const r = runScript(input);
        expect(r.status).toBe(2);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(/^scram\.mjs: .*empty/);
    });

    const secret = "Do-Not-Print-Me-7f3a";
    it.each([
        ["a NUL byte in the password", `${secret}\0tail`, [] as string[]],
        ["--iterations 0", secret, ["--iterations", "0"]],
        ["--iterations abc", secret, ["--iterations", "abc"]],
        ["--iterations without a value", secret, ["--iterations"]],
        ["an unknown argument", secret, ["--salt"]],
    ])("refuses %s with exit status 2, the password not on stderr", (_label, input, args) => {
        const r = runScript(input, args);
        expect(r.status).toBe(2);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(/^scram\.mjs: /);
        expect(r.stderr).not.toContain(secret);
        expect(r.stderr).not.toContain("tail");
    });

    it("scramVerifier refuses what PostgreSQL cannot store, without the password in the error", () => {
        expect(() => scram.scramVerifier(Buffer.alloc(0))).toThrow(/empty/);
        expect(() => scram.scramVerifier(`${secret}\0`)).toThrow(/NUL/);
        expect(() => scram.scramVerifier(secret, Buffer.alloc(0))).toThrow(/salt/);
        expect(() => scram.scramVerifier(secret, undefined, 0)).toThrow(/iteration/);
        for (const f of [
            () => scram.scramVerifier(`${secret}\0`),
            () => scram.scramVerifier(secret, undefined, 1.5),
            () => scram.scramVerifier(secret, Buffer.alloc(0)),
        ]) {
            let message = "";
            try {
                f();
            } catch (e) {
                message = String(e);
            }
            expect(message).not.toBe("");
            expect(message).not.toContain(secret);
        }
    });

    it("matches RFC 7677's example (user, pencil): its client proof and server signature check with these keys", () => {
        // RFC 7677 section 3: salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations, and the messages exchanged
        const parts = scram.parseVerifier(scram.scramVerifier("pencil", Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), 4096))!;
        const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        const authMessage = `n=user,r=rOprNGfwEbeRWgbNEkqO,r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=${nonce}`;
        expect(createHmac("sha256", parts.serverKey).update(authMessage).digest("base64")).toBe("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and StoredKey = H(ClientKey)
        const proof = Buffer.from("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "base64");
        const signature = createHmac("sha256", parts.storedKey).update(authMessage).digest();
        const clientKey = Buffer.from(proof.map((b, i) => b ^ signature[i]));
        expect(createHash("sha256").update(clientKey).digest().equals(parts.storedKey)).toBe(true);
    });
});
