#!/usr/bin/env bash
# Install anvil (foundry's dev node), the reference the differential tests compare the engine
# with, from the npm package that ships its Linux x64 binary, into a cache outside the clone.
# Idempotent: a second run finds the pinned version in place and only prints its path.
# Prints the binary's path on stdout (and nothing else there); exits non-zero if it cannot.
# With --check it installs nothing: it prints the path if the pinned version is there, else
# exits 1. ALYS_ANVIL_CACHE overrides the cache folder.
set -euo pipefail
ANVIL_VERSION="${ANVIL_VERSION:-1.7.1}"
PACKAGE="@foundry-rs/anvil-linux-amd64"
prefix="${ALYS_ANVIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alys-fast/anvil}/$ANVIL_VERSION"
binary="$prefix/node_modules/$PACKAGE/bin/anvil"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "install_anvil: $PACKAGE is for Linux x86_64 only, this is $(uname -s)-$(uname -m)" >&2
    exit 1
fi
if [ "${1:-}" = "--check" ]; then
    [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1 && { echo "$binary"; exit 0; }
    exit 1
fi
if [ ! -x "$binary" ] || ! "$binary" --version >/dev/null 2>&1; then
    command -v npm >/dev/null || { echo "install_anvil: npm is not installed" >&2; exit 1; }
    mkdir -p "$prefix"
    # The package's own files only: no lockfile or audit round trips, nothing in the clone.
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
        "$PACKAGE@$ANVIL_VERSION" >&2
    # npm may drop the exec bit on files it unpacks from some tarballs.
    [ -f "$binary" ] && chmod +x "$binary"
    "$binary" --version >/dev/null || { echo "install_anvil: $binary does not run" >&2; exit 1; }
fi
echo "$binary"
