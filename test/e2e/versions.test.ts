// Provisioning, archiving and the planned switchover on PostgreSQL 17 (test/e2e/versions.ts).
import { versionProof } from "./versions";

versionProof({ major: 17, stack: "lab17", network: "pgha_v17", servers: ["v1", "v2"] });
