// The GitHub workflow cannot run here; its structure is checked instead: tests on every push,
// `pulumi preview` (the same command the e2e suite runs) with a PR comment on pull requests, a self-managed backend and passphrase
// secrets from repository secrets, and no secret written into the file.

import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";

const file = path.join(__dirname, "..", ".github", "workflows", "pgha.yml");
const text = fs.readFileSync(file, "utf8");
const wf = YAML.parse(text);

describe(".github/workflows/pgha.yml", () => {
    it("parses as YAML with jobs that have steps", () => {
        expect(typeof wf.name).toBe("string");
        for (const [name, job] of Object.entries<any>(wf.jobs)) {
            expect(job["runs-on"], name).toBeTruthy();
            expect(Array.isArray(job.steps) && job.steps.length > 0, name).toBe(true);
            for (const step of job.steps) expect(Boolean(step.uses) !== Boolean(step.run), `${name}: a step has exactly one of uses/run`).toBe(true);
        }
    });

    it("runs the README's test command on every push", () => {
        expect(Object.keys(wf.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
        expect(wf.on.push.branches).toEqual(["**"]);
        const runs = wf.jobs.test.steps.map((s: any) => s.run ?? "").join("\n");
        expect(runs).toMatch(/npm test/);
        const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
        expect(readme).toContain("npm test");
    });

    it("previews pull requests with the command the end-to-end suite runs, and comments on the PR", () => {
        const job = wf.jobs.preview;
        expect(job.if).toMatch(/pull_request/);
        const preview = job.steps.find((s: any) => /npm run --silent up -- preview/.test(String(s.run ?? "")));
        expect(preview, "a step running `npm run up -- preview`").toBeTruthy();
        expect(preview.run).toMatch(/pipefail/);
        // scripts/up.sh preview is what test/e2e/switchover.test.ts runs for its preview proof
        const upSh = fs.readFileSync(path.join(__dirname, "..", "scripts", "up.sh"), "utf8");
        expect(upSh).toMatch(/preview\)\n(\s+#.*\n)*\s+exec pulumi preview --stack "\$stack" --diff/);
        const e2e = fs.readFileSync(path.join(__dirname, "e2e", "switchover.test.ts"), "utf8");
        expect(e2e).toMatch(/scripts\/up\.sh", "preview"/);
        const comment = job.steps.find((s: any) => /gh pr comment/.test(String(s.run ?? "")));
        expect(comment, "a step commenting the preview on the PR").toBeTruthy();
        expect(comment.env.GH_TOKEN).toBe("${{ secrets.GITHUB_TOKEN }}");
        expect(wf.permissions["pull-requests"]).toBe("write");
        // no action that downloads Pulumi from its release servers
        expect(text).not.toMatch(/pulumi\/actions@/);
    });

    it("uses a self-managed backend and passphrase secrets from repository secrets", () => {
        const env = wf.jobs.preview.env;
        expect(env.PULUMI_BACKEND_URL).toBe("${{ secrets.PULUMI_BACKEND_URL }}");
        expect(env.PULUMI_CONFIG_PASSPHRASE).toBe("${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
        expect(env.PULUMI_ACCESS_TOKEN).toBeUndefined();
    });

    it("holds no literal secret", () => {
        for (const m of text.matchAll(/(PASSPHRASE|PASSWORD|TOKEN|KEY)[A-Z_]*:\s*(.+)$/gm)) {
            expect(m[2].trim(), m[0]).toMatch(/^\$\{\{ secrets\./);
        }
    });
});
