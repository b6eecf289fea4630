// The overlay network every server and one-off job of the cluster joins.

import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { NetworkConfig } from "./config";

export interface ClusterNetworkArgs {
    readonly network: NetworkConfig;
    /** Labels put on the network (e.g. the stack it belongs to). */
    readonly labels: Readonly<Record<string, string>>;
}

/**
 * A swarm-scoped overlay network with a fixed subnet and gateway. It is attachable so that one-off
 * containers (bootstrap, backups) can join it and reach the servers by name.
 */
export class ClusterNetwork extends pulumi.ComponentResource {
    public readonly network: docker.Network;
    public readonly id: pulumi.Output<string>;
    public readonly name: pulumi.Output<string>;

    constructor(name: string, args: ClusterNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pgha:index:ClusterNetwork", name, {}, opts);
        this.network = new docker.Network(
            name,
            {
                name: args.network.name,
                driver: "overlay",
                attachable: true,
                ipamConfigs: [{ subnet: args.network.cidr, gateway: args.network.gateway }],
                labels: Object.entries(args.labels).map(([label, value]) => ({ label, value })),
            },
            { parent: this },
        );
        this.id = this.network.id;
        this.name = this.network.name;
        this.registerOutputs({ id: this.id, name: this.name });
    }
}
