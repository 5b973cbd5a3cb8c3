#!/usr/bin/env bash
# cluster-build.sh — the offline build behind scripts/cluster.sh, sourced by it (not run by itself).
#
# kwokctl downloads its binaries from GitHub releases, which these machines cannot reach, so the control
# plane is built here from the Go module proxy instead: wrapper modules under tools/cluster/ (and
# tools/xds for istiod and our xDS client, tools/prometheus for Prometheus), one per upstream main so each
# is built with the dependency versions of its own go.mod; pins in versions.json, checked against the wrapper go.mod files; binaries
# in a cache keyed by the versions and a hash of the wrapper sources. It also downloads the CRD source
# modules (Istio, cert-manager, Gateway API) and lists or bundles their CRD files.
#
# Needs from cluster.sh: ROOT, SRC, CACHE, JOBS, run_child; from scripts/lib.sh (which cluster.sh sources):
# GO_CACHE, log, die, go_env.
# Defines: the versions (K8S_VERSION ...), KEYDIR, BIN, ISTIOD_KEYDIR, ISTIOD_BIN, PROMETHEUS_KEYDIR,
# PROMETHEUS_BIN, ensure, cmd_built,
# crd_module, crd_files, crd_bundle.
# shellcheck shell=bash disable=SC2034,SC2153 # lib.sh defines GO_CACHE; cluster.sh uses the versions and paths
command -v jq >/dev/null || die "jq is required (apt-get install jq)"
# One jq call for all pins; a missing key fails here.
if ! IFS=$'\t' read -r K8S_VERSION ETCD_VERSION KWOK_VERSION ISTIO_VERSION CERT_MANAGER_VERSION GATEWAY_API_VERSION ISTIOD_VERSION PROMETHEUS_VERSION \
    < <(jq -r '[.kubernetes, .etcd, .kwok, .istio, .certManager, .gatewayApi, .istiod, .prometheus]
               | if any(type != "string" or . == "") then error("missing") else @tsv end' "$ROOT/versions.json"); then
    die "versions.json needs the strings kubernetes, etcd, kwok, istio, certManager, gatewayApi, istiod, prometheus"
fi

# The cache key: versions plus a hash of our Go sources, so editing tools/cluster's modules rebuilds.
source_hash() {   # source_hash DIR
    (cd "$1" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-12
}
KEY="k8s-v${K8S_VERSION}_etcd-v${ETCD_VERSION}_kwok-v${KWOK_VERSION}_src-$(source_hash "$SRC")"
KEYDIR=$CACHE/$KEY
BIN=$KEYDIR/bin
# istiod and the xDS client have a key of their own, so a new Istio does not rebuild the control plane.
ISTIOD_KEYDIR=$CACHE/istiod-${ISTIOD_VERSION}_src-$(source_hash "$ROOT/tools/xds")
ISTIOD_BIN=$ISTIOD_KEYDIR/bin
# Prometheus too: the tests' metrics server is no part of the control plane, and rebuilding all of that
# (the longest of the builds) for a new Prometheus, or the reverse, would be waste.
PROMETHEUS_KEYDIR=$CACHE/prometheus-${PROMETHEUS_VERSION}_src-$(source_hash "$ROOT/tools/prometheus")
PROMETHEUS_BIN=$PROMETHEUS_KEYDIR/bin

# ---------------------------------------------------------------------------------------------- build

# What `build` builds, in this order (later ones reuse packages the earlier ones compiled). How long each
# takes from an empty Go build cache is measured in docs/testing.md, not kept here. Fields: binary, module
# under tools/cluster (../xds: tools/xds, ../prometheus: tools/prometheus), package.
BUILDS=(
    "kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver"
    "kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager"
    "kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler"
    "kubectl kubernetes k8s.io/kubernetes/cmd/kubectl"
    "etcd etcd go.etcd.io/etcd/server/v3"
    "kwok kwok sigs.k8s.io/kwok/cmd/kwok"
    "kwokctl kwok sigs.k8s.io/kwok/cmd/kwokctl"
    "pilot-discovery ../xds istio.io/istio/pilot/cmd/pilot-discovery"
    "cowsay-xds ../xds ."
    "prometheus ../prometheus github.com/prometheus/prometheus/cmd/prometheus"
)
bin_dir() {
    case $1 in
        ../xds) echo "$ISTIOD_BIN" ;;
        ../prometheus) echo "$PROMETHEUS_BIN" ;;
        *) echo "$BIN" ;;
    esac
}
# Build tags. Prometheus: remove_all_sd drops every service discovery but file, static and HTTP (its
# plugins/ directory; upstream's README, "Service discovery plugins"): the tests register their targets
# with file_sd, and the cloud SDKs are most of the build. No builtinassets: no web UI, the API is all
# the tests and the analysis read.
build_tags() { if [[ $1 == ../prometheus ]]; then echo remove_all_sd; fi; }

# The wrapper go.mod files cannot read versions.json: check they say the same, so one pin is the truth.
check_pins() {
    local mod got
    required() { sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2[[:space:]]+(v[^[:space:]]+).*#\2#p" "$1"; }
    got=$(required "$SRC/kubernetes/go.mod" k8s.io/kubernetes)
    [[ $got == "v$K8S_VERSION" ]] || die "tools/cluster/kubernetes/go.mod requires k8s.io/kubernetes $got, versions.json pins $K8S_VERSION: update the require and every 'replace k8s.io/... => k8s.io/... v0.x.y' line there, then run 'go mod tidy' in that directory (see tools/cluster/README.md)"
    got=$(sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+) => [^[:space:]]+ (v[^[:space:]]+)$#\2#p' "$SRC/kubernetes/go.mod" | sort -u)
    [[ $got == "v0.${K8S_VERSION#1.}" ]] || die "tools/cluster/kubernetes/go.mod replaces staging modules with '${got//$'\n'/ }', expected v0.${K8S_VERSION#1.} for Kubernetes $K8S_VERSION"
    for mod in server api client/pkg client pkg; do
        got=$(required "$SRC/etcd/go.mod" "go.etcd.io/etcd/$mod/v3")
        [[ $got == "v$ETCD_VERSION" ]] || die "tools/cluster/etcd/go.mod requires go.etcd.io/etcd/$mod/v3 $got, versions.json pins $ETCD_VERSION: update all five etcd requires, then 'go mod tidy' there"
    done
    got=$(required "$SRC/kwok/go.mod" sigs.k8s.io/kwok)
    [[ $got == "v$KWOK_VERSION" ]] || die "tools/cluster/kwok/go.mod requires sigs.k8s.io/kwok $got, versions.json pins $KWOK_VERSION: update it, then 'go mod tidy' there"
    got=$(required "$ROOT/tools/xds/go.mod" istio.io/istio)
    [[ $got == "$ISTIOD_VERSION" ]] || die "tools/xds/go.mod requires istio.io/istio $got, versions.json pins istiod $ISTIOD_VERSION: update it, then 'go mod tidy' there"
    got=$(required "$ROOT/tools/prometheus/go.mod" github.com/prometheus/prometheus)
    [[ $got == "$PROMETHEUS_VERSION" ]] || die "tools/prometheus/go.mod requires github.com/prometheus/prometheus $got, versions.json pins prometheus $PROMETHEUS_VERSION: update it, then 'go mod tidy' there"
}

# Prometheus's module tag v0.3YY.Z is the release 3.YY.Z (its Go module is still v0).
prometheus_release() {
    local minor=${PROMETHEUS_VERSION#v0.}
    minor=${minor%%.*}
    printf '%s.%s.%s' "$((minor / 100))" "$((minor % 100))" "${PROMETHEUS_VERSION##*.}"
}

ldflags() {   # version stamps, as the projects' release builds set them
    local pkg
    case $1 in
        kubernetes)   # as Kubernetes' hack/lib/version.sh (kubectl reads client-go's)
            for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
                printf -- '-X %s.gitVersion=v%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
                    "$pkg" "$K8S_VERSION" "$pkg" "${K8S_VERSION%%.*}" "$pkg" "$(cut -d. -f2 <<<"$K8S_VERSION")" "$pkg"
            done ;;
        etcd) printf -- '-X go.etcd.io/etcd/api/v3/version.GitSHA=v%s' "$ETCD_VERSION" ;;
        kwok) printf -- '-X sigs.k8s.io/kwok/pkg/consts.Version=v%s -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v%s' "$KWOK_VERSION" "$K8S_VERSION" ;;
        ../xds) printf -- '-X istio.io/istio/pkg/version.buildVersion=%s -X istio.io/istio/pkg/version.buildStatus=Clean' "$ISTIOD_VERSION" ;;
        # As its .promu.yml (`prometheus --version`, the build_info metric); there is no git revision here.
        ../prometheus) printf -- '-X github.com/prometheus/common/version.Version=%s -X github.com/prometheus/common/version.Revision=%s' "$(prometheus_release)" "$PROMETHEUS_VERSION" ;;
    esac
}

module_dir() {   # module_dir PATH VERSION: the extracted module in GOMODCACHE, downloaded if missing
    local dir=$GO_CACHE/mod/$1@$2
    if [[ ! -d $dir ]]; then
        go_env "download $1"
        mkdir -p "$CACHE"
        log "downloading $1@$2 ..."
        GOFLAGS=-mod=mod go -C "$CACHE" mod download "$1@$2" >&2 \
            || die "go mod download $1@$2 failed (is the Go module proxy reachable?)"
    fi
    [[ -d $dir ]] || die "$1@$2 is not at $dir after go mod download"
    printf '%s\n' "$dir"
}

crd_module() {   # crd_module NAME: "module version" of a CRD set
    case "$1" in
        istio) echo "istio.io/api v$ISTIO_VERSION" ;;
        cert-manager) echo "github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION" ;;
        gateway-api) echo "sigs.k8s.io/gateway-api $GATEWAY_API_VERSION" ;;
        *) die "unknown CRD set '$1'; allowed: istio, cert-manager, gateway-api" ;;
    esac
}

crd_files() {   # crd_files NAME: the CRD YAML files of one pinned project
    local dir module
    module=$(crd_module "$1") || return 1
    # shellcheck disable=SC2086 # two words on purpose
    dir=$(module_dir $module) || return 1
    case "$1" in
        istio) printf '%s\n' "$dir/kubernetes/customresourcedefinitions.gen.yaml" ;;
        cert-manager) printf '%s\n' "$dir"/deploy/crds/*.yaml ;;
        # The standard channel, as its standard-install.yaml (a safe-upgrade VAP included).
        gateway-api) printf '%s\n' "$dir"/config/crd/standard/*.yaml | grep -v '/kustomization\.yaml$' ;;
    esac
}

crd_bundle() {   # crd_bundle NAME: one file with all of a set's manifests (like a release's install.yaml)
    local files f out
    out=$CACHE/crds/$1-$(crd_module "$1" | cut -d' ' -f2).yaml
    if [[ ! -s $out ]]; then
        files=$(crd_files "$1") || return 1
        mkdir -p "$CACHE/crds"
        while read -r f; do
            printf -- '---\n# Source: %s\n' "${f#"$GO_CACHE/mod/"}"
            sed -e '1{/^---$/d}' "$f"
        done <<<"$files" >"$out.tmp"
        mv "$out.tmp" "$out"
    fi
    printf '%s\n' "$out"
}

missing_binaries() {   # the BUILDS lines whose binary is not in the cache
    local line name mod
    for line in "${BUILDS[@]}"; do
        read -r name mod _ <<<"$line"
        [[ -x $(bin_dir "$mod")/$name ]] || printf '%s\n' "$line"
    done
}

ensure() {   # build what is missing, download the CRD modules
    local line name mod pkg start set d missing
    missing=$(missing_binaries)
    if [[ -n $missing ]]; then
        mkdir -p "$CACHE"
        # One build at a time per cache (tests may start several clusters at once on a cold cache); the
        # lock is released before anything is started, so no component inherits it.
        exec 8>"$CACHE/build.lock"
        flock 8
        check_pins
        go_env "build the control plane"
        log "building $(wc -l <<<"$missing") binaries from the Go module proxy; how long each takes cold: docs/testing.md#how-long-each-build-takes"
        log "downloading Go modules for the control plane ..."
        # Not tools/prometheus: `go mod download` there would fetch every cloud SDK the build tags leave
        # out; `go build` downloads what the packages it builds need.
        for mod in kubernetes etcd kwok ../xds; do
            run_child go -C "$SRC/$mod" mod download || die "go mod download failed in tools/cluster/$mod (is the Go module proxy reachable?)"
        done
        mkdir -p "$KEYDIR/tmp" "$BIN" "$ISTIOD_BIN" "$PROMETHEUS_BIN"
        while read -r name mod pkg; do
            log "building $name ..."
            start=$SECONDS
            run_child go -C "$SRC/$mod" build -p "$JOBS" -trimpath -tags "$(build_tags "$mod")" -ldflags "-s -w $(ldflags "$mod")" -o "$KEYDIR/tmp/$name" "$pkg" \
                || die "building $name failed (is the Go module proxy reachable? go: $(go version))"
            mv "$KEYDIR/tmp/$name" "$(bin_dir "$mod")/$name"
            log "built $name in $((SECONDS - start)) s"
        done <<<"$missing"
        rm -rf "$KEYDIR/tmp"
        exec 8>&-
    fi
    for set in istio cert-manager gateway-api; do crd_files "$set" >/dev/null; done
    # Drop builds for other keys (hundreds of MB each); the Go caches stay, so going back is a relink. istiod's
    # key follows tools/xds (Prometheus's tools/prometheus), which worktrees of this repository on one
    # machine (one cache) may hold in different versions: their other builds go once unused for a day,
    # not while another checkout uses them.
    touch -c "$ISTIOD_KEYDIR" "$PROMETHEUS_KEYDIR"
    for d in "$CACHE"/k8s-v*_etcd-v*_kwok-v*_src-* $(find "$CACHE" -maxdepth 1 \( -name 'istiod-*_src-*' -o -name 'prometheus-*_src-*' \) -mmin +1440); do
        [[ -d $d && $d != "$KEYDIR" && $d != "$ISTIOD_KEYDIR" && $d != "$PROMETHEUS_KEYDIR" ]] || continue
        log "removing stale build $(basename "$d")"
        rm -rf "$d"
    done
}

cmd_built() {   # what `build` would do, one line each on stdout; exit 1 if anything
    local name set mod version missing=0
    while read -r name _; do
        [[ -n $name ]] && { printf '%s\n' "$name"; missing=1; }
    done <<<"$(missing_binaries)"
    for set in istio cert-manager gateway-api; do
        read -r mod version <<<"$(crd_module "$set")"
        [[ -d $GO_CACHE/mod/$mod@$version ]] || { printf '%s CRDs, %s@%s (a download)\n' "$set" "$mod" "$version"; missing=1; }
    done
    ((missing == 0)) && log "everything is built: $BIN, $ISTIOD_BIN, $PROMETHEUS_BIN"
    return "$missing"
}
