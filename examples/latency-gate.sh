#!/usr/bin/env bash
# Latency gate for YOUR repository (issue 12): install latbench itself (not the repository under
# test), check out the base and head commits side by side, measure them in the same interleaved rounds
# (`latbench ab --allow-import`), write markdown to $GITHUB_STEP_SUMMARY and keep the results.
#
# Environment (all optional except SUITE):
#   SUITE            suite YAML in your repository, cases 'builder: user' (factory 'pkg.module:function')
#   REPO             your repository's checkout (default: .); it needs the history of BASE_REF
#   BASE_REF         baseline commit (default: origin/main, or the PR's base sha in the workflow)
#   HEAD_REF         candidate commit (default: HEAD)
#   THRESHOLD        e.g. 5% (default 3%: README's recommendation for the A/B gate, validated at
#                    --max-time 6 in docs/compare-and-gate.md)
#   AB_FLAGS         more 'latbench ab' flags (default "--max-time 6"), e.g. "--max-time 20 --threads 1"
#   OUT_DIR          where the results go (default: latbench-gate); gate.json, gate.md, gate.log
#   LATBENCH_SPEC    what pip installs as latbench, as README's install says (latbench is on no package
#                    index): "latbench @ git+https://github.com/OWNER/latbench@TAG", or a latbench clone's
#                    directory. Default: the latbench checkout this script lives in (examples/..), else
#                    "latbench @ git+https://github.com/$LATBENCH_REPOSITORY@$LATBENCH_REF" when
#                    LATBENCH_REPOSITORY is set, else the latbench already importable; none: exit 2.
#                    LATBENCH_SPEC=skip uses the latbench already importable (tests, a pre-built image)
#   PYTHON           the interpreter (default: python3)
# Exit status: the gate's (0 passed, 1 regression or a case it could not judge, 2 bad input).
set -euo pipefail

SUITE=${SUITE:?set SUITE to the suite file in your repository}
REPO=${REPO:-.}
BASE_REF=${BASE_REF:-origin/main}
HEAD_REF=${HEAD_REF:-HEAD}
THRESHOLD=${THRESHOLD:-3%}
AB_FLAGS=${AB_FLAGS:---max-time 6}
OUT_DIR=${OUT_DIR:-latbench-gate}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${LATBENCH_SPEC:-}" ]; then
  if [ -f "$HERE/../latbench/__init__.py" ] && grep -q '^name = "latbench"' "$HERE/../pyproject.toml" 2>/dev/null; then
    LATBENCH_SPEC=$(cd "$HERE/.." && pwd)          # a latbench clone: README's "from a clone" install
  elif [ -n "${LATBENCH_REPOSITORY:-}" ]; then
    LATBENCH_SPEC="latbench @ git+https://github.com/$LATBENCH_REPOSITORY@${LATBENCH_REF:-main}"
  elif "$PYTHON" -c "import latbench" 2>/dev/null; then
    LATBENCH_SPEC=skip
  else
    echo "error: latbench is not installed and LATBENCH_SPEC is not set; latbench is on no package index:" \
         "set LATBENCH_SPEC='latbench @ git+https://github.com/OWNER/latbench@TAG' (README: Without a clone)" >&2
    exit 2
  fi
fi

if [ "$LATBENCH_SPEC" != "skip" ]; then
  # latbench only: the repository under test is imported from its two checkouts, never installed
  "$PYTHON" -m pip install --quiet "$LATBENCH_SPEC"
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# a re-run into the same folder reports this run, never the last one's: start from empty files
rm -f "$OUT_DIR/gate.json" "$OUT_DIR/gate.md" "$OUT_DIR/gate.log"
REPO=$(cd "$REPO" && pwd)
case "$SUITE" in /*) ;; *) SUITE="$REPO/$SUITE" ;; esac
# both commits must be known locally (actions/checkout with fetch-depth: 0 has them)
git -C "$REPO" rev-parse --verify --quiet "$BASE_REF^{commit}" >/dev/null \
  || { echo "error: $REPO: base ref $BASE_REF is not a commit here; fetch it (fetch-depth: 0)" >&2; exit 2; }
git -C "$REPO" rev-parse --verify --quiet "$HEAD_REF^{commit}" >/dev/null \
  || { echo "error: $REPO: head ref $HEAD_REF is not a commit here" >&2; exit 2; }

# run from a neutral directory, so that neither checkout shadows the other on sys.path
status=0
(cd "$OUT_DIR" && GITHUB_STEP_SUMMARY="$OUT_DIR/gate.md" "$PYTHON" -m latbench ab "$SUITE" \
    --base "$BASE_REF" --head "$HEAD_REF" --repo "$REPO" --allow-import --threshold "$THRESHOLD" \
    $AB_FLAGS --json >"$OUT_DIR/gate.json" 2>"$OUT_DIR/gate.log") || status=$?
cat "$OUT_DIR/gate.log" >&2
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$OUT_DIR/gate.md" ]; then
  cat "$OUT_DIR/gate.md" >>"$GITHUB_STEP_SUMMARY"
fi
# the verdict of THIS run, from its JSON (gate.md is written afresh above; the JSON has one summary)
"$PYTHON" - "$OUT_DIR/gate.json" <<'PY' || true
import json, sys
try:
    print(json.load(open(sys.argv[1], encoding="utf-8"))["gate"]["summary"])
except (OSError, ValueError, KeyError, TypeError):
    print("latency gate: no verdict (see gate.log)")
PY
exit "$status"
