#!/usr/bin/env bash
# Builds the consumer and the bench in Release, then runs the bench against a real RabbitMQ.
# Arguments go to the bench: `bash scripts/bench.sh --quick`, `bash scripts/bench.sh --only preemption,aging`.
# Results: bench/results/ (full run) or bench/results/quick/ (--quick); see bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LANEQUEUE_RABBITMQ_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
export LANEQUEUE_RABBITMQ_MANAGEMENT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
# The broker at LANEQUEUE_RABBITMQ_URL if it answers, else one started as for the tests.
bash scripts/broker-up.sh

dotnet build src/Worker/LaneQueue.Worker.csproj -c Release -nologo -v quiet
dotnet build bench/LaneQueue.Bench/LaneQueue.Bench.csproj -c Release -nologo -v quiet
exec dotnet bench/LaneQueue.Bench/bin/Release/net10.0/LaneQueue.Bench.dll "$@"
