// One PostgreSQL server: a piece of hardware with its name, its node, its data and archive volumes
// on that node, and one swarm service tethered there. Nothing in it says whether the server is
// primary or standby: the role lives in the data directory, so a swap never touches the service.

import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { PG_PORT, PghaConfig, ServerConfig } from "./config";
import { serverEnv } from "./operations";
import { PATHS } from "./templates";

/**
 * The service's command: wait until pgha's files are in the data volume (the roll operation puts
 * them there, right after the service is created), then run the entrypoint from there. The text
 * never changes with the config or with pgha's own files: those reach a running server by the
 * reload, roll and passwords operations, so no change of them touches the service spec (a spec
 * change restarts the server at once). It traps TERM: as PID 1 a shell would ignore it.
 */
export const LAUNCHER = [
    `d=${PATHS.configDir}`,
    "trap 'exit 0' TERM INT",
    "n=0",
    'until [ -r "$d/entrypoint.sh" ]; do [ $((n % 30)) -ne 0 ] || echo "pgha: waiting for $d/entrypoint.sh (delivered by the roll operation)" >&2; n=$((n + 1)); sleep 1 & wait $!; done',
    'exec /bin/sh "$d/entrypoint.sh"',
].join("; ");

/**
 * The healthcheck: the entrypoint's, and healthy while the launcher still waits for the files (as
 * the entrypoint is healthy while it waits for a bootstrap): the swarm reports a task running only
 * once it is healthy, and Pulumi waits for that before the operations that deliver the files run.
 */
export const HEALTHCHECK = `f=${PATHS.entrypoint}; [ -r "$f" ] || exit 0; exec /bin/sh "$f" health`;

export interface ServerArgs {
    readonly config: PghaConfig;
    readonly server: ServerConfig;
    readonly networkId: pulumi.Input<string>;
    /** Provider for the server's node engine (volumes live on that node); undefined: the default engine. */
    readonly nodeProvider?: docker.Provider;
    readonly labels: Readonly<Record<string, string>>;
    /** The server is in pgha:lost: its service carries PGHA_FENCED=1 (see below). */
    readonly fenced?: boolean;
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
    public service!: docker.Service;

    constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:Server", name, {}, opts);
        const { server } = args;
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
    }

    /**
     * The server's swarm service, declared after the operations that put pgha's files into its data
     * volume (the roll and its inputs: the service's launcher starts as soon as the files are there,
     * and a new image reaches the services through the roll, one at a time, before Pulumi's update
     * of the spec finds them moved already).
     */
    declareService(args: ServerArgs, dependsOn: pulumi.Resource[]): docker.Service {
        const { server, config } = args;
        const labels = { ...args.labels, "pgha.server": server.name };
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
                        commands: ["/bin/sh", "-c", LAUNCHER],
                        // PGHA_FENCED is not a role: it is the operator's declaration that this
                        // server's node is gone (pgha:lost) and that another server was promoted
                        // without it. Should the node return, swarm starts the task with this
                        // spec, and the entrypoint writes standby.signal before PostgreSQL starts:
                        // the server comes back read-only, never as a second primary, whatever its
                        // data directory said when the node went down. It leaves the spec only
                        // when the server leaves pgha:lost, after its rejoin ran.
                        env: serverEnv({ PGHA_SERVER: server.name, PGHA_FENCED: args.fenced }),
                        mounts: [
                            { type: "volume", source: this.dataVolume.name, target: PATHS.dataDir },
                            { type: "volume", source: this.archiveVolume.name, target: PATHS.archiveDir },
                        ],
                        healthcheck: {
                            tests: ["CMD", "/bin/sh", "-c", HEALTHCHECK],
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
            { parent: this, dependsOn: [this.dataVolume, this.archiveVolume, ...dependsOn] },
        );

        this.registerOutputs({
            dataVolume: this.dataVolume.name,
            archiveVolume: this.archiveVolume.name,
            service: this.service.name,
        });
        return this.service;
    }
}
