#!/usr/bin/env bash
# readme-block.sh — print one command block of the README that CI runs as a newcomer types it.
#
# A block is marked `<!-- ci: <id> -->` on the line before its ```sh fence. `.ci/run` runs the README's
# set-up and "see it work" blocks through this script, so CI types exactly what the README shows, in
# the README's order, and a README edit changes what CI runs. (The blocks that the end-to-end suites
# run are marked `<!-- e2e: <id> -->` and read by test/support/readme.ts; test/readme.test.ts checks that this
# script and that reader agree on the format.)
#
# Usage: scripts/readme-block.sh ID [FILE]     (FILE defaults to README.md at the repository root)
set -euo pipefail
id=${1:?usage: scripts/readme-block.sh ID [FILE]}
file=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/README.md}
awk -v mark="<!-- ci: $id -->" -v file="$file" '
    $0 == mark { found++; if (found > 1) { print file ": the ci mark " mark " is used twice" > "/dev/stderr"; bad = 1; exit }
                 start = NR; next }
    start && NR == start + 1 { if ($0 != "```sh") { print file ":" NR ": " mark " must be followed by a ```sh fence" > "/dev/stderr"; bad = 1; exit }
                               inside = 1; next }
    inside && $0 == "```" { inside = 0; start = 0; closed = 1; next }
    inside { print }
    END { if (bad) exit 2
          if (!found) { print file ": no block is marked " mark > "/dev/stderr"; exit 2 }
          if (!closed) { print file ": the block marked " mark " is not closed" > "/dev/stderr"; exit 2 } }
' "$file"
