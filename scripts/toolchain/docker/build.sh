#!/bin/sh
# scripts/toolchain/docker/build.sh OUTDIR — builds OUTDIR/pulumi-resource-docker, the Pulumi
# resource plugin for @pulumi/docker, reporting version 5.2.0 (the version of @pulumi/docker in
# package.json; change both together).
#
# pulumi-docker's own provider module cannot be fetched here, so this directory is a small
# bridged provider of our own over the same upstream Terraform provider and the same bridge
# (info/info.go has the mapping, shim/ the access to upstream's internal package).
#
# Phases: copy the sources to $PGHA_TOOLCHAIN_CACHE/src/pulumi-resource-docker (default cache
# /var/cache/pgha-toolchain) and build there, nothing is written next to the sources; download
# the modules through the Go module proxy `go env GOPROXY` names, into Go's own caches (`go env
# GOMODCACHE GOCACHE`), which must lie outside the repository; build the schema generator
# (tfgen); generate the Pulumi schema, which the plugin embeds; check it against the
# @pulumi/docker SDK in node_modules (check-schema.mjs; a difference fails the build); build
# the plugin. Static binaries: CGO_ENABLED=0, -trimpath.
set -eu

VERSION=5.2.0
NAME=pulumi-resource-docker
# The upstream's module path as the build sees it (go.mod replaces it).
UPSTREAM=github.com/terraform-providers/terraform-provider-docker

say() { printf '[toolchain] docker: %s\n' "$*"; }
die() { printf '[toolchain] docker: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUTDIR=$1
SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SRC/../../.." && pwd)
CACHE=${PGHA_TOOLCHAIN_CACHE:-/var/cache/pgha-toolchain}
WORK=$CACHE/src/$NAME
TOOLS=$WORK/.tfgen # the schema generator and its log; Go skips dot directories

command -v go >/dev/null 2>&1 || die "Go is not installed (Go 1.25.11 or newer is needed)"
# no_compose: leave out upstream's docker_compose resource and the compose/v2 dependency tree
# it pulls in; it lives in the terraform-plugin-framework half this provider does not serve
# (see shim/shim.go).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -tags=no_compose"
LDFLAGS="-s -w -X pgha/toolchain/docker/info.Version=$VERSION"

# No build cache, module cache or build directory inside the repository.
inside_repo() { case "$1/" in "$REPO"/*) return 0 ;; esac; return 1; }
for d in "$(go env GOMODCACHE)" "$(go env GOCACHE)" "$WORK"; do
    inside_repo "$d" && die "$d is inside the repository $REPO: point it elsewhere"
done

mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd) # the builds run in $WORK

t0=$(now)
t=$t0
rm -rf "$WORK" && mkdir -p "$WORK" "$TOOLS"
cp -R "$SRC"/go.mod "$SRC"/go.sum "$SRC"/info "$SRC"/cmd "$SRC"/shim "$WORK"/
rm -f "$WORK/cmd/$NAME/schema.json"
cd "$WORK"
say "copy $(($(now) - t)) s ($WORK)"

# Only the modules whose packages the two programs import: go.sum also covers modules needed
# only by tests or by the compose resource, which `go mod download` would fetch as well.
t=$(now)
go list -deps ./info ./cmd/pulumi-tfgen-docker >/dev/null ||
    die "downloading modules failed (is the Go module proxy reachable? go env GOPROXY)"
say "download $(($(now) - t)) s"

t=$(now)
go build -trimpath -ldflags "$LDFLAGS" -o "$TOOLS/pulumi-tfgen-docker" ./cmd/pulumi-tfgen-docker ||
    die "go build of the schema generator failed"
say "tfgen $(($(now) - t)) s"

# Descriptions come from the upstream's docs (in the module cache); their HCL examples are
# skipped, converting them would need the pulumi CLI and its Terraform converter.
t=$(now)
PGHA_DOCKER_UPSTREAM_DIR=$(go list -m -f '{{.Dir}}' "$UPSTREAM") \
    "$TOOLS/pulumi-tfgen-docker" schema --skip-examples --out "$WORK/cmd/$NAME" >"$TOOLS/tfgen.log" 2>&1 ||
    { tail -n 40 "$TOOLS/tfgen.log" >&2; die "schema generation failed (log: $TOOLS/tfgen.log)"; }
[ -s "$WORK/cmd/$NAME/schema.json" ] || die "tfgen wrote no schema.json"
say "schema $(($(now) - t)) s"

# The schema must match the npm SDK the project compiles against (names, shapes, tokens,
# version); skipped, with a warning, only where the SDK is not installed yet.
t=$(now)
if command -v node >/dev/null 2>&1 && [ -d "$REPO/node_modules/@pulumi/docker" ] && [ -d "$REPO/node_modules/typescript" ]; then
    node "$SRC/check-schema.mjs" "$WORK/cmd/$NAME/schema.json" ||
        die "the generated schema does not match @pulumi/docker (above); fix info/info.go"
    say "check $(($(now) - t)) s"
else
    say "check skipped: node, node_modules/@pulumi/docker or node_modules/typescript is missing"
fi

t=$(now)
go build -trimpath -ldflags "$LDFLAGS" -o "$OUTDIR/$NAME.tmp" "./cmd/$NAME" || die "go build failed"
mv "$OUTDIR/$NAME.tmp" "$OUTDIR/$NAME"
say "plugin $(($(now) - t)) s"

say "done $(($(now) - t0)) s: $OUTDIR/$NAME $("$OUTDIR/$NAME" -version) ($(go version | cut -d' ' -f3))"
say "schema: $WORK/cmd/$NAME/schema.json"
