#!/usr/bin/env bash
# Install geth, the execution client the Engine API backend drives, as a Go module (the Go
# module proxy serves it; a cold build takes about 6 minutes on 2 cores, then the Go build
# cache makes it seconds). Idempotent: $ALYS_GETH if set, else ~/go/bin/geth (or $GOBIN/geth)
# when `geth version` says the pinned version, else `go install`.
# Prints the binary's path on stdout (and nothing else there); exits non-zero if it cannot
# (exit 2: Go is not installed).
set -euo pipefail
GETH_VERSION="${GETH_VERSION:-1.17.10}"

runs_pinned() {
    [ -x "$1" ] && "$1" version 2>/dev/null | grep -q "^Version: ${GETH_VERSION}-stable$"
}

if [ -n "${ALYS_GETH:-}" ]; then
    runs_pinned "$ALYS_GETH" || {
        echo "install_geth: ALYS_GETH=$ALYS_GETH is not geth $GETH_VERSION" >&2; exit 1; }
    echo "$ALYS_GETH"
    exit 0
fi
if ! command -v go >/dev/null; then
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
        [ -x "$candidate" ] && PATH="$(dirname "$candidate"):$PATH" && break
    done
fi
bindir="$(command -v go >/dev/null && go env GOBIN 2>/dev/null || true)"
if [ -z "$bindir" ]; then
    bindir="$(command -v go >/dev/null && go env GOPATH 2>/dev/null | cut -d: -f1 || true)"
    bindir="${bindir:-$HOME/go}/bin"
fi
binary="$bindir/geth"
if runs_pinned "$binary"; then
    echo "$binary"
    exit 0
fi
command -v go >/dev/null || { echo "install_geth: Go is not installed" >&2; exit 2; }
echo "install_geth: building geth $GETH_VERSION (go install; minutes on a cold cache)" >&2
go install "github.com/ethereum/go-ethereum/cmd/geth@v${GETH_VERSION}" >&2
runs_pinned "$binary" || { echo "install_geth: $binary is not geth $GETH_VERSION" >&2; exit 1; }
echo "$binary"
