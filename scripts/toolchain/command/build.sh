#!/bin/sh
# scripts/toolchain/command/build.sh OUTDIR — builds OUTDIR/pulumi-resource-command, pgha's own
# implementation of the Pulumi resource plugin "command" (command:local:Command), reporting
# version 1.2.1 (the version of @pulumi/command in package.json; change both together).
#
# The sources are copied to $PGHA_TOOLCHAIN_CACHE/src/pulumi-resource-command (default cache
# /var/cache/pgha-toolchain) and built there: nothing is written next to the sources. Modules
# come through the Go module proxy `go env GOPROXY` names, into Go's own caches (`go env
# GOMODCACHE GOCACHE`), which must lie outside the repository. Static binary: CGO_ENABLED=0,
# -trimpath.
#
# Tests (not run here): cd scripts/toolchain/command && go test ./...
set -eu

VERSION=1.2.1
NAME=pulumi-resource-command

say() { printf '[toolchain] command: %s\n' "$*"; }
die() { printf '[toolchain] command: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
OUTDIR=$1
SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SRC/../../.." && pwd)
CACHE=${PGHA_TOOLCHAIN_CACHE:-/var/cache/pgha-toolchain}
WORK=$CACHE/src/$NAME

command -v go >/dev/null 2>&1 || die "Go is not installed (Go 1.25.11 or newer is needed)"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

# No build cache, module cache or build directory inside the repository.
inside_repo() { case "$1/" in "$REPO"/*) return 0 ;; esac; return 1; }
for d in "$(go env GOMODCACHE)" "$(go env GOCACHE)" "$WORK"; do
    inside_repo "$d" && die "$d is inside the repository $REPO: point it elsewhere"
done

t0=$(now)
t=$t0
rm -rf "$WORK" && mkdir -p "$WORK" "$OUTDIR"
cp "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go "$WORK"/
say "copy $(($(now) - t)) s ($WORK)"

t=$(now)
(cd "$WORK" && go mod download) || die "downloading modules failed (is the Go module proxy reachable? go env GOPROXY)"
say "download $(($(now) - t)) s"

t=$(now)
(cd "$WORK" && go build -trimpath -buildvcs=false -tags grpcnotrace \
    -ldflags "-s -w -X main.version=$VERSION" -o "$OUTDIR/$NAME.tmp" .) || die "go build failed"
mv "$OUTDIR/$NAME.tmp" "$OUTDIR/$NAME"
say "build $(($(now) - t)) s"

say "done $(($(now) - t0)) s: $OUTDIR/$NAME $VERSION ($(go version | cut -d' ' -f3))"
