#!/usr/bin/env bash
# Full ShuffleNet V2 G1-G4 reproduction on this machine's CPU: every suite at x1/x2/x4, with the
# op breakdown, then the report. Run it on a quiet machine (stop other jobs; check 'latbench env'):
# it takes roughly 10-40 minutes, and telemetry flags rows measured under load.
#
#   benchmarks/reproduce.sh            # docs/evidence/results/ + docs/reproduction.md + docs/figures/
#   THREADS=4 benchmarks/reproduce.sh  # another thread count (default 1, as the paper's ARM runs)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-1}"
REPEATS="${REPEATS:-3}"  # worker processes per group: intervals include the between-process spread (docs/intervals.md)
RESULTS="${RESULTS:-docs/evidence/results}"  # committed evidence, not the user's results/
DOCS="${DOCS:-docs}"
mkdir -p "$RESULTS" "$DOCS"
python -m latbench env --json > "$RESULTS/env-$(date -u +%Y%m%dT%H%M%SZ).json"
python -m latbench run suites/g1.yaml suites/g2.yaml suites/g3.yaml suites/g4.yaml \
    --device cpu --threads "$THREADS" --repeats "$REPEATS" --profile --results-dir "$RESULTS"
python -m latbench report "$RESULTS"/*.csv -o "$DOCS/reproduction.md"
echo "wrote $DOCS/reproduction.md; commit $RESULTS/ and $DOCS/ and say what they show" >&2
