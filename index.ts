// pgha: a PostgreSQL primary and hot standbys on a Docker swarm.
// Reads the stack config (namespace pgha), validates it before declaring anything, declares the
// cluster and exports what clients and operators need.

import { Cluster } from "./components/cluster";
import { loadConfig } from "./components/stack-config";

const { config, superuserPassword, replicatorPassword } = loadConfig();
const cluster = new Cluster("pgha", { config, superuserPassword, replicatorPassword });

/** The server that is primary (pgha:primary). */
export const primary = cluster.primary;
/** Per server: node, engine, volumes, service. */
export const servers = cluster.serverOutputs;
/** libpq URI that always lands on the primary (from containers on the network). */
export const readWriteConnectionString = cluster.connectionStrings.readWrite;
/** libpq URI that prefers a standby (from containers on the network). */
export const readOnlyConnectionString = cluster.connectionStrings.readOnly;
/** The overlay network clients attach to. */
export const network = cluster.network.name;
/** The kept base backups (pgha:backup), oldest first, as the last backup run listed them. */
export const backups = cluster.backups;
