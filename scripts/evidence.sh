#!/usr/bin/env bash
# Runs the tests whose numbers README.md and docs/reliability.md quote, with LANEQUEUE_EVIDENCE_DIR set, so each writes
# its results file (<test>.json) into docs/evidence/ (or the folder given as the first argument), plus RUN.md: the
# command, the commit, the machine and every test's outcome. Commit the files with the docs that quote them.
# Needs what scripts/test.sh needs (root: the fault tests start RabbitMQ nodes of their own). About 30 minutes on 2 cores,
# most of it the 100,000-task soak (LANEQUEUE_SOAK_TASKS, default here 100000), which alone can take 15 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="$(realpath -m "${1:-docs/evidence}")"
bash scripts/broker-up.sh
export LANEQUEUE_RABBITMQ_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
export LANEQUEUE_RABBITMQ_MANAGEMENT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
export LANEQUEUE_SOAK_TASKS="${LANEQUEUE_SOAK_TASKS:-100000}"
export LANEQUEUE_EVIDENCE_DIR="$out"
mkdir -p "$out"
rm -f "$out"/*.json

filter="FullyQualifiedName~LaneQueue.Tests.Faults|FullyQualifiedName~OrderingTests|FullyQualifiedName~ControlTests|FullyQualifiedName~AgingTests|FullyQualifiedName~RateLimitTests|FullyQualifiedName~QuorumChurn"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$(date -u '+%Y-%m-%d %H:%M UTC')
status=0
dotnet test tests/LaneQueue.Tests -c Release --filter "$filter" --logger "console;verbosity=normal" \
  --blame-hang-timeout 40m --blame-hang-dump-type none 2>&1 | tee "$log" || status=$?

{
  echo "# Evidence run"
  echo
  echo "Written by \`bash scripts/evidence.sh\` (LANEQUEUE_SOAK_TASKS=$LANEQUEUE_SOAK_TASKS): the tests below ran with"
  echo "\`LANEQUEUE_EVIDENCE_DIR\` set, and each wrote its numbers to \`<test>.json\` in this folder."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| started | $started |"
  echo "| finished | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| commit | $(git describe --always --dirty --abbrev=7) |"
  echo "| machine | $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average at the end $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| dotnet test exit code | $status |"
  echo
  echo "Outcome of each test (dotnet test, console logger):"
  echo
  echo '```'
  grep -E '^\s+(Passed|Failed|Skipped) LaneQueue\.' "$log" | sed -E 's/^\s+//' | sort -k2
  grep -E '^\s*(Total tests|Passed|Failed|Skipped): ' "$log" | sed -E 's/^\s+//'
  echo '```'
} >"$out/RUN.md"
echo "wrote $out/RUN.md and $(ls "$out"/*.json 2>/dev/null | wc -l) results files"
exit "$status"
