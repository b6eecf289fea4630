// The whole cluster: the overlay network, the shared files, every server, and the operations that
// act on the servers' data (initialize the first primary, bootstrap standbys).

import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { PghaConfig, ServerConfig } from "./config";
import { ClusterNetwork } from "./network";
import { Server, SharedFiles, volumeNames } from "./server";
import { connectionStrings, renderPgHba, renderPostgresqlConf } from "./templates";

export interface ClusterArgs {
    readonly config: PghaConfig;
    readonly superuserPassword: pulumi.Input<string>;
    readonly replicatorPassword: pulumi.Input<string>;
    /** Directory holding scripts/ (default: the project root, next to components/). */
    readonly projectDir?: string;
}

export interface ServerOutputs {
    node: string;
    dockerHost: string;
    dataVolume: pulumi.Output<string>;
    archiveVolume: pulumi.Output<string>;
    service: pulumi.Output<string>;
    publishedPort?: number;
}

const base64 = (text: string) => Buffer.from(text).toString("base64");

/** The engine a server's node-local work goes to ("" = the local engine / DOCKER_HOST). */
export function dockerHostOf(server: ServerConfig): string {
    return server.dockerHost ?? "";
}

export class Cluster extends pulumi.ComponentResource {
    public readonly network: ClusterNetwork;
    public readonly servers: Record<string, Server> = {};
    public readonly initializeCommand: command.local.Command;
    public readonly bootstraps: Record<string, command.local.Command> = {};
    public readonly switchover: command.local.Command;
    public readonly primary: string;
    public readonly connectionStrings: { readWrite: string; readOnly: string };
    public readonly serverOutputs: Record<string, ServerOutputs> = {};

    constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:Cluster", name, {}, opts);
        const cfg = args.config;
        const projectDir = args.projectDir ?? path.join(__dirname, "..");
        const labels = { "pgha.cluster": cfg.network.name };
        const labelList = Object.entries(labels).map(([label, value]) => ({ label, value }));

        this.network = new ClusterNetwork(`${name}-network`, { network: cfg.network, labels }, { parent: this });

        // One provider per distinct node engine; servers without dockerHost use the default one.
        const providers = new Map<string, docker.Provider>();
        for (const s of cfg.servers) {
            if (s.dockerHost !== undefined && !providers.has(s.dockerHost)) {
                providers.set(s.dockerHost, new docker.Provider(`${name}-engine-${s.node}`, { host: s.dockerHost }, { parent: this }));
            }
        }

        const secret = (n: string, value: pulumi.Input<string>) =>
            new docker.Secret(n, { data: pulumi.secret(pulumi.output(value).apply(base64)), labels: labelList }, { parent: this });
        const file = (n: string, text: string) =>
            new docker.ServiceConfig(n, { data: base64(text), labels: labelList }, { parent: this });
        const files: SharedFiles = {
            entrypoint: file(`${name}-entrypoint`, fs.readFileSync(path.join(projectDir, "scripts", "entrypoint.sh"), "utf8")),
            postgresqlConf: file(`${name}-postgresql-conf`, renderPostgresqlConf(cfg)),
            hbaConf: file(`${name}-pg-hba-conf`, renderPgHba(cfg)),
            superuserPassword: secret(`${name}-superuser-password`, args.superuserPassword),
            replicatorPassword: secret(`${name}-replicator-password`, args.replicatorPassword),
        };

        for (const s of cfg.servers) {
            const server = new Server(
                s.name,
                {
                    config: cfg,
                    server: s,
                    networkId: this.network.id,
                    files,
                    nodeProvider: s.dockerHost !== undefined ? providers.get(s.dockerHost) : undefined,
                    labels,
                },
                { parent: this },
            );
            this.servers[s.name] = server;
            this.serverOutputs[s.name] = {
                node: s.node,
                dockerHost: dockerHostOf(s),
                dataVolume: server.dataVolume.name,
                archiveVolume: server.archiveVolume.name,
                service: server.service.name,
                ...(s.port !== undefined ? { publishedPort: s.port } : {}),
            };
        }
        const services = Object.values(this.servers).map((s) => s.service);

        // Relative to the project directory, where Pulumi runs the program and its commands, so
        // the command text is the same on every machine that previews or applies the stack.
        const script = (file: string) => `sh ./scripts/${file}`;
        const passwords = pulumi.secret(
            pulumi.all([args.superuserPassword, args.replicatorPassword]).apply(([su, repl]) => ({
                PGHA_SUPERUSER_PASSWORD: su,
                PGHA_REPLICATOR_PASSWORD: repl,
            })),
        );

        // "name host" lines: the engine each server's node-local work goes to.
        const serverHosts = cfg.servers.map((s) => `${s.name} ${dockerHostOf(s) || "-"}`).join("\n");

        // Initialize: mark the designated primary's empty data volume so its entrypoint runs
        // initdb on first start. Runs once, when the stack is first brought up: later changes of
        // pgha:primary are role swaps, not a new cluster, so they must not re-run it.
        const primaryServer = cfg.servers.find((s) => s.name === cfg.primary)!;
        this.initializeCommand = new command.local.Command(
            `${name}-initialize`,
            {
                create: script("initialize.sh"),
                environment: {
                    PGHA_SERVER: primaryServer.name,
                    PGHA_DOCKER_HOST: dockerHostOf(primaryServer),
                    PGHA_IMAGE: cfg.image,
                    // Every server's data volume, to refuse a second cluster beside existing data.
                    PGHA_SERVERS: cfg.servers.map((s) => `${s.name} ${volumeNames(s.name).data} ${dockerHostOf(s) || "-"}`).join("\n"),
                },
                logging: "stderr",
            },
            {
                parent: this,
                dependsOn: cfg.servers.map((s) => this.servers[s.name].dataVolume),
                ignoreChanges: ["environment", "create"],
            },
        );

        // Bootstrap: every server whose data volume is empty (and not marked for initdb) gets a
        // copy of the current primary by pg_basebackup. Its inputs never name the primary (the
        // copy comes from whichever peer is writable), so a role swap does not touch it.
        for (const s of cfg.servers) {
            const peers = cfg.servers.filter((p) => p.name !== s.name).map((p) => p.name);
            this.bootstraps[s.name] = new command.local.Command(
                `${s.name}-bootstrap`,
                {
                    create: script("bootstrap.sh"),
                    environment: passwords.apply((pw) => ({
                        PGHA_SERVER: s.name,
                        PGHA_PEERS: peers.join(","),
                        PGHA_DOCKER_HOST: dockerHostOf(s),
                        PGHA_DATA_VOLUME: volumeNames(s.name).data,
                        PGHA_NETWORK: cfg.network.name,
                        PGHA_IMAGE: cfg.image,
                        ...pw,
                    })),
                    logging: "stderr",
                },
                { parent: this, dependsOn: [this.initializeCommand, ...services] },
            );
        }

        // Switchover: its trigger is the value of pgha:primary, so changing it replaces this
        // Command (and nothing else): the new one makes the named server primary. Harmless
        // when it already is (first creation, or a server added).
        this.switchover = new command.local.Command(
            `${name}-switchover`,
            {
                create: script("switchover.sh"),
                environment: {
                    PGHA_PRIMARY: cfg.primary,
                    PGHA_SERVERS: serverHosts,
                },
                triggers: [cfg.primary],
                logging: "stderr",
            },
            { parent: this, dependsOn: Object.values(this.bootstraps) },
        );

        this.primary = cfg.primary;
        this.connectionStrings = connectionStrings(cfg);
        this.registerOutputs({ primary: this.primary, connectionStrings: this.connectionStrings });
    }
}
