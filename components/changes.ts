// What a change of the stack config (or of pgha itself) does to running servers: reload, or roll.
//
// Every parameter in postgresql.conf is either reloadable (pg_settings.context sighup, superuser,
// user, ...) or needs a restart of the server (context postmaster). pg_hba.conf and server.conf
// (primary_conninfo, primary_slot_name) are reloadable. The reload operation (one Command per
// server) delivers the files and reloads; the roll operation (one Command for the cluster) restarts
// the servers one at a time, standbys first, the primary after a planned switchover, whenever the
// restart key changes: the restart-only parameters, pgha's container files, the image. The key is
// all the roll's Command sees of those, so the preview says which of the two a change is.

import { createHash } from "crypto";
import { PghaConfig } from "./config";
import { needsRestart } from "./pg-parameters";
import { PATHS, Paths, renderedParameters } from "./templates";

/** The rendered lines ("name = value") of the parameters a server must restart to apply. */
export function restartParameters(cfg: PghaConfig, paths: Paths = PATHS): string[] {
    const { base, user } = renderedParameters(cfg, paths);
    return [...base, ...user].filter((l) => needsRestart(cfg.postgresVersion, l.slice(0, l.indexOf(" = "))));
}

/**
 * The digest of pgha's container files (scripts/server/*.sh by file name), the way
 * scripts/operations/lib.sh computes it from the files on disk: for each file in byte order of
 * its name, the name, a NUL, the content, a NUL; SHA-256, hex.
 */
export function serverFilesDigest(files: Readonly<Record<string, string>>): string {
    const h = createHash("sha256");
    for (const name of Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
        h.update(name + "\0");
        h.update(files[name]);
        h.update("\0");
    }
    return h.digest("hex");
}

/** What a running server must be restarted for when it changes: restart-only parameters, pgha's container files, the image. */
export function restartKey(cfg: PghaConfig, filesDigest: string): string {
    const what = { image: cfg.image, postgresVersion: cfg.postgresVersion, parameters: restartParameters(cfg), serverFiles: filesDigest };
    return createHash("sha256").update(JSON.stringify(what)).digest("hex");
}
