#!/bin/sh
# scripts/toolchain.sh — the Pulumi CLI, its Node.js language host and the two resource plugins the
# program uses, built from Go modules through the machine's Go module proxy (no download from
# Pulumi's or GitHub's servers), cached outside the repository and installed where Pulumi expects
# them. Idempotent: a second run with nothing changed only checks (a few seconds).
#
#   scripts/toolchain.sh            build what is missing, install, print the versions
#   scripts/toolchain.sh env        print the environment lines (sh syntax) that keep the CLI offline
#   scripts/toolchain.sh check      exit 0 when everything is installed (nothing is built)
#
# What is built (sources of the wrapper modules: scripts/toolchain/<name>/; docs/toolchain.md):
#   pulumi                  github.com/pulumi/pulumi/pkg/v3 at the version of @pulumi/pulumi
#   pulumi-language-nodejs  github.com/pulumi/pulumi/sdk/v3 v3.68.0 (the last SDK module that holds
#                           the language host as a package: its own module is not served)
#   pulumi-resource-docker  pgha's bridge of the upstream terraform docker provider, at the version
#                           of @pulumi/docker (pulumi-docker's provider module is not served)
#   pulumi-resource-command pgha's implementation of command:local:Command, at the version of
#                           @pulumi/command (pulumi-command's provider module is not served)
#
# Environment:
#   PULUMI_HOME            where Pulumi lives (default ~/.pulumi): CLI and language host in bin/,
#                          plugins in plugins/
#   PGHA_TOOLCHAIN_CACHE   built binaries, keyed by name, version and a hash of their sources
#                          (default /var/cache/pgha-toolchain as root, else ~/.cache/pgha-toolchain);
#                          Go's own caches stay where `go env`
#                          says (GOMODCACHE, GOCACHE), outside the repository
#   PGHA_TOOLCHAIN_BUILD=1 build even when another `pulumi` is on PATH
#
# When a `pulumi` CLI that this script did not install is on PATH (a user's normal install, with
# the internet), it is used as it is and nothing is built: that CLI fetches the real plugins itself.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD

PULUMI_HOME=${PULUMI_HOME:-$HOME/.pulumi}
# (root: /var/cache/pgha-toolchain; another user, e.g. a CI runner: ~/.cache/pgha-toolchain)
if [ "$(id -u)" = 0 ]; then CACHE=${PGHA_TOOLCHAIN_CACHE:-/var/cache/pgha-toolchain}; else CACHE=${PGHA_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgha-toolchain}; fi
MARK=$PULUMI_HOME/bin/.pgha-toolchain     # says the CLI in bin/ was built by this script

say() { printf '[toolchain] %s\n' "$*"; }
die() { printf '[toolchain] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

# The versions come from package.json (pinned exactly); the plugins must match the SDKs exactly.
npmver() { node -p "require('./package.json').dependencies['$1']"; }
PULUMI_VERSION=$(npmver @pulumi/pulumi)
DOCKER_VERSION=$(npmver @pulumi/docker)
COMMAND_VERSION=$(npmver @pulumi/command)
LANGHOST_SDK=v3.68.0

offline_env() {
    # The CLI must never reach out: no update check, no plugin download, no cloud backend
    # (the backend is always given as file://, see scripts/up.sh and test/e2e/pulumi.ts).
    # GRPC_ENABLE_TXT_SERVICE_CONFIG=false: grpc-go's DNS resolver otherwise asks the machine's
    # name server for the TXT record _grpc_config.localhost (seen from the docker plugin with
    # -v=9 --logflow), which /etc/hosts cannot answer.
    cat <<EOF
PULUMI_HOME='$PULUMI_HOME'
PULUMI_SKIP_UPDATE_CHECK=true
PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
PULUMI_IGNORE_AMBIENT_PLUGINS=true
GRPC_ENABLE_TXT_SERVICE_CONFIG=false
PATH='$PULUMI_HOME/bin':\$PATH
export PULUMI_HOME PULUMI_SKIP_UPDATE_CHECK PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION PULUMI_IGNORE_AMBIENT_PLUGINS GRPC_ENABLE_TXT_SERVICE_CONFIG PATH
EOF
}

# srchash DIR: a hash of a wrapper's sources (go.mod, go.sum, Go files, build script), so a changed
# wrapper is rebuilt and an unchanged one never is (editing this script rebuilds nothing)
srchash() { (cd "$ROOT/scripts/toolchain" && find "$1" -type f ! -name '*_test.go' | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-12; }

# built NAME VERSION DIR: path of the cached binary for these sources (may not exist yet)
built() { echo "$CACHE/bin/$1-$2-$(srchash "$3")"; }

# build_go NAME VERSION DIR PKG LDFLAGS: go build of PKG in the wrapper module DIR into the cache
build_go() {
    name=$1 version=$2 dir=$3 pkg=$4 ldflags=$5
    out=$(built "$name" "$version" "$dir")
    [ -x "$out" ] && return 0
    mkdir -p "$CACHE/bin" "$CACHE/src"
    # Build from a copy outside the repository (nothing is written next to the sources).
    work=$CACHE/src/$name
    rm -rf "$work" && mkdir -p "$work" && cp -R "$ROOT/scripts/toolchain/$dir/." "$work/"
    t=$(now)
    (cd "$work" && go mod download) || die "$name: downloading modules failed (is the Go module proxy reachable? go env GOPROXY)"
    say "$name $version: modules downloaded ($(($(now) - t)) s)"
    t=$(now)
    (cd "$work" && CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") || die "$name: build failed"
    mv "$out.tmp" "$out"
    say "$name $version: built ($(($(now) - t)) s)"
}

# build_script NAME VERSION DIR: a plugin whose wrapper brings its own build.sh (schema generation)
build_script() {
    name=$1 version=$2 dir=$3
    out=$(built "$name" "$version" "$dir")
    [ -x "$out" ] && return 0
    mkdir -p "$CACHE/bin"
    tmpd=$(mktemp -d)
    PGHA_TOOLCHAIN_CACHE=$CACHE sh "$ROOT/scripts/toolchain/$dir/build.sh" "$tmpd" || die "$name: build failed (scripts/toolchain/$dir/build.sh)"
    mv "$tmpd/$name" "$out" && rm -rf "$tmpd"
}

plugin_installed() { [ -x "$PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1" ] && cmp -s "$3" "$PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1"; }

install_all() {
    t0=$(now)
    command -v go >/dev/null 2>&1 || die "Go is not installed: the toolchain is built from Go modules (install Go 1.25 or newer)"
    command -v node >/dev/null 2>&1 || die "Node.js is not installed"

    build_go pulumi "$PULUMI_VERSION" cli github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
    build_go pulumi-language-nodejs "$LANGHOST_SDK" language-nodejs github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LANGHOST_SDK"
    build_script pulumi-resource-docker "$DOCKER_VERSION" docker
    build_script pulumi-resource-command "$COMMAND_VERSION" command

    mkdir -p "$PULUMI_HOME/bin"
    for pair in "pulumi:$PULUMI_VERSION:cli" "pulumi-language-nodejs:$LANGHOST_SDK:language-nodejs"; do
        name=${pair%%:*} rest=${pair#*:}
        version=${rest%%:*} dir=${rest#*:}
        src=$(built "$name" "$version" "$dir")
        cmp -s "$src" "$PULUMI_HOME/bin/$name" || install -m 755 "$src" "$PULUMI_HOME/bin/$name"
    done
    echo "pulumi $PULUMI_VERSION, language host $LANGHOST_SDK (scripts/toolchain.sh)" > "$MARK"

    eval "$(offline_env)"
    for pair in "docker:$DOCKER_VERSION" "command:$COMMAND_VERSION"; do
        name=${pair%%:*} version=${pair#*:}
        src=$(built "pulumi-resource-$name" "$version" "$name")
        if ! plugin_installed "$name" "$version" "$src"; then
            pulumi plugin install resource "$name" "$version" --file "$src" --reinstall >/dev/null ||
                die "pulumi plugin install resource $name $version failed"
            say "plugin resource $name $version installed"
        fi
    done
    say "ready in $(($(now) - t0)) s: $(pulumi version) in $PULUMI_HOME/bin, plugins docker $DOCKER_VERSION, command $COMMAND_VERSION"
}

# A pulumi on PATH that this script did not put there: the user's own install.
foreign_cli() {
    [ "${PGHA_TOOLCHAIN_BUILD:-}" = 1 ] && return 1
    p=$(command -v pulumi 2>/dev/null) || return 1
    [ "$p" = "$PULUMI_HOME/bin/pulumi" ] && [ -f "$MARK" ] && return 1
    return 0
}

case ${1:-install} in
install)
    if foreign_cli; then
        say "using the Pulumi CLI on PATH as it is ($(command -v pulumi), $(pulumi version 2>/dev/null || echo '?')); nothing is built"
        exit 0
    fi
    install_all
    ;;
env)
    foreign_cli || offline_env
    ;;
check)
    foreign_cli && exit 0
    [ -x "$PULUMI_HOME/bin/pulumi" ] && [ -x "$PULUMI_HOME/bin/pulumi-language-nodejs" ] && [ -f "$MARK" ] &&
        [ -x "$PULUMI_HOME/plugins/resource-docker-v$DOCKER_VERSION/pulumi-resource-docker" ] &&
        [ -x "$PULUMI_HOME/plugins/resource-command-v$COMMAND_VERSION/pulumi-resource-command" ]
    ;;
*)
    echo "usage: scripts/toolchain.sh [install|env|check]" >&2
    exit 2
    ;;
esac
