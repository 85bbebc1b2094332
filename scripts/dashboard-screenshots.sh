#!/usr/bin/env bash
# Writes the dashboard screenshots in docs/dashboard/ (lanes.png, fleet.png, task.png, task-progress.png, dead-letters.png): runs the dashboard's browser tests
# (Debian's chromium through Playwright, a real broker, an in-process consumer) with LANEQUEUE_DASHBOARD_SCREENSHOTS set.
#
#   bash scripts/dashboard-screenshots.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/broker-up.sh
[[ -x /usr/bin/chromium ]] || bash scripts/install-example-deps.sh
export LANEQUEUE_RABBITMQ_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
export LANEQUEUE_RABBITMQ_MANAGEMENT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
export LANEQUEUE_DASHBOARD_SCREENSHOTS="$PWD/docs/dashboard"

dotnet build tests/LaneQueue.Tests -c Release -nologo -v quiet
dotnet test tests/LaneQueue.Tests -c Release --no-build --filter "FullyQualifiedName~LaneQueue.Tests.Dashboard.DashboardBrowserTests"
ls -l docs/dashboard/*.png
