#!/bin/sh
# The linters (npm run lint; scripts/test.sh runs it before the unit suite), each on:
#   - ShellCheck: every *.sh under scripts/ and its subfolders (.shellcheckrc: POSIX sh; it
#     follows the files that a script sources)
#   - eslint .: the TypeScript and JavaScript (eslint.config.mjs)
#   - prettier --check .: the formatting of the TypeScript, JavaScript, JSON and YAML
#     (.prettierrc.json, .prettierignore)
# All three run; the exit status is 1 if any of them found something. `npm run format` rewrites
# what prettier and eslint can fix by themselves. Nothing here reaches the network: eslint and
# prettier are the project's own npm packages (package-lock.json), shellcheck is Debian's.
set -eu
cd "$(dirname "$0")/.."

say() { echo "[lint] $*"; }

# ShellCheck comes from Debian's package (installed here when running as root, as scripts/test.sh
# installs PostgreSQL)
if ! command -v shellcheck >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "[lint] shellcheck is missing: run as root, or apt-get install shellcheck" >&2; exit 1; }
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; } ||
        { echo "[lint] shellcheck could not be installed (apt-get install shellcheck, see above)" >&2; exit 1; }
    say "shellcheck installed"
fi
for tool in eslint prettier; do
    [ -x "node_modules/.bin/$tool" ] || { echo "[lint] $tool is missing from node_modules: run npm install first" >&2; exit 1; }
done

# The shell scripts: the repository's files (committed, and new ones that .gitignore does not
# ignore) when this is a git checkout, else every one on disk; those that are there now (not
# deleted in the work tree), never anything under a node_modules.
list_scripts() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- 'scripts/*.sh'
    else
        find scripts -name node_modules -prune -o -type f -name '*.sh' -print
    fi | sort -u | while IFS= read -r f; do
        case $f in
        */node_modules/*) continue ;;
        # The files the container's entrypoint sources are checked through it (--check-sourced),
        # with the functions and variables of lib.sh known: on their own they would not be.
        scripts/server/entrypoint.sh) ;;
        scripts/server/*) continue ;;
        esac
        if [ -f "$f" ]; then printf '%s\n' "$f"; fi
    done
}

status=0

scripts=$(list_scripts)
count=$(printf '%s\n' "$scripts" | grep -c . || true)
sc_version=$(shellcheck --version | sed -n 's/^version: //p')
if [ "$count" = 0 ]; then
    say "shellcheck $sc_version: no shell scripts under scripts/ (nothing checked)"
    status=1
else
    # one argument per line of the list (file names with spaces stay whole; no globbing)
    old_ifs=$IFS
    IFS='
'
    set -f
    # shellcheck disable=SC2086 # split on newlines only, on purpose (IFS above)
    set -- $scripts
    set +f
    IFS=$old_ifs
    if shellcheck --check-sourced "$@"; then
        say "shellcheck $sc_version: $count shell scripts under scripts/ (and the container files scripts/server/entrypoint.sh sources): clean"
    else
        say "shellcheck $sc_version: $count shell scripts under scripts/: FINDINGS (above)"
        status=1
    fi
fi

eslint_version=$(npx --no-install eslint --version | sed 's/^v//')
if npx --no-install eslint --max-warnings 0 .; then
    say "eslint $eslint_version: the TypeScript and JavaScript under . (eslint.config.mjs): clean"
else
    say "eslint $eslint_version: the TypeScript and JavaScript under . (eslint.config.mjs): FINDINGS (above)"
    status=1
fi

prettier_version=$(npx --no-install prettier --version)
if npx --no-install prettier --check --log-level warn .; then
    say "prettier $prettier_version: formatting of the TypeScript, JavaScript, JSON and YAML under .: clean"
else
    say "prettier $prettier_version: formatting of the TypeScript, JavaScript, JSON and YAML under .: FILES NOT FORMATTED (above; npm run format rewrites them)"
    status=1
fi

exit "$status"
