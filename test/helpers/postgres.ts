// Runs the machine's PostgreSQL binaries for tests: finds them, runs them as the postgres OS user
// (PostgreSQL refuses to run as root), and hands out free loopback ports.

import { execFileSync, spawn, ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

/** Directory of the newest PostgreSQL server binaries installed on this machine. */
export function pgBinDir(): string {
    const root = "/usr/lib/postgresql";
    const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin", "postgres"))) : [];
    if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}: install postgresql (apt-get install postgresql-15)`);
    versions.sort((a, b) => Number(b) - Number(a));
    return path.join(root, versions[0], "bin");
}

const isRoot = process.getuid?.() === 0;

/** argv prefix that runs a command as the postgres OS user when we are root. */
export function asPostgres(argv: string[]): string[] {
    return isRoot ? ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--init-groups", ...argv] : argv;
}

export function runAsPostgres(argv: string[], input?: string): string {
    const [cmd, ...args] = asPostgres(argv);
    return execFileSync(cmd, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

/** A temporary directory the postgres OS user owns. */
export function postgresTempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    if (isRoot) execFileSync("chown", ["postgres:postgres", dir]);
    return dir;
}

export async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

/** Starts `postgres` in the foreground as a child; resolves once it accepts connections. */
export async function startPostgres(args: string[], socketDir: string, port: number, logFile: string): Promise<ChildProcess> {
    const [cmd, ...rest] = asPostgres([path.join(pgBinDir(), "postgres"), ...args]);
    const log = fs.openSync(logFile, "a");
    const child = spawn(cmd, rest, { stdio: ["ignore", log, log] });
    const deadline = Date.now() + 30_000;
    for (;;) {
        try {
            runAsPostgres([path.join(pgBinDir(), "pg_isready"), "-q", "-h", socketDir, "-p", String(port)]);
            return child;
        } catch {
            if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}:\n${fs.readFileSync(logFile, "utf8")}`);
            if (Date.now() > deadline) throw new Error(`postgres did not accept connections in 30 s:\n${fs.readFileSync(logFile, "utf8")}`);
            await new Promise((r) => setTimeout(r, 100));
        }
    }
}

export async function stopPostgres(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null) return;
    const done = new Promise((r) => child.once("exit", r));
    child.kill("SIGINT");
    await done;
}
