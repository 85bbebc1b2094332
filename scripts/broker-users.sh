#!/usr/bin/env bash
# Create LaneQueue's broker users with least privilege, through the management HTTP API (idempotent; re-run to
# rotate passwords). Nothing secret is ever printed or put on a command line (curl reads its credentials and the
# request bodies from file descriptors, not argv).
#
#   producer  may publish tasks to the ingress exchange (lanequeue.tasks) and read results of the ids it asks for:
#             its own reply queues (lanequeue.replies.*), bound to lanequeue.results with an exact task id
#             (topic permission: no '#' or '*', optionally only ids with a prefix). It cannot consume, purge,
#             declare or delete a lane, send fleet commands or touch dead letters.
#   consumer  the worker: declares and consumes the lane queues, publishes results and events, moves dead letters
#             and retries; nothing else (no reply queues of producers, no dead-letter reading).
#   admin     the CLI's control commands (cancel, dead-letter list/redrive/purge, handler modes): everything in the
#             vhost, and the management UI for it (tag 'management'). Not a broker administrator.
#
# Environment (secrets from the environment or from files, never arguments):
#   LANEQUEUE_RABBITMQ_MANAGEMENT_URL        management API [http://localhost:15672]
#   LANEQUEUE_RABBITMQ_MANAGEMENT_USER / _PASSWORD / _PASSWORD_FILE   a broker administrator [guest/guest: local broker only]
#   LQ_VHOST                                 [lanequeue] (created when missing)
#   LQ_PRODUCER_USER / LQ_CONSUMER_USER / LQ_ADMIN_USER   [lanequeue-producer / lanequeue-consumer / lanequeue-admin]
#   LQ_PRODUCER_PASSWORD or LQ_PRODUCER_PASSWORD_FILE, the same for CONSUMER and ADMIN (required)
#   LQ_MONITOR_USER [lanequeue-monitor] + LQ_MONITOR_PASSWORD(_FILE): optional read-depth-only user (KEDA)
#   LQ_PRODUCER_ID_PREFIX                    if set, producers may only read results of task ids starting with it
#   LQ_REMOVE_GUEST=1                        delete the built-in guest user (do this everywhere but a developer's machine)
set -euo pipefail

MGMT="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
MGMT="${MGMT%/}"
VHOST="${LQ_VHOST:-lanequeue}"
P_USER="${LQ_PRODUCER_USER:-lanequeue-producer}"
C_USER="${LQ_CONSUMER_USER:-lanequeue-consumer}"
A_USER="${LQ_ADMIN_USER:-lanequeue-admin}"

log() { printf '[broker-users] %s\n' "$*" >&2; }
die() { printf '[broker-users] ERROR: %s\n' "$*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (JSON encoding of passwords)"

secret() {   # secret NAME -> value of $NAME, else the contents of the file $NAME_FILE
  local name="$1" file_var="${1}_FILE"
  if [[ -n "${!name:-}" ]]; then printf '%s' "${!name}"
  elif [[ -n "${!file_var:-}" ]]; then
    [[ -r "${!file_var}" ]] || die "$file_var names a file that cannot be read"
    tr -d '\r\n' <"${!file_var}"
  else return 1; fi
}

MGMT_USER="${LANEQUEUE_RABBITMQ_MANAGEMENT_USER:-guest}"
MGMT_PASS="$(secret LANEQUEUE_RABBITMQ_MANAGEMENT_PASSWORD || echo guest)"
curl_auth() {   # curl config on a file descriptor: the credentials never reach argv
  local escaped="${MGMT_USER}:${MGMT_PASS}"
  escaped="${escaped//\\/\\\\}"; escaped="${escaped//\"/\\\"}"
  printf 'user = "%s"\n' "$escaped"
}

enc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# api METHOD PATH [JSON on stdin]
api() {
  local method="$1" path="$2" code out
  out="$(mktemp)"
  if [[ "$method" == PUT || "$method" == POST ]]; then
    code="$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 -K <(curl_auth) -H 'content-type: application/json' \
      -X "$method" --data-binary @- "$MGMT/api/$path")" || code=000
  else
    code="$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 -K <(curl_auth) -X "$method" "$MGMT/api/$path")" || code=000
  fi
  case "$code" in
    2??) rm -f "$out" ;;
    404) rm -f "$out"; [[ "$method" == DELETE ]] || die "$method /api/$path: not found" ;;
    401|403) rm -f "$out"; die "the management API at $MGMT refuses user '$MGMT_USER' (HTTP $code): set LANEQUEUE_RABBITMQ_MANAGEMENT_USER / _PASSWORD to a broker administrator" ;;
    *) local body; body="$(head -c 300 "$out")"; rm -f "$out"; die "$method /api/$path failed (HTTP $code): $body" ;;
  esac
}

json() { python3 -c 'import json,os,sys; print(json.dumps(json.loads(sys.argv[1])))' "$1"; }

put_user() {   # put_user NAME SECRET_VAR TAGS
  local name="$1" var="$2" tags="$3" password
  password="$(secret "$var")" || die "set $var or ${var}_FILE (the password of user $name)"
  ((${#password} >= 12)) || die "the password of $name ($var) must have at least 12 characters"
  PW="$password" TAGS="$tags" python3 -c 'import json,os; print(json.dumps({"password": os.environ["PW"], "tags": os.environ["TAGS"]}))' \
    | api PUT "users/$(enc "$name")"
  log "user $name (tags: ${tags:-none})"
}

permit() {   # permit USER CONFIGURE WRITE READ
  CONF="$2" WRITE="$3" READ="$4" python3 -c 'import json,os; print(json.dumps({"configure": os.environ["CONF"], "write": os.environ["WRITE"], "read": os.environ["READ"]}))' \
    | api PUT "permissions/$(enc "$VHOST")/$(enc "$1")"
}

topic() {   # topic USER EXCHANGE WRITE READ
  EX="$2" WRITE="$3" READ="$4" python3 -c 'import json,os; print(json.dumps({"exchange": os.environ["EX"], "write": os.environ["WRITE"], "read": os.environ["READ"]}))' \
    | api PUT "topic-permissions/$(enc "$VHOST")/$(enc "$1")"
}

log "management API $MGMT, vhost $VHOST"
echo '{}' | api PUT "vhosts/$(enc "$VHOST")"

# The exchanges producers need before any consumer ran (same arguments as src/Producer/Broker/BrokerTopology.cs).
for spec in lanequeue.tasks:direct lanequeue.results:topic lanequeue.events:topic lanequeue.fleet:fanout \
            lanequeue.fleet.state:fanout lanequeue.fleet.lanes:fanout lanequeue.external:topic lanequeue.external.completions:direct; do
  json "{\"type\":\"${spec#*:}\",\"durable\":true,\"auto_delete\":false,\"internal\":false,\"arguments\":{}}" \
    | api PUT "exchanges/$(enc "$VHOST")/$(enc "${spec%%:*}")"
done

# The task history stream and its binding (same arguments as BrokerTopology.cs): binding every result into it needs
# read access to all of lanequeue.results, which only the administrator has. Consumers append the lifecycle events
# themselves, in batches; the events exchange's command.# binding of older versions would store them twice: removed.
# The retention is the fleet's LaneQueue__HistoryMaxAge / LaneQueue__HistoryMaxBytes (defaults 7D / 5 GiB).
json "{\"durable\":true,\"auto_delete\":false,\"arguments\":{\"x-queue-type\":\"stream\",\"x-max-age\":\"${LaneQueue__HistoryMaxAge:-7D}\",\"x-max-length-bytes\":${LaneQueue__HistoryMaxBytes:-5368709120}}}" \
  | api PUT "queues/$(enc "$VHOST")/lanequeue.history"
api DELETE "bindings/$(enc "$VHOST")/e/lanequeue.events/q/lanequeue.history/command.%23"
json '{"routing_key":"#","arguments":{}}' | api POST "bindings/$(enc "$VHOST")/e/lanequeue.results/q/lanequeue.history"

put_user "$P_USER" LQ_PRODUCER_PASSWORD ""
put_user "$C_USER" LQ_CONSUMER_PASSWORD ""
put_user "$A_USER" LQ_ADMIN_PASSWORD "management"

LANES='(control|query|execute|generate|priority)'
# producer: ingress + its own reply queues; results readable only by exact task id (or with the configured prefix)
# (delayed tasks: it publishes them to the delay tree's entry exchange, lanequeue.delay.NN, which the consumers declare)
# (recurring schedules: it reads lanequeue.fleet.state and lanequeue.schedules.fired to list them; adding, pausing or
# removing one is a fleet command, which only the admin user may send)
permit "$P_USER" \
  '^lanequeue\.replies\..+$' \
  '^lanequeue\.tasks$|^lanequeue\.delay\.[0-9]+$|^lanequeue\.replies\..+$' \
  '^lanequeue\.results$|^lanequeue\.replies\..+$|^lanequeue\.fleet\.state$|^lanequeue\.schedules\.fired$'
prefix="${LQ_PRODUCER_ID_PREFIX:-}"
prefix_re="$(PREFIX="$prefix" python3 -c 'import os,re; print(re.escape(os.environ["PREFIX"]))')"
topic "$P_USER" lanequeue.results '^$' "^${prefix_re}[^*#]+\$"

# consumer: lanes, their error/skipped queues and exchanges, retries, results, events, fleet log and state, the fleet
# monitor's election queue and lane-state broadcasts, the task history stream (declared, bound and read for redelivered
# tasks; a reader appends a marker) and its counts checkpoint, external lanes and their durable queues of external work,
# the fleet limits' token queues (lanequeue.limits.*), the delay tree of delayed tasks (lanequeue.delay.*: quorum TTL hop queues
# and topic exchanges, declared, bound, dead-lettered through and published to), the copies of broker dead letters the fleet answers
# (lanequeue.broker-dead-letters: declared, bound to the _error exchanges, consumed), the fleet exchange lanequeue.fleet (written:
# the built-in lanequeue.interrupt task publishes a session interrupt there), the recurring schedules' firing record
# (lanequeue.schedules.fired: a stream the fleet monitor declares, appends to and reads), the de-duplication keys' claim, owner
# and debounce latest-task queues (lanequeue.dedup.*: declared, published to, read), and MassTransit's fault exchanges (bound to each
# other; it publishes a Fault<TaskDelivery> event for every dead-lettered task)
MT_FAULT='^MassTransit:Fault(--.+)?$'
permit "$C_USER" \
  "$MT_FAULT|^lanequeue\\.(tasks|results|events|heartbeats|fleet|fleet\\.log|fleet\\.state|fleet\\.monitor|fleet\\.lanes|schedules\\.fired|history|history\\.counts|external|external\\.completions|broker-dead-letters)\$|^lanequeue\\.external\\.${LANES}\$|^lanequeue\\.${LANES}(_error|_skipped)?\$|^lanequeue\\.${LANES}\\.retry\\..+\$|^lanequeue\\.fleet-events\\..+\$|^amq\\.gen-.+\$|^lanequeue\\.limits\\..+\$|^lanequeue\\.delay\\..+\$|^lanequeue\\.dedup\\..+\$" \
  "$MT_FAULT|^lanequeue\\.(tasks|results|events|heartbeats|external|broker-dead-letters)\$|^lanequeue\\.external\\.${LANES}\$|^lanequeue\\.${LANES}(_error|_skipped)?\$|^lanequeue\\.${LANES}\\.retry\\..+\$|^lanequeue\\.fleet(\\.(log|state|lanes|monitor))?\$|^lanequeue\\.history\$|^lanequeue\\.schedules\\.fired\$|^lanequeue\\.fleet-events\\..+\$|^amq\\.gen-.+\$|^lanequeue\\.limits\\..+\$|^lanequeue\\.delay\\..+\$|^lanequeue\\.dedup\\..+\$|^amq\\.default\$" \
  "$MT_FAULT|^lanequeue\\.(tasks|events|fleet|fleet\\.log|fleet\\.state|fleet\\.monitor|fleet\\.lanes|schedules\\.fired|history|external|external\\.completions|broker-dead-letters)\$|^lanequeue\\.${LANES}(_error|_skipped)?\$|^lanequeue\\.${LANES}\\.retry\\..+\$|^lanequeue\\.fleet-events\\..+\$|^amq\\.gen-.+\$|^lanequeue\\.limits\\..+\$|^lanequeue\\.delay\\..+\$|^lanequeue\\.dedup\\..+\$"
topic "$C_USER" lanequeue.results '.*' '^$'
# (retry holding queues are readable because declaring a queue with a dead-letter exchange needs read on it)

# admin: the whole vhost
permit "$A_USER" '.*' '.*' '.*'

# monitor (optional, for autoscalers such as KEDA): may connect to the vhost and read queue depths (passive
# queue.declare needs no permission), nothing else
if secret LQ_MONITOR_PASSWORD >/dev/null; then
  M_USER="${LQ_MONITOR_USER:-lanequeue-monitor}"
  put_user "$M_USER" LQ_MONITOR_PASSWORD ""
  permit "$M_USER" '^$' '^$' '^$'
fi

if [[ "${LQ_REMOVE_GUEST:-0}" == 1 ]]; then
  [[ "$MGMT_USER" != guest ]] || die "LQ_REMOVE_GUEST=1 while the script itself logs in as guest: create a broker administrator first"
  api DELETE "users/guest"
  log "user guest removed"
fi
log "done: $P_USER, $C_USER, $A_USER on vhost $VHOST"
