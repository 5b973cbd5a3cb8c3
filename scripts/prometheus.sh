#!/usr/bin/env bash
# prometheus.sh — runs Prometheus (built by scripts/cluster.sh from tools/prometheus) as a plain process
# beside one local control plane, so the tests and the metric analysis query a real Prometheus's HTTP API.
# It scrapes whatever registers itself in its targets directory: a test's stand-in data plane, started
# long after `up`, writes a file_sd file there. Called by scripts/cluster.sh (`up`, `down`,
# `stop|start|restart prometheus`, `env`, `status`), which holds the state directory's lock and passes what
# it knows in the environment; not meant to be run by hand.
#
#   prometheus.sh start     a loopback port (kept in the cluster directory, so a restart reuses it), the
#                           config, then Prometheus; returns once /-/ready answers 200
#   prometheus.sh stop      SIGTERM, then SIGKILL after a bound; the port stays reserved for `start`
#   prometheus.sh kill      SIGKILL (down: the cluster is thrown away), release the port
#   prometheus.sh env       print COWSAY_PROMETHEUS_URL and COWSAY_PROMETHEUS_TARGETS if Prometheus was
#                           started in this cluster
#   prometheus.sh pid       print Prometheus's pid if it runs; exit 1 otherwise
#   prometheus.sh ready     exit 0 if /-/ready answers 200
#
# Environment (from cluster.sh): W (the kwokctl cluster directory), PROMETHEUS_BIN (the build), LOCKS (the
# machine-wide port reservations: cluster.sh), TIMEOUT.
set -euo pipefail

: "${W:?}" "${PROMETHEUS_BIN:?}" "${LOCKS:?}" "${TIMEOUT:?}"
D=$W/prometheus                       # port, config, data (the TSDB), targets
TARGETS=$D/targets                    # <name>.json, file_sd's format: [{"targets": [...], "labels": {...}}]
LOG=$W/logs/prometheus.log
EXE=$W/bin/prometheus                 # a link into the cache: cluster.sh's wait_gone finds it by this path
PORTS=$LOCKS/ports                    # <port> -> link to the cluster directory that reserved it (istiod.sh's too)

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" prometheus

pid() {   # the running Prometheus of this cluster (its pid file, checked against /proc like cluster.sh does)
    local p a0
    [[ -s $D/pid ]] && p=$(<"$D/pid") && [[ $p =~ ^[0-9]+$ ]] || return 1
    IFS= read -r -d '' a0 2>/dev/null <"/proc/$p/cmdline" && [[ $a0 == "$EXE" ]] || return 1
    printf '%s\n' "$p"
}

ready() {
    [[ -s $D/port ]] || return 1
    [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$(<"$D/port")/-/ready" -o /dev/null -w '%{http_code}' 2>/dev/null) == 200 ]]
}

# One loopback port, picked once per cluster (reserved by an atomic link), by istiod.sh's rules and in its
# reservation directory, so neither takes the other's: from 30001-31999 (below kwokctl's scan down from
# 32767 and below the kernel's ephemeral range), skipping ports that listen or that a live cluster
# reserved. The reservation lasts until `down`: a cluster created while Prometheus is stopped cannot take
# its port, and the URL `env` printed stays valid across a restart.
pick_port() {
    local p listening
    [[ -s $D/port ]] && return 0
    mkdir -p "$PORTS"
    listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -u)
    for ((p = 31999; p > 30000; p--)); do
        grep -qx "$p" <<<"$listening" && continue
        if [[ -L $PORTS/$p ]]; then
            [[ -d $(readlink "$PORTS/$p") ]] && continue
            rm -f "$PORTS/$p"   # its cluster is gone (a `down` that never ran)
        fi
        ln -s "$W" "$PORTS/$p" 2>/dev/null || continue   # atomic: taken meanwhile by another cluster
        printf '%s\n' "$p" >"$D/port"
        return 0
    done
    die "no free port in 30001-31999"
}

release_port() {
    local f
    [[ -s $D/port ]] || return 0
    f=$PORTS/$(<"$D/port")
    if [[ -L $f && $(readlink "$f") == "$W" ]]; then rm -f "$f"; fi
}

# One job for the mesh's proxies, every second (the analysis judges a release within seconds, not
# minutes). Targets come from files, so whatever serves metrics registers itself when it starts;
# Envoy's path is the default, and a target's own __metrics_path__ label overrides it (service discovery
# labels win over the job's defaults). The fallback protocol: Prometheus 3 refuses a scrape whose
# Content-Type it cannot parse, and a stand-in that sends plain text is still read. Retention: a test
# cluster lives minutes.
write_config() {
    cat >"$D/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: istio-mesh
    metrics_path: /stats/prometheus
    fallback_scrape_protocol: PrometheusText0.0.4
    file_sd_configs:
      - files: ["$TARGETS/*.json"]
        refresh_interval: 1s
storage:
  tsdb:
    retention:
      time: 2h
EOF
}

cmd_start() {
    local t0=${EPOCHREALTIME/./} deadline i ms port
    pid >/dev/null && { log "already running (pid $(pid))"; return 0; }
    [[ -x $PROMETHEUS_BIN/prometheus ]] || die "prometheus is not built: $PROMETHEUS_BIN (scripts/cluster.sh build)"
    mkdir -p "$TARGETS" "$D/data" "$W/logs" "$W/bin"
    ln -sfn "$PROMETHEUS_BIN/prometheus" "$EXE"
    write_config
    pick_port
    port=$(<"$D/port")
    log "starting prometheus on 127.0.0.1:$port, targets $TARGETS/*.json ..."
    (
        exec 7>&- 8>&- 9>&-
        cd "$D"
        exec setsid "$EXE" --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/data" \
            --web.listen-address="127.0.0.1:$port"
    ) </dev/null >>"$LOG" 2>&1 &
    printf '%s' "$!" >"$D/pid"
    # Until the subshell has exec'd, that pid does not run Prometheus yet.
    for ((i = 0; i < 200; i++)); do pid >/dev/null && break; sleep 0.05; done
    deadline=$((SECONDS + TIMEOUT))
    until ready; do
        pid >/dev/null || { tail -n 25 "$LOG" >&2; die "prometheus exited while starting (log: $LOG)"; }
        ((SECONDS < deadline)) || { tail -n 25 "$LOG" >&2; die "prometheus not ready after ${TIMEOUT}s (COWSAY_CLUSTER_TIMEOUT)"; }
        sleep 0.1
    done
    exec 7>&-
    ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
    log "prometheus ready in $((ms / 1000)).$(printf %03d $((ms % 1000))) s (pid $(pid)): http://127.0.0.1:$port; log: $LOG"
}

cmd_stop() {   # cmd_stop TERM|KILL
    local p i
    p=$(pid) || return 0
    kill "-$1" "$p"
    for ((i = 0; i < 150; i++)); do pid >/dev/null || return 0; sleep 0.1; done
    log "prometheus (pid $p) did not stop within 15 s of SIGTERM: SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop TERM ;;
    kill) cmd_stop KILL; release_port ;;
    env)
        if [[ -s $D/port ]]; then
            printf 'export COWSAY_PROMETHEUS_URL=%q\n' "http://127.0.0.1:$(<"$D/port")"
            printf 'export COWSAY_PROMETHEUS_TARGETS=%q\n' "$TARGETS"
        fi ;;
    pid) pid ;;
    ready) ready ;;
    *) die "unknown command '${1:-}'; allowed: start, stop, kill, env, pid, ready" ;;
esac
