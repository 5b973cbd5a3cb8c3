#!/usr/bin/env bash
# istiod.sh — runs istiod (pilot-discovery, built by scripts/cluster.sh) as a plain process beside one
# local control plane, so the end-to-end tests see the routes Istio itself pushes. Called by
# scripts/cluster.sh (`up` with COWSAY_CLUSTER_ISTIOD=1, `down`, `restart istiod`, `env`), which holds
# the state directory's lock and passes what it knows in the environment; not meant to be run by hand.
#
#   istiod.sh start     ports (kept in the cluster directory, so a restart reuses them), a serving
#                       certificate for 127.0.0.1 signed by the cluster's CA, the istio-system
#                       namespace, a minimal mesh config; then istiod, its validating webhook registered
#                       by URL (fail-close), and a wait until it is ready and refuses an invalid object
#   istiod.sh chart     serve the istiod that Istio's own chart installs (see "The chart's istiod"
#                       below): hold its pods back, then, in the background, run pilot-discovery as
#                       the chart's pod would run it once the chart is installed, and let the pods go
#   istiod.sh stop      SIGTERM, then SIGKILL after a bound; the ports stay reserved for `start`
#   istiod.sh kill      SIGKILL (down: the cluster is thrown away), release the ports
#   istiod.sh env       print `export COWSAY_XDS_ADDRESS=...` if istiod was started in this cluster
#   istiod.sh pid       print istiod's pid if it runs; exit 1 otherwise
#
# Environment (from cluster.sh): W (the kwokctl cluster directory), ISTIOD_BIN (pilot-discovery,
# cowsay-xds), LOCKS (the machine-wide port reservations: cluster.sh), BIN (kubectl), TIMEOUT.
set -euo pipefail

: "${W:?}" "${ISTIOD_BIN:?}" "${LOCKS:?}" "${BIN:?}" "${TIMEOUT:?}"
D=$W/istiod                           # ports, mesh config, certificates
LOG=$W/logs/istiod.log
EXE=$W/bin/pilot-discovery            # a link into the cache: cluster.sh's wait_gone finds it by this path
PORTS=$LOCKS/ports                    # <port> -> link to the cluster directory that reserved it
NS=istio-system
WEBHOOK=istio-validator-$NS           # the name and labels the Helm chart gives it: istiod keeps its caBundle
KUBECTL=("$BIN/kubectl" "--kubeconfig=$W/kubeconfig.yaml" --request-timeout=10s)

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" istiod

pid() {   # the running istiod of this cluster (its pid file, checked against /proc like cluster.sh does)
    local p a0
    [[ -s $D/pid ]] && p=$(<"$D/pid") && [[ $p =~ ^[0-9]+$ ]] || return 1
    IFS= read -r -d '' a0 2>/dev/null <"/proc/$p/cmdline" && [[ $a0 == "$EXE" ]] || return 1
    printf '%s\n' "$p"
}

# Three loopback ports: HTTP (readiness, debug, and the multiplexed secure gRPC and monitoring), plaintext
# xDS, and the webhook's HTTPS. Picked once per cluster, each reserved by an atomic link, from a range
# below kwokctl's (it scans down from 32767) and below the kernel's ephemeral range, skipping ports that
# listen or that another cluster reserved: a reservation lasts until `down`, so a stopped istiod's ports
# are not taken by a cluster created meanwhile, and the webhook's URL stays valid across restarts.
pick_ports() {
    local p n=0 listening picked=()
    [[ -s $D/ports ]] && return 0
    mkdir -p "$PORTS"
    listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -u)
    for ((p = 31999; p > 30000 && n < 3; p--)); do
        grep -qx "$p" <<<"$listening" && continue
        if [[ -L $PORTS/$p ]]; then
            [[ -d $(readlink "$PORTS/$p") ]] && continue
            rm -f "$PORTS/$p"   # its cluster is gone (a `down` that never ran)
        fi
        ln -s "$W" "$PORTS/$p" 2>/dev/null || continue   # atomic: taken meanwhile by another cluster
        picked+=("$p")
        n=$((n + 1))
    done
    ((n == 3)) || die "no three free ports in 30001-31999"
    printf 'HTTP_PORT=%s\nXDS_PORT=%s\nWEBHOOK_PORT=%s\n' "${picked[@]}" >"$D/ports"
}

release_ports() {
    local f
    for f in "$PORTS"/*; do
        [[ -L $f && $(readlink "$f") == "$W" ]] && rm -f "$f"
    done
    return 0
}

# istiod serves its webhook with this certificate; the API server calls https://127.0.0.1:<port>, so the
# certificate names that IP (istiod's own would name istiod.istio-system.svc, which nothing resolves
# here). The cluster's CA signs it and is the webhook's caBundle; istiod reads the CA file as its
# caBundle too, so its webhook controller finds nothing to change.
make_cert() {
    [[ -s $D/tls.crt ]] && return 0
    openssl req -new -newkey rsa:2048 -nodes -keyout "$D/tls.key" -subj "/CN=istiod.$NS.svc" -out "$D/tls.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:istiod.%s.svc\nextendedKeyUsage=serverAuth\n' "$NS" >"$D/tls.ext"
    openssl x509 -req -in "$D/tls.csr" -CA "$W/pki/ca.crt" -CAkey "$W/pki/ca.key" -CAcreateserial \
        -days 30 -extfile "$D/tls.ext" -out "$D/tls.crt" 2>/dev/null || die "signing istiod's certificate failed"
    cp "$W/pki/ca.crt" "$D/ca.crt"
}

webhook() {   # the ValidatingWebhookConfiguration, as the istiod chart's, but by URL and fail-close at once
    # shellcheck disable=SC1091
    source "$D/ports"
    cat <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: $WEBHOOK
  labels: { app: istiod, istio: istiod, istio.io/rev: default }
webhooks:
  - name: rev.validation.istio.io
    clientConfig:
      url: https://127.0.0.1:$WEBHOOK_PORT/validate
      caBundle: $(base64 -w0 "$D/ca.crt")
    rules:
      - operations: [CREATE, UPDATE]
        apiGroups: [security.istio.io, networking.istio.io, telemetry.istio.io, extensions.istio.io]
        apiVersions: ["*"]
        resources: ["*"]
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
    timeoutSeconds: 10
EOF
}

# An object the CRD schema accepts and Istio refuses: the readiness check that the webhook is wired.
INVALID='{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"cowsay-istiod-probe","namespace":"istio-system"},
 "spec":{"hosts":["probe.invalid"],"http":[{"match":[{"uri":{"regex":"("}}],"route":[{"destination":{"host":"probe.invalid"}}]}]}}'

cmd_start() {
    local t0=${EPOCHREALTIME/./} deadline out i ms
    pid >/dev/null && { log "already running (pid $(pid))"; return 0; }
    [[ -x $ISTIOD_BIN/pilot-discovery ]] || die "pilot-discovery is not built: $ISTIOD_BIN (scripts/cluster.sh build)"
    mkdir -p "$D" "$W/logs"
    ln -sfn "$ISTIOD_BIN/pilot-discovery" "$EXE"
    make_cert
    # Istio's own defaults, spelled out: the three lines istiod needs to start without a chart.
    printf 'rootNamespace: %s\ntrustDomain: cluster.local\ndefaultConfig:\n  discoveryAddress: istiod.%s.svc:15012\n' "$NS" "$NS" >"$D/mesh.yaml"
    : >"$D/meshNetworks.yaml"
    "${KUBECTL[@]}" create namespace "$NS" --dry-run=client -o yaml | "${KUBECTL[@]}" apply -f - >/dev/null \
        || die "creating the namespace $NS failed"
    pick_ports
    # shellcheck disable=SC1091
    source "$D/ports"
    log "starting istiod: xDS 127.0.0.1:$XDS_PORT, webhook 127.0.0.1:$WEBHOOK_PORT, http 127.0.0.1:$HTTP_PORT ..."
    # Environment: the pod identity istiod would get from the Downward API; no sidecar injector (nothing
    # runs in the pods: kwok only pretends). Flags: loopback ports only; the secure gRPC and the monitoring
    # endpoints multiplexed on the HTTP port; ControlZ on a port the kernel picks (its fixed 9876 would
    # collide between clusters); a quick shutdown for `restart istiod`.
    (
        exec 7>&- 8>&- 9>&-
        cd "$D"
        POD_NAME=istiod-local POD_NAMESPACE=$NS REVISION=default INJECT_ENABLED=false \
            PILOT_ENABLE_GATEWAY_API=true PILOT_ENABLE_GATEWAY_API_STATUS=true \
            exec setsid "$EXE" discovery --kubeconfig "$W/kubeconfig.yaml" --meshConfig "$D/mesh.yaml" \
            --networksConfig "$D/meshNetworks.yaml" \
            --httpAddr "127.0.0.1:$HTTP_PORT" --grpcAddr "127.0.0.1:$XDS_PORT" --httpsAddr "127.0.0.1:$WEBHOOK_PORT" \
            --secureGRPCAddr "" --monitoringAddr "" --ctrlz_port 0 \
            --tlsCertFile "$D/tls.crt" --tlsKeyFile "$D/tls.key" --caCertFile "$D/ca.crt" \
            --domain cluster.local --shutdownDuration 1s
    ) </dev/null >>"$LOG" 2>&1 &
    printf '%s' "$!" >"$D/pid"
    # Until the subshell has exec'd, that pid does not run istiod yet.
    for ((i = 0; i < 200; i++)); do pid >/dev/null && break; sleep 0.05; done
    deadline=$((SECONDS + TIMEOUT))
    until [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/ready" -o /dev/null -w '%{http_code}' 2>/dev/null) == 200 ]]; do
        pid >/dev/null || { tail -n 25 "$LOG" >&2; die "istiod exited while starting (log: $LOG)"; }
        ((SECONDS < deadline)) || { tail -n 25 "$LOG" >&2; die "istiod not ready after ${TIMEOUT}s (COWSAY_CLUSTER_TIMEOUT)"; }
        sleep 0.2
    done
    exec 7>&-
    webhook | "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=cowsay-cluster -f - >/dev/null \
        || die "registering istiod's validating webhook failed"
    # Ready means refusing: until the API server has the webhook, an invalid object would pass.
    while :; do
        out=$("${KUBECTL[@]}" create --dry-run=server -f - <<<"$INVALID" 2>&1) || [[ $out != *"denied the request"* ]] || break
        ((SECONDS < deadline)) || die "istiod's webhook does not refuse an invalid VirtualService after ${TIMEOUT}s: $out"
        sleep 0.2
    done
    ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
    log "istiod ready in $((ms / 1000)).$(printf %03d $((ms % 1000))) s (pid $(pid)); log: $LOG"
}

# --- The chart's istiod (`chart`). With installIstio true the program installs Istio from its charts:
# the istiod chart creates a Deployment, its ConfigMaps (mesh config, injection templates), a Service
# `istiod`, and webhooks that name that Service (the sidecar injector, fail-close, and the validators).
# No pod runs here, so this script plays the kubelet's part for that one Deployment:
# - How the API server reaches the process: it calls a webhook given by Service at the Service's
#   ClusterIP and port (443), checking the certificate for istiod.istio-system.svc. ClusterIPs are
#   loopback addresses here (tools/cluster/kwokctl.yaml: 127.96.0.0/16), so pilot-discovery listens on
#   <ClusterIP>:443 itself, and the chart's webhooks stay exactly as the chart writes them. Not chosen:
#   the chart's `istiodRemote.injectionURL`/`base.validationURL` values (the program would install
#   something else than it does on a real cluster), and the API server's endpoint routing (it dials
#   pod IPs, and Endpoints refuse the loopback addresses that would reach a process). Port 443 needs
#   root (or CAP_NET_BIND_SERVICE).
# - When: pilot-discovery reads the chart's injection templates only if their ConfigMap exists when it
#   starts, and the gateway's pods need the injector serving when they are created. So a
#   ValidatingAdmissionPolicy (CEL inside the API server, no webhook) refuses the istiod pods until the
#   process serves; the ReplicaSet controller retries, Helm's wait on the istiod release waits for
#   them, and the program installs the gateway chart only after that release.
# - How: with the args and env of the chart Deployment's container (values as written; the Downward
#   API's pod name, namespace and service account filled in), plus loopback addresses and this
#   cluster's certificates, in a directory without the pod's mounted files: like the pod, it then
#   reads the mesh config and the injection templates from the chart's ConfigMaps.
# - After: when the chart's Service goes (pulumi destroy) or its ClusterIP changes, the process stops
#   and the hold comes back, ready for the next install.
HOLD=cowsay-hold-istiod-pods
RUNNER_LOG=$W/logs/istiod-chart.log

hold_pods() {
    "${KUBECTL[@]}" apply --server-side --force-conflicts --field-manager=cowsay-cluster -f - >/dev/null <<EOF || die "creating the hold on istiod's pods failed"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: $HOLD }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - { apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }
  validations:
    - expression: >-
        request.namespace != '$NS' || !has(object.metadata.labels) ||
        !('app' in object.metadata.labels) || object.metadata.labels['app'] != 'istiod'
      message: held by scripts/istiod.sh until pilot-discovery serves the chart's istiod
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: $HOLD }
spec:
  policyName: $HOLD
  validationActions: [Deny]
EOF
}
release_pods() { "${KUBECTL[@]}" delete validatingadmissionpolicybinding "$HOLD" --ignore-not-found >/dev/null; }

runner_pid() {   # the background loop of `chart`, if it runs
    local p
    [[ -s $D/runner.pid ]] && p=$(<"$D/runner.pid") && [[ $p =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- ' chart-serve' || return 1
    printf '%s\n' "$p"
}

# What the chart installed, once all of it is there: prints the Service's ClusterIP, keeps the Deployment.
chart_installed() {
    local out ip
    out=$("${KUBECTL[@]}" -n "$NS" get service/istiod configmap/istio configmap/istio-sidecar-injector deployment/istiod -o json 2>/dev/null) || return 1
    ip=$(jq -r '.items[] | select(.kind == "Service") | .spec.clusterIP' <<<"$out")
    [[ $ip =~ ^127\. ]] || return 1
    jq '.items[] | select(.kind == "Deployment")' <<<"$out" >"$D/deployment.json"
    printf '%s\n' "$ip"
}

start_chart_istiod() {   # start_chart_istiod CLUSTER_IP
    local ip=$1 args=() envs=() i deadline out
    # shellcheck disable=SC1091
    source "$D/ports"
    mapfile -t args < <(jq -r '.spec.template.spec.containers[] | select(.name == "discovery") | .args[]' "$D/deployment.json")
    [[ ${args[0]:-} == discovery ]] || die "the chart's istiod Deployment has no container 'discovery' running 'discovery'"
    # Plain values as the chart wrote them, the Downward API's fields filled in, the rest (resource
    # fields, the in-pod KUBECONFIG path) left out.
    mapfile -t envs < <(jq -r --arg ns "$NS" '.spec.template.spec as $p | $p.containers[] | select(.name == "discovery") | .env[]
        | select(.name != "KUBECONFIG")
        | if .value != null then "\(.name)=\(.value)"
          elif .valueFrom.fieldRef.fieldPath == "metadata.name" then "\(.name)=istiod-local"
          elif .valueFrom.fieldRef.fieldPath == "metadata.namespace" then "\(.name)=\($ns)"
          elif .valueFrom.fieldRef.fieldPath == "spec.serviceAccountName" then "\(.name)=\($p.serviceAccountName // "istiod")"
          else empty end' "$D/deployment.json")
    mkdir -p "$D/chart"
    log "serving the chart's istiod: webhooks https://$ip:443 (its Service), xDS 127.0.0.1:$XDS_PORT, http 127.0.0.1:$HTTP_PORT ..."
    (
        exec 7>&- 8>&- 9>&-
        cd "$D/chart"
        exec env "${envs[@]}" setsid "$EXE" "${args[@]}" --kubeconfig "$W/kubeconfig.yaml" \
            --httpAddr "127.0.0.1:$HTTP_PORT" --grpcAddr "127.0.0.1:$XDS_PORT" --httpsAddr "$ip:443" \
            --secureGRPCAddr "" --monitoringAddr "" --ctrlz_port 0 \
            --tlsCertFile "$D/tls.crt" --tlsKeyFile "$D/tls.key" --caCertFile "$D/ca.crt" --shutdownDuration 1s
    ) </dev/null >>"$LOG" 2>&1 &
    printf '%s' "$!" >"$D/pid"
    for ((i = 0; i < 200; i++)); do pid >/dev/null && break; sleep 0.05; done
    deadline=$((SECONDS + TIMEOUT))
    # Ready, its certificate patched into the injector's webhooks, and the chart's validator refusing.
    until [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/ready" -o /dev/null -w '%{http_code}' 2>/dev/null) == 200 ]] &&
        "${KUBECTL[@]}" get mutatingwebhookconfiguration istio-sidecar-injector -o json 2>/dev/null |
        jq -e 'all(.webhooks[]; (.clientConfig.caBundle // "") != "")' >/dev/null &&
        ! out=$("${KUBECTL[@]}" create --dry-run=server -f - <<<"$INVALID" 2>&1) && [[ $out == *"denied the request"* ]]; do
        pid >/dev/null || { tail -n 25 "$LOG" >&2; log "istiod exited while starting (log: $LOG)"; return 1; }
        ((SECONDS < deadline)) || { tail -n 25 "$LOG" >&2; log "the chart's istiod not serving after ${TIMEOUT}s"; return 1; }
        sleep 0.2
    done
    log "the chart's istiod serves (pid $(pid)); letting its pods be created"
}

cmd_chart_serve() {   # the background loop
    local ip
    trap 'cmd_stop TERM; exit 0' TERM INT
    while :; do
        until ip=$(chart_installed); do sleep 0.25; done
        if start_chart_istiod "$ip"; then
            release_pods
            # Until the chart's Service goes or moves, or the process ends.
            while pid >/dev/null && [[ $(chart_installed 2>/dev/null) == "$ip" ]]; do sleep 1; done
            log "the chart's istiod Service changed or pilot-discovery exited: stopping it, holding istiod's pods again"
        fi
        cmd_stop TERM
        hold_pods
        sleep 1
    done
}

cmd_chart() {
    runner_pid >/dev/null && { log "already serving the chart's istiod (pid $(runner_pid))"; return 0; }
    [[ -x $ISTIOD_BIN/pilot-discovery ]] || die "pilot-discovery is not built: $ISTIOD_BIN (scripts/cluster.sh build)"
    (($(id -u) == 0)) || die "the chart's istiod listens on its Service's port 443, which needs root"
    mkdir -p "$D" "$W/logs"
    ln -sfn "$ISTIOD_BIN/pilot-discovery" "$EXE"
    make_cert
    pick_ports
    exec 7>&-
    hold_pods
    (exec 7>&- 8>&- 9>&-; exec setsid "$0" chart-serve) </dev/null >>"$RUNNER_LOG" 2>&1 &
    printf '%s' "$!" >"$D/runner.pid"
    log "holding istiod's pods until the chart is installed and pilot-discovery serves it (log: $RUNNER_LOG)"
}

stop_runner() {   # stop_runner TERM|KILL: the loop of `chart` (on TERM it stops its istiod itself)
    local p i
    p=$(runner_pid) || return 0
    kill "-$1" "$p" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do runner_pid >/dev/null || return 0; sleep 0.1; done
}

cmd_stop() {   # cmd_stop TERM|KILL
    local p i
    p=$(pid) || return 0
    kill "-$1" "$p"
    for ((i = 0; i < 150; i++)); do pid >/dev/null || return 0; sleep 0.1; done
    log "istiod (pid $p) did not stop within 15 s of SIGTERM: SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
}

case ${1:-} in
    start) cmd_start ;;
    chart) cmd_chart ;;
    chart-serve) cmd_chart_serve ;;
    stop) stop_runner TERM; cmd_stop TERM ;;
    kill) stop_runner KILL; cmd_stop KILL; release_ports ;;
    env)
        if [[ -s $D/ports ]]; then
            # shellcheck disable=SC1091
            source "$D/ports"
            printf 'export COWSAY_XDS_ADDRESS=127.0.0.1:%s\n' "$XDS_PORT"
        fi ;;
    pid) pid ;;
    *) die "unknown command '${1:-}'; allowed: start, chart, stop, kill, env, pid" ;;
esac
