#!/bin/sh
# The final job of a CI matrix: merge every result document the matrix jobs uploaded (found
# anywhere under RESULTS: download-artifact puts each artifact in its own directory) into
# OUT/matrix.json, render it (matrix.txt, matrix.md, matrix.html) and gate it.
#
#   footprint-merge.sh RESULTS OUT [BUDGET]
#
# With BUDGET (a budget TOML, see the README) `footprint check` gates every cell and the
# script exits with its code (1: some cell failed or is over budget); merge's own refusals
# (5: two results for one cell, one image name with two images, other schema versions) stop
# it first. On GitHub, the table goes to $GITHUB_STEP_SUMMARY.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 RESULTS OUT [BUDGET]" >&2; exit 2; }
results=$1 out=$2 budget=${3:-}
footprint=${FOOTPRINT:-footprint}
mkdir -p "$out"
list=$out/.results
find "$results" -name '*.json' -type f | LC_ALL=C sort >"$list"
[ -s "$list" ] || { echo "$0: no result documents under $results" >&2; exit 2; }
# one argument per line: paths with spaces stay whole
(IFS='
'; set -f; exec $footprint merge $(cat "$list") -o "$out/matrix.json")
rm -f "$list"
$footprint report "$out/matrix.json" --text -o "$out/matrix.txt"
$footprint report "$out/matrix.json" --markdown -o "$out/matrix.md"
$footprint report "$out/matrix.json" -o "$out/matrix.html"
cat "$out/matrix.txt"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat "$out/matrix.md" >>"$GITHUB_STEP_SUMMARY"
fi
[ -z "$budget" ] || exec $footprint check "$out/matrix.json" --budget "$budget"
