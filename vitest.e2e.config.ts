import { defineConfig } from "vitest/config";

// End-to-end suite: real swarm, real PostgreSQL servers. One file at a time, in order.
export default defineConfig({
    test: {
        include: ["test/e2e/**/*.test.ts"],
        testTimeout: 300_000,
        hookTimeout: 600_000,
        pool: "forks",
        fileParallelism: false,
        sequence: { concurrent: false },
    },
});
