// Automatic failover's swarm side: the arbiter service on the managers, its token, and the
// settings file the agent in every server container reads (scripts/server/lease.sh).
//
// The lease (holder, term) of a cluster lives in the labels of one swarm config, which the
// managers' Raft store replicates; the arbiter (scripts/arbiter/) creates it and updates it by
// compare-and-swap on the object's version. Pulumi declares neither the config nor its labels:
// the lease changes under every failover and must never show in a diff or be reverted by one.
// The arbiter is the one component that mounts the Docker socket (root on the host); the
// PostgreSQL containers reach it over the overlay network only, with a token (a Docker secret on
// the arbiter's side, a root 0400 file in pgha-secrets/ on theirs).

import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { arbiterServiceName, failoverPrefix, leaseConfigName, leaseDriftWarning, PghaConfig } from "./config";
import { operationCommand, operationEnv } from "./operations";

/** The port the arbiter listens on, on the overlay network only (nothing is published). */
export const ARBITER_PORT = 7400;

/** The arbiter's service, its lease config and its secret, named after the cluster's network. */
export function arbiterNames(cfg: PghaConfig): { service: string; lease: string; secret: string } {
    const net = cfg.network.name;
    return { service: arbiterServiceName(net), lease: leaseConfigName(net), secret: `${failoverPrefix(net)}-arbiter-token` };
}

/**
 * failover.conf: the agent's settings (key=value lines; the agent reads them on every round and
 * never sources the file). `automatic=0` turns the agent and the start gate off.
 */
export function renderFailoverConf(cfg: PghaConfig): string {
    const f = cfg.failover;
    return [
        "# failover.conf rendered by pgha: automatic failover's settings for the agent (scripts/server/lease.sh).",
        `automatic=${f.automatic ? 1 : 0}`,
        `arbiter=${arbiterNames(cfg).service}`,
        `port=${ARBITER_PORT}`,
        `ttl_ms=${f.ttlMs}`,
        `renew_ms=${f.renewIntervalMs}`,
        `fence_ms=${f.fenceDeadlineMs}`,
        `call_ms=${f.callTimeoutMs}`,
        `max_lag=${f.maxLagBytes}`,
        "",
    ].join("\n");
}

/**
 * The arbiter's deadline for its own Docker calls and for each request: half the agents' call
 * timeout (it writes its answer within 250 ms more), so that "unavailable" reaches an agent in time.
 */
export function arbiterCallTimeoutMs(cfg: PghaConfig): number {
    return Math.max(100, Math.floor(cfg.failover.callTimeoutMs * 0.5));
}

export interface ArbiterArgs {
    readonly config: PghaConfig;
    readonly networkId: pulumi.Input<string>;
    readonly labels: Readonly<Record<string, string>>;
}

export class Arbiter extends pulumi.ComponentResource {
    /** The token the agents and the arbiters share (secret; made once, kept in the state). */
    public readonly token: pulumi.Output<string>;
    public readonly service: docker.Service;
    /** Runs once the arbiter runs on a majority of the managers. */
    public readonly ready: command.local.Command;

    constructor(name: string, args: ArbiterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:Arbiter", name, {}, opts);
        const cfg = args.config;
        const names = arbiterNames(cfg);
        const labels = Object.entries({ ...args.labels, "pgha.arbiter": names.service }).map(([label, value]) => ({ label, value }));
        const opEnv = { PGHA_ARBITER_SERVICE: names.service, PGHA_FAILOVER_AUTOMATIC: cfg.failover.automatic };

        // Fewer than three managers: refused before the arbiter is declared or changed.
        const check = new command.local.Command(
            `${name}-check`,
            { create: operationCommand("arbiter", "check"), environment: operationEnv("arbiter", opEnv), logging: "stderr" },
            { parent: this },
        );

        // The lease's config is the arbiter's, not Pulumi's; it goes when the stack is destroyed,
        // after the arbiter service (which depends on this): a new cluster of the same name must
        // not start with an old holder.
        const forget = new command.local.Command(
            `${name}-lease`,
            {
                create: `echo "pgha arbiter: the lease is kept in the swarm config ${names.lease} (removed with the stack)" >&2`,
                delete: operationCommand("arbiter", "forget"),
                environment: operationEnv("arbiter", { ...opEnv, PGHA_LEASE_CONFIG: names.lease }),
                logging: "stderr",
            },
            { parent: this },
        );

        // On every preview and update: the lease's holder, read from the swarm (arbiter.sh lease),
        // and a warning when it is not pgha:primary. After an automatic failover the config names
        // the old primary; pulumi up keeps the new one, and the preview says so.
        command.local
            .runOutput(
                {
                    command: operationCommand("arbiter", "lease"),
                    environment: operationEnv("arbiter", { ...opEnv, PGHA_LEASE_CONFIG: names.lease }),
                    logging: "none",
                },
                { parent: this },
            )
            .apply((r) => {
                const warning = leaseDriftWarning(cfg.primary, r.stdout ?? "");
                if (warning !== null) void pulumi.log.warn(warning, this);
            });

        // 32 random bytes, made once on the machine that runs Pulumi (no input ever changes, so
        // the Command never runs again) and kept in the state as a secret.
        const tokenCommand = new command.local.Command(
            `${name}-token`,
            {
                create: `node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))"`,
                logging: "none",
            },
            { parent: this, additionalSecretOutputs: ["stdout"] },
        );
        this.token = pulumi.secret(tokenCommand.stdout);

        const secret = new docker.Secret(
            `${name}-secret`,
            {
                name: names.secret,
                // (stdout is unknown during a preview of the first up, and absent under the mock runtime)
                data: this.token.apply((t) => Buffer.from(t ?? "").toString("base64")),
                labels,
            },
            { parent: this },
        );

        this.service = new docker.Service(
            name,
            {
                name: names.service,
                labels,
                // One arbiter on every manager: an agent asks them in turn, so the loss of one
                // node (and its arbiter) costs no renewal.
                mode: { global: true },
                taskSpec: {
                    containerSpec: {
                        image: cfg.failover.arbiterImage,
                        env: {
                            PGHA_LEASE_CONFIG: names.lease,
                            PGHA_TTL_MS: String(cfg.failover.ttlMs),
                            // Its own Docker calls end well within the agents' call timeout,
                            // so that an agent hears "unavailable" (the store has no leader)
                            // rather than nothing: that is what tells a store outage from a
                            // partition (lease.sh: lease_extends).
                            PGHA_CALL_TIMEOUT_MS: String(arbiterCallTimeoutMs(cfg)),
                            PGHA_LISTEN: `:${ARBITER_PORT}`,
                            PGHA_TOKEN_FILE: `/run/secrets/pgha-arbiter-token`,
                        },
                        mounts: [{ type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" }],
                        secrets: [{ secretId: secret.id, secretName: secret.name, fileName: "pgha-arbiter-token", fileMode: 0o400 }],
                        // it stops at once on SIGTERM; the docker provider's delete waits for
                        // the tasks' containers up to this long
                        stopGracePeriod: "30s",
                        labels,
                    },
                    placement: { constraints: ["node.role==manager"] },
                    restartPolicy: { condition: "any", delay: "1s", maxAttempts: 0, window: "0s" },
                    networksAdvanceds: [{ id: args.networkId, aliases: [names.service] }],
                },
                endpointSpec: { mode: "dnsrr" },
                // One manager's arbiter at a time: the others keep answering.
                updateConfig: { order: "stop-first", parallelism: 1, delay: "2s", failureAction: "pause" },
            },
            { parent: this, dependsOn: [check, forget] },
        );

        this.ready = new command.local.Command(
            `${name}-ready`,
            {
                create: operationCommand("arbiter", "ready"),
                environment: operationEnv("arbiter", opEnv),
                // a new spec (an image, the timings) is waited for again
                triggers: [this.service.id, cfg.failover.arbiterImage, cfg.failover.ttlMs, arbiterCallTimeoutMs(cfg)],
                logging: "stderr",
            },
            { parent: this, dependsOn: [this.service] },
        );
        this.registerOutputs({ service: this.service.name });
    }
}
