// Every `pgha:*` key of the stack config, in one table: the reader (stack-config.ts) parses by it,
// the validator refuses any key not in it, and a unit test keeps Pulumi.yaml's `config:` schema
// equal to it (declared keys, secret flags, `type: string`, defaults).

/** Defaults for every key that has one (mirrored in Pulumi.yaml's `config:` schema; a test keeps them equal). */
export const DEFAULTS = {
    network: { name: "pgha_net", cidr: "10.0.200.0/24", gateway: "10.0.200.1" },
    image: "postgres:15",
    postgresql: {},
    replication: { maxSlotWalKeepSize: "10GB", synchronous: false },
    archive: { timeout: "60s" },
    clients: { cidrs: [] as string[] },
    lost: [] as string[],
    rollingRestart: { primary: "return" },
    failover: {
        automatic: true,
        ttl: "10s",
        renewInterval: "1s",
        fenceDeadline: "6s",
        callTimeout: "1s",
        maxLag: "16MB",
        arbiterImage: "pgha-arbiter:0.1.0",
    },
} as const;

export interface ConfigKey {
    /** The key without its namespace: `servers` is `pgha:servers`. */
    readonly name: string;
    /** Set with `pulumi config set --secret`; the reader never puts its value in the raw config. */
    readonly secret: boolean;
    /**
     * How the reader takes the stored text: `json` for objects and lists (`pulumi config set
     * --path` stores them as JSON; text that is not JSON is kept as is, for the validator to
     * refuse), `string` for plain strings (an image `postgres:15` must not be parsed as anything).
     */
    readonly parse: "json" | "string";
    /** The program refuses to run without it; Pulumi.yaml declares it without a default. */
    readonly required: boolean;
    /** The value when unset; keys neither required nor defaulted are optional features. */
    readonly default?: unknown;
    readonly description: string;
}

/**
 * The keys, in the order the unknown-key message lists them. Keys that are neither required nor
 * defaulted (postgresVersion, backup, restore, cloneFrom) are not declared in Pulumi.yaml: a
 * declared key without a default is one the CLI requires.
 */
export const CONFIG_KEYS = [
    { name: "network", secret: false, parse: "json", required: false, default: DEFAULTS.network, description: "the overlay network { name, cidr, gateway }" },
    { name: "image", secret: false, parse: "string", required: false, default: DEFAULTS.image, description: "the PostgreSQL image every server runs" },
    {
        name: "postgresVersion",
        secret: false,
        parse: "json",
        required: false,
        description: "the PostgreSQL major version the image runs (a supported one); unset: read from the tag of pgha:image",
    },
    { name: "servers", secret: false, parse: "json", required: true, description: "the servers { name, node, dockerHost?, port?, address? }" },
    { name: "primary", secret: false, parse: "string", required: true, description: "the name of the server that is primary" },
    { name: "postgresql", secret: false, parse: "json", required: false, default: DEFAULTS.postgresql, description: "extra postgresql.conf parameters" },
    { name: "replication", secret: false, parse: "json", required: false, default: DEFAULTS.replication, description: "{ maxSlotWalKeepSize, synchronous }" },
    { name: "archive", secret: false, parse: "json", required: false, default: DEFAULTS.archive, description: "{ timeout }: archive_timeout" },
    { name: "clients", secret: false, parse: "json", required: false, default: DEFAULTS.clients, description: "{ cidrs }: extra networks allowed to connect" },
    { name: "lost", secret: false, parse: "json", required: false, default: DEFAULTS.lost, description: "the servers whose node is gone (failover)" },
    {
        name: "rollingRestart",
        secret: false,
        parse: "json",
        required: false,
        default: DEFAULTS.rollingRestart,
        description: "{ primary: return | stay }: where the primary is after a rolling restart",
    },
    {
        name: "failover",
        secret: false,
        parse: "json",
        required: false,
        default: DEFAULTS.failover,
        description: "{ automatic, ttl, renewInterval, fenceDeadline, callTimeout, maxLag, arbiterImage }: automatic failover by a lease the arbiters keep",
    },
    { name: "backup", secret: false, parse: "json", required: false, description: "a base backup { id, server?, keep? }, taken when id changes" },
    { name: "restore", secret: false, parse: "json", required: false, description: "a point-in-time recovery { backup, target, confirm, id? }" },
    { name: "cloneFrom", secret: false, parse: "json", required: false, description: "what a new stack's first primary starts from instead of initdb" },
    { name: "superuserPassword", secret: true, parse: "string", required: true, description: "the password of the postgres superuser" },
    { name: "replicatorPassword", secret: true, parse: "string", required: true, description: "the password of the replicator role standbys stream as" },
] as const satisfies readonly ConfigKey[];

/** The name of a secret key (the passwords). */
export type SecretKey = Extract<(typeof CONFIG_KEYS)[number], { readonly secret: true }>["name"];

/** The secret keys, in table order. */
export const SECRET_KEYS: readonly SecretKey[] = CONFIG_KEYS.filter((k): k is Extract<(typeof CONFIG_KEYS)[number], { readonly secret: true }> => k.secret).map(
    (k) => k.name,
);

// A Map, not an object: a key such as `constructor` or `__proto__` must not be found in it.
const BY_NAME: ReadonlyMap<string, ConfigKey> = new Map(CONFIG_KEYS.map((k) => [k.name, k]));

/** The table's entry for a key (without its namespace), or undefined for a key pgha does not know. */
export function configKey(name: string): ConfigKey | undefined {
    return BY_NAME.get(name);
}
