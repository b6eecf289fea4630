#!/usr/bin/env node
// Checks a generated Pulumi schema for the docker package against the
// @pulumi/docker npm SDK the project compiles against.
//
//   node check-schema.mjs SCHEMA.json [SDK_DIR]
//
// SDK_DIR defaults to <repo>/node_modules/@pulumi/docker. For the resources
// pgha uses and for the provider configuration, it compares the resource
// token, the package name and version, and recursively through nested object types every input property's
// name, whether it is required, and its shape (array, object, map or scalar),
// which is where a wrong MaxItemsOne decision shows up (an SDK object where
// the schema has an array, or the reverse). Output properties of the resource
// classes get the same name and shape check. Every difference is printed; the
// exit status is 1 if there is any.
//
// The SDK side is read with the TypeScript compiler API (the project's own
// node_modules/typescript), from the .d.ts files only.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const [schemaPath, sdkArg] = process.argv.slice(2);
if (!schemaPath) {
    console.error("usage: check-schema.mjs SCHEMA.json [SDK_DIR]");
    process.exit(2);
}
const sdkDir = sdkArg ?? path.join(repo, "node_modules/@pulumi/docker");
const ts = createRequire(path.join(repo, "package.json"))("typescript");

// The resources pgha uses: SDK file (without .d.ts) and class name.
const RESOURCES = [
    ["service", "Service"],
    ["network", "Network"],
    ["volume", "Volume"],
    ["serviceConfig", "ServiceConfig"],
    ["secret", "Secret"],
];

const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

// ---- SDK side -------------------------------------------------------------

function parse(file) {
    const text = fs.readFileSync(path.join(sdkDir, file), "utf8");
    return ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
}

// Top-level interfaces and classes of a .d.ts, by name.
function declarations(sf) {
    const out = new Map();
    for (const st of sf.statements) {
        if (ts.isInterfaceDeclaration(st) || ts.isClassDeclaration(st)) out.set(st.name.text, st);
    }
    return out;
}

const inputTypes = declarations(parse("types/input.d.ts"));
const outputTypes = declarations(parse("types/output.d.ts"));

const isUndefined = (t) => t.kind === ts.SyntaxKind.UndefinedKeyword || (ts.isLiteralTypeNode(t) && t.literal.kind === ts.SyntaxKind.UndefinedKeyword);

// Reduce a property's type node to a shape:
//   {kind: "scalar"} | {kind: "map"} | {kind: "array", items} | {kind: "object", sdk: Name}
function sdkShape(node, where) {
    // pulumi.Input<X> / pulumi.Output<X> carry X.
    if (ts.isTypeReferenceNode(node) && /^pulumi\.(Input|Output)$/.test(node.typeName.getText())) {
        return sdkShape(node.typeArguments[0], where);
    }
    if (ts.isParenthesizedTypeNode(node)) return sdkShape(node.type, where);
    if (ts.isUnionTypeNode(node)) {
        const rest = node.types.filter((t) => !isUndefined(t));
        if (rest.length === 1) return sdkShape(rest[0], where);
        const shapes = rest.map((t) => sdkShape(t, where));
        if (shapes.every((s) => s.kind === "scalar")) return { kind: "scalar" };
        problem(where, `SDK type ${node.getText()} is not understood`);
        return { kind: "unknown" };
    }
    if (ts.isArrayTypeNode(node)) return { kind: "array", items: sdkShape(node.elementType, where) };
    if (ts.isTypeLiteralNode(node) && node.members.some(ts.isIndexSignatureDeclaration)) return { kind: "map" };
    if (ts.isTypeReferenceNode(node)) {
        const name = node.typeName.getText();
        const m = /^(inputs|outputs)\.(\w+)$/.exec(name);
        if (m) return { kind: "object", sdk: m[2], side: m[1] };
        if (/^enums\./.test(name)) return { kind: "scalar" };
        if (name === "pulumi.ID") return { kind: "scalar" };
    }
    if (
        [ts.SyntaxKind.StringKeyword, ts.SyntaxKind.NumberKeyword, ts.SyntaxKind.BooleanKeyword, ts.SyntaxKind.AnyKeyword].includes(node.kind) ||
        ts.isLiteralTypeNode(node)
    ) {
        return { kind: "scalar" };
    }
    problem(where, `SDK type ${node.getText()} is not understood`);
    return { kind: "unknown" };
}

// Properties of an interface (Args, nested input types) or the readonly
// properties of a class (outputs): name -> {required, node}.
function sdkProps(decl, { readonlyOnly = false } = {}) {
    const out = new Map();
    for (const m of decl.members) {
        if (!ts.isPropertySignature(m) && !ts.isPropertyDeclaration(m)) continue;
        const mods = ts.getModifiers?.(m) ?? m.modifiers ?? [];
        if (mods.some((x) => x.kind === ts.SyntaxKind.StaticKeyword)) continue;
        if (readonlyOnly && !mods.some((x) => x.kind === ts.SyntaxKind.ReadonlyKeyword)) continue;
        const name = m.name.getText();
        if (name.startsWith("__")) continue;
        out.set(name, { required: !m.questionToken, node: m.type });
    }
    return out;
}

// ---- schema side ----------------------------------------------------------

function schemaShape(spec, where) {
    if (spec.$ref) {
        const tok = decodeURIComponent(spec.$ref.replace(/^#\/types\//, ""));
        if (!schema.types?.[tok]) problem(where, `schema refers to missing type ${tok}`);
        return { kind: "object", tok };
    }
    switch (spec.type) {
        case "array":
            return { kind: "array", items: schemaShape(spec.items, where) };
        case "object":
            return spec.additionalProperties ? { kind: "map" } : { kind: "object", tok: null };
        case "string":
        case "number":
        case "integer":
        case "boolean":
            return { kind: "scalar" };
    }
    if (spec.oneOf) return { kind: "scalar" };
    problem(where, `schema type ${JSON.stringify(spec)} is not understood`);
    return { kind: "unknown" };
}

// ---- comparison -----------------------------------------------------------

const describe = (s) => (s.kind === "array" ? `array of ${describe(s.items)}` : s.kind);
const seen = new Set();

// Compare property sets. checkRequired: inputs only (outputs' optionality in
// the SDK follows other rules).
function compareProps(where, sdk, sch, requiredList, checkRequired) {
    const required = new Set(requiredList ?? []);
    for (const [name, p] of sdk) {
        const at = `${where}.${name}`;
        if (!(name in sch)) {
            problem(at, "in the SDK, missing from the schema");
            continue;
        }
        if (checkRequired && p.required !== required.has(name)) {
            problem(at, `SDK says ${p.required ? "required" : "optional"}, schema says ${required.has(name) ? "required" : "optional"}`);
        }
        compareShape(at, sdkShape(p.node, at), schemaShape(sch[name], at), checkRequired);
    }
    for (const name of Object.keys(sch)) {
        if (!sdk.has(name)) problem(`${where}.${name}`, "in the schema, not in the SDK");
    }
}

function compareShape(where, a, b, checkRequired) {
    if (a.kind === "unknown" || b.kind === "unknown") return;
    if (a.kind !== b.kind) {
        problem(where, `SDK has ${describe(a)}, schema has ${describe(b)}`);
        return;
    }
    if (a.kind === "array") return compareShape(`${where}[]`, a.items, b.items, checkRequired);
    if (a.kind !== "object") return;
    const key = `${a.side}:${a.sdk}=${b.tok}`;
    if (seen.has(key)) return;
    seen.add(key);
    const decl = (a.side === "outputs" ? outputTypes : inputTypes).get(a.sdk);
    const spec = b.tok && schema.types[b.tok];
    if (!decl) return problem(where, `SDK type ${a.side}.${a.sdk} not found`);
    if (!spec) return;
    compareProps(`${where}{${a.sdk}}`, sdkProps(decl), spec.properties ?? {}, spec.required, checkRequired);
}

// The resource token the SDK registers, from the class's compiled .js.
function sdkToken(file) {
    const js = fs.readFileSync(path.join(sdkDir, `${file}.js`), "utf8");
    return /__pulumiType = '([^']+)'/.exec(js)?.[1];
}

let checked = 0;
for (const [file, cls] of RESOURCES) {
    const tok = sdkToken(file);
    const res = schema.resources?.[tok];
    if (!res) {
        problem(cls, `token ${tok} missing from the schema`);
        continue;
    }
    const decls = declarations(parse(`${file}.d.ts`));
    compareProps(`${cls}(inputs)`, sdkProps(decls.get(`${cls}Args`)), res.inputProperties ?? {}, res.requiredInputs, true);
    compareProps(`${cls}(outputs)`, sdkProps(decls.get(cls), { readonlyOnly: true }), res.properties ?? {}, null, false);
    checked++;
}

// Provider configuration: ProviderArgs against the provider's inputs, and
// the config/vars.d.ts names against config.variables.
{
    if (schema.name !== "docker") problem("package", `name is ${schema.name}, SDK expects docker`);
    const sdkVersion = JSON.parse(fs.readFileSync(path.join(sdkDir, "package.json"), "utf8")).version;
    if (schema.version !== sdkVersion) problem("package", `schema version ${schema.version}, SDK version ${sdkVersion}`);
    const decls = declarations(parse("provider.d.ts"));
    compareProps("Provider(inputs)", sdkProps(decls.get("ProviderArgs")), schema.provider?.inputProperties ?? {}, schema.provider?.requiredInputs, true);
    const vars = parse("config/vars.d.ts");
    const names = new Set();
    for (const st of vars.statements) {
        if (ts.isVariableStatement(st)) for (const d of st.declarationList.declarations) names.add(d.name.getText());
    }
    const cfg = Object.keys(schema.config?.variables ?? {});
    for (const n of names) if (!cfg.includes(n)) problem(`config.${n}`, "in the SDK, missing from schema config");
    for (const n of cfg) if (!names.has(n)) problem(`config.${n}`, "in schema config, not in the SDK");
    checked++;
}

if (problems.length) {
    for (const p of problems) console.log(`MISMATCH ${p}`);
    console.log(`check-schema: ${problems.length} mismatch(es) against @pulumi/docker in ${sdkDir}`);
    process.exit(1);
}
console.log(
    `check-schema: ok, ${checked} entries (Service, Network, Volume, ServiceConfig, Secret, provider), ` + `${seen.size} nested types compared with ${sdkDir}`,
);
