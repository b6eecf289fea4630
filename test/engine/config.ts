// Stack configuration as the Pulumi CLI would hand it to the program: project defaults from
// Pulumi.yaml, the stack file Pulumi.<stack>.yaml, --set overrides, and secrets from the
// PGHA_ENGINE_SECRETS environment variable (JSON object). Non-string values are passed as JSON.
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";

export interface StackConfig {
    project: string;
    main: string;
    /** fully qualified key → value as the program sees it (string) */
    values: Record<string, string>;
    secretKeys: string[];
    /** plaintext secret values, for log redaction only */
    secretValues: string[];
}

function qualify(project: string, key: string): string {
    return key.includes(":") ? key : `${project}:${key}`;
}

function asConfigString(v: unknown): string {
    return typeof v === "string" ? v : JSON.stringify(v);
}

export function loadStackConfig(programDir: string, stack: string, sets: Record<string, unknown>): StackConfig {
    const projFile = path.join(programDir, "Pulumi.yaml");
    if (!fs.existsSync(projFile)) throw new Error(`no Pulumi.yaml in ${programDir}`);
    const proj = YAML.parse(fs.readFileSync(projFile, "utf8")) ?? {};
    const project: string = proj.name;
    if (!project) throw new Error(`${projFile}: no project name`);
    if (proj.runtime && (typeof proj.runtime === "string" ? proj.runtime : proj.runtime.name) !== "nodejs") {
        throw new Error(`${projFile}: only the nodejs runtime is supported by the test engine`);
    }
    let main = "index.ts";
    if (proj.main) main = proj.main;
    const mainPath = path.resolve(programDir, main);
    const entry = fs.existsSync(mainPath) && fs.statSync(mainPath).isDirectory()
        ? [path.join(mainPath, "index.ts"), path.join(mainPath, "index.js")].find((p) => fs.existsSync(p))
        : [mainPath, path.join(programDir, "index.js")].find((p) => fs.existsSync(p));
    if (!entry) throw new Error(`no program entry point (${main}) in ${programDir}`);

    const values: Record<string, string> = {};
    const secretKeys = new Set<string>();

    // project-level config: defaults (and literal values)
    for (const [k, spec] of Object.entries<any>(proj.config ?? {})) {
        const key = qualify(project, k);
        if (spec !== null && typeof spec === "object" && !Array.isArray(spec)) {
            if ("value" in spec) values[key] = asConfigString(spec.value);
            else if ("default" in spec) values[key] = asConfigString(spec.default);
        } else if (spec !== null && spec !== undefined) {
            values[key] = asConfigString(spec);
        }
    }

    // stack file
    const stackFile = path.join(programDir, `Pulumi.${stack}.yaml`);
    let secretsEnv: Record<string, unknown> = {};
    if (process.env.PGHA_ENGINE_SECRETS) {
        try {
            secretsEnv = JSON.parse(process.env.PGHA_ENGINE_SECRETS);
        } catch {
            // (the parser's message would quote the text)
            throw new Error("PGHA_ENGINE_SECRETS is not valid JSON (expected an object of config key → value)");
        }
        if (secretsEnv === null || typeof secretsEnv !== "object" || Array.isArray(secretsEnv)) {
            throw new Error("PGHA_ENGINE_SECRETS must be a JSON object of config key → value");
        }
    }
    const secretEnvKeys = new Set(Object.keys(secretsEnv).map((k) => qualify(project, k)));
    if (fs.existsSync(stackFile)) {
        const doc = YAML.parse(fs.readFileSync(stackFile, "utf8")) ?? {};
        if (doc.environment) throw new Error(`${stackFile}: ESC environments are not supported by the test engine`);
        for (const [k, v] of Object.entries<any>(doc.config ?? {})) {
            const key = qualify(project, k);
            if (v !== null && typeof v === "object" && !Array.isArray(v) && "secure" in v) {
                if (!secretEnvKeys.has(key)) {
                    throw new Error(
                        `${stackFile}: ${key} is an encrypted (secure) value, which the test engine cannot decrypt; ` +
                            `pass it in PGHA_ENGINE_SECRETS instead`,
                    );
                }
                continue;
            }
            values[key] = asConfigString(v);
        }
    }

    for (const [k, v] of Object.entries(sets)) values[qualify(project, k)] = asConfigString(v);

    const secretValues: string[] = [];
    for (const [k, v] of Object.entries(secretsEnv)) {
        const key = qualify(project, k);
        values[key] = asConfigString(v);
        secretKeys.add(key);
        secretValues.push(values[key]);
    }
    return { project, main: entry, values, secretKeys: [...secretKeys], secretValues };
}
