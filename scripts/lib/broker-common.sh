# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared by scripts/broker-up.sh and scripts/broker-down.sh (sourced, not run).
#
# Environment honoured (all optional):
#   LANEQUEUE_RABBITMQ_URL             AMQP URL [amqp://guest:guest@localhost:5672/lanequeue]
#   LANEQUEUE_RABBITMQ_MANAGEMENT_URL  management HTTP API [http://localhost:15672]
#   LANEQUEUE_RABBITMQ_MANAGEMENT_USER / _PASSWORD  management credentials [guest / guest]
#   LANEQUEUE_BROKER_MODE              auto | local | docker [auto]
#   LANEQUEUE_BROKER_TIMEOUT           seconds to wait for a starting broker [90]
#   LANEQUEUE_BROKER_DIR               where the local broker's config copies live
#                                      [/var/lib/rabbitmq/lanequeue]
#   RABBITMQ_NODENAME                  RabbitMQ's own; default rabbit@<short hostname>,
#                                      rabbit@localhost when the hostname does not resolve

LQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LQ_INFRA="$LQ_ROOT/infra/rabbitmq"

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

LQ_AMQP_URL="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/lanequeue}"
LQ_MGMT_URL="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
LQ_MGMT_URL="${LQ_MGMT_URL%/}"
LQ_MGMT_USER="${LANEQUEUE_RABBITMQ_MANAGEMENT_USER:-guest}"
LQ_MGMT_PASS="${LANEQUEUE_RABBITMQ_MANAGEMENT_PASSWORD:-guest}"
LQ_MODE="${LANEQUEUE_BROKER_MODE:-auto}"
LQ_TIMEOUT="${LANEQUEUE_BROKER_TIMEOUT:-90}"
LQ_STATE_DIR="${LANEQUEUE_BROKER_DIR:-/var/lib/rabbitmq/lanequeue}"
LQ_STARTUP_LOG="/var/log/rabbitmq/lanequeue-startup.log"

lq_log() { printf '[broker] %s\n' "$*" >&2; }
lq_die() { printf '[broker] ERROR: %s\n' "$*" >&2; exit 1; }

# --- URL parsing -----------------------------------------------------------
# amqp[s]://user:pass@host:port/vhost -> LQ_AMQP_HOST, LQ_AMQP_PORT
lq_parse_amqp_url() {
  local rest="$LQ_AMQP_URL" scheme hostport
  scheme="${rest%%://*}"
  rest="${rest#*://}"
  rest="${rest%%/*}"        # drop /vhost
  rest="${rest%%\?*}"
  hostport="${rest##*@}"    # drop user:pass@
  if [[ "$hostport" == \[* ]]; then          # [::1]:5672
    LQ_AMQP_HOST="${hostport%%]*}"; LQ_AMQP_HOST="${LQ_AMQP_HOST#[}"
    hostport="${hostport#*]}"
    LQ_AMQP_PORT="${hostport#:}"
  elif [[ "$hostport" == *:* ]]; then
    LQ_AMQP_HOST="${hostport%%:*}"; LQ_AMQP_PORT="${hostport##*:}"
  else
    LQ_AMQP_HOST="$hostport"; LQ_AMQP_PORT=""
  fi
  [[ -n "$LQ_AMQP_HOST" ]] || LQ_AMQP_HOST=localhost
  if [[ -z "$LQ_AMQP_PORT" ]]; then
    if [[ "$scheme" == amqps ]]; then LQ_AMQP_PORT=5671; else LQ_AMQP_PORT=5672; fi
  fi
}

lq_is_local_host() {
  case "$1" in
    localhost|127.*|::1|0.0.0.0|"$(hostname 2>/dev/null)"|"$(hostname -s 2>/dev/null)") return 0 ;;
    *) return 1 ;;
  esac
}

# --- probes ----------------------------------------------------------------
# True when an AMQP 0-9-1 broker answers at host:port: send the protocol header and expect
# the first byte of a method frame (connection.start) back. A bare TCP connect is not enough:
# some networks (proxies, sandboxes) accept any connection. For amqps a TCP connect has to do.
# shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
lq_amqp_answers() {
  if [[ "$LQ_AMQP_URL" == amqps://* ]]; then
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$LQ_AMQP_HOST" "$LQ_AMQP_PORT" 2>/dev/null
    return
  fi
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    [ "$(head -c 1 <&3 | od -An -tx1 | tr -d " \n")" = 01 ]' "$LQ_AMQP_HOST" "$LQ_AMQP_PORT" 2>/dev/null
}

# HTTP status of GET /api/overview with the management credentials; 000 = no HTTP answer.
lq_mgmt_status() {
  command -v curl >/dev/null 2>&1 || { echo 000; return; }
  curl -sS -o /dev/null -w '%{http_code}' --max-time 3 -u "$LQ_MGMT_USER:$LQ_MGMT_PASS" \
    "$LQ_MGMT_URL/api/overview" 2>/dev/null || true
}

lq_mgmt_answers() { [[ "$(lq_mgmt_status)" == 200 ]]; }

# The management API answers over HTTP but refuses the credentials: nothing this script can fix.
lq_die_if_mgmt_refuses() {
  local code; code="$(lq_mgmt_status)"
  case "$code" in
    401|403) lq_die "the management API at $LQ_MGMT_URL refuses user '$LQ_MGMT_USER' (HTTP $code): set LANEQUEUE_RABBITMQ_MANAGEMENT_USER / LANEQUEUE_RABBITMQ_MANAGEMENT_PASSWORD to an administrator of that broker" ;;
  esac
}

# Import infra/rabbitmq/definitions.json through POST /api/definitions (idempotent).
lq_import_definitions_http() {
  local code
  code="$(curl -sS -o /tmp/lanequeue-definitions-import.out -w '%{http_code}' --max-time 30 \
    -u "$LQ_MGMT_USER:$LQ_MGMT_PASS" -H 'content-type: application/json' \
    -X POST --data-binary "@$LQ_INFRA/definitions.json" "$LQ_MGMT_URL/api/definitions")" || code=000
  case "$code" in
    2??) return 0 ;;
    *) lq_log "definitions import via $LQ_MGMT_URL/api/definitions failed (HTTP $code): $(cat /tmp/lanequeue-definitions-import.out 2>/dev/null)"
       return 1 ;;
  esac
}

# Are vhost lanequeue and its exchanges there? (prints what is missing)
lq_topology_present() {
  local ok=0 path
  for path in vhosts/lanequeue exchanges/lanequeue/lanequeue.tasks exchanges/lanequeue/lanequeue.results \
              policies/lanequeue/lanequeue-dead-letters; do
    if ! curl -fsS -o /dev/null --max-time 5 -u "$LQ_MGMT_USER:$LQ_MGMT_PASS" "$LQ_MGMT_URL/api/$path" 2>/dev/null; then
      lq_log "missing on the broker: /api/$path"; ok=1
    fi
  done
  return "$ok"
}

# --- local (Debian package) node -------------------------------------------
lq_setup_node_env() {
  if [[ -z "${RABBITMQ_NODENAME:-}" ]]; then
    local short; short="$(hostname -s 2>/dev/null || echo localhost)"
    if ! getent hosts "$short" >/dev/null 2>&1; then
      export RABBITMQ_NODENAME="rabbit@localhost"
    fi
  fi
  # Read by rabbitmq-server (and rabbitmq-plugins); Debian's wrapper runs them as user
  # rabbitmq through `su` (no login), which keeps these variables.
  export RABBITMQ_CONFIG_FILE="$LQ_STATE_DIR/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$LQ_STATE_DIR/enabled_plugins"
}

lq_have_rabbitmq() { command -v rabbitmq-server >/dev/null 2>&1 && command -v rabbitmqctl >/dev/null 2>&1; }

lq_node_pings() {
  lq_have_rabbitmq || return 1
  rabbitmq-diagnostics -q ping -t 5 >/dev/null 2>&1
}
