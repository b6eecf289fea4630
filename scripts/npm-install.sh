#!/bin/sh
# The npm packages, as pinned in package-lock.json, when node_modules is missing or older than the
# lock file (run by scripts/test.sh, scripts/up.sh and the workflow).
#
# `npm install` and not `npm ci`: with these machines' npm settings the lock file lists only this
# platform's optional packages (rollup's native builds), which `npm ci` refuses as "out of sync";
# `npm install` installs the locked versions and leaves the lock file as it is.
#
# --ignore-scripts, then only the two install scripts the project needs: libpq's native build
# (pg-native, the tests' libpq client) and esbuild's binary check (tsx). The others are not run:
# @pulumi/command's would run `pulumi plugin install resource command`, which downloads the plugin
# from the internet when a pulumi on PATH lacks it (the project's own plugin comes from
# scripts/toolchain.sh), and protobufjs's only checks versions.
set -eu
cd "$(dirname "$0")/.."
if [ -e node_modules/.package-lock.json ] && [ -z "$(find package-lock.json -newer node_modules/.package-lock.json)" ]; then
    exit 0
fi
npm install --no-audit --no-fund --ignore-scripts
npm rebuild libpq esbuild
echo "[npm] packages installed from package-lock.json (install scripts: libpq, esbuild)"
