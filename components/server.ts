// One PostgreSQL server: a piece of hardware with its name, its node, its data and archive volumes
// on that node, and one swarm service tethered there. Nothing in it says whether the server is
// primary or standby: the role lives in the data directory, so a swap never touches the service.

import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { PG_PORT, PghaConfig, ServerConfig } from "./config";
import { serverEnv } from "./operations";
import { PATHS, renderServerConf } from "./templates";

/** The cluster-wide Docker configs and secrets every server mounts. */
export interface SharedFiles {
    /**
     * The container side of pgha, scripts/server/*.sh by file name: the entrypoint (the dispatcher,
     * PID 1) and one file per operation, each mounted beside it in /etc/pgha.
     */
    readonly serverFiles: Readonly<Record<string, docker.ServiceConfig>>;
    readonly postgresqlConf: docker.ServiceConfig;
    readonly hbaConf: docker.ServiceConfig;
    readonly superuserPassword: docker.Secret;
    readonly replicatorPassword: docker.Secret;
}

export interface ServerArgs {
    readonly config: PghaConfig;
    readonly server: ServerConfig;
    readonly networkId: pulumi.Input<string>;
    readonly files: SharedFiles;
    /** Provider for the server's node engine (volumes live on that node); undefined: the default engine. */
    readonly nodeProvider?: docker.Provider;
    readonly labels: Readonly<Record<string, string>>;
    /** The server is in pgha:lost: its service carries PGHA_FENCED=1 (see below). */
    readonly fenced?: boolean;
    /**
     * Operations the service spec must wait for: the server's rejoin Command, so that the fence
     * is lifted from the spec only once the rejoin succeeded (components/cluster.ts).
     */
    readonly serviceDependsOn?: pulumi.Resource[];
}

/** Volume names are derived from the server name: they are the server's identity on its node. */
export function volumeNames(server: string): { data: string; archive: string } {
    return { data: `${server}-data`, archive: `${server}-archive` };
}

function labelList(labels: Readonly<Record<string, string>>): { label: string; value: string }[] {
    return Object.entries(labels).map(([label, value]) => ({ label, value }));
}

export class Server extends pulumi.ComponentResource {
    public readonly dataVolume: docker.Volume;
    public readonly archiveVolume: docker.Volume;
    public readonly serverConf: docker.ServiceConfig;
    public readonly service: docker.Service;

    constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:Server", name, {}, opts);
        const { server, config, files } = args;
        const labels = { ...args.labels, "pgha.server": server.name };
        const names = volumeNames(server.name);

        // Data must survive everything: protect stops pulumi from deleting or replacing the
        // volumes, and retainOnDelete keeps them in Docker even after the protection is lifted
        // and the stack destroyed (a later `pulumi up` adopts them again by name).
        const volumeOpts: pulumi.CustomResourceOptions = {
            parent: this,
            provider: args.nodeProvider,
            protect: true,
            retainOnDelete: true,
        };
        this.dataVolume = new docker.Volume(
            `${server.name}-data`,
            { name: names.data, driver: "local", labels: labelList({ ...labels, "pgha.volume": "data" }) },
            volumeOpts,
        );
        this.archiveVolume = new docker.Volume(
            `${server.name}-archive`,
            { name: names.archive, driver: "local", labels: labelList({ ...labels, "pgha.volume": "archive" }) },
            volumeOpts,
        );

        // Left auto-named: a changed file becomes a new config, created before the old one is
        // deleted (Docker refuses to delete a config a service still uses).
        this.serverConf = new docker.ServiceConfig(
            `${server.name}-server-conf`,
            { data: Buffer.from(renderServerConf(config, server)).toString("base64"), labels: labelList(labels) },
            { parent: this },
        );

        const peers = config.servers.filter((s) => s.name !== server.name).map((s) => s.name);
        const configFile = (c: docker.ServiceConfig, fileName: string, fileMode: number) => ({
            configId: c.id,
            configName: c.name,
            fileName,
            fileUid: "0",
            fileGid: "0",
            fileMode,
        });
        const secretFile = (s: docker.Secret, fileName: string) => ({
            secretId: s.id,
            secretName: s.name,
            fileName,
            fileUid: "0",
            fileGid: "0",
            fileMode: 0o400,
        });

        this.service = new docker.Service(
            server.name,
            {
                name: server.name,
                labels: labelList(labels),
                mode: { replicated: { replicas: 1 } },
                taskSpec: {
                    containerSpec: {
                        image: config.image,
                        hostname: server.name,
                        commands: ["/bin/sh", PATHS.entrypoint],
                        // PGHA_FENCED is not a role: it is the operator's declaration that this
                        // server's node is gone (pgha:lost) and that another server was promoted
                        // without it. Should the node return, swarm starts the task with this
                        // spec, and the entrypoint writes standby.signal before PostgreSQL starts:
                        // the server comes back read-only, never as a second primary, whatever its
                        // data directory said when the node went down. It leaves the spec only
                        // when the server leaves pgha:lost, after its rejoin ran.
                        env: serverEnv({ PGHA_SERVER: server.name, PGHA_PEERS: peers, PGHA_FENCED: args.fenced }),
                        mounts: [
                            { type: "volume", source: this.dataVolume.name, target: PATHS.dataDir },
                            { type: "volume", source: this.archiveVolume.name, target: PATHS.archiveDir },
                        ],
                        configs: [
                            // The entrypoint is executable (archive_command runs it); the files it
                            // sources are read only.
                            ...Object.entries(files.serverFiles).map(([file, c]) =>
                                configFile(c, path.posix.join(PATHS.configDir, file), file === "entrypoint.sh" ? 0o555 : 0o444),
                            ),
                            configFile(files.postgresqlConf, PATHS.postgresqlConf, 0o444),
                            configFile(files.hbaConf, PATHS.hbaConf, 0o444),
                            configFile(this.serverConf, PATHS.serverConf, 0o444),
                        ],
                        secrets: [
                            secretFile(files.superuserPassword, PATHS.superuserPasswordSecret),
                            secretFile(files.replicatorPassword, PATHS.replicatorPasswordSecret),
                        ],
                        healthcheck: {
                            tests: ["CMD", "/bin/sh", PATHS.entrypoint, "health"],
                            interval: "5s",
                            timeout: "3s",
                            retries: 3,
                            // Durations as Docker reports them back ("1m", not "60s"): a
                            // `pulumi refresh` then finds the spec as declared (no drift).
                            startPeriod: "1m",
                        },
                        // Long enough for a fast shutdown with a checkpoint of a busy server.
                        stopGracePeriod: "2m",
                        labels: labelList(labels),
                    },
                    placement: { constraints: [`node.hostname==${server.node}`] },
                    restartPolicy: { condition: "any", delay: "1s", maxAttempts: 0, window: "0s" },
                    // `id`, not the deprecated `name`: the provider reads the network back as
                    // an id, so a `name` would show as drift (and force a replacement) on refresh.
                    networksAdvanceds: [{ id: args.networkId, aliases: [server.name] }],
                },
                // DNS round robin: the name resolves straight to the task (no virtual IP whose
                // connection tracking drops idle replication connections); host-mode ports.
                endpointSpec: {
                    mode: "dnsrr",
                    ports: server.port !== undefined ? [{ targetPort: PG_PORT, publishedPort: server.port, publishMode: "host", protocol: "tcp" }] : [],
                },
                // A new spec replaces the one task: stop the old before starting the new (the
                // volumes cannot be shared by two PostgreSQL processes).
                updateConfig: { order: "stop-first", parallelism: 1, failureAction: "pause" },
                // Wait until the task runs the new spec: the operations that follow (bootstrap,
                // switchover, backups) must find the new containers, not the ones being replaced.
                // Not for a lost server: its node is gone, its task cannot run until the node
                // returns, and waiting would hold up the failover.
                ...(args.fenced ? {} : { convergeConfig: { delay: "1s", timeout: "5m" } }),
            },
            { parent: this, dependsOn: [this.dataVolume, this.archiveVolume, ...(args.serviceDependsOn ?? [])] },
        );

        this.registerOutputs({
            dataVolume: this.dataVolume.name,
            archiveVolume: this.archiveVolume.name,
            service: this.service.name,
        });
    }
}
