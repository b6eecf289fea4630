// pgha:backup, pgha:restore and pgha:cloneFrom: base backups, point-in-time recovery and cloning.
// Each is optional (absent: no backup, no restore, initdb); when present, a refused one is not
// recorded at all, never half.

import { RawConfig, RestoreConfig } from "../types";
import { Draft, DOCKER_HOST, isObject, set, unknownKeys } from "./rule";

/** pgha:backup.keep when unset. */
export const BACKUP_KEEP_DEFAULT = 7;
/** A backup label: a directory name in the archive volume and pg_basebackup's label. */
export const BACKUP_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** An ISO 8601 timestamp with a time zone (Z or ±hh[:mm]), as PostgreSQL's recovery_target_time reads it. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
/** A restore point name (pg_create_restore_point): kept to characters that need no quoting. */
const RESTORE_POINT = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;
const LABEL_RULE = "letters, digits, '.', '_', '-', starting with a letter or digit, at most 63";

/** The timestamp in the form Date.parse reads (T separator, ±hh:mm offset), to check it is a real date. */
function isoForDate(time: string): string {
    return time
        .replace(" ", "T")
        .replace(/([+-]\d{2})$/, "$1:00")
        .replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
}

/** pgha:backup: a label for id, a running server (or none: a standby) and a retention of 1-1000. */
export function backupRule(rawConfig: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const raw = rawConfig.backup;
    const { servers, lost } = draft;
    if (raw === undefined) return problems;
    const example = set("backup.id", "$(date -u +%Y%m%dT%H%M%SZ)");
    if (!isObject(raw)) {
        problems.push(`pgha:backup: must be an object { id, server?, keep? }; e.g. ${example}`);
        return problems;
    }
    unknownKeys(raw, "pgha:backup", ["id", "server", "keep"], problems);
    let ok = true;
    if (typeof raw.id !== "string" || !BACKUP_LABEL.test(raw.id)) {
        problems.push(
            `pgha:backup.id: ${raw.id === undefined ? "missing" : `'${String(raw.id)}' is not a backup label`} (${LABEL_RULE}); it labels the backup, and a new value takes a new one: ${example}`,
        );
        ok = false;
    }
    if (raw.server !== undefined && (typeof raw.server !== "string" || !servers.some((s) => s.name === raw.server))) {
        problems.push(
            `pgha:backup.server: '${String(raw.server)}' is not among pgha:servers (${servers.map((s) => s.name).join(", ")}); name one of them, or remove it to back up from a standby: pulumi config rm --path backup.server`,
        );
        ok = false;
    } else if (typeof raw.server === "string" && lost.includes(raw.server)) {
        problems.push(
            `pgha:backup.server: '${raw.server}' is declared lost (pgha:lost); name a server that runs, or remove it to back up from a standby: pulumi config rm --path backup.server`,
        );
        ok = false;
    }
    if (raw.keep !== undefined && (typeof raw.keep !== "number" || !Number.isInteger(raw.keep) || raw.keep < 1 || raw.keep > 1000)) {
        problems.push(
            `pgha:backup.keep: '${String(raw.keep)}' is not a number of backups to keep (1-1000); e.g. ${set("backup.keep", String(BACKUP_KEEP_DEFAULT))}`,
        );
        ok = false;
    }
    if (!ok) return problems;
    draft.backup = {
        id: raw.id as string,
        ...(raw.server !== undefined ? { server: raw.server as string } : {}),
        keep: (raw.keep as number | undefined) ?? BACKUP_KEEP_DEFAULT,
    };
    return problems;
}

/** pgha:restore: the backup to start from, confirmed by repeating its label, and exactly one valid target. */
export function restoreRule(rawConfig: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const raw = rawConfig.restore;
    if (raw === undefined) return problems;
    const shape = "{ backup, target: { time | lsn | name }, confirm, id? }";
    if (!isObject(raw)) {
        problems.push(`pgha:restore: must be an object ${shape}; e.g. ${set("restore.backup", "<label>")}`);
        return problems;
    }
    unknownKeys(raw, "pgha:restore", ["backup", "target", "confirm", "id"], problems);
    let ok = true;
    const backup = raw.backup;
    if (typeof backup !== "string" || !BACKUP_LABEL.test(backup)) {
        problems.push(
            `pgha:restore.backup: ${backup === undefined ? "missing" : `'${String(backup)}' is not a backup label`}; name the base backup to restore (stack output 'backups'): ${set("restore.backup", "<label>")}`,
        );
        ok = false;
    } else if (raw.confirm !== backup) {
        problems.push(
            `pgha:restore.confirm: ${raw.confirm === undefined ? "missing" : `'${String(raw.confirm)}' is not the backup's label`}; a restore replaces the data of every server, so confirm it by repeating the label: ${set("restore.confirm", backup)}`,
        );
        ok = false;
    }
    let target: RestoreConfig["target"] | undefined;
    const t = raw.target;
    const targetExample = `${set("restore.target.time", "2025-01-31T12:00:00Z")} (or target.lsn, or target.name)`;
    if (!isObject(t)) {
        problems.push(`pgha:restore.target: ${t === undefined ? "missing" : "must be an object"}; give exactly one of time, lsn, name: ${targetExample}`);
        ok = false;
    } else {
        unknownKeys(t, "pgha:restore.target", ["time", "lsn", "name"], problems);
        const given = (["time", "lsn", "name"] as const).filter((k) => t[k] !== undefined);
        if (given.length !== 1) {
            problems.push(
                `pgha:restore.target: ${given.length === 0 ? "no target" : `${given.join(" and ")} are both set`}; give exactly one of time, lsn, name: ${targetExample}`,
            );
            ok = false;
        } else if (given[0] === "time") {
            if (typeof t.time !== "string" || !TIMESTAMP.test(t.time) || Number.isNaN(Date.parse(isoForDate(t.time)))) {
                problems.push(
                    `pgha:restore.target.time: '${String(t.time)}' is not an ISO 8601 timestamp with a time zone; e.g. ${set("restore.target.time", "2025-01-31T12:00:00Z")}`,
                );
                ok = false;
            } else target = { time: t.time };
        } else if (given[0] === "lsn") {
            if (typeof t.lsn !== "string" || !LSN.test(t.lsn)) {
                problems.push(
                    `pgha:restore.target.lsn: '${String(t.lsn)}' is not an LSN such as 0/3000060 (SELECT pg_current_wal_lsn()); e.g. ${set("restore.target.lsn", "0/3000060")}`,
                );
                ok = false;
            } else target = { lsn: t.lsn.toUpperCase() };
        } else if (typeof t.name !== "string" || !RESTORE_POINT.test(t.name)) {
            problems.push(
                `pgha:restore.target.name: '${String(t.name)}' is not a restore point name pgha accepts (${LABEL_RULE}, also ':'), as created by SELECT pg_create_restore_point('before-migration'); e.g. ${set("restore.target.name", "before-migration")}`,
            );
            ok = false;
        } else target = { name: t.name };
    }
    if (raw.id !== undefined && (typeof raw.id !== "string" || !BACKUP_LABEL.test(raw.id))) {
        problems.push(`pgha:restore.id: '${String(raw.id)}' is not an id (${LABEL_RULE}); change it to run the same restore again: ${set("restore.id", "2")}`);
        ok = false;
    }
    if (!ok || !target) return problems;
    draft.restore = { backup: backup as string, target, ...(raw.id !== undefined ? { id: raw.id as string } : {}) };
    return problems;
}

/** pgha:cloneFrom: another stack's archive volume (and engine) and backup label, or an absolute path. */
export function cloneFromRule(rawConfig: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const raw = rawConfig.cloneFrom;
    const servers = draft.servers;
    if (raw === undefined) return problems;
    const shape = "{ archiveVolume, dockerHost?, backup } or { path }";
    const example = `${set("cloneFrom.archiveVolume", "pg2-archive")} && ${set("cloneFrom.backup", "<label>")}`;
    if (!isObject(raw)) {
        problems.push(`pgha:cloneFrom: must be an object ${shape}; e.g. ${example}`);
        return problems;
    }
    unknownKeys(raw, "pgha:cloneFrom", ["archiveVolume", "dockerHost", "backup", "path"], problems);
    if (raw.path !== undefined) {
        if (raw.archiveVolume !== undefined || raw.backup !== undefined || raw.dockerHost !== undefined) {
            problems.push(`pgha:cloneFrom: give either path or archiveVolume (with backup and dockerHost), not both`);
            return problems;
        }
        if (typeof raw.path !== "string" || !raw.path.startsWith("/") || /[\n\r\0]/.test(raw.path)) {
            problems.push(
                `pgha:cloneFrom.path: '${String(raw.path)}' is not an absolute path of a backup directory (base.tar.gz, pg_wal.tar.gz) on the machine that runs pulumi; e.g. ${set("cloneFrom.path", "/backups/prod/nightly")}`,
            );
            return problems;
        }
        draft.cloneFrom = { path: raw.path };
        return problems;
    }
    let ok = true;
    const volume = raw.archiveVolume;
    if (typeof volume !== "string" || !VOLUME_NAME.test(volume)) {
        problems.push(
            `pgha:cloneFrom.archiveVolume: ${volume === undefined ? "missing" : `'${String(volume)}' is not a Docker volume name`}; name the source stack's archive volume holding the backup (its output 'backups' shows archiveVolume), or set cloneFrom.path: ${example}`,
        );
        ok = false;
    } else if (servers.some((s) => volume === `${s.name}-archive` || volume === `${s.name}-data`)) {
        problems.push(
            `pgha:cloneFrom.archiveVolume: '${volume}' is a volume of this stack; a clone copies another stack's data: name that stack's archive volume`,
        );
        ok = false;
    }
    if (raw.dockerHost !== undefined && (typeof raw.dockerHost !== "string" || !DOCKER_HOST.test(raw.dockerHost))) {
        problems.push(
            `pgha:cloneFrom.dockerHost: '${String(raw.dockerHost)}' is not a Docker host URL (unix://, tcp://, ssh://user@host) of the node holding the source volume; e.g. ${set("cloneFrom.dockerHost", "ssh://admin@node-b")}`,
        );
        ok = false;
    }
    if (typeof raw.backup !== "string" || !BACKUP_LABEL.test(raw.backup)) {
        problems.push(
            `pgha:cloneFrom.backup: ${raw.backup === undefined ? "missing" : `'${String(raw.backup)}' is not a backup label`}; name the source's base backup (its output 'backups'): ${set("cloneFrom.backup", "<label>")}`,
        );
        ok = false;
    }
    if (!ok) return problems;
    draft.cloneFrom = {
        archiveVolume: volume as string,
        ...(raw.dockerHost !== undefined ? { dockerHost: raw.dockerHost as string } : {}),
        backup: raw.backup as string,
    };
    return problems;
}
