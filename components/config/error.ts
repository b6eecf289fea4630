// The one error a refused configuration throws: every problem at once, so a single `pulumi up`
// tells the operator everything to fix instead of one problem per run.

export class ConfigError extends Error {
    constructor(public readonly problems: readonly string[]) {
        super(
            `invalid pgha configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}); nothing was changed:\n` +
                problems.map((p) => `  - ${p}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}
