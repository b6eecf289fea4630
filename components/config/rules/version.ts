// pgha:postgresVersion: the PostgreSQL major version the servers run. Set, or read from the tag of
// pgha:image; either way a supported major (its parameter table checks pgha:postgresql), and when
// both say one, they agree.

import { isPgMajor, PgMajor, SUPPORTED_MAJORS } from "../../pg-parameters";
import { RawConfig } from "../types";
import { Draft } from "./rule";

/** What the tag of an image reference says about the PostgreSQL major version the image runs. */
export type ImageTagMajor = { readonly major: number; readonly tag: string } | { readonly major: undefined; readonly why: string };

/** A `pgN` in a tag (pgvector:0.8.0-pg17, timescaledb:2.17.2-pg17, age:release_PG16_1.5.0): the major, whatever comes first. */
const PG_MARK = /(?:^|[._-])pg-?(\d{1,2})(?=$|[._-])/i;
/** A tag that starts with the major: 17, 17.2, 17-bookworm, 17.2-alpine, 15-lab, 18beta3. */
const LEADING = /^(\d{1,2})(?=$|[._-]|beta|rc)/;
/** Below this, a leading number is the image's own version (timescaledb:2.17.2), not PostgreSQL's. */
const LOWEST_MAJOR = 9;

/** The image reference without its digest, split into everything before the tag and the tag. */
function splitReference(image: string): { name: string; tag: string | undefined; digest: boolean } {
    const at = image.indexOf("@");
    const withoutDigest = at < 0 ? image : image.slice(0, at);
    // The tag is in the last path component: in registry:5000/team/postgres, 5000 is a port.
    const slash = withoutDigest.lastIndexOf("/");
    const colon = withoutDigest.indexOf(":", slash + 1);
    return colon < 0
        ? { name: withoutDigest, tag: undefined, digest: at >= 0 }
        : { name: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon + 1), digest: at >= 0 };
}

/**
 * The PostgreSQL major version an image's tag names: postgres:17, postgres:17.2-alpine,
 * pgha-postgres:15-lab and registry:5000/team/postgres:18 name one; postgres, postgres:latest,
 * postgres@sha256:… and postgres:bookworm do not (`why` says which it is).
 */
export function imageTagMajor(image: string): ImageTagMajor {
    const { tag, digest } = splitReference(image);
    if (tag === undefined) return { major: undefined, why: digest ? "is pinned by a digest, without a tag" : "has no tag" };
    if (tag === "latest") return { major: undefined, why: "has the tag 'latest', which names no version" };
    const m = PG_MARK.exec(tag) ?? LEADING.exec(tag);
    if (!m || Number(m[1]) < LOWEST_MAJOR) return { major: undefined, why: `has the tag '${tag}', which does not start with a PostgreSQL major version` };
    return { major: Number(m[1]), tag };
}

/** The image with its tag naming `major` instead (and no digest): the fix a message suggests. */
function withMajor(image: string, major: number): string {
    const { name, tag } = splitReference(image);
    if (tag === undefined || tag === "latest") return `${name}:${major}`;
    const pg = PG_MARK.exec(tag);
    if (pg) return `${name}:${tag.slice(0, pg.index)}${pg[0].replace(/\d+$/, String(major))}${tag.slice(pg.index + pg[0].length)}`;
    return `${name}:${LEADING.test(tag) ? tag.replace(/^\d+(\.\d+)*/, String(major)) : major}`;
}

/** "15, 17 or 18" (or "and"). */
function majorsText(conjunction: "or" | "and"): string {
    return `${SUPPORTED_MAJORS.slice(0, -1).join(", ")} ${conjunction} ${SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1]}`;
}

/** The supported major to suggest instead of `n`: the next one up, else the newest. */
function nearestMajor(n: number): PgMajor {
    return SUPPORTED_MAJORS.find((m) => m >= n) ?? SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1];
}

const NEWEST = SUPPORTED_MAJORS[SUPPORTED_MAJORS.length - 1];
const SET = "pulumi config set pgha:postgresVersion";

/**
 * pgha:postgresVersion: a supported major version (a number, or a string of digits); unset, the
 * major the tag of pgha:image names. Set while the tag names another one: refused, naming both.
 * Runs after imageRule: a refused image is left to its problem.
 */
export function postgresVersionRule(raw: RawConfig, draft: Draft): string[] {
    const problems: string[] = [];
    const image = draft.image;
    const shown = raw.image === undefined ? `'${image}' (the default)` : `'${image}'`;
    const fromTag = raw.image === undefined || raw.image === draft.image ? imageTagMajor(image) : undefined;
    const v = raw.postgresVersion;
    if (v === undefined) {
        if (fromTag === undefined) return problems;
        if (fromTag.major === undefined) {
            problems.push(
                `pgha:postgresVersion: not set, and pgha:image ${shown} ${fromTag.why}, so the PostgreSQL major version cannot be read from it; set the major version the image runs (${majorsText("or")}), e.g. ${SET} ${NEWEST}`,
            );
        } else if (!isPgMajor(fromTag.major)) {
            problems.push(
                `pgha:image: ${shown} is PostgreSQL ${fromTag.major} by its tag, which pgha does not support (it supports ${majorsText("and")}); run an image of one of them, e.g. pulumi config set pgha:image ${withMajor(image, nearestMajor(fromTag.major))}`,
            );
        } else draft.postgresVersion = fromTag.major;
        return problems;
    }
    const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n)) {
        const release = (typeof v === "number" || typeof v === "string") && /^\d+\.\d+/.test(String(v));
        problems.push(
            release
                ? `pgha:postgresVersion: '${String(v)}' is a release, not a major version; give the major version alone: ${SET} ${String(v).split(".")[0]}`
                : `pgha:postgresVersion: '${String(v)}' is not a PostgreSQL major version; set the major version the image runs (${majorsText("or")}), e.g. ${SET} ${NEWEST}`,
        );
        return problems;
    }
    if (!isPgMajor(n)) {
        problems.push(
            `pgha:postgresVersion: PostgreSQL ${n} is not supported; pgha supports ${majorsText("and")}: ${SET} ${nearestMajor(n)} (with an image of that version in pgha:image)`,
        );
        return problems;
    }
    if (fromTag?.major !== undefined && fromTag.major !== n) {
        const setImage = `pulumi config set pgha:image ${withMajor(image, n)} (an image of PostgreSQL ${n})`;
        problems.push(
            `pgha:postgresVersion: ${n} disagrees with pgha:image ${shown}, whose tag says PostgreSQL ${fromTag.major}; make them agree: ${isPgMajor(fromTag.major) ? `${setImage}, or ${SET} ${fromTag.major}` : setImage}`,
        );
        return problems;
    }
    draft.postgresVersion = n;
    return problems;
}
