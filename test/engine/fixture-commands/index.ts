// Fixture program for the test engine's own tests, local commands only: every command appends
// what it does to $LOG, so the tests can check which commands ran, with what, and in which order.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

const cfg = new pulumi.Config();
const log = cfg.require("log");
const aValue = cfg.require("a");

class Group extends pulumi.ComponentResource {
    constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
        super("enginetest:index:Group", name, {}, opts);
        this.registerOutputs({});
    }
}
const group = new Group("group");

const a = new command.local.Command(
    "a",
    {
        create: 'echo "create a $V" >> "$LOG"; echo "a-$V"',
        delete: 'echo "delete a $V" >> "$LOG"',
        environment: { LOG: log, V: aValue },
        triggers: [aValue],
    },
    { parent: group, deleteBeforeReplace: cfg.getBoolean("dbr") ?? false },
);

const b = new command.local.Command(
    "b",
    {
        create: 'echo "create b $A" >> "$LOG"',
        update: 'echo "update b $A (was $PULUMI_COMMAND_STDOUT)" >> "$LOG"; echo "b-$A"',
        delete: 'echo "delete b" >> "$LOG"',
        environment: { LOG: log, A: a.stdout, NOTE: cfg.get("note") ?? "" },
    },
    { parent: group, ignoreChanges: ["environment.NOTE"] },
);

if (cfg.getBoolean("withC")) {
    new command.local.Command(
        "c",
        { create: 'echo "create c" >> "$LOG"', delete: 'echo "delete c" >> "$LOG"', environment: { LOG: log } },
        { dependsOn: [b] },
    );
}

new command.local.Command("p", { create: "true", triggers: [cfg.get("p") ?? "1"] }, { protect: true });

if (cfg.getBoolean("fail")) {
    new command.local.Command("f", { create: "echo boom >&2; exit 3" });
}

export const aStdout = a.stdout;
export const bStdout = b.stdout;
