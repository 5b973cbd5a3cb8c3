#!/usr/bin/env bash
# bench/cluster.sh — how long scripts/cluster.sh takes to bring a cluster up and down, and how long the
# script is. Each SCRIPT gets one warm-up up/down, then RUNS rounds of `up` + `down`, each in a fresh
# temporary state directory; the scripts take turns within a round, so that load on the machine falls on
# all of them alike. Prints the line count and the median, min and max of each verb. The binaries must be
# built already (`scripts/cluster.sh build`), or the first `up` includes the build.
#
# Usage: bench/cluster.sh [-n RUNS] [[NAME=VALUE...] SCRIPT]...   (default: 3 runs of scripts/cluster.sh)
#        NAME=VALUE before a script: environment for that script only (e.g. its own COWSAY_CLUSTER_CACHE:
#        two checkouts with different tools/cluster must not share one, each removes the other's build)
# e.g. to compare with main: mkdir /tmp/before && git archive main scripts tools/cluster tools/xds versions.json | tar -x -C /tmp/before
#      bench/cluster.sh /tmp/before/scripts/cluster.sh COWSAY_CLUSTER_CACHE=/tmp/new-cache scripts/cluster.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
if [[ ${1:-} == -n ]]; then RUNS=$2; shift 2; fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench/cluster.sh: -n is '$RUNS'; allowed: a whole number of 1 or more" >&2; exit 1; }
(($#)) || set -- "$ROOT/scripts/cluster.sh"

declare -A TIMES ENVS
SCRIPTS=()
pending=()
for arg in "$@"; do
    if [[ $arg == [A-Z_]*=* ]]; then pending+=("$arg"); continue; fi
    SCRIPTS+=("$arg")
    ENVS[$arg]="${pending[*]}"
    pending=()
done
STATE=
# shellcheck disable=SC2086 # NAME=VALUE words
trap '[[ -z $STATE ]] || env ${ENVS[$script]} COWSAY_CLUSTER_STATE="$STATE" "$script" down >/dev/null 2>&1; rm -rf "$STATE"' EXIT

timed() {   # timed SCRIPT VERB: seconds, to stdout; the script's own output goes to stderr's log
    local start end
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # NAME=VALUE words
    env ${ENVS[$1]} COWSAY_CLUSTER_STATE="$STATE" "$1" "$2" >>"$LOG" 2>&1 || { echo "bench: $1 $2 failed, see $LOG" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}

round() {   # round SCRIPT [record]
    local up down
    STATE=$(mktemp -d "${TMPDIR:-/tmp}/cowsay-bench-XXXXXX")
    up=$(timed "$1" up)
    down=$(timed "$1" down)
    rm -rf "$STATE"
    STATE=
    [[ ${2:-} == record ]] && TIMES[$1 up]+="$up " && TIMES[$1 down]+="$down "
    return 0
}

stats() {   # stats "t1 t2 ...": median min max, in seconds with one decimal
    local sorted
    mapfile -t sorted < <(tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g)
    printf 'median %.1f s (min %.1f, max %.1f, %d runs)' "${sorted[$((${#sorted[@]} / 2))]}" "${sorted[0]}" "${sorted[-1]}" "${#sorted[@]}"
}

LOG=$(mktemp "${TMPDIR:-/tmp}/cowsay-bench-log-XXXXXX")
echo "bench/cluster.sh: $RUNS rounds; the scripts' output is in $LOG" >&2
for script in "${SCRIPTS[@]}"; do round "$script"; done   # warm-up: builds if needed, fills the page cache
for ((i = 1; i <= RUNS; i++)); do
    for script in "${SCRIPTS[@]}"; do round "$script" record; done
done
for script in "${SCRIPTS[@]}"; do
    echo "$script: $(wc -l <"$script") lines"
    echo "  up:   $(stats "${TIMES[$script up]}")"
    echo "  down: $(stats "${TIMES[$script down]}")"
done
