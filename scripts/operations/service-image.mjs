// Moves one swarm service to another image, changing nothing else in its spec:
//
//     node scripts/operations/service-image.mjs <service> <image>
//
// The roll (roll.sh) uses it instead of `docker service update --image`: that command also
// rewrites other parts of the spec (it sorts the mounts), so the spec Pulumi sends afterwards, with
// the new image and its own order of the mounts, would differ from the service's and restart it a
// second time. This reads the service's spec from the Docker Engine API, replaces
// TaskTemplate.ContainerSpec.Image and posts the same spec back at the version it read (the
// engine refuses it if the spec changed in between). The API is reached through
// `docker system dial-stdio`, so it goes wherever the docker CLI goes (DOCKER_HOST, a context, a
// unix socket, ssh). Prints nothing on success; exit status 1 and a message on stderr otherwise.

import { spawn } from "node:child_process";
import { request } from "node:http";
import { Buffer } from "node:buffer";
import process from "node:process";
import { Duplex } from "node:stream";

function connection() {
    // (its stderr is dropped: it reports the connection closing at the end of every exchange)
    const child = spawn("docker", ["system", "dial-stdio"], { stdio: ["pipe", "pipe", "ignore"] });
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
    stream.on("close", () => child.kill());
    return stream;
}

function api(method, path, body) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
            {
                method,
                path,
                host: "docker",
                createConnection: connection,
                headers: { "Content-Type": "application/json", ...(data ? { "Content-Length": Buffer.byteLength(data) } : {}), Connection: "close" },
            },
            (res) => {
                const chunks = [];
                res.on("data", (c) => chunks.push(c));
                res.on("end", () => {
                    const text = Buffer.concat(chunks).toString("utf8");
                    if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text.trim()}`));
                    else resolve(text ? JSON.parse(text) : {});
                });
            },
        );
        req.on("error", reject);
        if (data) req.write(data);
        req.end();
    });
}

const [service, image] = process.argv.slice(2);
if (!service || !image) {
    process.stderr.write("usage: node service-image.mjs <service> <image>\n");
    process.exit(2);
}
try {
    const svc = await api("GET", `/services/${encodeURIComponent(service)}`);
    const spec = svc.Spec;
    spec.TaskTemplate.ContainerSpec.Image = image;
    await api("POST", `/services/${encodeURIComponent(svc.ID)}/update?version=${svc.Version.Index}`, spec);
} catch (e) {
    process.stderr.write(`service-image: ${service}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
}
