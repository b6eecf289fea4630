// The contract between the program and the operation scripts: for every operation, the script its
// Command runs (scripts/operations/<name>.sh) and the environment it gives that script, declared
// once, here. Every variable has a kind, and every kind one format, so a list of names or the
// table of servers is written the same way for every script (scripts/operations/lib.sh reads
// them). test/operations.test.ts checks each script's required and read variables against its
// contract: a renamed or missing variable fails the unit suite, not a deployment.

/** The row of PGHA_SERVERS for one server. */
export interface ServerRow {
    readonly name: string;
    /** The engine of its node ("" = the local engine / DOCKER_HOST). */
    readonly engine: string;
    readonly dataVolume: string;
    readonly archiveVolume: string;
}

/** The TypeScript type of each kind of value. */
interface KindTypes {
    /** A server name. */
    name: string;
    /** Server names: comma-separated. */
    names: readonly string[];
    /** The servers: one line per server, "name engine|- dataVolume archiveVolume". */
    servers: readonly ServerRow[];
    /** A Docker engine URL ("" = the local engine). */
    engine: string;
    /** A Docker volume, network or image name, a label, a path, a recovery target: as is. */
    text: string;
    /** A password: as is, and only ever inside a secret Output. */
    secret: string;
    /** A whole number (seconds, a count). */
    count: number;
    /** 1 or 0. */
    flag: boolean;
}
export type Kind = keyof KindTypes;

/** One variable of a contract. */
export interface Variable<K extends Kind = Kind> {
    readonly kind: K;
    /** The script refuses to run without it (`require_env`). */
    readonly required: boolean;
    readonly doc: string;
}

const req = <K extends Kind>(kind: K, doc: string): Variable<K> & { required: true } => ({ kind, required: true, doc });
const opt = <K extends Kind>(kind: K, doc: string): Variable<K> & { required: false } => ({ kind, required: false, doc });

/** How each kind is written into the environment. */
const ENCODE: { [K in Kind]: (value: KindTypes[K]) => string } = {
    name: (v) => v,
    names: (v) => v.join(","),
    servers: (v) => v.map((s) => `${s.name} ${s.engine || "-"} ${s.dataVolume} ${s.archiveVolume}`).join("\n"),
    engine: (v) => v,
    text: (v) => v,
    secret: (v) => v,
    count: (v) => String(v),
    flag: (v) => (v ? "1" : "0"),
};

/**
 * Every operation a Command runs. The key is the operation's one name: its Command
 * (`<stack>-<name>` or `<server>-<name>`), its script, its container subcommand
 * (scripts/server/<name>.sh), its page in docs/ and its end-to-end test use it too.
 * `runs` names further scripts the operation's script hands over to with the same environment.
 */
export const OPERATIONS = {
    initialize: {
        script: "initialize.sh",
        runs: ["clone.sh"],
        env: {
            PGHA_SERVER: req("name", "the first primary (pgha:primary)"),
            PGHA_IMAGE: req("text", "the image (pgha:image), for one-off containers on the volumes' nodes"),
            PGHA_SERVERS: req("servers", "every server: a second cluster beside existing data is refused"),
            PGHA_CLONE_VOLUME: opt("text", "pgha:cloneFrom.archiveVolume: clone.sh fills the primary from it"),
            PGHA_CLONE_DOCKER_HOST: opt("engine", "pgha:cloneFrom.dockerHost: the engine holding that volume"),
            PGHA_CLONE_BACKUP: opt("text", "pgha:cloneFrom.backup: the backup's label"),
            PGHA_CLONE_PATH: opt("text", "pgha:cloneFrom.path: a backup directory on this machine"),
            PGHA_CLONE_TIMEOUT: opt("count", "seconds the clone's recovery may take (default 1800)"),
        },
    },
    bootstrap: {
        script: "bootstrap.sh",
        runs: [],
        env: {
            PGHA_SERVER: req("name", "the server to copy the primary into"),
            PGHA_PEERS: opt("names", "the other servers: the copy comes from whichever is writable"),
            PGHA_DOCKER_HOST: opt("engine", "the engine of the server's node"),
            PGHA_DATA_VOLUME: req("text", "the server's data volume"),
            PGHA_NETWORK: req("text", "the overlay network the one-off container joins"),
            PGHA_IMAGE: req("text", "the image of the one-off container"),
            PGHA_SUPERUSER_PASSWORD: req("secret", "pgha:superuserPassword (to the container on stdin)"),
            PGHA_REPLICATOR_PASSWORD: req("secret", "pgha:replicatorPassword (to the container on stdin)"),
            PGHA_BOOTSTRAP_TIMEOUT: opt("count", "seconds for the copy and for the new standby to stream (default 300)"),
        },
    },
    switchover: {
        script: "switchover.sh",
        runs: ["failover.sh"],
        env: {
            PGHA_PRIMARY: req("name", "pgha:primary: the server to make primary"),
            PGHA_SERVERS: req("servers", "every server"),
            PGHA_LOST: opt("names", "pgha:lost: never contacted; with the primary among them, a failover"),
            PGHA_SWITCHOVER_TIMEOUT: opt("count", "seconds for each step (default 60)"),
            PGHA_FAILOVER_AUTOMATIC: opt("flag", "pgha:failover.automatic: an update run (another input changed) never moves the primary back"),
        },
    },
    rejoin: {
        script: "rejoin.sh",
        runs: [],
        env: {
            PGHA_SERVER: req("name", "the server"),
            PGHA_DOCKER_HOST: opt("engine", "the engine of its node"),
            PGHA_DATA_VOLUME: opt("text", "its data volume (default <server>-data)"),
            PGHA_SERVER_LOST: req("flag", "the server is in pgha:lost (1: nothing to do; 0: rejoin it if it runs fenced)"),
            PGHA_REJOIN_TIMEOUT: opt("count", "seconds for a rewind or a copy (default 300)"),
            PGHA_REJOIN_START_TIMEOUT: opt("count", "seconds to wait for its container (default 120)"),
        },
    },
    reload: {
        script: "reload.sh",
        runs: [],
        env: {
            PGHA_SERVER: req("name", "the server"),
            PGHA_DOCKER_HOST: opt("engine", "the engine of its node"),
            PGHA_DATA_VOLUME: req("text", "its data volume (the files go to its pgha/ directory)"),
            PGHA_IMAGE: req(
                "text",
                "pgha:image, for a one-off container on the volume when the server's container does not run (or its service does not exist yet)",
            ),
            PGHA_SERVER_LOST: req("flag", "the server is in pgha:lost (1: not contacted; its files are delivered when it leaves the list)"),
            PGHA_PG_MAJOR: req("count", "pgha:postgresVersion: data of another major version is refused"),
            PGHA_POSTGRESQL_CONF: req("text", "postgresql.conf as rendered (templates.ts)"),
            PGHA_HBA_CONF: req("text", "pg_hba.conf as rendered"),
            PGHA_SERVER_CONF: req("text", "the server's server.conf as rendered"),
            PGHA_PEERS: opt("names", "the other servers (the peers file: slots, copies)"),
            PGHA_FAILOVER_CONF: req("text", "failover.conf as rendered (templates.ts): automatic failover's settings for the agent"),
        },
    },
    roll: {
        script: "roll.sh",
        runs: [],
        env: {
            PGHA_SERVERS: req("servers", "every server"),
            PGHA_LOST: opt("names", "pgha:lost: never contacted, restarted when they rejoin"),
            PGHA_IMAGE: req("text", "pgha:image: a server running another image is moved to it by docker service update"),
            PGHA_PG_MAJOR: req("count", "pgha:postgresVersion: an image or data of another major version is refused before anything changes"),
            PGHA_RESTART_KEY: req("text", "what a server must be restarted for when it changes (components/changes.ts: restartKey)"),
            PGHA_SERVER_FILES: req("text", "the digest of scripts/server/*.sh as previewed (the files are read from there and checked against it)"),
            PGHA_ROLL_PRIMARY: req("text", "pgha:rollingRestart.primary: return (switch back) or stay"),
            PGHA_ROLL_TIMEOUT: opt("count", "seconds each restarted server may take to answer and stream again (default 300)"),
        },
    },
    passwords: {
        script: "passwords.sh",
        runs: [],
        env: {
            PGHA_SERVERS: req("servers", "every server"),
            PGHA_LOST: opt("names", "pgha:lost: not contacted; they get the files when they leave the list"),
            PGHA_IMAGE: req("text", "pgha:image, for a one-off container on a volume whose server's container does not run"),
            PGHA_SUPERUSER_PASSWORD: req("secret", "pgha:superuserPassword"),
            PGHA_REPLICATOR_PASSWORD: req("secret", "pgha:replicatorPassword"),
            PGHA_ARBITER_TOKEN: opt("secret", "the arbiter's token (automatic failover): the agents authenticate with it"),
        },
    },
    arbiter: {
        script: "arbiter.sh",
        runs: [],
        env: {
            PGHA_ARBITER_SERVICE: req("text", "the arbiter's swarm service (global on the managers)"),
            PGHA_FAILOVER_AUTOMATIC: req("flag", "pgha:failover.automatic"),
            PGHA_ARBITER_TIMEOUT: opt("count", "seconds to wait for the arbiter's tasks (default 120)"),
            PGHA_LEASE_CONFIG: opt(
                "text",
                "the swarm config holding the lease (read by arbiter.sh lease on every preview, removed with the stack by arbiter.sh forget)",
            ),
        },
    },
    backup: {
        script: "backup.sh",
        runs: [],
        env: {
            PGHA_SERVERS: req("servers", "the servers that are not lost"),
            PGHA_BACKUP_LABEL: req("text", "pgha:backup.id: the new backup's label"),
            PGHA_BACKUP_KEEP: req("count", "pgha:backup.keep"),
            PGHA_BACKUP_SERVER: opt("name", "pgha:backup.server (empty: a standby, found when it runs)"),
        },
    },
    restore: {
        script: "restore.sh",
        runs: [],
        env: {
            PGHA_SERVERS: req("servers", "the servers that are not lost"),
            PGHA_RESTORE_BACKUP: req("text", "pgha:restore.backup"),
            PGHA_RESTORE_TARGET: req("text", "pgha:restore.target as time=<timestamp>, lsn=<LSN> or name=<restore point>"),
            PGHA_RESTORE_ID: opt("text", "pgha:restore.id"),
            PGHA_RESTORE_TIMEOUT: opt("count", "seconds the recovery may take (default 1800)"),
        },
    },
} as const;

export type Operation = keyof typeof OPERATIONS;
type Env<O extends Operation> = (typeof OPERATIONS)[O]["env"];
type TypeOf<V> = V extends Variable<infer K> ? KindTypes[K] : never;

/** The typed values of an operation's environment: the required ones must be given. */
export type OperationValues<O extends Operation> = {
    -readonly [N in keyof Env<O> as Env<O>[N] extends { required: true } ? N : never]: TypeOf<Env<O>[N]>;
} & {
    -readonly [N in keyof Env<O> as Env<O>[N] extends { required: true } ? never : N]?: TypeOf<Env<O>[N]>;
};

/** The environment an operation's Command gives its script, each value in its kind's format. */
export function operationEnv<O extends Operation>(op: O, values: OperationValues<O>): Record<string, string> {
    const contract = OPERATIONS[op].env as Record<string, Variable>;
    const given = values as Record<string, unknown>;
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(given)) {
        const v = contract[name];
        if (!v) throw new Error(`operation ${op}: ${name} is not in its contract (components/operations.ts)`);
        if (value === undefined) continue;
        env[name] = (ENCODE[v.kind] as (x: unknown) => string)(value);
    }
    for (const [name, v] of Object.entries(contract)) {
        if (v.required && env[name] === undefined) throw new Error(`operation ${op}: ${name} is required by its contract`);
    }
    return env;
}

/** The command text of an operation's Command: relative to the project directory, where Pulumi
 * runs the program and its Commands, so it is the same on every machine that previews or applies. */
export function operationCommand(op: Operation, ...args: string[]): string {
    return [`sh ./scripts/operations/${OPERATIONS[op].script}`, ...args].join(" ");
}

/**
 * The environment of every server container (the service spec, read by scripts/server/lib.sh and
 * run.sh). Nothing in it says whether the server is primary or standby, and nothing that changes
 * with the config: the peers are a file the reload operation delivers (a spec change restarts).
 */
export const SERVER_ENV = {
    PGHA_SERVER: req("name", "this server's name"),
    PGHA_FENCED: opt("flag", "set (1) while the server is in pgha:lost: it starts read-only"),
} as const;

/** A server container's environment. */
export function serverEnv(values: { PGHA_SERVER: string; PGHA_FENCED?: boolean }): Record<string, string> {
    return {
        PGHA_SERVER: ENCODE.name(values.PGHA_SERVER),
        // Only when fenced: the spec of a server that is not lost carries no PGHA_FENCED at all.
        ...(values.PGHA_FENCED ? { PGHA_FENCED: ENCODE.flag(true) } : {}),
    };
}
