# shellcheck shell=bash
# lib.sh — what every script in scripts/ shares, sourced, never run: log and die under the script's own
# prefix, and the Go environment of the offline builds (engine.sh, cluster-build.sh, lint.sh).
#
# Usage, from a script in scripts/:   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" NAME
# NAME is the prefix of every line: `[NAME 11:13:28] message`, `[NAME] error: message`. The logs of
# scripts that run one another (cluster.sh starts istiod.sh and prometheus.sh) interleave on one
# stderr, and the prefix is how a reader, and a test that matches these lines, tells them apart.
# Defines: LOG_NAME, GO_CACHE, log, die, go_env.

LOG_NAME=${1:?usage: source scripts/lib.sh NAME}
# Shared by every Go build here (many modules are common to the engine and the control plane), and
# apart from the user's own Go caches, so a build does not depend on them.
GO_CACHE=${COWSAY_GO_CACHE:-$HOME/.cache/cowsay-bluegreen/go}

log() { printf '[%s %s] %s\n' "$LOG_NAME" "$(date +%T)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$LOG_NAME" "$*" >&2; exit 1; }

go_env() {   # go_env PURPOSE: die unless Go is installed ("Go is required to PURPOSE"), then export its environment
    command -v go >/dev/null || die "Go is required to $1 (go 1.26 or newer)."
    export GOMODCACHE=$GO_CACHE/mod GOCACHE=$GO_CACHE/build
    # readonly: a build never rewrites a wrapper's go.mod; GOWORK=off: a go.work above the checkout
    # must not change what the pinned go.mod files select.
    export GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0 GOWORK=off
    export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
}
