#!/usr/bin/env bash
# cluster.sh — a local Kubernetes control plane without containers, for cowsay-bluegreen's end-to-end
# tests and demo: a thin wrapper around kwok's own `kwokctl --runtime binary`.
#
# The machines this project runs on reach package registries only (no Docker, no GitHub downloads), so
# kind/k3d/minikube are out, and so are kwokctl's downloads: scripts/cluster-build.sh builds the
# components (Kubernetes, etcd, kwok, kwokctl, istiod) from the Go module proxy into a cache outside git.
#
# `up` is `kwokctl create cluster` with those binaries (plain paths: kwokctl links them, downloads
# nothing) and tools/cluster/kwokctl.yaml (the few flags the tests need, each with its reason; the CA
# for signing CertificateSigningRequests is given on the command line, its path is per cluster), then
# `kwokctl scale node`; it returns once every component is healthy, the nodes are Ready and the
# `default` ServiceAccount exists. kwokctl makes the certificates, picks the ports, starts the processes
# (they outlive this shell), writes kwok's stages; `down` is `kwokctl delete cluster`. The state
# directory is kwokctl's work directory (KWOK_WORKDIR), so clusters in different directories run side by
# side. What kwokctl's command line cannot do, stopping and starting a single component, is a small shim
# below (stop_component, start_component).
#
# Usage:
#   scripts/cluster.sh build                  build what is missing, download the CRD modules
#   scripts/cluster.sh built                  exit 0 if everything is built; else print what `build`
#                                             would build, one "<piece> (cold: <time>)" line each, exit 1
#   scripts/cluster.sh up                     build if needed, start the cluster, wait until it is ready;
#                                             with COWSAY_CLUSTER_ISTIOD=1 also apply the CRDs and start
#                                             istiod (scripts/istiod.sh: xDS and its webhook on loopback)
#   eval "$(scripts/cluster.sh env)"          export KUBECONFIG, PATH (the matching kubectl, cowsay-xds)
#                                             and, with istiod, COWSAY_XDS_ADDRESS (its plaintext xDS)
#   scripts/cluster.sh status                 what runs; exit 0 only if the cluster is up and ready
#   scripts/cluster.sh crds [NAME...]         print the CRD files of the pinned versions, one per line
#   scripts/cluster.sh crds --bundle [NAME...]  one file per set instead (all its files concatenated; for
#                                             gateway-api the same objects as its standard-install.yaml)
#   scripts/cluster.sh apply-crds [NAME...]   server-side apply them and wait until Established
#                                             NAME: istio, cert-manager, gateway-api (default: all three)
#   scripts/cluster.sh restart COMPONENT      stop one component and start it again (same port, same data)
#   scripts/cluster.sh stop|start COMPONENT   the two halves, e.g. to keep the API server away a while
#                                             COMPONENT: etcd, apiserver, controller-manager, scheduler, kwok,
#                                             istiod (same ports: its webhook's URL stays valid)
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
#   COWSAY_CLUSTER_ISTIOD   1: `up` starts istiod too (default 0)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tools/cluster
CACHE=${COWSAY_CLUSTER_CACHE:-$HOME/.cache/cowsay-bluegreen/cluster}
GO_CACHE=${COWSAY_GO_CACHE:-$HOME/.cache/cowsay-bluegreen/go}
# Absolute and without a trailing slash: kwokctl names its processes by paths under it.
STATE=$(realpath -ms -- "${COWSAY_CLUSTER_STATE:-$CACHE/run/default}")
JOBS=${COWSAY_CLUSTER_JOBS:-2}
NODES=${COWSAY_CLUSTER_NODES:-2}
TIMEOUT=${COWSAY_CLUSTER_TIMEOUT:-90}
ISTIOD=${COWSAY_CLUSTER_ISTIOD:-0}
STOP_TIMEOUT=15                         # seconds between SIGTERM and SIGKILL when stopping one component
NAME=cowsay                             # the kwokctl cluster; unique per state directory
W=$STATE/clusters/$NAME                 # its directory: kwok.yaml, kubeconfig.yaml, pki, etcd, logs, pids, bin
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)   # kwokctl's names

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

for v in NODES TIMEOUT JOBS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "COWSAY_CLUSTER_$v is '${!v}'; allowed: a whole number of 1 or more"
done
[[ $ISTIOD == [01] ]] || die "COWSAY_CLUSTER_ISTIOD is '$ISTIOD'; allowed: 0 or 1"
# The pinned versions, the cache keys and the build (BIN, ISTIOD_BIN, ensure, cmd_built, crd_files):
# scripts/cluster-build.sh, which kwokctl cannot do for us here.
# shellcheck source=scripts/cluster-build.sh
source "$ROOT/scripts/cluster-build.sh"
KUBECTL=("$BIN/kubectl" "--kubeconfig=$W/kubeconfig.yaml" --request-timeout=10s)

# Long commands run in the background and are waited for, so that a signal to this script alone (not to
# its process group) reaches the traps at once and can be passed on to the command.
CHILD=
run_child() {
    "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}
kill_child() { [[ -n $CHILD ]] && kill "$CHILD" 2>/dev/null; return 0; }

# ------------------------------------------------------------------------------------------ kwokctl

# Before anything that starts components: close every descriptor but stdin, stdout and stderr. Go does not
# close inherited descriptors when kwokctl forks the components, and a component holding the caller's
# pipe (Node's execFileSync waits for it to close) or our lock would keep it open for its whole life.
close_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# kwokctl for this state directory, as a child we wait for (see run_child). Our kubectl comes first on
# PATH, which kwokctl searches before it would download one; KWOK_KUBECTL_BINARY, a plain path, is the
# fallback (kwokctl links paths, downloads only URLs).
kwokctl_exec() {
    close_fds
    KWOK_WORKDIR=$STATE PATH=$BIN:$PATH KWOK_KUBECTL_BINARY=$BIN/kubectl exec "$BIN/kwokctl" --name "$NAME" --v=WARN "$@" </dev/null
}
kwokctl() { run_child kwokctl_exec "$@"; }

# istiod runs beside kwokctl's components, from its own small script (scripts/istiod.sh); with no
# descriptor of ours, so that it holds neither a caller's pipe nor a lock.
istiod_sh() {
    (close_fds; W=$W ISTIOD_BIN=$ISTIOD_BIN CACHE=$CACHE BIN=$BIN TIMEOUT=$TIMEOUT exec "$ROOT/scripts/istiod.sh" "$@")
}

component() {   # our component names (the verbs' and the tests') to kwokctl's; bad input ends here
    case $1 in
        etcd) echo etcd ;;
        apiserver | kube-apiserver) echo kube-apiserver ;;
        controller-manager | kube-controller-manager) echo kube-controller-manager ;;
        scheduler | kube-scheduler) echo kube-scheduler ;;
        kwok | kwok-controller) echo kwok-controller ;;
        istiod) echo istiod ;;
        *) die "unknown component '$1'; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod" ;;
    esac
}

# The pid of a running component, from kwokctl's pid file, or nothing. A pid counts only if that process
# runs the cluster's own binary ($W/bin/<component>): not a zombie, not another program after pid reuse.
component_pid() {
    local f=$W/pids/$1.pid pid a0
    [[ -s $f ]] && pid=$(<"$f") && [[ $pid =~ ^[0-9]+$ ]] || return 1
    IFS= read -r -d '' a0 <"/proc/$pid/cmdline" 2>/dev/null && [[ $a0 == "$W/bin/$1" ]] || return 1
    printf '%s\n' "$pid"
}

# kwokctl trusts its pid files (kill -0, then SIGKILL): after a reboot or a crash a stale one may name an
# unrelated process by now. Remove those before kwokctl acts on them.
forget_stale_pids() {
    local f
    for f in "$W"/pids/*.pid; do
        [[ -e $f ]] || continue
        component_pid "$(basename "$f" .pid)" >/dev/null || rm -f "$f"
    done
}

# kwokctl stops with SIGKILL and does not wait (the processes are not its children). Wait until every
# process running one of the cluster's binaries is gone, so that nothing is left when `down` returns;
# SIGKILL any kwokctl did not know of (one forked just before a kwokctl that was starting it was killed).
wait_gone() {
    local i p a0 pids
    for ((i = 0; i < 50; i++)); do
        pids=
        for p in /proc/[0-9]*; do
            IFS= read -r -d '' a0 <"$p/cmdline" 2>/dev/null && [[ $a0 == "$W/bin/"* ]] && pids+=" ${p#/proc/}"
        done
        [[ -n $pids ]] || return 0
        # shellcheck disable=SC2086 # one pid per word
        ((i == 20)) && kill -KILL $pids 2>/dev/null
        sleep 0.1
    done
    die "processes of $W survived SIGKILL:$pids"
}

healthy() {   # healthy COMPONENT: its own health endpoint answers ok (ports from its command line)
    local pid args url
    pid=$(component_pid "$1") || return 1
    [[ $1 == kube-apiserver ]] && { [[ $("${KUBECTL[@]}" get --raw /readyz 2>/dev/null) == ok ]]; return; }
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline")
    case $1 in
        etcd) url=$(sed -n 's/^--listen-client-urls=//p' <<<"$args")/health ;;
        kwok-controller) url=http://$(sed -n 's/^--server-address=//p' <<<"$args")/healthz ;;
        *) url=https://127.0.0.1:$(sed -n 's/^--secure-port=//p' <<<"$args")/healthz ;;
    esac
    [[ $(curl -fsSk --max-time 3 "$url" 2>/dev/null) =~ ^ok$|\"health\":\"true\" ]]
}

log_tail() {
    printf -- '----- last lines of %s\n' "$W/logs/$1.log" >&2
    tail -n "${2:-25}" "$W/logs/$1.log" >&2 2>/dev/null || true
    printf -- '-----\n' >&2
}

wait_healthy() {   # wait_healthy COMPONENT: until healthy; fails with its log if it exits or TIMEOUT passes
    local deadline=$((SECONDS + TIMEOUT))
    until healthy "$1"; do
        component_pid "$1" >/dev/null || { log_tail "$1"; die "$1 exited while starting"; }
        ((SECONDS < deadline)) || { log_tail "$1"; die "$1 not healthy after ${TIMEOUT}s (COWSAY_CLUSTER_TIMEOUT)"; }
        sleep 0.2
    done
}

cluster_ready() {
    local c
    for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null || return 1; done
    healthy kube-apiserver
}

lock_state() {   # serialises up, down, stop|start|restart on one state directory
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another cluster.sh holds $STATE/.lock"
}

remove_state() {   # what kwokctl may have left, our lock, then the directory if empty
    rm -rf "$W" "$STATE/.lock"
    rmdir "$STATE/clusters" "$STATE" 2>/dev/null || true
}

teardown() {
    istiod_sh kill || true
    release_ports
    forget_stale_pids
    # --kubeconfig: the file kwokctl removes the cluster's context from (by default ~/.kube/config, which
    # `create --kubeconfig ""` left alone); it takes no empty value.
    kwokctl delete cluster --kubeconfig "$W/kubeconfig.yaml" || log "kwokctl delete cluster failed; stopping what is left"
    wait_gone
}

# --- The shim: one component at a time. kwokctl 0.8's command line stops and starts whole clusters only
# (its runtime's StopComponent/StartComponent are internal, used by snapshots). Tests stop kwok to keep a
# Deployment waiting, and restart only the API server under a waiting update. `stop` ends the process
# kwokctl's pid file names, with SIGTERM rather than kwokctl's SIGKILL so the API server shuts down as in
# a real restart, and keeps its command line; `start` runs exactly that again the way kwokctl does
# (own session, in the cluster directory, output to its log, pid in its pid file). A component that
# stopped by itself has no kept command line: `kwokctl start cluster` starts it (and any other stopped one).
#
# While a component is stopped, nothing listens on its ports, and kwokctl creating another cluster (it
# scans down from 32767 for a port nothing listens on) took a stopped kwok's port, which then could not
# start again ("address already in use"). So its ports stay held by a placeholder listener (perl, from
# Debian's perl-base) from the stop until the start.
listening_ports() {   # listening_ports PID: the TCP ports the process listens on
    ss -Hltnp | awk -v pid="pid=$1," 'index($0, pid) { n = split($4, a, ":"); print a[n] }' | sort -u
}
hold_ports() {   # hold_ports COMPONENT PORT...: a placeholder of our own listens on them until release_ports
    local c=$1
    shift
    (($#)) || return 0
    mkdir -p "$W/holders"
    # shellcheck disable=SC2016 # perl's own variables
    (close_fds; exec setsid perl -MIO::Socket::INET -e \
        'my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $_, Listen => 1) } @ARGV; sleep' "$@") \
        </dev/null >/dev/null 2>&1 &
    printf '%s\n' "$!" >"$W/holders/$c.pid"
}
release_ports() {   # release_ports [COMPONENT]: stop its placeholder (all of them without one)
    local f pid i
    for f in "$W/holders/"${1:-*}.pid; do
        [[ -s $f ]] || continue
        pid=$(<"$f")
        kill -TERM "$pid" 2>/dev/null || true
        # Gone, or a zombie (its parent, cluster.sh's `stop`, exited long ago; whoever reaps it does so later).
        for ((i = 0; i < 50; i++)); do
            [[ $(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null) =~ ^(Z|X|)$ ]] && break
            sleep 0.02
        done
        rm -f "$f"
    done
}

stop_component() {
    local pid i
    pid=$(component_pid "$1") || { log "$1 is not running"; return 0; }
    cp "/proc/$pid/cmdline" "$W/pids/$1.cmdline"
    local ports
    mapfile -t ports < <(listening_ports "$pid")
    kill -TERM "$pid"
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do component_pid "$1" >/dev/null || break; sleep 0.1; done
    if component_pid "$1" >/dev/null; then
        log "$1 (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM: SIGKILL"
        kill -KILL "$pid"
    fi
    rm -f "$W/pids/$1.pid"
    hold_ports "$1" "${ports[@]}"
}

start_component() {
    local args i
    if [[ -s $W/pids/$1.cmdline ]]; then
        mapfile -d '' -t args <"$W/pids/$1.cmdline"
        release_ports "$1"
        (close_fds; cd "$W" && KWOK_WORKDIR=$STATE exec setsid "${args[@]}") </dev/null >>"$W/logs/$1.log" 2>&1 &
        printf '%s' "$!" >"$W/pids/$1.pid"   # no newline: kwokctl parses the whole file as a number
        rm -f "$W/pids/$1.cmdline"
        # Until the subshell has closed its descriptors and exec'd, the pid does not run our binary yet.
        for ((i = 0; i < 200; i++)); do component_pid "$1" >/dev/null && break; sleep 0.05; done
    else
        forget_stale_pids
        release_ports
        kwokctl start cluster --timeout "${TIMEOUT}s"
    fi
    wait_healthy "$1"
}

# ---------------------------------------------------------------------------------------------- up

UP_OWNS=0   # 1 once this `up` has started replacing the state dir's cluster
UP_DONE=0
up_abort() {   # EXIT trap of `up`: stop whatever this run started
    local rc=$? i
    trap - EXIT INT TERM
    if [[ -n $CHILD ]]; then   # kwokctl (or a build) still running: let it stop, briefly
        kill_child
        for ((i = 0; i < 30; i++)); do [[ -e /proc/$CHILD ]] || break; sleep 0.1; done
        kill -KILL "$CHILD" 2>/dev/null || true
        CHILD=
    fi
    if [[ $UP_OWNS == 1 && $UP_DONE == 0 ]]; then
        if [[ $rc == 130 || $rc == 143 ]]; then
            teardown || true
            remove_state
            log "interrupted: stopped everything this 'up' started and removed $STATE"
        else
            istiod_sh stop || true
            forget_stale_pids
            kwokctl stop cluster || true
            wait_gone || true
            log "failed: stopped everything this 'up' started; logs are in $W/logs ('down' removes them)"
        fi
    fi
    exit "$rc"
}

cmd_up() {
    trap up_abort EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local start=$SECONDS c
    ensure
    lock_state
    if cluster_ready; then
        log "already running and ready: $STATE (use 'down' first for a fresh one)"
        UP_DONE=1
        ((ISTIOD == 0)) || istiod_sh pid >/dev/null || { cmd_apply_crds; istiod_sh start; }
        return 0
    fi
    UP_OWNS=1
    if [[ -e $W ]]; then
        log "a cluster in $STATE that is not ready: deleting it, starting afresh"
        teardown
    fi
    log "kwokctl create cluster: kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION, kwok v$KWOK_VERSION (~10 s) ..."
    # kwokctl picks each port by probing for a free one, and the component binds it only later: two
    # clusters created at once (the fleet's three, suites run side by side) took the same ports. One
    # create at a time on this machine, until its components listen. fd 7 is closed for kwokctl, so no
    # component inherits the lock.
    exec 7>"$CACHE/create.lock"
    flock -w $((TIMEOUT * 2)) 7 || die "another cluster.sh has held $CACHE/create.lock for $((TIMEOUT * 2)) s"
    kwokctl create cluster --config "$SRC/kwokctl.yaml" --runtime binary \
        --kubeconfig "" --timeout "${TIMEOUT}s" \
        --etcd-binary "$BIN/etcd" --kube-apiserver-binary "$BIN/kube-apiserver" \
        --kube-controller-manager-binary "$BIN/kube-controller-manager" \
        --kube-scheduler-binary "$BIN/kube-scheduler" --kwok-controller-binary "$BIN/kwok" \
        --extra-args "kube-controller-manager=cluster-signing-cert-file=$W/pki/ca.crt" \
        --extra-args "kube-controller-manager=cluster-signing-key-file=$W/pki/ca.key" \
        7>&- || die "kwokctl create cluster failed"
    for c in "${COMPONENTS[@]}"; do wait_healthy "$c"; done
    exec 7>&-
    log "kwokctl scale node --replicas $NODES ..."
    # Node addresses on loopback: the API server's log/exec calls to a node then fail at once.
    kwokctl scale node --replicas "$NODES" --param '.nodeIPs=["127.0.0.1"]' || die "kwokctl scale node failed"
    run_child "${KUBECTL[@]}" wait --for=condition=Ready nodes --all --timeout="${TIMEOUT}s" >/dev/null \
        || { log_tail kwok-controller; die "the nodes are not Ready after ${TIMEOUT}s"; }
    # The ServiceAccount admission plugin rejects pods until the controller manager has made this one.
    run_child "${KUBECTL[@]}" wait --for=create -n default serviceaccount/default --timeout="${TIMEOUT}s" >/dev/null \
        || { log_tail kube-controller-manager; die "no default ServiceAccount after ${TIMEOUT}s"; }
    # In the background and waited for, so that a signal stops it at once (run_child).
    if ((ISTIOD)); then cmd_apply_crds; run_child istiod_sh start || exit 1; fi
    UP_DONE=1
    trap - EXIT INT TERM
    log "ready in $((SECONDS - start)) s: $("${KUBECTL[@]}" config view -o jsonpath='{.clusters[0].cluster.server}'), state $STATE"
    log "use: eval \"\$(scripts/cluster.sh env)\"; kubectl get nodes"
}

# ------------------------------------------------------------------------------------- other commands

cmd_down() {
    local keep=${1:-}
    [[ -z $keep || $keep == --keep-logs ]] || die "down takes --keep-logs or nothing, not '$keep'"
    [[ -d $STATE ]] || { log "nothing to stop: $STATE does not exist"; return 0; }
    lock_state
    # kwokctl delete removes the cluster's directory, logs included.
    if [[ -n $keep && -d $W/logs ]]; then rm -rf "$STATE/logs"; cp -r "$W/logs" "$STATE/logs"; fi
    [[ -e $W ]] && teardown
    remove_state
    log "down: $STATE${keep:+ (logs kept in $STATE/logs)}"
}

cmd_stop_start() {   # cmd_stop_start stop|start|restart COMPONENT
    local action=$1 name
    [[ -n ${2:-} ]] || die "$action needs a COMPONENT: etcd, apiserver, controller-manager, scheduler, kwok"
    name=$(component "$2")
    [[ -s $W/kwok.yaml ]] || die "no cluster in $STATE (run 'up' first)"
    lock_state
    if [[ $name == istiod ]]; then
        [[ $action == start ]] || { log "stopping istiod ..."; istiod_sh stop; }
        # A cluster `up` started without istiod lacks the CRDs istiod needs.
        [[ $action == stop || -d $W/istiod ]] || cmd_apply_crds
        [[ $action == stop ]] || istiod_sh start
        return 0
    fi
    [[ $action == start ]] || { log "stopping $name ..."; stop_component "$name"; }
    if [[ $action != stop ]]; then
        component_pid "$name" >/dev/null && { log "$name is already running"; return 0; }
        log "starting $name ..."
        start_component "$name"
        log "$name is healthy"
    fi
}

# shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
print_env() {
    [[ -f $W/kubeconfig.yaml ]] || log "note: no cluster in $STATE yet (run 'scripts/cluster.sh up')"
    printf 'export KUBECONFIG=%q\n' "$W/kubeconfig.yaml"
    printf 'export PATH=%q:%q"${PATH:+:$PATH}"\n' "$BIN" "$ISTIOD_BIN"
    istiod_sh env
}

cmd_status() {
    local c pid ready=0
    log "versions: kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION"
    if [[ -x $BIN/kwokctl ]]; then log "build: $KEYDIR"; else log "build: missing (scripts/cluster.sh build)"; fi
    log "state: $STATE"
    [[ -s $W/kwok.yaml ]] || { log "not running (no cluster in this state directory)"; return 1; }
    for c in "${COMPONENTS[@]}"; do
        if ! pid=$(component_pid "$c"); then log "  $c: stopped"
        elif healthy "$c"; then log "  $c: running, healthy (pid $pid)"
        else log "  $c: running, NOT healthy (pid $pid)"; fi
    done
    if pid=$(istiod_sh pid); then log "  istiod: running (pid $pid)"; elif [[ -d $W/istiod ]]; then log "  istiod: not running"; fi
    cluster_ready && ready=1
    ((ready)) || { log "not ready"; return 1; }
    "${KUBECTL[@]}" get nodes >&2 || true
    log "ready; kubeconfig: $W/kubeconfig.yaml"
}

cmd_apply_crds() {
    local sets=("$@") files=() set names out f args=()
    ((${#sets[@]})) || sets=(istio cert-manager gateway-api)
    cluster_ready || die "the cluster in $STATE is not running (scripts/cluster.sh up)"
    for set in "${sets[@]}"; do
        out=$(crd_files "$set") || exit 1
        mapfile -t -O "${#files[@]}" files <<<"$out"
    done
    log "applying ${#files[@]} files (${sets[*]}) ..."
    for f in "${files[@]}"; do args+=(-f "$f"); done
    names=$("${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=cowsay-cluster -o name "${args[@]}") \
        || die "kubectl apply of the CRDs failed"
    names=$(grep '^customresourcedefinition' <<<"$names" || true)
    [[ -n $names ]] || die "no CRDs in ${files[*]}"
    # shellcheck disable=SC2086 # one name per word
    "${KUBECTL[@]}" wait --for=condition=Established --timeout="${TIMEOUT}s" $names >/dev/null \
        || die "CRDs not Established within ${TIMEOUT}s"
    log "$(wc -l <<<"$names") CRDs Established"
}

cmd_clean() {
    local go=${1:-}
    [[ -z $go || $go == --go ]] || die "clean takes --go or nothing, not '$go'"
    if [[ -d $CACHE/run/default ]]; then COWSAY_CLUSTER_STATE=$CACHE/run/default "$0" down; fi
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
        ;;
    built) cmd_built ;;
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
    help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd'; allowed: build, built, up, down, env, status, crds, apply-crds, stop, start, restart, clean, help" ;;
esac
