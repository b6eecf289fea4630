// Provisioning, archiving and the planned switchover on PostgreSQL 18 (test/e2e/versions.ts).
import { versionProof } from "./versions";

versionProof({ major: 18, stack: "lab18", network: "pgha_v18", servers: ["w1", "w2"] });
