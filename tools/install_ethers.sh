#!/usr/bin/env bash
# Install ethers (the JavaScript client the dev-account smoke test drives the node with) from
# npm into a cache outside the clone. Idempotent: a second run finds the pinned version in place.
# Prints the node_modules folder to put on NODE_PATH (and nothing else on stdout); exits
# non-zero if it cannot. ALYS_ETHERS_CACHE overrides the cache folder.
set -euo pipefail
ETHERS_VERSION="${ETHERS_VERSION:-6.17.0}"
prefix="${ALYS_ETHERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alys-fast/ethers}/$ETHERS_VERSION"
modules="$prefix/node_modules"

installed() {
    [ -f "$modules/ethers/package.json" ] &&
        [ "$(node -p "require('$modules/ethers/package.json').version" 2>/dev/null)" = "$ETHERS_VERSION" ]
}

command -v node >/dev/null || { echo "install_ethers: node is not installed" >&2; exit 1; }
if ! installed; then
    command -v npm >/dev/null || { echo "install_ethers: npm is not installed" >&2; exit 1; }
    mkdir -p "$prefix"
    # The package's own files only: no lockfile or audit round trips, nothing in the clone.
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
        "ethers@$ETHERS_VERSION" >&2
    installed || { echo "install_ethers: ethers $ETHERS_VERSION is not in $modules" >&2; exit 1; }
fi
echo "$modules"
