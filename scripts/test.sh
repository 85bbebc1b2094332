#!/usr/bin/env bash
# Runs the whole test suite (unit + integration) against a real RabbitMQ.
# Makes a broker answer first (scripts/broker-up.sh: an existing one, docker compose, or Debian's rabbitmq-server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/broker-up.sh
bash scripts/install-example-deps.sh   # python3-pika, node + amqplib, curl, jq for the any-language examples; chromium for the dashboard
export LANEQUEUE_RABBITMQ_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
export LANEQUEUE_RABBITMQ_MANAGEMENT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"

log=$(mktemp)
steplog=$(mktemp)
trap 'rm -f "$log" "$steplog"' EXIT
status=0

# One step of the suite: dotnet test with a filter. A step whose filter matched no test fails the run (a renamed trait or
# class must not turn a step into a silent pass): dotnet test itself exits 0 then.
step() {
  local name=$1
  shift
  local code=0
  : >"$steplog"
  dotnet test "$@" --logger "console;verbosity=normal" --blame-hang-dump-type none 2>&1 | tee "$steplog" || code=$?
  cat "$steplog" >>"$log"
  local ran
  ran=$({ grep -oE "Total tests: +[0-9]+" "$steplog" || true; } | awk '{ n += $3 } END { print n + 0 }')
  if grep -q "No test matches the given testcase filter" "$steplog" || [[ $ran -eq 0 ]]; then
    echo "test.sh: step '$name' ran no test: its filter matched nothing (renamed trait or class?)" | tee -a "$log" >&2
    code=1
  else
    echo "test.sh: step '$name' ran $ran tests (exit $code)" | tee -a "$log"
  fi
  [[ $code -eq 0 ]] || status=$code
}

step "main suite (Category!=Cluster)" LaneQueue.sln -c Release --filter "Category!=Cluster" --blame-hang-timeout 5m
# The distributed-broker test starts a 3-node cluster of its own (scripts/cluster.sh): a step of its own.
if [[ $status -eq 0 ]]; then
  step "cluster (Category=Cluster)" tests/LaneQueue.Tests -c Release --no-build --filter "Category=Cluster" --blame-hang-timeout 10m
fi

# Failed tests again at the end, with their messages: CI shows only the tail of a long run.
if grep -qE "^ +Failed [A-Za-z]" "$log"; then
  echo "== failed tests"
  awk '/^ +Failed [A-Za-z]/ { n = 25 } n > 0 { print; n-- }' "$log" | cut -c1-400
fi
# One plain closing line: "N passed, N failed".
total() { grep -oE "$1: +[0-9]+" "$log" | awk '{ n += $2 } END { print n + 0 }'; }
echo "tests: $(total Passed) passed, $(total Failed) failed"
exit "$status"
