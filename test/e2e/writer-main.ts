// The writer process (see traffic.ts): commits one row every EVERY_MS through one libpq
// connection string (multi-host, target_session_attrs=read-write), reconnecting at once after any
// failure, and reports on stdout: "ack <id> <epoch ms>" per acknowledged commit, "doubt" per
// statement whose outcome is unknown, "error <message>" per distinct failure. Stops on SIGTERM.
// It runs in a process of its own because libpq's connect is synchronous here: pg-native's
// asynchronous connect loses track of the socket when libpq moves on to the next host.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Native = require("pg-native") as new () => {
    connectSync(conninfo: string): void;
    querySync(text: string): Record<string, unknown>[];
    end(): void;
};

const conninfo = process.env.PGHA_WRITER_CONNINFO ?? "";
const table = process.env.PGHA_WRITER_TABLE ?? "";
const everyMs = Number(process.env.PGHA_WRITER_EVERY_MS ?? "10");
if (!conninfo || !/^[a-z_][a-z0-9_]*$/.test(table)) {
    process.stderr.write("writer: set PGHA_WRITER_CONNINFO and PGHA_WRITER_TABLE\n");
    process.exit(2);
}

let running = true;
process.on("SIGTERM", () => (running = false));
const seen = new Set<string>();
const out = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
    let client: InstanceType<typeof Native> | undefined;
    while (running) {
        const started = Date.now();
        if (!client) {
            const c = new Native();
            try {
                c.connectSync(conninfo);
                client = c;
            } catch (e) {
                const msg = String((e as Error).message).split("\n")[0];
                if (!seen.has(msg)) out(`error ${msg}`);
                seen.add(msg);
                await sleep(2);
                continue;
            }
        }
        try {
            const rows = client.querySync(`INSERT INTO ${table} DEFAULT VALUES RETURNING id`);
            out(`ack ${rows[0].id} ${Date.now()}`);
        } catch (e) {
            out("doubt");
            const msg = String((e as Error).message).split("\n")[0];
            if (!seen.has(msg)) out(`error ${msg}`);
            seen.add(msg);
            try {
                client.end();
            } catch {
                // already gone
            }
            client = undefined;
            continue;
        }
        const wait = everyMs - (Date.now() - started);
        if (wait > 0) await sleep(wait);
    }
    client?.end();
}

main().then(() => process.exit(0));
