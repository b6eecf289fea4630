// docker:index/* resources (Network, Volume, ServiceConfig, Secret, Service), applied through the
// Docker Engine API exactly as the docker provider (pulumi-docker 5.2.0, a bridge of
// kreuzwerker/terraform-provider-docker) translates them. Any input field not translated here throws.
import * as crypto from "node:crypto";
import { filtersQuery, isNotFound, sleep, type DockerApi } from "./docker-api";
import { Fields, parseGoDuration } from "./fields";
import type { Ctx, Existing, Goal, Handler } from "./handler";
import { isPlainObject, SecretValue, UNKNOWN, type Props, type Value } from "./values";

// ------------------------------------------------------------------ helpers

/** Secrets revealed, unknowns kept (translation must work during preview). */
function plain(v: Value | undefined): any {
    if (v instanceof SecretValue) return v.value === undefined ? UNKNOWN : plain(v.value);
    if (Array.isArray(v)) return v.map(plain);
    if (isPlainObject(v)) {
        const o: Record<string, any> = {};
        for (const [k, e] of Object.entries(v)) o[k] = plain(e as Value);
        return o;
    }
    return v;
}

function label(goal: Goal) {
    return `${goal.type} ${goal.name}`;
}

function labelMap(list: Fields[] | undefined): Record<string, string> | undefined {
    if (!list) return undefined;
    const out: Record<string, string> = {};
    for (const l of list) {
        const k = l.str("label", true)!;
        out[k] = l.str("value", true)!;
        l.done();
    }
    return out;
}

/** Duration string of the provider ("" or absent = 0, like the provider's ignored ParseDuration error). */
function dur(s: string | undefined, where: string): number {
    if (s === undefined || s === "" || (s as any) === UNKNOWN) return 0;
    return parseGoDuration(s, where);
}

function randomHex(n: number) {
    return crypto.randomBytes(Math.ceil(n / 2)).toString("hex").substring(0, n);
}

/** Pulumi autonaming as configured by pulumi-docker (SetAutonaming(255, "-")): `<name>-<7 hex>`. */
function physicalName(goal: Goal, old?: Existing): string {
    const declared = goal.inputs.name;
    if (declared !== undefined && declared !== null) return plain(declared);
    const oldName = old?.outputs?.name;
    if (old && typeof oldName === "string") return oldName;
    return `${goal.name}-${randomHex(7)}`;
}

function withOutputs(goal: Goal, extra: Props): Props {
    return { ...goal.inputs, ...extra };
}

function isBase64(s: string) {
    return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}

function engineOf(goal: Goal): string {
    if (!goal.engine) throw new Error(`${label(goal)}: no docker engine resolved`);
    return goal.engine;
}

async function retryWhile<T>(what: () => Promise<T>, retryIf: (e: any) => boolean, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            return await what();
        } catch (e) {
            if (!retryIf(e) || Date.now() > deadline) throw e;
            await sleep(1000);
        }
    }
}

/** Every docker resource here: a replacement deletes first when the user set the name explicitly
 * (terraform bridge: nameRequiresDeleteBeforeReplace for an autonamed field the user filled). */
function explicitName(goal: Goal) {
    return goal.inputs.name !== undefined && goal.inputs.name !== null;
}

// ------------------------------------------------------------------ Network

function networkBody(goal: Goal, name: string) {
    const f = new Fields(plain(goal.inputs as any), "", label(goal));
    f.get("name");
    const body: any = { Name: name };
    const labels = labelMap(f.objList("labels"));
    if (labels && Object.keys(labels).length) body.Labels = labels;
    const driver = f.str("driver");
    if (driver) body.Driver = driver;
    const options = f.strMap("options");
    if (options && Object.keys(options).length) body.Options = options;
    if (f.bool("internal")) body.Internal = true;
    if (f.bool("attachable")) body.Attachable = true;
    if (f.bool("ingress")) body.Ingress = true;
    if (f.bool("ipv6")) body.EnableIPv6 = true;
    // ipam_driver has the schema default "default", so IPAM is always set
    const ipam: any = { Driver: f.str("ipamDriver") ?? "default" };
    const ipamOptions = f.strMap("ipamOptions");
    if (ipamOptions && Object.keys(ipamOptions).length) ipam.Options = ipamOptions;
    const cfgs = f.objList("ipamConfigs");
    if (cfgs && cfgs.length) {
        ipam.Config = cfgs.map((c) => {
            const o: any = {};
            const subnet = c.str("subnet");
            if (subnet) o.Subnet = subnet;
            const range = c.str("ipRange");
            if (range) o.IPRange = range;
            const gw = c.str("gateway");
            if (gw) o.Gateway = gw;
            const aux = c.strMap("auxAddress");
            if (aux && Object.keys(aux).length) o.AuxiliaryAddresses = aux;
            c.done();
            return o;
        });
    }
    body.IPAM = ipam;
    f.done();
    return body;
}

export const networkHandler: Handler = {
    usesDocker: true,
    setFields: ["labels", "ipamConfigs"],
    check(goal) {
        networkBody(goal, "x");
    },
    replacePaths: (diffs) => diffs, // every field of docker_network forces a new network
    deleteBeforeReplace: explicitName,
    previewOutputs(goal, old) {
        return withOutputs(goal, { name: goal.inputs.name ?? (old?.outputs.name as Value) ?? UNKNOWN, scope: UNKNOWN });
    },
    async create(ctx, goal) {
        const api = ctx.docker(engineOf(goal));
        const name = physicalName(goal);
        const res = await api.post("/networks/create", networkBody(goal, name));
        const n = await api.get(`/networks/${res.Id}`);
        return {
            id: res.Id,
            outputs: withOutputs(goal, { name, scope: n.Scope, driver: n.Driver, ipamDriver: n.IPAM?.Driver ?? "default" }),
        };
    },
    async update() {
        throw new Error("internal: docker networks are never updated in place");
    },
    async delete(ctx, _type, _name, old) {
        const api = ctx.docker(old.engine!);
        await retryWhile(
            async () => {
                try {
                    await api.delete(`/networks/${old.id}`);
                } catch (e) {
                    if (!isNotFound(e)) throw e;
                }
            },
            (e) => /active endpoints|in use/i.test(String(e?.message)),
            30_000,
        );
    },
};

// ------------------------------------------------------------------ Volume

function volumeBody(goal: Goal, name: string) {
    const f = new Fields(plain(goal.inputs as any), "", label(goal));
    f.get("name");
    f.reject("cluster");
    const body: any = { Name: name };
    const labels = labelMap(f.objList("labels"));
    if (labels && Object.keys(labels).length) body.Labels = labels;
    const driver = f.str("driver");
    if (driver) body.Driver = driver;
    const opts = f.strMap("driverOpts");
    if (opts && Object.keys(opts).length) body.DriverOpts = opts;
    f.done();
    return body;
}

export const volumeHandler: Handler = {
    usesDocker: true,
    setFields: ["labels"],
    check(goal) {
        volumeBody(goal, "x");
    },
    replacePaths: (diffs) => diffs,
    deleteBeforeReplace: explicitName,
    previewOutputs(goal, old) {
        return withOutputs(goal, { name: goal.inputs.name ?? (old?.outputs.name as Value) ?? UNKNOWN, mountpoint: UNKNOWN });
    },
    async create(ctx, goal) {
        const api = ctx.docker(engineOf(goal));
        const name = physicalName(goal);
        // Docker returns the existing volume when one of that name exists: a retained volume is adopted.
        const v = await api.post("/volumes/create", volumeBody(goal, name));
        return {
            id: v.Name,
            outputs: withOutputs(goal, { name: v.Name, driver: v.Driver, mountpoint: v.Mountpoint }),
        };
    },
    async update() {
        throw new Error("internal: docker volumes are never updated in place");
    },
    async delete(ctx, _type, _name, old) {
        const api = ctx.docker(old.engine!);
        await retryWhile(
            async () => {
                try {
                    await api.delete(`/volumes/${encodeURIComponent(old.id)}?force=true`);
                } catch (e) {
                    if (!isNotFound(e)) throw e;
                }
            },
            (e) => /in use/i.test(String(e?.message)),
            30_000,
        );
    },
};

// ------------------------------------------------------------------ ServiceConfig and Secret

function blobBody(goal: Goal, name: string) {
    const f = new Fields(plain(goal.inputs as any), "", label(goal));
    f.get("name");
    if (goal.type === "docker:index/serviceConfig:ServiceConfig") f.reject("dataRaw");
    const data = f.str("data", true)!;
    if ((data as unknown) !== UNKNOWN && !isBase64(data)) {
        throw new Error(`${label(goal)}: input data must be base64 encoded`);
    }
    const body: any = { Name: name, Data: data };
    const labels = labelMap(f.objList("labels"));
    if (labels && Object.keys(labels).length) body.Labels = labels;
    f.done();
    return body;
}

function blobHandler(kind: "configs" | "secrets"): Handler {
    return {
        usesDocker: true,
        setFields: ["labels"],
        check(goal) {
            blobBody(goal, "x");
        },
        replacePaths: (diffs) => diffs,
        deleteBeforeReplace: explicitName,
        previewOutputs(goal, old) {
            return withOutputs(goal, { name: goal.inputs.name ?? (old?.outputs.name as Value) ?? UNKNOWN });
        },
        async create(ctx, goal) {
            const api = ctx.docker(engineOf(goal));
            const name = physicalName(goal);
            const res = await api.post(`/${kind}/create`, blobBody(goal, name));
            return { id: res.ID, outputs: withOutputs(goal, { name }) };
        },
        async update() {
            throw new Error(`internal: docker ${kind} are never updated in place`);
        },
        async delete(ctx, _type, _name, old) {
            const api = ctx.docker(old.engine!);
            try {
                await api.delete(`/${kind}/${old.id}`);
            } catch (e) {
                if (!isNotFound(e)) throw e;
            }
        },
    };
}

export const serviceConfigHandler = blobHandler("configs");
export const secretHandler = blobHandler("secrets");

// ------------------------------------------------------------------ Service

function updateOrRollbackConfig(f: Fields | undefined, where: string) {
    if (!f) return undefined;
    // schema defaults of update_config / rollback_config
    const ratio = f.str("maxFailureRatio") ?? "0.0";
    const c = {
        Parallelism: f.num("parallelism") ?? 1,
        Delay: dur(f.str("delay") ?? "0s", `${where}.delay`),
        FailureAction: f.str("failureAction") ?? "pause",
        Monitor: dur(f.str("monitor") ?? "5s", `${where}.monitor`),
        MaxFailureRatio: ratio === (UNKNOWN as any) ? 0 : parseFloat(ratio),
        Order: f.str("order") ?? "stop-first",
    };
    f.done();
    return c;
}

function fileRef(f: Fields) {
    return {
        Name: f.str("fileName", true),
        UID: f.str("fileUid") ?? "0",
        GID: f.str("fileGid") ?? "0",
        Mode: f.num("fileMode") ?? 0o444,
    };
}

function containerSpec(f: Fields, res: string) {
    const c: any = {};
    c.Image = f.str("image", true);
    const labels = labelMap(f.objList("labels"));
    if (labels) c.Labels = labels;
    const cmd = f.strList("commands");
    if (cmd) c.Command = cmd;
    const args = f.strList("args");
    if (args) c.Args = args;
    const hostname = f.str("hostname");
    if (hostname) c.Hostname = hostname;
    const env = f.strMap("env");
    if (env) c.Env = Object.keys(env).sort().map((k) => `${k}=${env[k]}`);
    const dir = f.str("dir");
    if (dir) c.Dir = dir;
    const user = f.str("user");
    if (user) c.User = user;
    const groups = f.strList("groups");
    if (groups) c.Groups = groups;
    const priv = f.obj_("privileges");
    if (priv) {
        c.Privileges = {};
        priv.reject("credentialSpec", "(Windows only) is not translated by the test engine");
        const se = priv.obj_("seLinuxContext");
        if (se) {
            c.Privileges.SELinuxContext = {
                Disable: se.bool("disable") ?? false,
                User: se.str("user") ?? "",
                Role: se.str("role") ?? "",
                Type: se.str("type") ?? "",
                Level: se.str("level") ?? "",
            };
            se.done();
        }
        priv.done();
    }
    if (f.bool("readOnly")) c.ReadOnly = true;
    const mounts = f.objList("mounts");
    if (mounts) {
        c.Mounts = mounts.map((m) => {
            const type = m.str("type", true)!;
            if ((type as unknown) !== UNKNOWN && !["bind", "volume", "tmpfs"].includes(type)) {
                throw new Error(`${res}: input ${m.path}.type must be bind, volume or tmpfs`);
            }
            const mo: any = { Type: type, Target: m.str("target", true), Source: m.str("source") ?? "" };
            if (m.bool("readOnly")) mo.ReadOnly = true;
            const vo = m.obj_("volumeOptions");
            if (vo) {
                if (type !== "volume") throw new Error(`${res}: input ${m.path}.volumeOptions needs type "volume"`);
                mo.VolumeOptions = {
                    NoCopy: vo.bool("noCopy") ?? false,
                    Labels: labelMap(vo.objList("labels")) ?? {},
                    DriverConfig: { Name: vo.str("driverName") ?? "", Options: vo.strMap("driverOptions") ?? {} },
                };
                vo.done();
            }
            const bo = m.obj_("bindOptions");
            if (bo) {
                if (type !== "bind") throw new Error(`${res}: input ${m.path}.bindOptions needs type "bind"`);
                mo.BindOptions = {};
                const p = bo.str("propagation");
                if (p) mo.BindOptions.Propagation = p;
                bo.done();
            }
            const to = m.obj_("tmpfsOptions");
            if (to) {
                if (type !== "tmpfs") throw new Error(`${res}: input ${m.path}.tmpfsOptions needs type "tmpfs"`);
                mo.TmpfsOptions = { SizeBytes: to.num("sizeBytes") ?? 0, Mode: to.num("mode") ?? 0 };
                to.done();
            }
            m.done();
            return mo;
        });
    }
    const stopSignal = f.str("stopSignal");
    if (stopSignal) c.StopSignal = stopSignal;
    // The provider always sends StopGracePeriod; unset means 0 (the stop signal is followed by SIGKILL at once).
    c.StopGracePeriod = dur(f.str("stopGracePeriod"), `${res} stopGracePeriod`);
    const hc = f.obj_("healthcheck");
    c.Healthcheck = {};
    if (hc) {
        const tests = hc.strList("tests");
        if (!tests) throw new Error(`${res}: input ${hc.path}.tests is required`);
        c.Healthcheck = {
            Test: tests,
            Interval: dur(hc.str("interval") ?? "0s", `${hc.path}.interval`),
            Timeout: dur(hc.str("timeout") ?? "0s", `${hc.path}.timeout`),
            StartPeriod: dur(hc.str("startPeriod") ?? "0s", `${hc.path}.startPeriod`),
            Retries: hc.num("retries") ?? 0,
        };
        hc.done();
    }
    f.reject("hosts");
    const dns = f.obj_("dnsConfig");
    c.DNSConfig = {};
    if (dns) {
        const ns = dns.strList("nameservers");
        if (!ns) throw new Error(`${res}: input ${dns.path}.nameservers is required`);
        c.DNSConfig.Nameservers = ns;
        const search = dns.strList("searches");
        if (search) c.DNSConfig.Search = search;
        const options = dns.strList("options");
        if (options) c.DNSConfig.Options = options;
        dns.done();
    }
    const secrets = f.objList("secrets");
    if (secrets) {
        c.Secrets = secrets.map((s) => {
            const r = { SecretID: s.str("secretId", true), SecretName: s.str("secretName") ?? "", File: fileRef(s) };
            s.done();
            return r;
        });
    }
    const configs = f.objList("configs");
    if (configs) {
        c.Configs = configs.map((s) => {
            const r = { ConfigID: s.str("configId", true), ConfigName: s.str("configName") ?? "", File: fileRef(s) };
            s.done();
            return r;
        });
    }
    c.Isolation = f.str("isolation") ?? "default";
    const sysctl = f.strMap("sysctl");
    if (sysctl) c.Sysctls = sysctl;
    const capAdd = f.strList("capAdds");
    if (capAdd) c.CapabilityAdd = capAdd;
    const capDrop = f.strList("capDrops");
    if (capDrop) c.CapabilityDrop = capDrop;
    c.Init = f.bool("init") ?? false;
    f.done();
    return c;
}

interface ServiceTranslation {
    spec: any;
    converge?: { delayNs: number; timeoutNs: number };
    stopGracePeriodSet: boolean;
    stopGracePeriodNs: number;
}

function serviceSpec(goal: Goal, name: string): ServiceTranslation {
    const res = label(goal);
    const f = new Fields(plain(goal.inputs as any), "", res);
    f.get("name");
    f.reject("auth", "(registry credentials) is not translated by the test engine");
    const spec: any = { Name: name };
    const labels = labelMap(f.objList("labels"));
    if (labels && Object.keys(labels).length) spec.Labels = labels;

    const ts = f.obj_("taskSpec");
    if (!ts) throw new Error(`${res}: input taskSpec is required`);
    const tt: any = {};
    const cs = ts.obj_("containerSpec");
    if (!cs) throw new Error(`${res}: input taskSpec.containerSpec is required`);
    const stopGracePeriodSet = cs.has("stopGracePeriod");
    tt.ContainerSpec = containerSpec(cs, res);

    const rsc = ts.obj_("resources");
    tt.Resources = {};
    if (rsc) {
        const lim = rsc.obj_("limits");
        if (lim) {
            tt.Resources.Limits = { NanoCPUs: lim.num("nanoCpus") ?? 0, MemoryBytes: lim.num("memoryBytes") ?? 0 };
            lim.done();
        }
        const resv = rsc.obj_("reservation");
        if (resv) {
            resv.reject("genericResources");
            tt.Resources.Reservations = { NanoCPUs: resv.num("nanoCpus") ?? 0, MemoryBytes: resv.num("memoryBytes") ?? 0 };
            resv.done();
        }
        rsc.done();
    }
    const rp = ts.obj_("restartPolicy");
    tt.RestartPolicy = {};
    if (rp) {
        // the provider reads every key of the block: unset delay/window become 0, maxAttempts 0
        const cond = rp.str("condition");
        if (cond) tt.RestartPolicy.Condition = cond;
        tt.RestartPolicy.Delay = dur(rp.str("delay"), `${rp.path}.delay`);
        tt.RestartPolicy.MaxAttempts = rp.num("maxAttempts") ?? 0;
        tt.RestartPolicy.Window = dur(rp.str("window"), `${rp.path}.window`);
        rp.done();
    }
    const pl = ts.obj_("placement");
    tt.Placement = {};
    if (pl) {
        const cons = pl.strList("constraints");
        if (cons) tt.Placement.Constraints = cons;
        const prefs = pl.strList("prefs");
        if (prefs) tt.Placement.Preferences = prefs.map((p) => ({ Spread: { SpreadDescriptor: p } }));
        const plats = pl.objList("platforms");
        if (plats) {
            tt.Placement.Platforms = plats.map((p) => {
                const o = { Architecture: p.str("architecture", true), OS: p.str("os", true) };
                p.done();
                return o;
            });
        }
        const mr = pl.num("maxReplicas");
        if (mr) tt.Placement.MaxReplicas = mr;
        pl.done();
    }
    tt.ForceUpdate = ts.num("forceUpdate") ?? 0;
    const runtime = ts.str("runtime");
    if (runtime) tt.Runtime = runtime;
    const nets = ts.objList("networksAdvanceds");
    if (nets) {
        tt.Networks = nets.map((n) => {
            const id = n.str("id");
            const nm = n.str("name");
            const target = id || nm;
            if (!target) throw new Error(`${res}: input ${n.path}: network 'name' or 'id' must be specified`);
            const o: any = { Target: target, Aliases: n.strList("aliases") ?? [] };
            const opts = n.strList("driverOpts");
            if (opts) {
                o.DriverOpts = {};
                for (const kv of opts) {
                    const i = kv.indexOf("=");
                    o.DriverOpts[i < 0 ? kv : kv.substring(0, i)] = i < 0 ? "" : kv.substring(i + 1);
                }
            }
            n.done();
            return o;
        });
    }
    const ld = ts.obj_("logDriver");
    if (ld) {
        tt.LogDriver = { Name: ld.str("name", true) };
        const o = ld.strMap("options");
        if (o) tt.LogDriver.Options = o;
        ld.done();
    }
    ts.done();
    spec.TaskTemplate = tt;

    const mode = f.obj_("mode");
    spec.Mode = {};
    if (mode) {
        const global = mode.bool("global");
        const repl = mode.obj_("replicated");
        if (global === true && repl) throw new Error(`${res}: input mode: global conflicts with replicated`);
        if (repl) {
            spec.Mode.Replicated = { Replicas: repl.num("replicas") ?? 1 };
            repl.done();
        } else if (global === true) {
            spec.Mode.Global = {};
        }
        mode.done();
    }
    const uc = updateOrRollbackConfig(f.obj_("updateConfig"), "updateConfig");
    if (uc) spec.UpdateConfig = uc;
    const rc = updateOrRollbackConfig(f.obj_("rollbackConfig"), "rollbackConfig");
    if (rc) spec.RollbackConfig = rc;

    const ep = f.obj_("endpointSpec");
    spec.EndpointSpec = {};
    if (ep) {
        const m = ep.str("mode");
        if (m) spec.EndpointSpec.Mode = m;
        const ports = ep.objList("ports");
        if (ports) {
            spec.EndpointSpec.Ports = ports.map((p) => {
                const o: any = {
                    Protocol: p.str("protocol") ?? "tcp",
                    TargetPort: p.num("targetPort"),
                    PublishedPort: p.num("publishedPort") ?? 0,
                    PublishMode: p.str("publishMode") ?? "ingress",
                };
                const n = p.str("name");
                if (n) o.Name = n;
                if (o.TargetPort === undefined) throw new Error(`${res}: input ${p.path}.targetPort is required`);
                p.done();
                return o;
            });
        }
        ep.done();
    }

    let converge: ServiceTranslation["converge"];
    const cc = f.obj_("convergeConfig");
    if (cc) {
        if (spec.Mode.Global) throw new Error(`${res}: input convergeConfig conflicts with mode.global`);
        converge = {
            delayNs: dur(cc.str("delay") ?? "7s", "convergeConfig.delay"),
            timeoutNs: dur(cc.str("timeout") ?? "3m", "convergeConfig.timeout"),
        };
        cc.done();
    }
    f.done();
    return {
        spec,
        converge,
        stopGracePeriodSet,
        stopGracePeriodNs: tt.ContainerSpec.StopGracePeriod,
    };
}

const TASK_STATES = [
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
];
const stateNo = (s: string) => TASK_STATES.indexOf(s) + 1; // 0 = unknown

/** The provider's replicatedConsoleLogUpdater check: one running task per slot on active nodes. */
async function converged(api: DockerApi, serviceId: string): Promise<{ done: boolean; running: number; replicas: number }> {
    const svc = await api.get(`/services/${serviceId}`);
    const replicas = svc?.Spec?.Mode?.Replicated?.Replicas;
    if (replicas === undefined) throw new Error(`service ${serviceId}: no replica count`);
    const tasks: any[] = await api.get(`/tasks?${filtersQuery({ service: [serviceId], "desired-state": ["running"] })}`);
    const nodes: any[] = await api.get(`/nodes`);
    const active = new Set(nodes.filter((n) => n.Status?.State !== "down").map((n) => n.ID));
    const bySlot = new Map<number, any>();
    for (const t of tasks) {
        const ds = stateNo(t.DesiredState);
        const st = stateNo(t.Status?.State);
        if (ds === 0 || st === 0) continue;
        const ex = bySlot.get(t.Slot);
        if (ex) {
            if (stateNo(ex.DesiredState) < ds) continue;
            if (stateNo(ex.DesiredState) === ds && stateNo(ex.Status.State) <= st) continue;
        }
        if (t.NodeID && !active.has(t.NodeID)) continue;
        bySlot.set(t.Slot, t);
    }
    let running = 0;
    for (const t of bySlot.values()) {
        if (!(stateNo(t.DesiredState) > stateNo("running")) && t.Status.State === "running") running++;
    }
    return { done: running === replicas, running, replicas };
}

/** terraform-plugin-sdk StateChangeConf: wait `delay`, then refresh with a backoff of ≥5 s, ≤10 s. */
async function waitState(
    delayMs: number,
    timeoutMs: number,
    refresh: () => Promise<boolean>,
    what: string,
): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await sleep(Math.min(delayMs, timeoutMs));
    let wait = 100;
    for (;;) {
        if (await refresh()) return;
        wait *= 2;
        const w = Math.min(Math.max(wait, 5000), 10000);
        if (Date.now() + w > deadline) {
            // one last look at the deadline, like the SDK's timeout
            await sleep(Math.max(0, deadline - Date.now()));
            if (await refresh()) return;
            throw new Error(`${what}: did not converge after ${Math.round(timeoutMs / 1000)}s`);
        }
        await sleep(w);
    }
}

async function removeService(ctx: Ctx, api: DockerApi, id: string, name: string, t: ServiceTranslation | undefined) {
    const containers: string[] = [];
    const graceSet = t?.stopGracePeriodSet ?? false;
    if (graceSet) {
        const tasks: any[] = await api.get(`/tasks?${filtersQuery({ service: [name] })}`);
        for (const task of tasks) {
            const cid = task.Status?.ContainerStatus?.ContainerID;
            if (cid && cid.trim() !== "" && task.Status?.State !== "shutdown") containers.push(cid);
        }
    }
    try {
        await api.delete(`/services/${id}`);
    } catch (e) {
        if (!isNotFound(e)) throw e;
    }
    // the provider then waits up to the grace period for each container, and force-removes it
    for (const cid of containers) {
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), Math.max(1, Math.round(t!.stopGracePeriodNs / 1e6)));
        try {
            await api.request("POST", `/containers/${cid}/wait?condition=removed`, undefined, { signal: ac.signal });
        } catch {
            /* timeout or no such container: carry on like the provider */
        } finally {
            clearTimeout(timer);
        }
        try {
            await api.delete(`/containers/${cid}?force=true&v=true`);
        } catch (e: any) {
            if (!/No such container|is already in progress|404/.test(String(e?.message))) throw e;
        }
    }
    void ctx;
}

export const serviceHandler: Handler = {
    usesDocker: true,
    // TypeSet fields of docker_service's schema
    setFields: [
        "labels",
        "taskSpec.containerSpec.labels",
        "taskSpec.containerSpec.mounts[*].volumeOptions.labels",
        "taskSpec.containerSpec.mounts",
        "taskSpec.containerSpec.secrets",
        "taskSpec.containerSpec.configs",
        "taskSpec.containerSpec.capAdds",
        "taskSpec.containerSpec.capDrops",
        "taskSpec.placement.constraints",
        "taskSpec.placement.prefs",
        "taskSpec.placement.platforms",
        "taskSpec.networksAdvanceds[*].aliases",
        "taskSpec.networksAdvanceds[*].driverOpts",
        "taskSpec.networksAdvanceds",
    ],
    check(goal) {
        serviceSpec(goal, "x");
    },
    // ForceNew fields of docker_service: name, mode, auth (and task_spec.container_spec.hosts, rejected)
    replacePaths: (diffs) => diffs.filter((p) => /^(name|mode|auth)(\.|\[|$)/.test(p)),
    deleteBeforeReplace: explicitName,
    previewOutputs(goal, old) {
        return withOutputs(goal, { name: goal.inputs.name ?? (old?.outputs.name as Value) ?? UNKNOWN });
    },
    async create(ctx, goal) {
        const api = ctx.docker(engineOf(goal));
        const name = physicalName(goal);
        const t = serviceSpec(goal, name);
        const res = await api.post("/services/create", t.spec);
        for (const w of res.Warnings ?? []) ctx.log(`    warning (${goal.name}): ${w}`);
        if (t.converge) {
            try {
                await waitState(
                    t.converge.delayNs / 1e6,
                    t.converge.timeoutNs / 1e6,
                    async () => (await converged(api, res.ID)).done,
                    `service ${name} (${res.ID})`,
                );
            } catch (e) {
                // the provider deletes a service that does not converge
                await removeService(ctx, api, res.ID, name, t);
                throw e;
            }
        }
        return { id: res.ID, outputs: withOutputs(goal, { name }) };
    },
    async update(ctx, goal, old) {
        const api = ctx.docker(engineOf(goal));
        const name = physicalName(goal, old);
        const t = serviceSpec(goal, name);
        const cur = await api.get(`/services/${old.id}`);
        const res = await api.post(`/services/${old.id}/update?version=${cur.Version.Index}`, t.spec);
        for (const w of res?.Warnings ?? []) ctx.log(`    warning (${goal.name}): ${w}`);
        if (t.converge) {
            await waitState(
                7000, // the provider waits a fixed 7 s before the first check after an update
                t.converge.timeoutNs / 1e6,
                async () => {
                    const svc = await api.get(`/services/${old.id}`);
                    const st = svc.UpdateStatus?.State;
                    if (st === "completed") return true;
                    if (st === "rollback_completed") throw new Error(`service rollback completed: ${svc.UpdateStatus.Message}`);
                    if (st === "paused") throw new Error(`service update paused: ${svc.UpdateStatus.Message}`);
                    if (st === "rollback_paused") throw new Error(`service rollback paused: ${svc.UpdateStatus.Message}`);
                    const c = await converged(api, old.id);
                    if (c.done && st === "rollback_started") {
                        throw new Error(`service rollback completed: ${svc.UpdateStatus?.Message}`);
                    }
                    return c.done;
                },
                `service ${name} (${old.id})`,
            );
        }
        return { outputs: withOutputs(goal, { name }) };
    },
    async delete(ctx, _type, name, old) {
        const api = ctx.docker(old.engine!);
        let t: ServiceTranslation | undefined;
        try {
            t = serviceSpec({ urn: "", type: "docker:index/service:Service", name, inputs: old.inputs }, String(old.outputs.name));
        } catch {
            t = undefined;
        }
        await removeService(ctx, api, old.id, String(old.outputs.name), t);
    },
};

export const dockerHandlers: Record<string, Handler> = {
    "docker:index/network:Network": networkHandler,
    "docker:index/volume:Volume": volumeHandler,
    "docker:index/serviceConfig:ServiceConfig": serviceConfigHandler,
    "docker:index/secret:Secret": secretHandler,
    "docker:index/service:Service": serviceHandler,
};
