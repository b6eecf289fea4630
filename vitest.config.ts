import { defineConfig } from "vitest/config";

export default defineConfig({
    test: {
        include: ["test/**/*.test.ts"],
        // The end-to-end suite needs the lab swarm: vitest.e2e.config.ts.
        exclude: ["test/e2e/**", "node_modules/**"],
        testTimeout: 60_000,
        hookTimeout: 120_000,
        // Pulumi's runtime keeps global state per process: one file per worker, files isolated.
        pool: "forks",
        fileParallelism: false,
    },
});
