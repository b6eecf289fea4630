// The whole cluster: the overlay network, the shared files, every server, and the operations that
// act on the servers' data (initialize the first primary, bootstrap standbys).

import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { CloneFromConfig, PghaConfig, ServerConfig } from "./config";
import { ClusterNetwork } from "./network";
import { OperationValues, ServerRow, operationCommand, operationEnv } from "./operations";
import { Arbiter, renderFailoverConf } from "./arbiter";
import { restartKey, serverFilesDigest } from "./changes";
import { Server, volumeNames } from "./server";
import { connectionStrings, renderPgHba, renderPostgresqlConf, renderServerConf } from "./templates";

export interface ClusterArgs {
    readonly config: PghaConfig;
    readonly superuserPassword: pulumi.Input<string>;
    readonly replicatorPassword: pulumi.Input<string>;
    /** Directory holding scripts/ (default: the working directory, where Pulumi runs the program and its Commands). */
    readonly projectDir?: string;
}

export interface ServerOutputs {
    node: string;
    dockerHost: string;
    dataVolume: pulumi.Output<string>;
    archiveVolume: pulumi.Output<string>;
    service: pulumi.Output<string>;
    publishedPort?: number;
    /** Where clients outside the swarm reach `publishedPort` (servers[i].address; default: the node's hostname). */
    address: string;
}

/** One kept base backup, as the backup Command lists it (backup.json in its archive volume). */
export interface BackupInfo {
    label: string;
    /** The server whose archive volume holds it, and that volume. */
    server: string;
    archiveVolume: string;
    /** The server's role when the backup was taken: primary or standby. */
    backupFrom: string;
    timeline: number;
    startLsn: string;
    stopLsn: string;
    stopTimeline: number;
    /** The first WAL file the backup needs (older archived WAL is removed by retention). */
    startWal: string;
    startTime: string;
    stopTime: string;
    bytes: number;
}

/** The backup Command's stdout: a JSON list of BackupInfo ([] when it is anything else). */
export function parseBackups(stdout: string): BackupInfo[] {
    try {
        const v = JSON.parse(stdout);
        return Array.isArray(v) ? v : [];
    } catch {
        return [];
    }
}

/** The initialize Command's values for pgha:cloneFrom (scripts/operations/clone.sh). */
export function cloneFromEnvironment(c: CloneFromConfig | undefined): Partial<OperationValues<"initialize">> {
    if (!c) return {};
    if ("path" in c) return { PGHA_CLONE_PATH: c.path };
    return { PGHA_CLONE_VOLUME: c.archiveVolume, PGHA_CLONE_DOCKER_HOST: c.dockerHost ?? "", PGHA_CLONE_BACKUP: c.backup };
}

/** The container side of pgha: scripts/server/*.sh, by file name, in a stable order. */
export function serverFiles(projectDir: string): Record<string, string> {
    const dir = path.join(projectDir, "scripts", "server");
    const names = fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".sh"))
        .sort();
    return Object.fromEntries(names.map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]));
}

/** The engine a server's node-local work goes to ("" = the local engine / DOCKER_HOST). */
export function dockerHostOf(server: ServerConfig): string {
    return server.dockerHost ?? "";
}

export class Cluster extends pulumi.ComponentResource {
    public readonly network: ClusterNetwork;
    public readonly servers: Record<string, Server> = {};
    public readonly initializeCommand: command.local.Command;
    public readonly bootstraps: Record<string, command.local.Command> = {};
    public readonly rejoins: Record<string, command.local.Command> = {};
    public readonly switchover: command.local.Command;
    /** One per server: delivers its configuration files and reloads it (components/changes.ts). */
    public readonly reloads: Record<string, command.local.Command> = {};
    /** Delivers the passwords: ALTER ROLE on the primary first, then every server's password files. */
    public readonly passwordsCommand: command.local.Command;
    /** Delivers pgha's container files and restarts the servers one at a time when the restart key changes. */
    public readonly roll: command.local.Command;
    /** pgha:backup: takes a base backup when backup.id changes, then applies retention. */
    public readonly backupCommand?: command.local.Command;
    /** pgha:restore: point-in-time recovery of the cluster when restore changes. */
    public readonly restoreCommand?: command.local.Command;
    /** The kept base backups as the backup Command last listed them, oldest first. */
    public readonly backups: pulumi.Output<BackupInfo[]>;
    public readonly primary: string;
    public readonly connectionStrings: { readWrite: string; readOnly: string };
    public readonly serverOutputs: Record<string, ServerOutputs> = {};
    /** Automatic failover's arbiter (pgha:failover.automatic): the lease on the managers. */
    public readonly arbiter?: Arbiter;

    constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:Cluster", name, {}, opts);
        const cfg = args.config;
        // The Commands run `sh ./scripts/operations/...` from the directory Pulumi runs the program
        // in: the container files are read from there too, so that what the roll delivers is what
        // the preview's digest says (not the files behind a symlinked components/).
        const projectDir = args.projectDir ?? process.cwd();
        const labels = { "pgha.cluster": cfg.network.name };

        this.network = new ClusterNetwork(`${name}-network`, { network: cfg.network, labels }, { parent: this });

        // One provider per distinct node engine; servers without dockerHost use the default one.
        const providers = new Map<string, docker.Provider>();
        for (const s of cfg.servers) {
            if (s.dockerHost !== undefined && !providers.has(s.dockerHost)) {
                providers.set(s.dockerHost, new docker.Provider(`${name}-engine-${s.node}`, { host: s.dockerHost }, { parent: this }));
            }
        }

        // Rejoin: one per server, triggered by whether the server is in pgha:lost, so it runs when
        // a server enters the list (a no-op: a lost server is never contacted) and when it leaves
        // it (the rejoin: pg_rewind against the primary, or a fresh copy with the old data
        // directory kept aside; a no-op for a server that streams already). Its inputs name only
        // its own server, so a failover or switchover of the others does not run it.
        //
        // Order: the server's service spec depends on it. A server leaving pgha:lost keeps
        // PGHA_FENCED in its spec until its rejoin succeeded: while the rejoin stops, rewinds
        // or re-copies it, any restart of its container still comes back fenced (read-only), and
        // a failed rejoin (e.g. its node is still gone) stops `pulumi up` with the fence in place.
        // Only then is the spec updated without the fence, which restarts the container once; it
        // comes back as the standby the rejoin left (standby.signal in its data directory).
        for (const s of cfg.servers) {
            const lost = cfg.lost.includes(s.name);
            this.rejoins[s.name] = new command.local.Command(
                `${s.name}-rejoin`,
                {
                    create: operationCommand("rejoin"),
                    environment: operationEnv("rejoin", {
                        PGHA_SERVER: s.name,
                        PGHA_DOCKER_HOST: dockerHostOf(s),
                        PGHA_DATA_VOLUME: volumeNames(s.name).data,
                        PGHA_SERVER_LOST: lost,
                    }),
                    triggers: [lost ? "lost" : "not lost"],
                    logging: "stderr",
                },
                { parent: this },
            );
        }

        /** The other servers' names. */
        const peersOf = (s: ServerConfig) => cfg.servers.filter((p) => p.name !== s.name).map((p) => p.name);
        const serverArgs = (s: ServerConfig) => ({
            config: cfg,
            server: s,
            networkId: this.network.id,
            nodeProvider: s.dockerHost !== undefined ? providers.get(s.dockerHost) : undefined,
            labels,
            fenced: cfg.lost.includes(s.name),
        });
        for (const s of cfg.servers) this.servers[s.name] = new Server(s.name, serverArgs(s), { parent: this });

        const passwords = pulumi.secret(
            pulumi.all([args.superuserPassword, args.replicatorPassword]).apply(([su, repl]) => ({
                PGHA_SUPERUSER_PASSWORD: su,
                PGHA_REPLICATOR_PASSWORD: repl,
            })),
        );

        // The table of servers every operation that acts on several of them reads (PGHA_SERVERS).
        const rows = (servers: readonly ServerConfig[]): ServerRow[] =>
            servers.map((s) => {
                const v = volumeNames(s.name);
                return { name: s.name, engine: dockerHostOf(s), dataVolume: v.data, archiveVolume: v.archive };
            });
        const allServers = rows(cfg.servers);

        // Initialize: mark the designated primary's empty data volume so its entrypoint runs
        // initdb on first start. Runs once, when the stack is first brought up: later changes of
        // pgha:primary are role swaps, not a new cluster, so they must not re-run it.
        const primaryServer = cfg.servers.find((s) => s.name === cfg.primary)!;
        this.initializeCommand = new command.local.Command(
            `${name}-initialize`,
            {
                create: operationCommand("initialize"),
                environment: operationEnv("initialize", {
                    PGHA_SERVER: primaryServer.name,
                    PGHA_IMAGE: cfg.image,
                    // Every server's data volume, to refuse a second cluster beside existing data.
                    PGHA_SERVERS: allServers,
                    // pgha:cloneFrom: the first primary is a copy of another cluster (clone.sh).
                    ...cloneFromEnvironment(cfg.cloneFrom),
                }),
                logging: "stderr",
            },
            {
                parent: this,
                dependsOn: cfg.servers.map((s) => this.servers[s.name].dataVolume),
                ignoreChanges: ["environment", "create"],
            },
        );

        // Changes after day one (docs/changes.md). Nothing that changes over the cluster's life is
        // in a service spec: a spec change restarts that server at once, and a file every spec
        // mounted restarted every server together. The files go into each server's data volume
        // (pgha/, outside PGDATA) through three operations instead:
        //  - reload, one per server: postgresql.conf, pg_hba.conf, server.conf, peers; then a
        //    reload (pg_reload_conf). Restart-only parameters wait there for the roll;
        //  - passwords: ALTER ROLE with a SCRAM verifier on the primary, then the password files;
        //    standbys keep streaming (a password is checked only when a session starts);
        //  - roll: pgha's container files, then a rolling restart whenever the restart key
        //    (restart-only parameters, container files, image) changes: each standby, then a
        //    planned switchover to a restarted standby, then the old primary.
        // All three run before the services are declared or updated: on the first `pulumi up` they
        // fill the empty volumes through one-off containers and the services start on complete
        // files; later, a new image reaches the services through the roll, one at a time, and
        // Pulumi's update of each spec then finds it moved already (no restart). A lost server is
        // not contacted; it gets its files when it leaves pgha:lost (its flag or the lost list is
        // in each Command's inputs).
        // Automatic failover (docs/autofailover.md): the arbiter runs on the managers before any
        // server gets its settings (failover.conf) and its token, so that the servers' agents and
        // start gates find it.
        if (cfg.failover.automatic) {
            this.arbiter = new Arbiter(`${name}-arbiter`, { config: cfg, networkId: this.network.id, labels }, { parent: this });
        }
        const arbiterReady = this.arbiter ? [this.arbiter.ready] : [];
        const token = this.arbiter ? this.arbiter.token.apply((t) => ({ PGHA_ARBITER_TOKEN: t })) : pulumi.output({});
        const failoverConf = renderFailoverConf(cfg);

        const dataVolumes = cfg.servers.map((s) => this.servers[s.name].dataVolume);
        const passwordEnv = pulumi
            .all([passwords, token])
            .apply(([pw, tk]) => operationEnv("passwords", { PGHA_SERVERS: allServers, PGHA_LOST: cfg.lost, PGHA_IMAGE: cfg.image, ...pw, ...tk }));
        this.passwordsCommand = new command.local.Command(
            `${name}-passwords`,
            { create: operationCommand("passwords"), environment: passwordEnv, logging: "stderr" },
            { parent: this, dependsOn: [...dataVolumes, ...arbiterReady], additionalSecretOutputs: ["stdout", "stderr"] },
        );
        const postgresqlConf = renderPostgresqlConf(cfg);
        const hbaConf = renderPgHba(cfg);
        for (const s of cfg.servers) {
            this.reloads[s.name] = new command.local.Command(
                `${s.name}-reload`,
                {
                    create: operationCommand("reload"),
                    environment: operationEnv("reload", {
                        PGHA_SERVER: s.name,
                        PGHA_DOCKER_HOST: dockerHostOf(s),
                        PGHA_DATA_VOLUME: volumeNames(s.name).data,
                        PGHA_IMAGE: cfg.image,
                        PGHA_SERVER_LOST: cfg.lost.includes(s.name),
                        PGHA_PG_MAJOR: cfg.postgresVersion,
                        PGHA_POSTGRESQL_CONF: postgresqlConf,
                        PGHA_HBA_CONF: hbaConf,
                        PGHA_SERVER_CONF: renderServerConf(cfg, s),
                        PGHA_PEERS: peersOf(s),
                        PGHA_FAILOVER_CONF: failoverConf,
                    }),
                    logging: "stderr",
                },
                { parent: this, dependsOn: [this.servers[s.name].dataVolume, ...arbiterReady] },
            );
        }
        const filesDigest = serverFilesDigest(serverFiles(projectDir));
        this.roll = new command.local.Command(
            `${name}-roll`,
            {
                create: operationCommand("roll"),
                environment: operationEnv("roll", {
                    PGHA_SERVERS: allServers,
                    PGHA_LOST: cfg.lost,
                    PGHA_IMAGE: cfg.image,
                    PGHA_PG_MAJOR: cfg.postgresVersion,
                    PGHA_RESTART_KEY: restartKey(cfg, filesDigest),
                    PGHA_SERVER_FILES: filesDigest,
                    PGHA_ROLL_PRIMARY: cfg.rollingRestart.primary,
                }),
                logging: "stderr",
            },
            { parent: this, dependsOn: [...Object.values(this.reloads), this.passwordsCommand] },
        );

        // The services, once their files are in place. A server's spec also waits for its rejoin:
        // the fence is lifted from the spec only once the rejoin succeeded.
        for (const s of cfg.servers) {
            const server = this.servers[s.name];
            server.declareService(serverArgs(s), [this.rejoins[s.name], this.roll]);
            this.serverOutputs[s.name] = {
                node: s.node,
                dockerHost: dockerHostOf(s),
                dataVolume: server.dataVolume.name,
                archiveVolume: server.archiveVolume.name,
                service: server.service.name,
                ...(s.port !== undefined ? { publishedPort: s.port } : {}),
                address: s.address ?? s.node,
            };
        }
        const services = Object.values(this.servers).map((s) => s.service);

        // Bootstrap: every server whose data volume is empty (and not marked for initdb) gets a
        // copy of the current primary by pg_basebackup. Its inputs never name the primary (the
        // copy comes from whichever peer is writable), so a role swap does not touch it.
        for (const s of cfg.servers) {
            this.bootstraps[s.name] = new command.local.Command(
                `${s.name}-bootstrap`,
                {
                    create: operationCommand("bootstrap"),
                    environment: passwords.apply((pw) =>
                        operationEnv("bootstrap", {
                            PGHA_SERVER: s.name,
                            PGHA_PEERS: peersOf(s),
                            PGHA_DOCKER_HOST: dockerHostOf(s),
                            PGHA_DATA_VOLUME: volumeNames(s.name).data,
                            PGHA_NETWORK: cfg.network.name,
                            PGHA_IMAGE: cfg.image,
                            ...pw,
                        }),
                    ),
                    logging: "stderr",
                },
                // Its environment holds the passwords: whatever it prints stays secret in the state
                // (the command provider makes only the secret input itself secret).
                { parent: this, dependsOn: [this.initializeCommand, this.roll, ...services], additionalSecretOutputs: ["stdout", "stderr"] },
            );
        }

        // Switchover: its trigger is the value of pgha:primary, so changing it replaces this
        // Command (and nothing else): the new one makes the named server primary. Harmless
        // when it already is (first creation, or a server added).
        // Any other input changing (the server list, pgha:lost) runs its `update`, which with
        // automatic failover never moves the primary back to where pgha:primary still says it was.
        this.switchover = new command.local.Command(
            `${name}-switchover`,
            {
                create: operationCommand("switchover"),
                update: operationCommand("switchover", "update"),
                environment: operationEnv("switchover", {
                    PGHA_PRIMARY: cfg.primary,
                    PGHA_SERVERS: allServers,
                    // Servers whose node is gone: never contacted; with the primary among them,
                    // the switchover is a failover (failover.sh).
                    PGHA_LOST: cfg.lost,
                    PGHA_FAILOVER_AUTOMATIC: cfg.failover.automatic,
                }),
                triggers: [cfg.primary],
                logging: "stderr",
            },
            { parent: this, dependsOn: Object.values(this.bootstraps) },
        );

        // The operations on the cluster's data never name the primary (they find it, or a
        // standby, when they run) and carry no password (they work in the servers' containers,
        // over the local socket): a role swap leaves them alone, and their stdout is not secret.
        const dataServers = rows(cfg.servers.filter((s) => !cfg.lost.includes(s.name)));

        // Backup: its trigger is pgha:backup.id, so a new id takes a new backup (`create`); a
        // changed keep, server or server list re-applies retention only (`update`). Its stdout is
        // the listing of the kept backups (the stack output `backups`).
        if (cfg.backup) {
            this.backupCommand = new command.local.Command(
                `${name}-backup`,
                {
                    create: operationCommand("backup", "take"),
                    update: operationCommand("backup", "retain"),
                    environment: operationEnv("backup", {
                        PGHA_SERVERS: dataServers,
                        PGHA_BACKUP_LABEL: cfg.backup.id,
                        PGHA_BACKUP_KEEP: cfg.backup.keep,
                        PGHA_BACKUP_SERVER: cfg.backup.server ?? "",
                    }),
                    triggers: [cfg.backup.id],
                    logging: "stderr",
                },
                { parent: this, dependsOn: [this.switchover] },
            );
        }
        this.backups = this.backupCommand ? this.backupCommand.stdout.apply(parseBackups) : pulumi.output([]);

        // Restore: its triggers are the backup, the target and restore.id, so a new value of any
        // of them runs a point-in-time recovery (`create`; the config demands restore.confirm).
        // Anything else changing (the server list) runs nothing (`update`).
        if (cfg.restore) {
            const [kind, value] = Object.entries(cfg.restore.target)[0] as [string, string];
            this.restoreCommand = new command.local.Command(
                `${name}-restore`,
                {
                    create: operationCommand("restore"),
                    update: `echo "pgha restore: pgha:restore is unchanged: nothing to do (change restore.id to run it again)" >&2`,
                    environment: operationEnv("restore", {
                        PGHA_SERVERS: dataServers,
                        PGHA_RESTORE_BACKUP: cfg.restore.backup,
                        PGHA_RESTORE_TARGET: `${kind}=${value}`,
                        PGHA_RESTORE_ID: cfg.restore.id ?? "",
                    }),
                    triggers: [cfg.restore.backup, `${kind}=${value}`, cfg.restore.id ?? ""],
                    logging: "stderr",
                },
                // After a swap and after a backup of the same `pulumi up`.
                { parent: this, dependsOn: [this.switchover, ...(this.backupCommand ? [this.backupCommand] : [])] },
            );
        }

        this.primary = cfg.primary;
        this.connectionStrings = connectionStrings(cfg);
        this.registerOutputs({ primary: this.primary, connectionStrings: this.connectionStrings });
    }
}
