#!/usr/bin/env bash
# Submit one LaneQueue task with curl through RabbitMQ's management HTTP API, wait for its result and print it.
#
#   LANEQUEUE_RABBITMQ_URL=amqp://guest:guest@localhost:5672/lanequeue \
#   LANEQUEUE_RABBITMQ_MANAGEMENT_URL=http://localhost:15672 \
#     bash examples/curl/submit-task.sh --lane query --payload '{"q": "status"}'
#
# The user, password and vhost come from the AMQP URL; the management API is at LANEQUEUE_RABBITMQ_MANAGEMENT_URL
# (default http://<host of the AMQP URL>:15672). Needs curl and jq. The wire contract is docs/wire-contract.md.
# The management API is for trying things and for tools without an AMQP client: it opens a connection per call and
# has no publisher confirms (a publish answers only whether it was routed); use an AMQP client for real traffic.
#
# Exit codes, as the C# `submit` command: 0 the task succeeded (its result is printed), 2 bad arguments,
# 3 broker unreachable or the task not routed to any lane queue, 4 no result in time, 5 the task failed.
set -uo pipefail

die() { echo "$2" >&2; exit "$1"; }

lane="" id="" payload="{}" command_type="" timeout=30 delay_ms="" dedup_key="" dedup_mode=""
while (($#)); do
  case "$1" in
    --lane) lane="${2-}"; shift 2 ;;
    --id) id="${2-}"; shift 2 ;;
    --payload) payload="${2-}"; shift 2 ;;
    --command-type) command_type="${2-}"; shift 2 ;;
    --timeout) timeout="${2-}"; shift 2 ;;
    --delay-ms) delay_ms="${2-}"; shift 2 ;;
    --dedup-key) dedup_key="${2-}"; shift 2 ;;
    --dedup-mode) dedup_mode="${2-}"; shift 2 ;;
    *) die 2 "unknown argument '$1'; usage: $0 --lane LANE [--id ID] [--payload JSON] [--command-type TYPE] [--timeout SECONDS] [--delay-ms MS] [--dedup-key KEY] [--dedup-mode once|debounce]" ;;
  esac
done
[[ -z "$delay_ms" || "$delay_ms" =~ ^[0-9]+$ ]] || die 2 "--delay-ms must be a whole number of milliseconds"
case "$lane" in
  control) priority=3 ;; query) priority=2 ;; execute) priority=1 ;; generate) priority=0 ;;
  *) die 2 "--lane must be one of control, query, execute, generate" ;;
esac
[[ "$timeout" =~ ^[0-9]+$ && "$timeout" -gt 0 ]] || die 2 "--timeout must be a whole number of seconds"
command -v curl >/dev/null && command -v jq >/dev/null || die 2 "needs curl and jq (Debian: apt-get install curl jq)"
jq -e . >/dev/null 2>&1 <<<"$payload" || die 2 "--payload is not JSON"
id="${id:-curl-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')}"

# amqp://user:password@host:port/vhost -> credentials, host, vhost (each still URL-encoded, as the API paths want the vhost).
url="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/lanequeue}"
rest="${url#*://}"
authority="${rest%%/*}"
[[ "$rest" == */* ]] && vhost="${rest#*/}" || vhost=""
vhost="${vhost%%\?*}"
[[ -n "$vhost" ]] || vhost="%2F"
userinfo="guest:guest"
[[ "$authority" == *@* ]] && userinfo="${authority%@*}"
host="${authority##*@}"
host="${host%:*}"
urldecode() { local s="${1//+/ }"; printf '%b' "${s//%/\\x}"; }
user="$(urldecode "${userinfo%%:*}")"
password="$(urldecode "${userinfo#*:}")"
api_base="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://$host:15672}"
api_base="${api_base%/}/api"

# curl reads the credentials from a config on stdin, so they do not show in the process list.
api() { # METHOD PATH [JSON]
  local method="$1" path="$2" body=()
  (($# > 2)) && body=(--data-binary "$3")
  printf 'user = "%s:%s"\n' "$user" "$password" |
    curl --config - --silent --show-error --fail --max-time 10 -X "$method" -H 'content-type: application/json' \
      "${body[@]}" "$api_base$path"
}

reply="lanequeue.reply.curl-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
cleanup() { api DELETE "/queues/$vhost/$reply" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# The same declarations as every LaneQueue producer and consumer (idempotent).
api PUT "/exchanges/$vhost/lanequeue.tasks" '{"type":"direct","durable":true}' >/dev/null &&
  api PUT "/exchanges/$vhost/lanequeue.results" '{"type":"topic","durable":true}' >/dev/null ||
  die 3 "cannot use the management API at $api_base for vhost '$(urldecode "$vhost")'"

# 1. A queue of our own, bound to the results exchange with the task id, before submitting, so the result cannot be
#    missed. x-expires removes it if this script dies before it deletes it.
api PUT "/queues/$vhost/$reply" "$(jq -nc --argjson ms "$(((timeout + 60) * 1000))" '{durable:false,auto_delete:false,arguments:{"x-expires":$ms}}')" >/dev/null &&
  api POST "/bindings/$vhost/e/lanequeue.results/q/$reply" "$(jq -nc --arg id "$id" '{routing_key:$id}')" >/dev/null ||
  die 3 "cannot declare the result queue"

# 2. Submit: the task as a JSON string, persistent (delivery_mode 2), with the lane as routing key.
task="$(jq -nc --arg id "$id" --arg lane "$lane" --argjson payload "$payload" --arg type "$command_type" \
  --arg delay "$delay_ms" --arg key "$dedup_key" --arg mode "$dedup_mode" \
  '{id:$id,lane:$lane,payload:$payload} + (if $type == "" then {} else {command_type:$type} end)
   + (if $delay == "" then {} else {delay_ms:($delay|tonumber)} end) + (if $key == "" then {} else {dedup_key:$key} end)
   + (if $mode == "" then {} else {dedup_mode:$mode} end)')"
request="$(jq -nc --arg task "$task" --arg lane "$lane" --arg id "$id" --argjson priority "$priority" \
  '{properties:{delivery_mode:2,content_type:"application/json",priority:$priority,message_id:$id},routing_key:$lane,payload:$task,payload_encoding:"string"}')"
routed="$(api POST "/exchanges/$vhost/lanequeue.tasks/publish" "$request" | jq -r .routed)" || die 3 "the publish failed"
[[ "$routed" == "true" ]] ||
  die 3 "task $id was not routed: no queue is bound to lane '$lane' (start a consumer, it declares the lane queues, or check the vhost in the URL)"

# 3. Wait for the result: poll the queue (each get takes the message off it).
deadline=$((SECONDS + timeout))
while ((SECONDS < deadline)); do
  message="$(api POST "/queues/$vhost/$reply/get" '{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}')" || die 3 "cannot read the result queue"
  if [[ "$(jq length <<<"$message")" -gt 0 ]]; then
    result="$(jq -r '.[0].payload' <<<"$message")"
    jq -c . <<<"$result"
    [[ "$(jq -r .success <<<"$result")" == "true" ]] && exit 0 || exit 5
  fi
  sleep 0.3
done
die 4 "no result for task $id within $timeout s; it is stored in lane '$lane' and may still run"
