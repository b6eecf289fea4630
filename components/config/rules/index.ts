// The validation rules, in the order validateConfig runs them. The order matters twice: a rule
// reads what the rules before it recorded in the draft (the image and the PostgreSQL version, the
// servers, the primary, the lost servers), and the problems are reported in this order, so an
// operator reads them key by key.

import { failoverRule } from "./failover";
import { keysRule } from "./keys";
import { clientsRule, networkRule } from "./network";
import { archiveRule, postgresqlRule, replicationRule } from "./postgresql";
import { backupRule, cloneFromRule, restoreRule } from "./recovery";
import { Rule } from "./rule";
import { imageRule, lostRule, primaryRule, rollingRestartRule, serversRule } from "./servers";
import { postgresVersionRule } from "./version";

export const RULES: readonly Rule[] = [
    keysRule,
    networkRule,
    imageRule,
    // Reads the image imageRule recorded; postgresqlRule checks against the version it records.
    postgresVersionRule,
    serversRule,
    // The rules below compare against the servers serversRule recorded.
    primaryRule,
    lostRule,
    rollingRestartRule,
    failoverRule,
    postgresqlRule,
    replicationRule,
    archiveRule,
    clientsRule,
    backupRule,
    restoreRule,
    cloneFromRule,
];

export { FAILOVER_FIELDS, FAILOVER_LIMITS, failoverRule, resolveFailover } from "./failover";
export { keysRule } from "./keys";
export { clientsRule, DOCKER_DEFAULT_SUBNETS, networkRule } from "./network";
export { archiveRule, postgresqlRule, replicationRule } from "./postgresql";
export { BACKUP_KEEP_DEFAULT, BACKUP_LABEL, backupRule, cloneFromRule, restoreRule } from "./recovery";
export { newDraft } from "./rule";
export type { Draft, Rule } from "./rule";
export { IMAGE_REFERENCE, imageRule, lostRule, primaryRule, rollingRestartRule, SERVER_NAME, serversRule } from "./servers";
export { imageTagMajor, postgresVersionRule } from "./version";
export type { ImageTagMajor } from "./version";
