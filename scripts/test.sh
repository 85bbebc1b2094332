#!/usr/bin/env bash
# Runs the whole test suite (unit + integration) against a real RabbitMQ.
# Makes a broker answer first (scripts/broker-up.sh: an existing one, docker compose, or Debian's rabbitmq-server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/broker-up.sh
bash scripts/install-example-deps.sh   # python3-pika, node + amqplib, curl, jq for the any-language examples
export LANEQUEUE_RABBITMQ_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
export LANEQUEUE_RABBITMQ_MANAGEMENT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test LaneQueue.sln -c Release --filter "Category!=Cluster" \
  --logger "console;verbosity=normal" --blame-hang-timeout 5m --blame-hang-dump-type none 2>&1 | tee "$log" || status=$?
# The distributed-broker test starts a 3-node cluster of its own (scripts/cluster.sh): a step of its own.
if [[ $status -eq 0 ]]; then
  dotnet test tests/LaneQueue.Tests -c Release --no-build --filter "Category=Cluster" \
    --logger "console;verbosity=normal" --blame-hang-timeout 10m --blame-hang-dump-type none 2>&1 | tee -a "$log" || status=$?
fi

# One plain closing line: "N passed, N failed".
total() { grep -oE "$1: +[0-9]+" "$log" | awk '{ n += $2 } END { print n + 0 }'; }
echo "tests: $(total Passed) passed, $(total Failed) failed"
exit "$status"
