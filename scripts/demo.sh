#!/usr/bin/env bash
# The LaneQueue demo: a broker, a fleet of two consumer processes, a backlog of slow `generate` tasks,
# then one `query` task that overtakes the whole backlog. Everything is shown live; takes about a minute.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/5 broker"
bash scripts/broker-up.sh
MGMT="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
MGMT_AUTH="${LANEQUEUE_RABBITMQ_MANAGEMENT_USER:-guest}:${LANEQUEUE_RABBITMQ_MANAGEMENT_PASSWORD:-guest}"
BASE="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"
VHOST="lanequeue-demo"
URL="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme,p.netloc,"/"+sys.argv[2],"","")))' "$BASE" "$VHOST")"
user="$(python3 -c 'import sys,urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1]).username or "guest"))' "$BASE")"
curl -fsS -u "$MGMT_AUTH" -X PUT "$MGMT/api/vhosts/$VHOST" >/dev/null
curl -fsS -u "$MGMT_AUTH" -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$MGMT/api/permissions/$VHOST/$user" >/dev/null
echo "demo vhost: $VHOST (watch it in the management UI: $MGMT/#/queues)"

say "2/5 build"
dotnet build LaneQueue.sln -c Release -v quiet -nologo
CONSUMER=src/Worker/bin/Release/net10.0/LaneQueue.Worker.dll
PRODUCER=src/Cli/bin/Release/net10.0/LaneQueue.Cli.dll

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  curl -fsS -u "$MGMT_AUTH" -X DELETE "$MGMT/api/vhosts/$VHOST" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "3/5 a fleet of two consumers"
for n in 1 2; do
  dotnet "$CONSUMER" --LaneQueue:RabbitMqUrl="$URL" --LaneQueue:ConsumerName="consumer-$n" --Worker:BuiltInHandlers=true \
    --LaneQueue:HeartbeatIntervalMs=500 \
    --Logging:Console:FormatterName=simple --Logging:Console:FormatterOptions:SingleLine=true \
    --Logging:Console:FormatterOptions:TimestampFormat="HH:mm:ss.fff " \
    --Logging:LogLevel:Default=Warning --Logging:LogLevel:LaneQueue=Debug \
    > >(grep --line-buffered -E "started in lane|paused|resumed|fail|error" \
        | sed -u -e "s/^/  [consumer-$n] /" -e 's/ LaneQueue.Consumer.[A-Za-z]*\[[0-9]*\]//') 2>&1 &
  pids+=($!) # the consumer itself (a pipeline's $! would be sed, and the consumer would outlive the demo)
done
for _ in $(seq 1 60); do
  ready=$(curl -fsS -u "$MGMT_AUTH" "$MGMT/api/queues/$VHOST/lanequeue.generate" 2>/dev/null \
          | python3 -c 'import json,sys; print(json.load(sys.stdin).get("consumers",0))' 2>/dev/null || echo 0)
  [[ "$ready" -ge 2 ]] && break
  sleep 1
done
echo "consumers online: $ready"

say "4/5 a backlog of 12 generate tasks, 1.5 s each (one at a time per consumer)"
dotnet "$PRODUCER" submit --url "$URL" --lane generate --id report --count 12 --command-type sleep --payload '{"ms":1500}'
sleep 3

say "5/5 one query task, submitted now, while generate tasks are still waiting"
# The lanequeue CLI's stats: ready at the broker (passive declares) and held by the consumers waiting for a slot (their
# heartbeats, every 500 ms here): with prefetch, most of a small backlog waits in the consumers.
pending() { dotnet "$PRODUCER" stats --url "$URL" --json --listen 0.7 | python3 -c 'import json,sys; g=next(l for l in json.load(sys.stdin)["lanes"] if l["lane"]=="generate"); print(g["pending"], "at the broker,", g["waiting"], "held by the consumers")'; }
echo "generate tasks waiting: $(pending)"
dotnet "$PRODUCER" submit --url "$URL" --lane query --id urgent-query --payload '{"q":"status"}' --wait 30 \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("query result:", json.dumps(r)); print("  -> ran on", r["consumer"], "at", r["started_at"], "ahead of the waiting generate tasks")'
sleep 1
echo "generate tasks still waiting after the query finished: $(pending) (they run next)"
echo
echo "Done. (consumers stop gracefully; the demo vhost is deleted)"
