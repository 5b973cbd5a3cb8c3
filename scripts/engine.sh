#!/usr/bin/env bash
# engine.sh — an offline Pulumi toolchain for cowsay-bluegreen, built from Go modules.
#
# The machines this project runs on reach package registries only (npm, the Go module proxy, ...), not
# get.pulumi.com or GitHub releases. So this script builds, from the Go module proxy:
#   - the Pulumi CLI            github.com/pulumi/pulumi/pkg/v3/cmd/pulumi  (tools/engine/cli)
#   - a Node.js language host   tools/engine/cli/cmd/pulumi-language-nodejs (our own, small: the upstream
#                               host's module is not served by the proxy)
#   - the Kubernetes provider   github.com/pulumi/pulumi-kubernetes/provider/v4 (tools/engine/kubernetes)
# into a cache outside git, keyed by the versions and by the sources under tools/engine, and installs the
# provider as a plugin into an isolated PULUMI_HOME inside that cache. A second run is a cache hit.
#
# If a `pulumi` CLI is already on PATH (a developer with the real CLI), that CLI and its bundled language
# host are used and only the Kubernetes provider is built (set COWSAY_ENGINE_BUILD_CLI=1 to build anyway).
#
# Usage:
#   scripts/engine.sh build            build what is missing (prints where things are)
#   scripts/engine.sh built            exit 0 if everything is cached; otherwise print what `build` would
#                                      build, one line each, and exit 1 (how long: docs/testing.md)
#   eval "$(scripts/engine.sh env)"    build if needed, then export PATH (the CLI, and Node 24 from
#                                      node_modules/.bin), PULUMI_HOME, ... in this shell
#   scripts/engine.sh exec CMD [ARGS]  run one command in that environment, e.g. `exec pulumi preview`
#   scripts/engine.sh clean            delete the cache directory
#
# Environment:
#   COWSAY_ENGINE_CACHE     cache directory of the binaries (default ~/.cache/cowsay-bluegreen/engine)
#   COWSAY_GO_CACHE         Go caches shared with scripts/cluster.sh: <dir>/mod is GOMODCACHE, <dir>/build
#                           GOCACHE (default ~/.cache/cowsay-bluegreen/go), so a build does not depend on
#                           the user's own Go caches
#   COWSAY_ENGINE_JOBS      go build -p (default 2: the machines have 2 cores, and the CLI's link alone
#                           needs gigabytes of memory: docs/testing.md)
#   COWSAY_ENGINE_BUILD_CLI 1 = build the CLI even if `pulumi` is on PATH
#
# Versions: the provider version below must equal the @pulumi/kubernetes version in package.json (the SDK
# asks the engine for exactly that plugin version, and automatic plugin download is off).
set -euo pipefail

# The GitHub workflows pin the same CLI (pulumi-version in .github/workflows/*.yml; test/workflows.test.ts
# holds them equal).
PULUMI_VERSION=3.277.0
# Provider built from pulumi-kubernetes commit f47bc2d6f199 (2026-01-15), the only provider/v4 version the
# proxy serves. It is 1.5 days before the v4.25.0 tag (2026-01-16) and after v4.24.1; its schema matches
# the @pulumi/kubernetes 4.24.1/4.25.0 SDK (the two are identical apart from the version). See
# tools/engine/README.md.
K8S_VERSION=4.25.0
K8S_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_SRC=$ROOT/tools/engine
CACHE=${COWSAY_ENGINE_CACHE:-$HOME/.cache/cowsay-bluegreen/engine}
JOBS=${COWSAY_ENGINE_JOBS:-2}

# log, die (prefix [engine]) and go_env, shared with the other scripts.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" engine

# The cache key: versions plus a hash of our Go sources, so editing tools/engine rebuilds.
source_hash() {
    (cd "$ENGINE_SRC" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        ! -name '*-embed.json' | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-12
}

KEY="pulumi-v${PULUMI_VERSION}_kubernetes-v${K8S_VERSION}_src-$(source_hash)"
KEYDIR=$CACHE/$KEY
BIN=$KEYDIR/bin                 # pulumi + pulumi-language-nodejs (+ helper script); goes first on PATH
PROVIDER_BIN=$KEYDIR/provider/pulumi-resource-kubernetes   # not on PATH: installed as a plugin
export PULUMI_HOME=$KEYDIR/pulumi-home

# Is there a pulumi CLI on PATH that is not ours?
ambient_pulumi() {
    local p
    p=$(command -v pulumi 2>/dev/null) || return 1
    case "$p" in "$CACHE"/*) return 1 ;; esac
    printf '%s\n' "$p"
}

use_own_cli() {
    [[ "${COWSAY_ENGINE_BUILD_CLI:-0}" == 1 ]] && return 0
    ! ambient_pulumi >/dev/null
}

build_cli() {
    [[ -x $BIN/pulumi && -x $BIN/pulumi-language-nodejs ]] && return 0
    go_env "build the toolchain"
    local mod=$ENGINE_SRC/cli tmp=$KEYDIR/tmp
    local ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}"
    mkdir -p "$tmp" "$BIN"
    log "downloading Go modules for the Pulumi CLI v${PULUMI_VERSION} ..."
    (cd "$mod" && go mod download) || die "go mod download failed in $mod (is the Go module proxy reachable?)"
    log "building pulumi v${PULUMI_VERSION} (cold, minutes: docs/testing.md#how-long-each-build-takes) ..."
    (cd "$mod" && go build -p "$JOBS" -trimpath -tags osusergo,grpcnotrace -ldflags "$ldflags" \
        -o "$tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) || die "building the Pulumi CLI failed"
    log "building pulumi-language-nodejs ..."
    (cd "$mod" && go build -p "$JOBS" -trimpath -tags osusergo,grpcnotrace -ldflags "$ldflags" \
        -o "$tmp/pulumi-language-nodejs" ./cmd/pulumi-language-nodejs) || die "building the language host failed"
    # Dynamic providers (pulumi.dynamic.Resource) run through this script from the Node.js SDK.
    local sdkdir
    sdkdir=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
    install -m 0755 "$sdkdir/nodejs/dist/pulumi-resource-pulumi-nodejs" "$tmp/"
    mv "$tmp/pulumi-resource-pulumi-nodejs" "$tmp/pulumi-language-nodejs" "$BIN/"
    mv "$tmp/pulumi" "$BIN/pulumi"   # last: its presence marks the CLI as built
}

build_provider() {
    [[ -x $PROVIDER_BIN ]] && return 0
    go_env "build the toolchain"
    local mod=$ENGINE_SRC/kubernetes tmp=$KEYDIR/tmp moddir
    mkdir -p "$tmp" "$(dirname "$PROVIDER_BIN")"
    log "downloading Go modules for the Kubernetes provider ..."
    (cd "$mod" && go mod download) || die "go mod download failed in $mod (is the Go module proxy reachable?)"
    moddir=$(cd "$mod" && go list -m -f '{{.Dir}}' "$K8S_MODULE") || die "cannot locate $K8S_MODULE"
    # The upstream main embeds files made by `go generate`; they are not in the module. Make them.
    (cd "$mod" && go run ./internal/genembed "$moddir" cmd/pulumi-resource-kubernetes "$K8S_VERSION") \
        || die "generating the provider's embedded schema failed"
    log "building pulumi-resource-kubernetes v${K8S_VERSION} (cold, minutes: docs/testing.md#how-long-each-build-takes) ..."
    (cd "$mod" && go build -p "$JOBS" -trimpath \
        -ldflags "-s -w -X ${K8S_MODULE}/pkg/version.Version=${K8S_VERSION}" \
        -o "$tmp/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes) \
        || die "building the Kubernetes provider failed"
    mv "$tmp/pulumi-resource-kubernetes" "$PROVIDER_BIN"
}

# What `build` would compile, one line each, nothing if all is cached (the plugin install is seconds).
missing() {
    if use_own_cli && ! [[ -x $BIN/pulumi && -x $BIN/pulumi-language-nodejs ]]; then
        echo "the Pulumi CLI v${PULUMI_VERSION} and its Node.js language host"
    fi
    [[ -x $PROVIDER_BIN ]] || echo "the Kubernetes provider v${K8S_VERSION}"
}

pulumi_cmd() {
    if use_own_cli; then "$BIN/pulumi" "$@"; else pulumi "$@"; fi
}

install_plugin() {
    local marker=$PULUMI_HOME/plugins/resource-kubernetes-v${K8S_VERSION}
    [[ -x $marker/pulumi-resource-kubernetes ]] && return 0
    log "installing the kubernetes plugin v${K8S_VERSION} into $PULUMI_HOME ..."
    mkdir -p "$PULUMI_HOME"
    PULUMI_SKIP_UPDATE_CHECK=true pulumi_cmd plugin install resource kubernetes "$K8S_VERSION" \
        --file "$PROVIDER_BIN" >&2 || die "pulumi plugin install failed"
    [[ -x $marker/pulumi-resource-kubernetes ]] || die "plugin not found at $marker after install"
}

ensure() {
    mkdir -p "$KEYDIR"
    if use_own_cli; then
        build_cli
    else
        log "using the pulumi CLI on PATH: $(ambient_pulumi) ($(pulumi version 2>/dev/null || echo '?'))"
    fi
    build_provider
    install_plugin
    rm -rf "$KEYDIR/tmp"
    # Drop builds for other keys (older versions or sources, hundreds of MB each); the Go caches stay, so
    # going back to one of them is a relink, not a cold build.
    local d
    for d in "$CACHE"/pulumi-v*_kubernetes-v*_src-*; do
        [[ -d $d && $d != "$KEYDIR" ]] || continue
        log "removing stale build $(basename "$d")"
        rm -rf "$d"
    done
}

print_env() {
    # Node from `npm ci` (the `node` npm package, 24) first: `pulumi` runs the program with the first
    # node on PATH, and @pulumi/pulumi needs 22 or newer.
    local path_front=$ROOT/node_modules/.bin
    if use_own_cli; then path_front=$BIN:$path_front; fi
    # shellcheck disable=SC2016 # ${PATH...} is for the shell that evals this line, not this one
    printf 'export PATH=%q"${PATH:+:$PATH}"\n' "$path_front"
    printf 'export PULUMI_HOME=%q\n' "$PULUMI_HOME"
    printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
    printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
    printf 'export COWSAY_ENGINE_KUBERNETES_VERSION=%q\n' "$K8S_VERSION"
}

cmd=${1:-help}
case "$cmd" in
    build)
        ensure
        log "ready: $KEYDIR"
        if use_own_cli; then log "pulumi: $BIN/pulumi ($("$BIN/pulumi" version))"; fi
        log "kubernetes plugin v${K8S_VERSION}: $PULUMI_HOME/plugins/resource-kubernetes-v${K8S_VERSION}"
        log "use: eval \"\$(scripts/engine.sh env)\""
        ;;
    built)
        todo=$(missing)
        [[ -z $todo ]] || { printf '%s\n' "$todo"; exit 1; }
        log "cached: $KEYDIR"
        ;;
    env)
        ensure
        print_env
        ;;
    exec)
        shift
        [[ $# -gt 0 ]] || die "usage: scripts/engine.sh exec CMD [ARGS...]"
        ensure
        eval "$(print_env)"
        exec "$@"
        ;;
    clean)
        log "removing $CACHE"
        chmod -R u+w "$CACHE" 2>/dev/null || true   # the Go module cache is read-only
        rm -rf "$CACHE"
        ;;
    help | -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$cmd' (try: build, built, env, exec, clean, help)"
        ;;
esac
