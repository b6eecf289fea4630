#!/bin/sh
# scripts/arbiter/build.sh — builds pgha-arbiter, the lease server (main.go says what it does), as
# a static binary and as a container image with nothing else in it.
#
#   scripts/arbiter/build.sh tar                  build (or find cached) the image's rootfs tarball,
#                                                 print its path
#   scripts/arbiter/build.sh image NAME SOCK...   put image NAME into the engine at each unix socket
#                                                 path SOCK (docker import); an engine whose NAME
#                                                 carries this build's label already is skipped
#   scripts/arbiter/build.sh hash                 print the build's hash (the image's label)
#
# The hash is the first 16 hex digits of the SHA-256 of the Go sources (go.mod and the *.go files
# that are not tests, with their names), the Go version and this script (how it builds): the rootfs
# is cached as $PGHA_LAB_CACHE/arbiter-<hash>.tar (default cache /var/cache/pgha-lab, as
# scripts/lab.sh's images), and the image is labelled pgha.arbiter=<hash>, so a rerun with nothing
# changed builds nothing and imports nothing.
#
# The rootfs is the one file /pgha-arbiter (mode 0755, owner 0:0): a static binary needs no libc,
# no shell, no /etc/passwd. The image runs it as its entrypoint.
#
# Go: `go` on PATH, else /usr/local/go/bin/go; the toolchain installed here is used as it is
# (GOTOOLCHAIN=local: nothing is downloaded), with no modules to fetch (the standard library only).
# Go's caches (GOCACHE, GOMODCACHE, default under /var/cache/pgha-go) and the build directory lie
# outside the repository; nothing is written next to the sources.
#
# Tests (not run here; the unit suite runs them, test/arbiter.test.ts): cd scripts/arbiter && go test ./...
set -eu

say() { printf '[arbiter] %s\n' "$*" >&2; }
die() { printf '[arbiter] error: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 tar | image NAME SOCK... | hash"; }

SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SRC/../.." && pwd)
CACHE=${PGHA_LAB_CACHE:-/var/cache/pgha-lab}
LABEL=pgha.arbiter

GO=$(command -v go 2>/dev/null || true)
[ -n "$GO" ] || GO=/usr/local/go/bin/go
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOCACHE="${GOCACHE:-/var/cache/pgha-go/build}" GOMODCACHE="${GOMODCACHE:-/var/cache/pgha-go/mod}"

# the sources that go into the binary, one a line, in a fixed order
sources() {
    (cd "$SRC" && export LC_ALL=C && printf '%s\n' go.mod *.go | grep -v '_test\.go$')
}

build_hash() {
    [ -x "$GO" ] || die "Go is not installed ($GO; Go 1.26 is needed: go.mod)"
    {
        sources | while IFS= read -r f; do
            printf '== %s\n' "$f"
            cat "$SRC/$f"
        done
        printf '== %s\n' "$("$GO" env GOVERSION)" build.sh
        cat "$SRC/build.sh"
    } | sha256sum | cut -c1-16
}

inside_repo() { case "$1/" in "$REPO"/*) return 0 ;; esac; return 1; }

# build_tar HASH: the cached rootfs tarball of build HASH, built first when it is not there
build_tar() {
    _tar=$CACHE/arbiter-$1.tar
    if [ -s "$_tar" ]; then
        say "rootfs of build $1 is cached: $_tar"
        return 0
    fi
    for _d in "$GOCACHE" "$GOMODCACHE" "$CACHE"; do
        inside_repo "$_d" && die "$_d is inside the repository $REPO: point it elsewhere"
    done
    mkdir -p "$CACHE" "$GOCACHE" "$GOMODCACHE"
    _work=$(mktemp -d "${TMPDIR:-/tmp}/pgha-arbiter.XXXXXX")
    # the work directory goes whatever happens (a failed build, a signal); the tarball is written
    # under a name of its own first (two builds at once) and appears whole
    trap 'rm -rf "$_work" "$_tar.$$"' EXIT
    trap 'exit 130' INT TERM
    mkdir "$_work/src" "$_work/root"
    sources | while IFS= read -r f; do cp "$SRC/$f" "$_work/src/"; done
    _t=$(date +%s)
    say "building pgha-arbiter ($("$GO" env GOVERSION), static) in $_work"
    (cd "$_work/src" && "$GO" build -trimpath -buildvcs=false -ldflags '-s -w' -o "$_work/root/pgha-arbiter" .) ||
        die "go build failed"
    # static, or it would not start in an image without a libc
    if command -v file >/dev/null 2>&1; then
        file "$_work/root/pgha-arbiter" | grep -q 'statically linked' || die "the binary is not static"
    fi
    chmod 0755 "$_work/root/pgha-arbiter"
    tar -C "$_work/root" --numeric-owner --owner=0 --group=0 -cf "$_tar.$$" pgha-arbiter
    mv "$_tar.$$" "$_tar"
    rm -rf "$_work"
    trap - EXIT INT TERM
    # tarballs of other builds are stale
    for _old in "$CACHE"/arbiter-*.tar; do
        [ "$_old" = "$_tar" ] || rm -f "$_old"
    done
    say "built $_tar ($(du -h "$_tar" | cut -f1), $(($(date +%s) - _t)) s)"
}

# label_of SOCK NAME: the build label of image NAME in the engine at SOCK; empty when it has none
label_of() {
    docker -H "unix://$1" image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$2" 2>/dev/null || true
}

[ $# -ge 1 ] || usage
what=$1
shift
case $what in
hash)
    [ $# -eq 0 ] || usage
    build_hash
    ;;
tar)
    [ $# -eq 0 ] || usage
    hash=$(build_hash)
    build_tar "$hash"
    printf '%s\n' "$CACHE/arbiter-$hash.tar"
    ;;
image)
    [ $# -ge 2 ] || usage
    name=$1
    shift
    hash=$(build_hash)
    # the engines first: an engine that is not there is a mistake to report before building
    for sock; do
        [ -S "$sock" ] || die "$sock is not a socket (give the path of each engine's unix socket)"
        docker -H "unix://$sock" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
            die "the engine at unix://$sock does not answer"
    done
    for sock; do
        if [ "$(label_of "$sock" "$name")" = "$hash" ]; then
            say "image $name (build $hash) already in unix://$sock"
            continue
        fi
        build_tar "$hash"
        say "importing $name (build $hash) into unix://$sock"
        docker -H "unix://$sock" import --change 'ENTRYPOINT ["/pgha-arbiter"]' --change "LABEL $LABEL=$hash" \
            "$CACHE/arbiter-$hash.tar" "$name" >/dev/null || die "docker import into unix://$sock failed"
        [ "$(label_of "$sock" "$name")" = "$hash" ] || die "image $name in unix://$sock does not carry $LABEL=$hash"
    done
    say "image $name (build $hash) in $# engine(s)"
    ;;
*) usage ;;
esac
