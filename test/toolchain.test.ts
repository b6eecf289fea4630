// The toolchain (scripts/toolchain.sh) builds the Pulumi CLI and the plugins the program's SDKs
// load; the engine starts a plugin only at exactly the version the SDK declares. These checks keep
// the wrapper modules, the plugin builds and package.json in agreement, and the offline settings
// the same for `npm run up` and the end-to-end suite.

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";

const ROOT = path.join(__dirname, "..");
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), "utf8");
const pkg = JSON.parse(read("package.json"));
const dep = (name: string): string => pkg.dependencies[name];

describe("scripts/toolchain.sh and its wrapper modules", () => {
    it("pins the SDKs whose plugins it builds to exact versions", () => {
        for (const name of ["@pulumi/pulumi", "@pulumi/docker", "@pulumi/command"]) expect(dep(name), name).toMatch(/^\d+\.\d+\.\d+$/);
    });

    it("builds the CLI at the version of @pulumi/pulumi", () => {
        expect(read("scripts/toolchain/cli/go.mod")).toMatch(
            new RegExp(`^require github\\.com/pulumi/pulumi/pkg/v3 v${dep("@pulumi/pulumi").replace(/\./g, "\\.")}$`, "m"),
        );
        expect(read("scripts/toolchain/cli/tools.go")).toContain('_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"');
    });

    it("builds the language host from the last SDK module that holds it", () => {
        expect(read("scripts/toolchain/language-nodejs/go.mod")).toMatch(/^require github\.com\/pulumi\/pulumi\/sdk\/v3 v3\.68\.0$/m);
        expect(read("scripts/toolchain.sh")).toMatch(/^LANGHOST_SDK=v3\.68\.0$/m);
    });

    it("builds each plugin at the version its SDK declares", () => {
        expect(read("scripts/toolchain/docker/build.sh")).toMatch(new RegExp(`^VERSION=${dep("@pulumi/docker").replace(/\./g, "\\.")}$`, "m"));
        expect(read("scripts/toolchain/command/build.sh")).toMatch(new RegExp(`^VERSION=${dep("@pulumi/command").replace(/\./g, "\\.")}$`, "m"));
        expect(JSON.parse(read("node_modules/@pulumi/docker/package.json")).pulumi).toMatchObject({
            resource: true,
            name: "docker",
            version: dep("@pulumi/docker"),
        });
        expect(JSON.parse(read("node_modules/@pulumi/command/package.json")).pulumi).toMatchObject({
            resource: true,
            name: "command",
            version: dep("@pulumi/command"),
        });
    });

    it("keeps the CLI offline with the same settings in `npm run up` and the end-to-end suite", () => {
        const r = spawnSync("sh", ["scripts/toolchain.sh", "env"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PGHA_TOOLCHAIN_BUILD: "1" } });
        expect(r.status, r.stderr).toBe(0);
        const vars = Object.fromEntries([...r.stdout.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2].replace(/^'|'$/g, "")]));
        expect(vars).toMatchObject({
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
            GRPC_ENABLE_TXT_SERVICE_CONFIG: "false",
        });
        const suite = read("test/e2e/pulumi.ts");
        for (const [k, v] of Object.entries(vars)) {
            if (k === "PATH" || k === "PULUMI_HOME") continue;
            expect(suite, `test/e2e/pulumi.ts sets ${k}`).toContain(`${k}: "${v}"`);
        }
        expect(suite).toMatch(/PULUMI_BACKEND_URL: `file:\/\//);
        expect(read("scripts/up.sh")).toMatch(/PULUMI_BACKEND_URL="\$\{PULUMI_BACKEND_URL:-file:\/\//);
    });

    it("names no download host: modules come through the machine's own Go module proxy", () => {
        const files = [
            "scripts/toolchain.sh",
            ...["cli", "language-nodejs", "docker", "command"].flatMap((d) =>
                fs.readdirSync(path.join(ROOT, "scripts/toolchain", d), { recursive: true }).map((f) => `scripts/toolchain/${d}/${f}`),
            ),
        ];
        for (const f of files) {
            if (fs.statSync(path.join(ROOT, f)).isDirectory() || f.endsWith("go.sum")) continue;
            expect(read(f), f).not.toMatch(/https?:\/\/(?!localhost|127\.)[a-z0-9.-]+\.[a-z]{2,}/i);
            expect(read(f), f).not.toMatch(/GOPROXY=|GOFLAGS=.*-insecure|GONOSUMDB|GOSUMDB=off/);
        }
    });
});
