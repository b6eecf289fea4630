// The test engine's state file: one entry per resource (keyed by URN), secrets stored as
// { secretHash, ciphertext } — never in plaintext. The encryption key comes from
// PGHA_ENGINE_PASSPHRASE or from a key file beside the state (<state>.key, mode 0600).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import { SecretBox } from "./values";

export interface StateEntry {
    urn: string;
    type: string;
    name: string;
    custom: boolean;
    id?: string;
    /** provider reference `<urn>::<id>`, "" for the default provider */
    provider: string;
    parent: string;
    dependencies: string[];
    protect: boolean;
    retainOnDelete: boolean;
    deleteBeforeReplace?: boolean;
    /** docker host the object lives on (docker types) */
    engine?: string;
    inputs: Record<string, unknown>;
    outputs: Record<string, unknown>;
    /** creation order (monotonic over the stack's life) */
    sequence: number;
    /** an old instance waiting to be deleted (create-before-delete replacement) */
    pendingDelete?: boolean;
}

export interface StateFile {
    version: 1;
    project: string;
    stack: string;
    salt: string;
    nextSequence: number;
    resources: StateEntry[];
    /** stack outputs, secrets omitted */
    outputs: Record<string, unknown>;
}

export function readState(file: string, project: string, stack: string): StateFile {
    if (!fs.existsSync(file)) {
        return {
            version: 1,
            project,
            stack,
            salt: crypto.randomBytes(16).toString("hex"),
            nextSequence: 1,
            resources: [],
            outputs: {},
        };
    }
    const s = JSON.parse(fs.readFileSync(file, "utf8")) as StateFile;
    if (s.version !== 1) throw new Error(`${file}: unknown state version ${s.version}`);
    if (project && s.project !== project) throw new Error(`${file}: state of project ${s.project}, not ${project}`);
    if (stack && s.stack !== stack) throw new Error(`${file}: state of stack ${s.stack}, not ${stack}`);
    return s;
}

export function writeState(file: string, s: StateFile) {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(s, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

/** The state's secret box. `create` makes a key file when none exists (never during preview). */
export function secretBox(file: string, salt: string, create: boolean): SecretBox {
    const pass = process.env.PGHA_ENGINE_PASSPHRASE;
    if (pass) return new SecretBox(salt, crypto.scryptSync(pass, salt, 32));
    const keyFile = `${file}.key`;
    if (fs.existsSync(keyFile)) return new SecretBox(salt, Buffer.from(fs.readFileSync(keyFile, "utf8").trim(), "hex"));
    if (!create) return new SecretBox(salt, undefined);
    const key = crypto.randomBytes(32);
    fs.writeFileSync(keyFile, key.toString("hex") + "\n", { mode: 0o600 });
    return new SecretBox(salt, key);
}
