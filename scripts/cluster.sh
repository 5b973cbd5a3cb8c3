#!/usr/bin/env bash
# cluster.sh — a local Kubernetes control plane without containers (kube-apiserver, etcd, kwok's fake
# nodes as processes, beside them Prometheus and optionally istiod) for the e2e tests and the demo: a
# wrapper around `kwokctl --runtime binary` with the binaries scripts/cluster-build.sh builds offline. What
# each step does and why: tools/cluster/README.md.
#
#   build                       build what is missing, download the CRD modules
#   built                       exit 0 if all is built; else print what `build` would build, exit 1
#   up                          build if needed, start a cluster (and Prometheus), return once it is ready
#   eval "$(cluster.sh env)"    export KUBECONFIG, PATH (kubectl, cowsay-xds), COWSAY_XDS_ADDRESS (istiod),
#                               COWSAY_PROMETHEUS_URL and COWSAY_PROMETHEUS_TARGETS (the file_sd directory
#                               where a metrics endpoint registers itself: scripts/prometheus.sh)
#   istio-charts DIR            lay out Istio's charts (base/, istiod/, gateway/) from the istio.io/istio
#                               module of the istiod pin, as the program's istioCharts directory
#   status                      each component's pid and health; exit 0 only if the cluster is ready
#   crds [--bundle] [SET...]    print the CRD files (--bundle: one file per set); SET: istio, cert-manager,
#                               gateway-api (default: all three)
#   apply-crds [SET...]         server-side apply them, wait until Established
#   stop|start|restart COMP     one component, same ports; COMP: etcd, apiserver, controller-manager,
#                               scheduler, kwok, istiod, prometheus
#   down [--keep-logs]          stop everything `up` started, remove the state directory
#   clean [--go]                down the default cluster, delete the cache (--go: the shared Go caches too)
#
# Environment (default): COWSAY_CLUSTER_STATE, one cluster's state directory (<cache>/run/default),
# COWSAY_CLUSTER_CACHE (~/.cache/cowsay-bluegreen/cluster), COWSAY_GO_CACHE, COWSAY_CLUSTER_JOBS (2),
# COWSAY_CLUSTER_NODES (2), COWSAY_CLUSTER_TIMEOUT (90 s a step), COWSAY_CLUSTER_ISTIOD (0; 1: also istiod;
# chart: serve the istiod that the program installs from Istio's charts, scripts/istiod.sh `chart`),
# COWSAY_CLUSTER_PROMETHEUS (1; 0: no Prometheus), COWSAY_CLUSTER_LOCKS (/tmp/cowsay-bluegreen-<uid>: the
# machine's port lock and reservations; set it only to keep a cluster apart from every other).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tools/cluster
CACHE=${COWSAY_CLUSTER_CACHE:-$HOME/.cache/cowsay-bluegreen/cluster}
# Once per machine, not per cache: clusters of two caches (a cold CI run beside a warm one) share the
# machine's ports. ports.lock: kwokctl's probe for free ports and every bind of a port it probed;
# ports/: istiod's and Prometheus's reservations.
LOCKS=$(realpath -ms -- "${COWSAY_CLUSTER_LOCKS:-/tmp/cowsay-bluegreen-$(id -u)}")
# Absolute and without a trailing slash: kwokctl names its processes by paths under it.
STATE=$(realpath -ms -- "${COWSAY_CLUSTER_STATE:-$CACHE/run/default}")
JOBS=${COWSAY_CLUSTER_JOBS:-2} NODES=${COWSAY_CLUSTER_NODES:-2} TIMEOUT=${COWSAY_CLUSTER_TIMEOUT:-90}
ISTIOD=${COWSAY_CLUSTER_ISTIOD:-0}
PROMETHEUS=${COWSAY_CLUSTER_PROMETHEUS:-1}
STOP_TIMEOUT=15                         # seconds between SIGTERM and SIGKILL when stopping one component
NAME=cowsay                             # the kwokctl cluster; unique per state directory
W=$STATE/clusters/$NAME                 # its directory: kwok.yaml, kubeconfig.yaml, pki, etcd, logs, pids, bin
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller)   # kwokctl's names

# log, die (prefix [cluster]), GO_CACHE (COWSAY_GO_CACHE) and go_env, shared with the other scripts.
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh" cluster

for v in NODES TIMEOUT JOBS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "COWSAY_CLUSTER_$v is '${!v}'; allowed: a whole number of 1 or more"
done
[[ $ISTIOD == [01] || $ISTIOD == chart ]] || die "COWSAY_CLUSTER_ISTIOD is '$ISTIOD'; allowed: 0, 1 or chart"
[[ $PROMETHEUS == [01] ]] || die "COWSAY_CLUSTER_PROMETHEUS is '$PROMETHEUS'; allowed: 0 or 1"
# The pins, the cache keys, the offline build and the CRD sets.
# shellcheck source=scripts/cluster-build.sh
source "$ROOT/scripts/cluster-build.sh"
KUBECTL=("$BIN/kubectl" "--kubeconfig=$W/kubeconfig.yaml" --request-timeout=10s)

# Long commands run in the background and are waited for, so that a signal to this script alone (not to
# its process group) reaches the traps at once and can be passed on to the command.
CHILD=
run_child() {
    local rc=0
    "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}
# Never fails: under `set -e` a failed `kill` (the child had just exited) ended the EXIT trap of an
# interrupted `up` at once, with status 1 and nothing torn down.
kill_child() { if [[ -n $CHILD ]]; then kill "$CHILD" 2>/dev/null || true; fi; }
trap 'kill_child; exit 130' INT
trap 'kill_child; exit 143' TERM

# Before starting anything: close all descriptors but 0-2. Go passes them on to what kwokctl forks, and a
# component would hold a caller's pipe (Node's execFileSync waits for it to close) or our lock for life.
close_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# kwokctl downloads only URLs, never plain paths, and kubectl only if PATH has none. It trusts its pid
# files (kill -0, SIGKILL): after a reboot a stale one may name an unrelated process, so those go first.
kwokctl_exec() {
    close_fds
    forget_stale_pids
    KWOK_WORKDIR=$STATE PATH=$BIN:$PATH KWOK_KUBECTL_BINARY=$BIN/kubectl exec "$BIN/kwokctl" --name "$NAME" --v=WARN "$@" </dev/null
}
kwokctl() { run_child kwokctl_exec "$@"; }

# scripts/istiod.sh and scripts/prometheus.sh: beside kwokctl's components, holding none of our
# descriptors. `run_child istiod_exec ...` makes the child the script itself: through istiod_sh it was a
# subshell around the script, Ctrl-C's SIGTERM stopped only that subshell, and the script went on
# starting its process after `up` had torn the cluster down.
istiod_exec() { close_fds; W=$W ISTIOD_BIN=$ISTIOD_BIN LOCKS=$LOCKS BIN=$BIN TIMEOUT=$TIMEOUT exec "$ROOT/scripts/istiod.sh" "$@"; }
prometheus_exec() { close_fds; W=$W PROMETHEUS_BIN=$PROMETHEUS_BIN LOCKS=$LOCKS TIMEOUT=$TIMEOUT exec "$ROOT/scripts/prometheus.sh" "$@"; }
istiod_sh() { (istiod_exec "$@"); }
prometheus_sh() { (prometheus_exec "$@"); }

# A component's pid from kwokctl's pid file, if it runs the cluster's binary: not a zombie, not a reused pid.
component_pid() {
    local f=$W/pids/$1.pid pid a0
    [[ -s $f ]] && pid=$(<"$f") && [[ $pid =~ ^[0-9]+$ ]] || return 1
    IFS= read -r -d '' a0 2>/dev/null <"/proc/$pid/cmdline" && [[ $a0 == "$W/bin/$1" ]] || return 1
    printf '%s\n' "$pid"
}
forget_stale_pids() {
    local f
    for f in "$W"/pids/*.pid; do
        if [[ -e $f ]] && ! component_pid "$(basename "$f" .pid)" >/dev/null; then rm -f "$f"; fi
    done
}

# kwokctl SIGKILLs and does not wait: wait until no process runs a binary of the cluster, and SIGKILL any
# kwokctl did not know of (forked just before a kwokctl starting it was killed).
wait_gone() {
    local i p a0 pids
    for ((i = 0; i < 50; i++)); do
        pids=
        for p in /proc/[0-9]*; do
            IFS= read -r -d '' a0 2>/dev/null <"$p/cmdline" && [[ $a0 == "$W/bin/"* ]] && pids+=" ${p#/proc/}"
        done
        [[ -n $pids ]] || return 0
        # shellcheck disable=SC2086 # one pid per word
        ((i == 20)) && kill -KILL $pids 2>/dev/null
        sleep 0.1
    done
    die "processes of $W survived SIGKILL:$pids"
}

# Its own health endpoint answers ok. kwokctl's `get components` and `create --wait` check only that the
# pid runs, and `create --wait` exits 0 even when it times out.
healthy() {
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
log_tail() { printf -- '----- last lines of %s\n' "$W/logs/$1.log" >&2; tail -n 25 "$W/logs/$1.log" >&2 2>/dev/null || true; }
wait_healthy() {   # until healthy; fails with its log if it exits or TIMEOUT passes
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

# kwokctl probes for free ports that its components bind only later: clusters created at once took the
# same ports, and so did a create while another cluster's component was between its stop (or start) and
# the placeholder's bind (or its own). So each of those holds this lock, machine-wide, until the ports
# listen again. On fd 7, which kwokctl_exec and every component close.
lock_ports() {
    mkdir -p "$LOCKS"
    exec 7>"$LOCKS/ports.lock"
    flock -w $((TIMEOUT * 2)) 7 || die "another cluster.sh has held $LOCKS/ports.lock for $((TIMEOUT * 2)) s"
}
unlock_ports() { exec 7>&-; }

lock_state() {   # serialises up, down, stop|start|restart on one state directory
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another cluster.sh holds $STATE/.lock"
}
teardown() {
    istiod_sh kill || true
    prometheus_sh kill || true
    release_ports
    # --kubeconfig: where kwokctl removes the cluster's context from (default ~/.kube/config); not "".
    kwokctl delete cluster --kubeconfig "$W/kubeconfig.yaml" || log "kwokctl delete cluster failed; stopping what is left"
    wait_gone
}
remove_state() {   # what kwokctl may have left, our lock, then the directory if empty
    rm -rf "$W" "$STATE/.lock"
    rmdir "$STATE/clusters" "$STATE" 2>/dev/null || true
}

# --- The shim (README: "stop|start|restart"): kwokctl's command line stops and starts whole clusters
# only. `stop` sends SIGTERM (kwokctl: SIGKILL), so the API server restarts as a real one, and keeps the
# command line from /proc, which `start` runs as kwokctl would (`kwokctl --dry-run start cluster` prints
# bare names and unquoted arguments). Meanwhile a placeholder (perl) holds the ports: another cluster's
# `kwokctl create` took a stopped kwok's free port, and kwok's start then failed.
hold_ports() {   # hold_ports COMPONENT PORT...
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
release_ports() {   # release_ports [COMPONENT]: stop its placeholder (without one: all of them)
    local f pid i
    for f in "$W/holders/"${1:-*}.pid; do
        [[ -s $f ]] || continue
        pid=$(<"$f")
        rm -f "$f"
        kill -TERM "$pid" 2>/dev/null || continue
        # Until gone or a zombie (its parent, a `stop`, exited long ago).
        for ((i = 0; i < 50; i++)); do
            [[ $(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null) =~ ^(Z|X|)$ ]] && break
            sleep 0.02
        done
    done
}

stop_component() {
    local pid i ports
    pid=$(component_pid "$1") || { log "$1 is not running"; return 0; }
    cp "/proc/$pid/cmdline" "$W/pids/$1.cmdline"
    mapfile -t ports < <(ss -Hltnp | awk -v pid="pid=$pid," 'index($0, pid) { n = split($4, a, ":"); print a[n] }' | sort -u)
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
        release_ports
        kwokctl start cluster --timeout "${TIMEOUT}s"
    fi
    wait_healthy "$1"
}

start_istiod() {   # what COWSAY_CLUSTER_ISTIOD asks of `up`, unless it runs already
    case $ISTIOD in
        1) istiod_sh pid >/dev/null || { cmd_apply_crds; run_child istiod_exec start || exit 1; } ;;
        # Istio's CRDs come from the base chart there.
        chart) [[ -s $W/istiod/runner.pid ]] || { cmd_apply_crds cert-manager gateway-api; run_child istiod_exec chart || exit 1; } ;;
    esac
}

# What COWSAY_CLUSTER_PROMETHEUS asks of `up`, unless it runs already. It needs nothing of the API server,
# but starts last, so a failed `up` has not reserved its port for nothing.
start_prometheus() {
    ((PROMETHEUS)) || return 0
    prometheus_sh pid >/dev/null || run_child prometheus_exec start || exit 1
}

UP_OWNS=0   # 1 once this `up` has started replacing the state dir's cluster
up_abort() {   # EXIT trap of `up` until it is ready: stop whatever this run started
    local rc=$?
    trap - EXIT
    if [[ -n $CHILD ]]; then kill_child; wait "$CHILD" || true; fi   # kwokctl or a build: let it stop
    ((UP_OWNS)) || exit "$rc"
    if [[ $rc == 130 || $rc == 143 ]]; then
        teardown || true
        remove_state
        log "interrupted: stopped everything this 'up' started and removed $STATE"
    else
        istiod_sh stop || true
        prometheus_sh stop || true
        kwokctl stop cluster || true
        wait_gone || true
        log "failed: stopped everything this 'up' started; logs are in $W/logs ('down' removes them)"
    fi
    exit "$rc"
}

cmd_up() {
    trap up_abort EXIT
    local start=$SECONDS c
    ensure
    lock_state
    if cluster_ready; then
        log "already running and ready: $STATE (use 'down' first for a fresh one)"
        start_istiod
        start_prometheus
        return 0
    fi
    UP_OWNS=1
    if [[ -e $W ]]; then
        log "a cluster in $STATE that is not ready: deleting it, starting afresh"
        teardown
    fi
    log "kwokctl create cluster: kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION, kwok v$KWOK_VERSION ..."
    lock_ports   # until its components listen
    kwokctl create cluster --config "$SRC/kwokctl.yaml" --runtime binary --kubeconfig "" --timeout "${TIMEOUT}s" \
        --etcd-binary "$BIN/etcd" --kube-apiserver-binary "$BIN/kube-apiserver" \
        --kube-controller-manager-binary "$BIN/kube-controller-manager" \
        --kube-scheduler-binary "$BIN/kube-scheduler" --kwok-controller-binary "$BIN/kwok" || die "kwokctl create cluster failed"
    for c in "${COMPONENTS[@]}"; do wait_healthy "$c"; done
    unlock_ports
    log "kwokctl scale node --replicas $NODES ..."
    # Node addresses on loopback: the API server's log/exec calls to a node then fail at once.
    kwokctl scale node --replicas "$NODES" --param '.nodeIPs=["127.0.0.1"]' || die "kwokctl scale node failed"
    run_child "${KUBECTL[@]}" wait --for=condition=Ready nodes --all --timeout="${TIMEOUT}s" >/dev/null \
        || { log_tail kwok-controller; die "the nodes are not Ready after ${TIMEOUT}s"; }
    # The ServiceAccount admission plugin rejects pods until the controller manager has made this one.
    run_child "${KUBECTL[@]}" wait --for=create -n default serviceaccount/default --timeout="${TIMEOUT}s" >/dev/null \
        || { log_tail kube-controller-manager; die "no default ServiceAccount after ${TIMEOUT}s"; }
    start_istiod
    start_prometheus
    # Ready: a Ctrl-C from here on comes after the work, and would only make the exit status disagree
    # with the cluster that stays.
    trap '' INT TERM
    trap - EXIT
    log "ready in $((SECONDS - start)) s: $("${KUBECTL[@]}" config view -o jsonpath='{.clusters[0].cluster.server}'), state $STATE"
    log "use: eval \"\$(scripts/cluster.sh env)\"; kubectl get nodes"
}

cmd_down() {
    [[ -z ${1:-} || $1 == --keep-logs ]] || die "down takes --keep-logs or nothing, not '$1'"
    [[ -d $STATE ]] || { log "nothing to stop: $STATE does not exist"; return 0; }
    lock_state
    # kwokctl delete removes the cluster's directory, logs included.
    if [[ -n ${1:-} && -d $W/logs ]]; then rm -rf "$STATE/logs"; cp -r "$W/logs" "$STATE/logs"; fi
    if [[ -e $W ]]; then teardown; fi
    remove_state
    log "down: $STATE${1:+ (logs kept in $STATE/logs)}"
}

cmd_stop_start() {   # cmd_stop_start stop|start|restart COMPONENT
    local action=$1 name=${2:-}
    case $name in
        "") die "$action needs a COMPONENT; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod, prometheus" ;;
        apiserver | controller-manager | scheduler) name=kube-$name ;;
        kwok) name=kwok-controller ;;
        etcd | istiod | prometheus | kube-apiserver | kube-controller-manager | kube-scheduler | kwok-controller) ;;
        *) die "unknown component '$name'; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod, prometheus" ;;
    esac
    [[ -s $W/kwok.yaml ]] || die "no cluster in $STATE (run 'up' first)"
    lock_state
    if [[ $name == prometheus ]]; then
        # The same port and data (prometheus.sh keeps them in the cluster directory); `start` also on a
        # cluster `up` started without it.
        [[ $action == start ]] || { log "stopping prometheus ..."; prometheus_sh stop; }
        [[ $action != stop ]] || return 0
        prometheus_sh start
        return 0
    fi
    if [[ $name == istiod ]]; then
        local chart=0
        [[ -e $W/istiod/runner.pid ]] && chart=1
        [[ $action == start ]] || { log "stopping istiod ..."; istiod_sh stop; }
        [[ $action != stop ]] || return 0
        if ((chart)); then istiod_sh chart
        # A cluster `up` started without istiod lacks the CRDs istiod needs.
        else { [[ -d $W/istiod ]] || cmd_apply_crds; istiod_sh start; }; fi
        return 0
    fi
    lock_ports   # until the placeholder, or the component again, listens on its ports
    [[ $action == start ]] || { log "stopping $name ..."; stop_component "$name"; }
    [[ $action != stop ]] || return 0
    if component_pid "$name" >/dev/null; then log "$name is already running"; return 0; fi
    log "starting $name ..."
    start_component "$name"
    log "$name is healthy"
}

# shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
print_env() {
    [[ -f $W/kubeconfig.yaml ]] || log "note: no cluster in $STATE yet (run 'scripts/cluster.sh up')"
    printf 'export KUBECONFIG=%q\n' "$W/kubeconfig.yaml"
    printf 'export PATH=%q:%q"${PATH:+:$PATH}"\n' "$BIN" "$ISTIOD_BIN"
    istiod_sh env
    prometheus_sh env
}

cmd_status() {
    local c pid
    log "state: $STATE; kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION, kwok v$KWOK_VERSION"
    [[ -s $W/kwok.yaml ]] || { log "not running (no cluster in this state directory)"; return 1; }
    for c in "${COMPONENTS[@]}"; do
        if ! pid=$(component_pid "$c"); then log "  $c: stopped"
        elif healthy "$c"; then log "  $c: running, healthy (pid $pid)"
        else log "  $c: running, NOT healthy (pid $pid)"; fi
    done
    if pid=$(istiod_sh pid); then log "  istiod: running (pid $pid)"; elif [[ -d $W/istiod ]]; then log "  istiod: not running"; fi
    # Shown like a component, but (like istiod) not part of "ready": the API server's clients do not need it.
    if pid=$(prometheus_sh pid); then
        if prometheus_sh ready; then log "  prometheus: running, healthy (pid $pid)"; else log "  prometheus: running, NOT healthy (pid $pid)"; fi
    elif [[ -d $W/prometheus ]]; then log "  prometheus: stopped"; fi
    cluster_ready || { log "not ready"; return 1; }
    "${KUBECTL[@]}" get nodes >&2 || true
    log "ready; kubeconfig: $W/kubeconfig.yaml"
}

cmd_apply_crds() {   # cmd_apply_crds [SET...]
    local set out files
    (($#)) || set -- istio cert-manager gateway-api
    cluster_ready || die "the cluster in $STATE is not running (scripts/cluster.sh up)"
    out=$(for set; do crd_files "$set" || exit 1; done) || exit 1
    mapfile -t files <<<"$out"
    log "applying ${#files[@]} files ($*) ..."
    out=$("${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=cowsay-cluster -o name "${files[@]/#/--filename=}") \
        || die "kubectl apply of the CRDs failed"
    out=$(grep '^customresourcedefinition' <<<"$out") || die "no CRDs in ${files[*]}"
    # shellcheck disable=SC2086 # one name per word
    "${KUBECTL[@]}" wait --for=condition=Established --timeout="${TIMEOUT}s" $out >/dev/null \
        || die "CRDs not Established within ${TIMEOUT}s"
    log "$(wc -l <<<"$out") CRDs Established"
}

cmd_istio_charts() {   # cmd_istio_charts DIR
    local dir pair
    [[ -n ${1:-} && $# == 1 ]] || die "istio-charts takes one DIR (where base/, istiod/ and gateway/ go)"
    dir=$(module_dir istio.io/istio "$ISTIOD_VERSION") || exit 1
    mkdir -p "$1"
    # The chart named istiod lives in istio-control/istio-discovery.
    for pair in base:base istiod:istio-control/istio-discovery gateway:gateway; do
        rm -rf "${1:?}/${pair%%:*}"
        cp -R "$dir/manifests/charts/${pair#*:}" "$1/${pair%%:*}"
    done
    chmod -R u+w "$1"   # the module cache is read-only
    log "Istio's charts from istio.io/istio@$ISTIOD_VERSION: $1/{base,istiod,gateway}"
}

cmd_clean() {
    [[ -z ${1:-} || $1 == --go ]] || die "clean takes --go or nothing, not '$1'"
    if [[ -d $CACHE/run/default ]]; then COWSAY_CLUSTER_STATE=$CACHE/run/default "$0" down; fi
    log "removing $CACHE"
    rm -rf "$CACHE"
    [[ -n ${1:-} ]] || return 0
    log "removing the shared Go caches $GO_CACHE"
    chmod -R u+w "$GO_CACHE" 2>/dev/null || true   # the Go module cache is read-only
    rm -rf "$GO_CACHE"
}

cmd=${1:-help}
[[ $# -gt 0 ]] && shift
case "$cmd" in
    build) ensure; log "ready in $SECONDS s: $BIN" ;;
    built) cmd_built ;;
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    env) ensure; print_env ;;
    status) cmd_status ;;
    crds)
        list=crd_files
        [[ ${1:-} == --bundle ]] && { list=crd_bundle; shift; }
        (($#)) || set -- istio cert-manager gateway-api
        for s; do "$list" "$s"; done
        ;;
    apply-crds) ensure; cmd_apply_crds "$@" ;;
    istio-charts) cmd_istio_charts "$@" ;;
    stop | start | restart) cmd_stop_start "$cmd" "$@" ;;
    clean) cmd_clean "$@" ;;
    help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd'; allowed: build, built, up, down, env, status, crds, apply-crds, istio-charts, stop, start, restart, clean, help" ;;
esac
