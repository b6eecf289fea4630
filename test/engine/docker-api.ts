// A minimal Docker Engine API client over a unix socket (test engine only).
// Only the calls the test engine needs; every call is plain JSON over HTTP.
import * as http from "node:http";

export class DockerApiError extends Error {
    constructor(
        message: string,
        readonly statusCode: number,
    ) {
        super(message);
    }
}

/** Parses a docker host URL into a unix socket path, or throws for anything else. */
export function socketPathOf(host: string): string {
    if (host.startsWith("unix://")) {
        return host.substring("unix://".length);
    }
    if (host.startsWith("ssh://")) {
        throw new Error(
            `docker host ${JSON.stringify(host)}: ssh:// engines are not supported by the test engine ` +
                `(only unix:// sockets are)`,
        );
    }
    throw new Error(`docker host ${JSON.stringify(host)}: only unix:// sockets are supported by the test engine`);
}

export class DockerApi {
    readonly socketPath: string;

    constructor(readonly host: string) {
        this.socketPath = socketPathOf(host);
    }

    request<T = any>(
        method: string,
        path: string,
        body?: unknown,
        opts: { timeoutMs?: number; signal?: AbortSignal } = {},
    ): Promise<T> {
        return new Promise<T>((resolve, reject) => {
            const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
            const req = http.request(
                {
                    socketPath: this.socketPath,
                    method,
                    path,
                    headers: payload
                        ? { "Content-Type": "application/json", "Content-Length": payload.length }
                        : {},
                    signal: opts.signal,
                },
                (res) => {
                    const chunks: Buffer[] = [];
                    res.on("data", (c: Buffer) => chunks.push(c));
                    res.on("end", () => {
                        const text = Buffer.concat(chunks).toString("utf8");
                        let parsed: any = undefined;
                        if (text.length > 0) {
                            try {
                                parsed = JSON.parse(text);
                            } catch {
                                parsed = text;
                            }
                        }
                        const status = res.statusCode ?? 0;
                        if (status >= 400) {
                            const msg =
                                parsed && typeof parsed === "object" && "message" in parsed
                                    ? String(parsed.message)
                                    : String(text).trim();
                            reject(
                                new DockerApiError(
                                    `docker ${this.host}: ${method} ${path.split("?")[0]}: ${status} ${msg}`,
                                    status,
                                ),
                            );
                            return;
                        }
                        resolve(parsed as T);
                    });
                    res.on("error", reject);
                },
            );
            // no Engine API call of the test engine should take long: a stuck daemon fails the run
            const timeoutMs = opts.timeoutMs ?? (opts.signal ? undefined : 120_000);
            if (timeoutMs !== undefined) {
                req.setTimeout(timeoutMs, () =>
                    req.destroy(new Error(`docker ${this.host}: ${method} ${path.split("?")[0]}: no answer after ${timeoutMs} ms`)),
                );
            }
            req.on("error", (e) => reject(e));
            if (payload) {
                req.write(payload);
            }
            req.end();
        });
    }

    get<T = any>(path: string) {
        return this.request<T>("GET", path);
    }
    post<T = any>(path: string, body?: unknown) {
        return this.request<T>("POST", path, body);
    }
    delete<T = any>(path: string) {
        return this.request<T>("DELETE", path);
    }
}

export function filtersQuery(filters: Record<string, string[]>): string {
    return "filters=" + encodeURIComponent(JSON.stringify(filters));
}

export function isNotFound(e: unknown): boolean {
    return e instanceof DockerApiError && e.statusCode === 404;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
