// Changes after day one on PostgreSQL 17 (the proof itself: test/e2e/changes.ts).
import { changesProof } from "./changes";

changesProof({ major: 17, stack: "labch17", network: "pgha_ch17", servers: ["d1", "d2"], otherMajorImage: "pgha-postgres:15-lab" });
