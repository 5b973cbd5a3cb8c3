#!/usr/bin/env bash
# cluster.sh — a local Kubernetes control plane without containers, for cowsay-bluegreen's end-to-end
# tests and demo.
#
# The machines this project runs on reach package registries only (no Docker, no GitHub downloads), so
# kind/k3d/minikube are out. This script builds, from the Go module proxy (wrapper modules under
# tools/cluster/):
#   - kube-apiserver, kube-controller-manager, kube-scheduler and kubectl   k8s.io/kubernetes
#   - etcd                                                                   go.etcd.io/etcd/server/v3
#   - kwok (fake nodes that make pods Running and Ready without running them) sigs.k8s.io/kwok
# at the versions pinned in versions.json, into a cache outside git keyed by those versions and by the
# sources under tools/cluster. A second build is a cache hit. It also downloads the CRD source modules
# (Istio, cert-manager, Gateway API) at the pinned versions.
#
# `up` runs them all on 127.0.0.1, on ports found free at run time, with every file (etcd data, certs,
# token, kubeconfig, logs, pids) in one state directory, and returns once the API server is ready, the
# fake nodes are Ready and the `default` ServiceAccount exists. The processes outlive the calling shell;
# `down` stops them. Running `up` on a state directory whose cluster is up and healthy says so and does
# nothing; a partly running or dead one is stopped and started afresh (state is disposable).
#
# Usage:
#   scripts/cluster.sh build                  build what is missing, download the CRD modules
#   scripts/cluster.sh up                     build if needed, start the cluster, wait until it is ready
#   eval "$(scripts/cluster.sh env)"          export KUBECONFIG and PATH (the matching kubectl)
#   scripts/cluster.sh status                 what runs where; exit 0 only if the cluster is up and ready
#   scripts/cluster.sh crds [NAME...]         print the CRD files of the pinned versions, one per line
#   scripts/cluster.sh crds --bundle [NAME...]  one file per set instead (all its files concatenated; for
#                                             gateway-api the same objects as its standard-install.yaml)
#   scripts/cluster.sh apply-crds [NAME...]   server-side apply them and wait until Established
#                                             NAME: istio, cert-manager, gateway-api (default: all three)
#   scripts/cluster.sh restart COMPONENT      stop one component and start it again (same port, same data)
#   scripts/cluster.sh stop|start COMPONENT   the two halves, e.g. to keep the API server away a while
#                                             COMPONENT: etcd, apiserver, controller-manager, scheduler, kwok
#   scripts/cluster.sh down [--keep-logs]     stop everything `up` started, remove the state directory
#   scripts/cluster.sh clean [--go]           down the default cluster, delete the cache (--go: also the
#                                             shared Go module and build caches)
#
# Environment:
#   COWSAY_CLUSTER_CACHE    cache directory (default ~/.cache/cowsay-bluegreen/cluster)
#   COWSAY_CLUSTER_STATE    state directory of one cluster (default <cache>/run/default); tests pass
#                           their own temporary directory to run clusters side by side
#   COWSAY_GO_CACHE         Go caches shared by this project's Go builds: <dir>/mod is GOMODCACHE,
#                           <dir>/build is GOCACHE (default ~/.cache/cowsay-bluegreen/go)
#   COWSAY_CLUSTER_JOBS     go build -p (default 2: the machines have 2 cores)
#   COWSAY_CLUSTER_NODES    number of fake nodes (default 2)
#   COWSAY_CLUSTER_TIMEOUT  seconds each step of `up` may take before it fails (default 90)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tools/cluster
VERSIONS=$ROOT/versions.json
CACHE=${COWSAY_CLUSTER_CACHE:-$HOME/.cache/cowsay-bluegreen/cluster}
GO_CACHE=${COWSAY_GO_CACHE:-$HOME/.cache/cowsay-bluegreen/go}
STATE=${COWSAY_CLUSTER_STATE:-$CACHE/run/default}
while [[ $STATE == */ && $STATE != / ]]; do STATE=${STATE%/}; done   # pids are matched by "$STATE/" in their command lines
JOBS=${COWSAY_CLUSTER_JOBS:-2}
NODES=${COWSAY_CLUSTER_NODES:-2}
TIMEOUT=${COWSAY_CLUSTER_TIMEOUT:-90}
STOP_TIMEOUT=15                         # seconds between SIGTERM and SIGKILL

COMPONENTS=(etcd apiserver controller-manager scheduler kwok)   # start order; stopped in reverse

# The script's own stdout/stderr, kept on fds 5/6: a trap can fire inside a command whose output is
# redirected (a quiet health check), and its messages must still be seen.
exec 5>&1 6>&2
log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is required (apt-get install jq)"
# One jq call for all pins (kubernetes 1.35.4, etcd 3.6.16, kwok 0.8.0, istio 1.31.4 = istio.io/api tag
# v1.31.4, certManager v1.21.2, gatewayApi v1.6.3); a missing key fails here.
if ! IFS=$'\t' read -r K8S_VERSION ETCD_VERSION KWOK_VERSION ISTIO_VERSION CERT_MANAGER_VERSION GATEWAY_API_VERSION \
    < <(jq -r '[.kubernetes, .etcd, .kwok, .istio, .certManager, .gatewayApi]
               | if any(type != "string" or . == "") then error("missing") else @tsv end' "$VERSIONS"); then
    die "versions.json needs the strings kubernetes, etcd, kwok, istio, certManager, gatewayApi"
fi

# The cache key: versions plus a hash of our Go sources, so editing tools/cluster rebuilds.
source_hash() {
    (cd "$SRC" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) \
        | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-12
}

KEY="k8s-v${K8S_VERSION}_etcd-v${ETCD_VERSION}_kwok-v${KWOK_VERSION}_src-$(source_hash)"
KEYDIR=$CACHE/$KEY
BIN=$KEYDIR/bin
KWOK_STAGES=$KEYDIR/share/kwok-stages.yaml

go_env() {
    command -v go >/dev/null || die "Go is required to build the control plane (go 1.26 or newer)."
    export GOMODCACHE=$GO_CACHE/mod GOCACHE=$GO_CACHE/build
    export GOFLAGS="-buildvcs=false -mod=readonly" CGO_ENABLED=0 GOWORK=off
    export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
}

# Run a long command in the background and wait for it, so that a SIGTERM sent to this script alone
# (not to its process group) still stops a running `go build` through the traps below.
CHILD=
run_child() {
    "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}
kill_child() { [[ -n $CHILD ]] && kill "$CHILD" 2>/dev/null; CHILD=; return 0; }

# ---------------------------------------------------------------------------------------------- build

# The wrapper go.mod files cannot read versions.json: check they say the same, so one pin is the truth.
check_pins() {
    local mod want got
    required() { sed -nE "s#^[[:space:]]*(require[[:space:]]+)?$2[[:space:]]+(v[^[:space:]]+).*#\2#p" "$1"; }
    got=$(required "$SRC/kubernetes/go.mod" k8s.io/kubernetes)
    [[ $got == "v$K8S_VERSION" ]] || die "tools/cluster/kubernetes/go.mod requires k8s.io/kubernetes $got, versions.json pins $K8S_VERSION: update the require and every 'replace k8s.io/... => k8s.io/... v0.x.y' line there, then run 'go mod tidy' in that directory (see tools/cluster/README.md)"
    want="v0.${K8S_VERSION#1.}"
    got=$(sed -nE 's#^[[:space:]]*(k8s\.io/[^[:space:]]+) => [^[:space:]]+ (v[^[:space:]]+)$#\2#p' "$SRC/kubernetes/go.mod" | sort -u)
    [[ $got == "$want" ]] || die "tools/cluster/kubernetes/go.mod replaces staging modules with '${got//$'\n'/ }', expected $want for Kubernetes $K8S_VERSION"
    for mod in server api client/pkg client pkg; do
        got=$(required "$SRC/etcd/go.mod" "go.etcd.io/etcd/$mod/v3")
        [[ $got == "v$ETCD_VERSION" ]] || die "tools/cluster/etcd/go.mod requires go.etcd.io/etcd/$mod/v3 $got, versions.json pins $ETCD_VERSION: update all five etcd requires, then 'go mod tidy' there"
    done
    got=$(required "$SRC/kwok/go.mod" sigs.k8s.io/kwok)
    [[ $got == "v$KWOK_VERSION" ]] || die "tools/cluster/kwok/go.mod requires sigs.k8s.io/kwok $got, versions.json pins $KWOK_VERSION: update it, then 'go mod tidy' there"
}

# go_build NAME MODULE-DIR PACKAGE "ESTIMATE" [LDFLAGS...]
go_build() {
    local name=$1 dir=$2 pkg=$3 estimate=$4 start
    shift 4
    [[ -x $BIN/$name ]] && return 0
    go_env
    mkdir -p "$KEYDIR/tmp" "$BIN"
    log "building $name ($estimate) ..."
    start=$SECONDS
    run_child go -C "$dir" build -p "$JOBS" -trimpath -ldflags "-s -w $*" -o "$KEYDIR/tmp/$name" "$pkg" \
        || die "building $name failed (is the Go module proxy reachable? go: $(go version))"
    mv "$KEYDIR/tmp/$name" "$BIN/$name"
    log "built $name in $((SECONDS - start)) s"
}

module_dir() {   # module_dir PATH VERSION: the extracted module in GOMODCACHE, downloaded if missing
    local dir=$GO_CACHE/mod/$1@$2
    if [[ ! -d $dir ]]; then
        go_env
        mkdir -p "$CACHE"
        log "downloading $1@$2 ..."
        GOFLAGS=-mod=mod go -C "$CACHE" mod download "$1@$2" >&2 \
            || die "go mod download $1@$2 failed (is the Go module proxy reachable?)"
    fi
    [[ -d $dir ]] || die "$1@$2 is not at $dir after go mod download"
    printf '%s\n' "$dir"
}

crd_files() {   # crd_files NAME: the CRD YAML files of one pinned project
    local dir
    case "$1" in
        istio)
            dir=$(module_dir istio.io/api "v$ISTIO_VERSION") || return 1
            printf '%s\n' "$dir/kubernetes/customresourcedefinitions.gen.yaml" ;;
        cert-manager)
            dir=$(module_dir github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION") || return 1
            printf '%s\n' "$dir"/deploy/crds/*.yaml ;;
        gateway-api)   # the standard channel, as its standard-install.yaml (a safe-upgrade VAP included)
            dir=$(module_dir sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION") || return 1
            printf '%s\n' "$dir"/config/crd/standard/*.yaml | grep -v '/kustomization\.yaml$' ;;
        *) die "unknown CRD set '$1' (istio, cert-manager, gateway-api)" ;;
    esac
}

crd_bundle() {   # crd_bundle NAME: one file with all of a set's manifests (like a release's install.yaml)
    local files f version out
    case "$1" in
        istio) version=v$ISTIO_VERSION ;;
        cert-manager) version=$CERT_MANAGER_VERSION ;;
        gateway-api) version=$GATEWAY_API_VERSION ;;
        *) die "unknown CRD set '$1' (istio, cert-manager, gateway-api)" ;;
    esac
    out=$CACHE/crds/$1-$version.yaml
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

build_kwok_stages() {
    [[ -s $KWOK_STAGES ]] && return 0
    go_env
    local moddir stage
    moddir=$(cd "$SRC/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) || die "cannot locate sigs.k8s.io/kwok"
    mkdir -p "$(dirname "$KWOK_STAGES")"
    # The kwok binary has no built-in stages (kwokctl passes these): nodes become Ready and keep a
    # lease (kwok renews node leases by default, so the heartbeat-with-lease stage, as kwokctl picks),
    # pods become Running/Ready at once, and deleted pods are removed instead of hanging Terminating.
    for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
                 pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
        printf -- '---\n'
        grep -v '^#' "$moddir/kustomize/stage/$stage.yaml"
    done > "$KWOK_STAGES.tmp"
    mv "$KWOK_STAGES.tmp" "$KWOK_STAGES"
}

ensure() {
    mkdir -p "$KEYDIR"
    local have=1 b
    for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok; do
        [[ -x $BIN/$b ]] || have=0
    done
    if [[ $have == 0 || ! -s $KWOK_STAGES ]]; then
        # One build at a time per cache (tests may start several clusters at once on a cold cache); the
        # lock is released before anything is started, so no component inherits it.
        exec 8>"$CACHE/build.lock"
        flock 8
        check_pins
        # Version stamps, as Kubernetes' hack/lib/version.sh sets them (kubectl reads client-go's).
        local k8s="" pkg minor
        minor=$(cut -d. -f2 <<<"$K8S_VERSION")
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            k8s+="-X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=${K8S_VERSION%%.*} -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean "
        done
        go_env
        log "downloading Go modules for the control plane (cold: ~1 min) ..."
        local m
        for m in kubernetes etcd kwok; do
            run_child go -C "$SRC/$m" mod download || die "go mod download failed in tools/cluster/$m (is the Go module proxy reachable?)"
        done
        # Times with an empty Go build cache, in this order (later ones reuse the packages the earlier
        # ones compiled): the low end on 2 idle cores, the high end while other builds share them.
        go_build kube-apiserver "$SRC/kubernetes" k8s.io/kubernetes/cmd/kube-apiserver "cold: 4-11 min on 2 cores" "$k8s"
        go_build kube-controller-manager "$SRC/kubernetes" k8s.io/kubernetes/cmd/kube-controller-manager "cold: 1-3.5 min" "$k8s"
        go_build kube-scheduler "$SRC/kubernetes" k8s.io/kubernetes/cmd/kube-scheduler "cold: ~15 s" "$k8s"
        go_build kubectl "$SRC/kubernetes" k8s.io/kubernetes/cmd/kubectl "cold: 1-1.5 min" "$k8s"
        go_build etcd "$SRC/etcd" go.etcd.io/etcd/server/v3 "cold: 0.5-2 min" \
            "-X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION"
        go_build kwok "$SRC/kwok" sigs.k8s.io/kwok/cmd/kwok "cold: 1-4 min" \
            "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v$K8S_VERSION"
        build_kwok_stages
        rm -rf "$KEYDIR/tmp"
        exec 8>&-
    fi
    # Downloads the CRD modules if missing (a directory test when present).
    local set
    for set in istio cert-manager gateway-api; do crd_files "$set" >/dev/null; done
    # Drop builds for other keys (~400 MB each); the Go caches stay, so going back is a relink.
    local d
    for d in "$CACHE"/k8s-v*_etcd-v*_kwok-v*_src-*; do
        [[ -d $d && $d != "$KEYDIR" ]] || continue
        log "removing stale build $(basename "$d")"
        rm -rf "$d"
    done
}

# ------------------------------------------------------------------------------------------ processes

# Everything of one cluster lives under $STATE in these entries; `down` removes exactly these.
STATE_ENTRIES=(.cowsay-cluster .lock kubeconfig ports.env pki etcd kwok cmd pids logs)

pidfile() { printf '%s/pids/%s.pid\n' "$STATE" "$1"; }

# The pid of a running component of this state directory, or nothing. A pid file whose process is gone,
# a zombie, or another program (pid reuse) does not count: the command line must name our state dir.
component_pid() {
    local f pid stat
    f=$(pidfile "$1")
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] || return 1
    names_state "$pid" || return 1
    printf '%s\n' "$pid"
}

names_state() {   # names_state PID: the process's command line names our state directory
    tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$STATE/"
}

gone() {   # gone PID: the process no longer exists (or is a zombie waiting for its parent)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat%% *} == Z ]]
}

# stop_components NAME...: SIGTERM to each one's process group (each leads its own, by setsid), all at
# once; SIGKILL to any still there after STOP_TIMEOUT; return when all are gone.
stop_components() {
    local name pid pids=() names=() i n all_gone
    for name in "$@"; do
        if pid=$(component_pid "$name"); then
            pids+=("$pid")
            names+=("$name")
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        else
            rm -f "$(pidfile "$name")"
        fi
    done
    ((${#pids[@]})) || return 0
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        all_gone=1
        for pid in "${pids[@]}"; do gone "$pid" || { all_gone=0; break; }; done
        [[ $all_gone == 1 ]] && break
        sleep 0.1
    done
    for n in "${!pids[@]}"; do
        pid=${pids[n]}
        gone "$pid" && continue
        log "${names[n]} (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do gone "$pid" && break; sleep 0.1; done
        gone "$pid" || die "${names[n]} (pid $pid) survived SIGKILL"
    done
    # Reap our own children (inside `up`); the others are reaped by init: give that a moment, so that
    # right after `down` not even a zombie is left (pgrep by name would list it).
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        all_gone=1
        for pid in "${pids[@]}"; do [[ -e /proc/$pid ]] && { all_gone=0; break; }; done
        [[ $all_gone == 1 ]] && break
        sleep 0.1
    done
    for name in "${names[@]}"; do rm -f "$(pidfile "$name")"; done
}

stop_component() { stop_components "$1"; }

stop_all() {   # all at once: the cluster is disposable, there is no state to flush in order
    local i rev=()
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do rev+=("${COMPONENTS[i]}"); done
    stop_components "${rev[@]}"
}

start_component() {
    local name=$1 args pid
    [[ -s $STATE/cmd/$name ]] || die "no command recorded for $name in $STATE (run 'up' first)"
    mapfile -t args <"$STATE/cmd/$name"
    mkdir -p "$STATE/logs" "$STATE/pids"
    printf '\n===== %s starting %s\n' "$(date '+%F %T')" "$name" >>"$STATE/logs/$name.log"
    # setsid: its own session and process group, so Ctrl-C in the calling terminal does not reach it
    # and it outlives this shell. Only stdin/stdout/stderr (the log) are passed on: every other open fd
    # is closed first (the state-dir lock, our stdout kept on fd 5, and whatever the caller passed: a
    # caller reading `up` through a pipe must see it close when `up` exits).
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        KWOK_WORKDIR=$STATE/kwok exec setsid "${args[@]}"
    ) </dev/null >>"$STATE/logs/$name.log" 2>&1 &
    pid=$!
    # Until the subshell has closed its fds and exec'd, /proc/$pid/cmdline is this script's, which
    # component_pid would not recognise: a busy machine made that window long enough for wait_until to
    # report a component "exited" before it had started. Return once the component's own command runs
    # (or it is gone: then wait_until reports it, with its log). Our child: its pid cannot be reused
    # before we reap it.
    local i
    for ((i = 0; i < 200; i++)); do
        names_state "$pid" && break
        gone "$pid" && break
        sleep 0.05
    done
    printf '%s\n' "$pid" >"$(pidfile "$name")"
}

log_tail() {
    printf -- '----- last lines of %s\n' "$STATE/logs/$1.log" >&2
    tail -n "${2:-25}" "$STATE/logs/$1.log" >&2 2>/dev/null || true
    printf -- '-----\n' >&2
}

# wait_until NAME DESCRIPTION COMMAND...: poll COMMAND until it succeeds (status 0). Status 1, with the
# reason in WAIT_ERROR, if component NAME dies or TIMEOUT passes. No subshell: a signal to this script
# must reach its traps within a poll interval.
WAIT_ERROR=
wait_until() {
    local name=$1 what=$2 deadline=$((SECONDS + TIMEOUT))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! component_pid "$name" >/dev/null; then
            WAIT_ERROR="$name exited while waiting for $what"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            WAIT_ERROR="timed out after ${TIMEOUT}s waiting for $what (COWSAY_CLUSTER_TIMEOUT)"
            return 1
        fi
        sleep 0.2
    done
}

# ------------------------------------------------------------------------------------------- configs

free_ports() {   # free_ports N: N distinct free TCP ports on 127.0.0.1 (held open together while chosen)
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

make_pki() {
    local pki=$STATE/pki
    mkdir -p "$pki"
    (
        cd "$pki"
        # EC P-256 keys: fast to make, accepted for serving, client and service-account signing.
        openssl ecparam -name prime256v1 -genkey -noout -out ca.key
        openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj '/CN=cowsay-bluegreen-local-ca' -out ca.crt
        openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key
        cat >apiserver.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:127.96.0.1
EOF
        openssl req -new -key apiserver.key -subj '/CN=kube-apiserver' -out apiserver.csr
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
            -extfile apiserver.ext -out apiserver.crt
        openssl ecparam -name prime256v1 -genkey -noout -out sa.key
        openssl ec -in sa.key -pubout -out sa.pub
        # The static token of the admin user: in system:masters, so cluster-admin without any RBAC object.
        printf '%s,admin,admin,system:masters\n' "$(openssl rand -hex 24)" >tokens.csv
        chmod 600 ./*.key tokens.csv
    ) 2>"$STATE/logs/openssl.log" || { log_tail openssl; die "making certificates with openssl failed"; }
}

write_kubeconfig() {
    local token
    token=$(cut -d, -f1 "$STATE/pki/tokens.csv")
    cat >"$STATE/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cowsay-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$STATE/pki/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: cowsay-local
  context: {cluster: cowsay-local, user: admin, namespace: default}
current-context: cowsay-local
EOF
    chmod 600 "$STATE/kubeconfig.tmp"
    mv "$STATE/kubeconfig.tmp" "$STATE/kubeconfig"
}

# One argument per line in $STATE/cmd/<component>: `start` and `restart` replay exactly these.
write_commands() {
    local s=$STATE pki=$STATE/pki kc=$STATE/kubeconfig
    mkdir -p "$s/cmd"
    printf '%s\n' "$BIN/etcd" --name=default --data-dir="$s/etcd" \
        --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
        --unsafe-no-fsync=true --log-level=warn >"$s/cmd/etcd"
    printf '%s\n' "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --cert-dir="$pki/apiserver" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --service-cluster-ip-range=127.96.0.0/16 --endpoint-reconciler-type=none --allow-privileged=true \
        --shutdown-send-retry-after=true --profiling=false >"$s/cmd/apiserver"
    printf '%s\n' "$BIN/kube-controller-manager" --kubeconfig="$kc" \
        --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" --authentication-skip-lookup=true \
        --bind-address=127.0.0.1 --secure-port="$CONTROLLER_MANAGER_PORT" --cert-dir="$pki/controller-manager" \
        --leader-elect=false --controllers='*,-nodeipam' --node-monitor-grace-period=1h \
        --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --profiling=false >"$s/cmd/controller-manager"
    printf '%s\n' "$BIN/kube-scheduler" --kubeconfig="$kc" \
        --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" --authentication-skip-lookup=true \
        --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$pki/scheduler" \
        --leader-elect=false --profiling=false >"$s/cmd/scheduler"
    printf '%s\n' "$BIN/kwok" --kubeconfig="$kc" --config="$KWOK_STAGES" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --cidr=10.244.0.0/16 --node-ip=127.0.0.1 --server-address="127.0.0.1:$KWOK_PORT" >"$s/cmd/kwok"
}

load_ports() {
    [[ -s $STATE/ports.env ]] || return 1
    # shellcheck disable=SC1091
    source "$STATE/ports.env"
}

pick_ports() {
    local p
    read -ra p <<<"$(free_ports 6)"
    ((${#p[@]} == 6)) || die "could not find free ports (python3 is needed)"
    ETCD_PORT=${p[0]} ETCD_PEER_PORT=${p[1]} APISERVER_PORT=${p[2]}
    CONTROLLER_MANAGER_PORT=${p[3]} SCHEDULER_PORT=${p[4]} KWOK_PORT=${p[5]}
    declare -p ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT KWOK_PORT \
        | sed 's/^declare -- //' >"$STATE/ports.env"
}

# ------------------------------------------------------------------------------------------- health

KUBECTL() { "$BIN/kubectl" --kubeconfig="$STATE/kubeconfig" --request-timeout=10s "$@"; }

healthy() {   # healthy COMPONENT: its own health endpoint answers ok
    case "$1" in
        etcd) curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"' ;;
        apiserver)
            curl -fsS --max-time 3 --cacert "$STATE/pki/ca.crt" \
                -H "Authorization: Bearer $(cut -d, -f1 "$STATE/pki/tokens.csv")" \
                "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok ;;
        controller-manager) curl -fsSk --max-time 3 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz" | grep -qx ok ;;
        scheduler) curl -fsSk --max-time 3 "https://127.0.0.1:$SCHEDULER_PORT/healthz" | grep -qx ok ;;
        kwok) curl -fsS --max-time 3 "http://127.0.0.1:$KWOK_PORT/healthz" | grep -qx ok ;;
    esac
}

# start_and_wait COMPONENT: start it, wait for its health endpoint. A port taken between our choice and
# the component's bind (another cluster starting at the same moment) gets a new port, up to 3 times.
start_and_wait() {
    local name=$1 try
    for try in 1 2 3; do
        start_component "$name"
        wait_until "$name" "$name to become healthy" healthy "$name" && return 0
        if ! component_pid "$name" >/dev/null && ((try < 3)) \
            && tail -n 20 "$STATE/logs/$name.log" | grep -q 'address already in use'; then
            log "$name: its port was taken meanwhile; choosing a new one"
            repick_port "$name"
            continue
        fi
        log_tail "$name"
        die "$WAIT_ERROR"
    done
}

repick_port() {
    local p var
    read -r p <<<"$(free_ports 1)"
    case "$1" in
        etcd) var=ETCD_PORT; ETCD_PEER_PORT=$(free_ports 1) ;;
        apiserver) var=APISERVER_PORT ;;
        controller-manager) var=CONTROLLER_MANAGER_PORT ;;
        scheduler) var=SCHEDULER_PORT ;;
        kwok) var=KWOK_PORT ;;
    esac
    printf -v "$var" '%s' "$p"
    declare -p ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT KWOK_PORT \
        | sed 's/^declare -- //' >"$STATE/ports.env"
    write_kubeconfig
    write_commands
}

nodes_manifest() {
    local i
    for ((i = 0; i < NODES; i++)); do
        cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake            # kwok --manage-nodes-with-annotation-selector picks these
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    topology.kubernetes.io/zone: zone-$((i % 2))
EOF
    done
}

default_sa_exists() { KUBECTL -n default get serviceaccount default -o name; }
nodes_ready() {
    local ready
    ready=$(KUBECTL get nodes -l type=kwok \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
    ((ready >= NODES))
}

running_components() {   # prints the components of $STATE that run
    local c
    for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null && printf '%s\n' "$c"; done
    return 0
}

cluster_ready() {
    load_ports 2>/dev/null || return 1
    [[ $(running_components | wc -l) == "${#COMPONENTS[@]}" ]] || return 1
    healthy apiserver
}

lock_state() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another cluster.sh holds $STATE/.lock"
}

remove_state() {   # remove_state [ENTRY-TO-KEEP...]: our entries only, then the directory if empty
    local e k
    for e in "${STATE_ENTRIES[@]}"; do
        for k in "$@"; do [[ $e == "$k" ]] && continue 2; done
        rm -rf "${STATE:?}/$e"
    done
    rmdir "$STATE" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------- up

UP_OWNS=0   # 1 once this `up` has started replacing the state dir's cluster
UP_DONE=0
up_abort() {   # EXIT trap of `up`: stop whatever this run started
    local rc=$?
    trap - EXIT INT TERM
    exec 1>&5 2>&6
    kill_child
    if [[ $UP_OWNS == 1 && $UP_DONE == 0 ]]; then
        # The cluster is being thrown away: no long grace (an API server still starting up can take
        # 15 s or more to honour SIGTERM).
        STOP_TIMEOUT=3
        stop_all || true
        if [[ $rc == 130 || $rc == 143 ]]; then
            log "interrupted: stopped everything this 'up' started and removed $STATE"
            remove_state
        else
            log "failed: stopped everything this 'up' started; logs are in $STATE/logs ('down' removes them)"
        fi
    fi
    exit "$rc"
}

cmd_up() {
    trap up_abort EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local start=$SECONDS
    ensure
    lock_state
    if cluster_ready; then
        log "already running and ready: $STATE (use 'down' first for a fresh one)"
        UP_DONE=1
        return 0
    fi
    if [[ -n $(running_components) ]]; then
        log "a partly running cluster in $STATE ($(running_components | paste -sd, -)): stopping it, starting afresh"
    fi
    UP_OWNS=1
    stop_all
    remove_state .lock
    : >"$STATE/.cowsay-cluster"
    mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/kwok"
    pick_ports
    make_pki
    write_kubeconfig
    write_commands
    log "starting etcd v$ETCD_VERSION on 127.0.0.1:$ETCD_PORT ..."
    start_and_wait etcd
    log "starting kube-apiserver v$K8S_VERSION on 127.0.0.1:$APISERVER_PORT (~5 s) ..."
    start_and_wait apiserver
    log "starting kube-controller-manager, kube-scheduler, kwok ..."
    start_and_wait controller-manager
    start_and_wait scheduler
    start_and_wait kwok
    log "creating $NODES fake nodes ..."
    nodes_manifest | KUBECTL apply -f - >"$STATE/logs/nodes.log" 2>&1 || { log_tail nodes; die "creating the nodes failed"; }
    wait_until kwok "$NODES Ready nodes" nodes_ready || { log_tail kwok; die "$WAIT_ERROR"; }
    wait_until controller-manager "the default ServiceAccount" default_sa_exists \
        || { log_tail controller-manager; die "$WAIT_ERROR"; }
    UP_DONE=1
    trap - EXIT INT TERM
    log "ready in $((SECONDS - start)) s: API server https://127.0.0.1:$APISERVER_PORT, state $STATE"
    log "use: eval \"\$(scripts/cluster.sh env)\"; kubectl get nodes"
}

# ------------------------------------------------------------------------------------- other commands

cmd_down() {
    local keep=${1:-}
    [[ -z $keep || $keep == --keep-logs ]] || die "usage: scripts/cluster.sh down [--keep-logs]"
    [[ -d $STATE ]] || { log "nothing to stop: $STATE does not exist"; return 0; }
    lock_state
    local running
    running=$(running_components | paste -sd' ' -)
    [[ -n $running ]] && log "stopping $running ..."
    stop_all
    remove_state ${keep:+logs}
    log "down: $STATE${keep:+ (logs kept in $STATE/logs)}"
}

check_component() {
    local c
    for c in "${COMPONENTS[@]}"; do [[ $1 == "$c" ]] && return 0; done
    die "unknown component '$1' (${COMPONENTS[*]})"
}

cmd_stop_start() {   # cmd_stop_start stop|start|restart COMPONENT
    local action=$1 name=${2:-}
    [[ -n $name ]] || die "usage: scripts/cluster.sh $action COMPONENT (${COMPONENTS[*]})"
    check_component "$name"
    [[ -f $STATE/.cowsay-cluster ]] || die "no cluster in $STATE (run 'up' first)"
    lock_state
    load_ports || die "no ports recorded in $STATE"
    if [[ $action != start ]]; then
        log "stopping $name ..."
        stop_component "$name"
    fi
    if [[ $action != stop ]]; then
        component_pid "$name" >/dev/null && { log "$name is already running"; return 0; }
        log "starting $name ..."
        start_component "$name"
        wait_until "$name" "$name to become healthy" healthy "$name" || { log_tail "$name"; die "$WAIT_ERROR"; }
        log "$name is healthy"
    fi
}

# shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
print_env() {
    [[ -f $STATE/kubeconfig ]] || log "note: no cluster in $STATE yet (run 'scripts/cluster.sh up')"
    printf 'export KUBECONFIG=%q\n' "$STATE/kubeconfig"
    printf 'export PATH=%q"${PATH:+:$PATH}"\n' "$BIN"
}

cmd_status() {
    log "versions: kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION"
    if [[ -x $BIN/kube-apiserver ]]; then log "build: $KEYDIR"; else log "build: missing (scripts/cluster.sh build)"; fi
    log "state: $STATE"
    load_ports 2>/dev/null || { log "not running (no cluster in this state directory)"; return 1; }
    local c pid port
    for c in "${COMPONENTS[@]}"; do
        case $c in
            etcd) port=$ETCD_PORT ;; apiserver) port=$APISERVER_PORT ;;
            controller-manager) port=$CONTROLLER_MANAGER_PORT ;; scheduler) port=$SCHEDULER_PORT ;; kwok) port=$KWOK_PORT ;;
        esac
        if pid=$(component_pid "$c"); then
            if healthy "$c"; then log "  $c: running, healthy (pid $pid, 127.0.0.1:$port)"
            else log "  $c: running, NOT healthy (pid $pid, 127.0.0.1:$port)"; fi
        else
            log "  $c: stopped"
        fi
    done
    cluster_ready || { log "not ready"; return 1; }
    KUBECTL get nodes >&2 || true
    log "ready; kubeconfig: $STATE/kubeconfig"
}

cmd_apply_crds() {
    local sets=("$@") files=() set names
    ((${#sets[@]})) || sets=(istio cert-manager gateway-api)
    cluster_ready || die "the cluster in $STATE is not running (scripts/cluster.sh up)"
    local out
    for set in "${sets[@]}"; do
        out=$(crd_files "$set") || exit 1
        mapfile -t -O "${#files[@]}" files <<<"$out"
    done
    log "applying ${#files[@]} files (${sets[*]}) ..."
    local args=() f
    for f in "${files[@]}"; do args+=(-f "$f"); done
    names=$(KUBECTL apply --server-side --force-conflicts --field-manager=cowsay-cluster -o name "${args[@]}") \
        || die "kubectl apply of the CRDs failed"
    names=$(grep '^customresourcedefinition' <<<"$names" || true)
    [[ -n $names ]] || die "no CRDs in ${files[*]}"
    # shellcheck disable=SC2086
    KUBECTL wait --for=condition=Established --timeout="${TIMEOUT}s" $names >/dev/null \
        || die "CRDs not Established within ${TIMEOUT}s"
    log "$(wc -l <<<"$names") CRDs Established"
}

cmd_clean() {
    local go=${1:-}
    [[ -z $go || $go == --go ]] || die "usage: scripts/cluster.sh clean [--go]"
    if [[ -d $CACHE/run/default ]]; then STATE=$CACHE/run/default cmd_down; fi
    log "removing $CACHE"
    rm -rf "$CACHE"
    if [[ $go == --go ]]; then
        log "removing the shared Go caches $GO_CACHE"
        chmod -R u+w "$GO_CACHE" 2>/dev/null || true   # the Go module cache is read-only
        rm -rf "$GO_CACHE"
    fi
}

cmd=${1:-help}
[[ $# -gt 0 ]] && shift
case "$cmd" in
    build)
        trap 'kill_child; exit 130' INT
        trap 'kill_child; exit 143' TERM
        start=$SECONDS
        ensure
        log "ready in $((SECONDS - start)) s: $BIN"
        log "kubectl: $("$BIN/kubectl" version --client 2>/dev/null | head -1)"
        ;;
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    env) ensure; print_env ;;
    status) cmd_status ;;
    crds)
        bundle=0
        [[ ${1:-} == --bundle ]] && { bundle=1; shift; }
        (($#)) || set -- istio cert-manager gateway-api
        for s in "$@"; do
            if [[ $bundle == 1 ]]; then crd_bundle "$s"; else crd_files "$s"; fi
        done
        ;;
    apply-crds) ensure; cmd_apply_crds "$@" ;;
    stop | start | restart) cmd_stop_start "$cmd" "$@" ;;
    clean) cmd_clean "$@" ;;
    help | -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$cmd' (try: build, up, down, env, status, crds, apply-crds, restart, clean, help)"
        ;;
esac
