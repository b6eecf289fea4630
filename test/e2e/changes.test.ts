// Changes after day one on PostgreSQL 15 (the proof itself: test/e2e/changes.ts).
import { changesProof } from "./changes";

changesProof({ major: 15, stack: "labch", network: "pgha_ch15", servers: ["c1", "c2"], otherMajorImage: "pgha-postgres:17-lab" });
