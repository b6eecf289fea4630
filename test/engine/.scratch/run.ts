import * as pulumi from "@pulumi/pulumi";
const settings = require("@pulumi/pulumi/runtime/settings");
const rpc = require("@pulumi/pulumi/runtime/rpc");
pulumi.runtime.setAllConfig({ "proj:pw": "sekret" }, ["proj:pw"]);
async function main() {
  await pulumi.runtime.setMocks({
    newResource: async (a: any) => { console.log("NEW", a.type, a.name, a.provider, JSON.stringify(a.inputs)); return { id: a.name + "-id", state: a.inputs }; },
    call: (a: any) => { throw new Error("call " + a.token); },
  }, "proj", "dev", false);
  const mon = settings.getMonitor();
  const orig = mon.registerResource.bind(mon);
  mon.registerResource = (req: any, cb: any) => {
    console.log("REQ", req.getType(), req.getName(), "protect", req.getProtect(), "ign", req.getIgnorechangesList(), "deps", req.getDependenciesList(), "roc", req.getReplaceonchangesList(), "aso", req.getAdditionalsecretoutputsList(), "aliases", req.getAliasesList().length);
    return orig(req, cb);
  };
  const mod = require("./prog.ts");
  console.log("keys", Object.keys(mod));
  for (const k of Object.keys(mod)) { const o = pulumi.output(mod[k]); console.log(k, await (o as any).promise(), await (o as any).isSecret); }
  await settings.waitForRPCs();
  console.log("done");
}
main().catch(e => { console.error("ERR", e); process.exit(1); });
