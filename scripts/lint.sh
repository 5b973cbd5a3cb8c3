#!/usr/bin/env bash
# lint.sh — lints for the files ESLint does not read: actionlint on .github/workflows, shellcheck on
# scripts/ and .ci/run. Both tools are pinned and installed when missing, from registries the project's
# machines reach: actionlint from the Go module proxy (its PyPI wrapper downloads a release binary at
# install time, which fails offline), shellcheck from Debian's packages.
#
# Usage: scripts/lint.sh         (installs what is missing, then lints; exit 1 on any finding)
# Environment: COWSAY_TOOLS_CACHE (default ~/.cache/cowsay-bluegreen/tools), COWSAY_GO_CACHE as in engine.sh (scripts/lib.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ACTIONLINT_VERSION=v1.7.12
SHELLCHECK_VERSION=0.9.0-1          # Debian bookworm's; `apt-cache policy shellcheck`
TOOLS=${COWSAY_TOOLS_CACHE:-$HOME/.cache/cowsay-bluegreen/tools}/actionlint-$ACTIONLINT_VERSION
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh" lint

if [[ ! -x $TOOLS/actionlint ]]; then
    go_env "install actionlint $ACTIONLINT_VERSION"
    log "installing actionlint $ACTIONLINT_VERSION from the Go module proxy ..."
    GOBIN=$TOOLS go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
if [[ $(dpkg-query -W -f '${Version}' shellcheck 2>/dev/null) != "$SHELLCHECK_VERSION" ]]; then
    [[ $(id -u) == 0 ]] || die "shellcheck $SHELLCHECK_VERSION is missing: sudo apt-get install shellcheck=$SHELLCHECK_VERSION"
    log "installing shellcheck $SHELLCHECK_VERSION from Debian's packages ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "shellcheck=$SHELLCHECK_VERSION" >/dev/null
fi

cd "$ROOT"
status=0
log "actionlint $("$TOOLS/actionlint" -version | head -n1) on .github/workflows"
"$TOOLS/actionlint" -shellcheck=shellcheck .github/workflows/*.yml || status=1
log "shellcheck $(shellcheck --version | sed -n 's/^version: //p') on scripts/ and .ci/run"
shellcheck --external-sources scripts/*.sh .ci/run || status=1
exit "$status"
