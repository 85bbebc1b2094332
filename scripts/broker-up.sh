#!/usr/bin/env bash
# Make a RabbitMQ broker answer for LaneQueue (idempotent; safe to re-run at any time).
#
#   1. The broker of LANEQUEUE_RABBITMQ_URL already answers (AMQP port + management API):
#      use it. When it is on this machine, (re)import infra/rabbitmq/definitions.json through
#      the management API (idempotent) so vhost `lanequeue`, its exchanges and policy exist.
#   2. Else, when a Docker engine answers: `docker compose up -d rabbitmq`, wait until healthy.
#   3. Else: install Debian's rabbitmq-server (and curl) when missing, start a node in the
#      background with infra/rabbitmq's config, import the definitions, wait for the
#      management API.
#
# Environment: see scripts/lib/broker-common.sh (LANEQUEUE_RABBITMQ_URL,
# LANEQUEUE_RABBITMQ_MANAGEMENT_URL, LANEQUEUE_BROKER_MODE=auto|local|docker, ...).
# Stop a broker this script started: scripts/broker-down.sh
set -euo pipefail

# shellcheck source=scripts/lib/broker-common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/broker-common.sh"

T0=$SECONDS

finish() {
  local how="$1"
  echo "RabbitMQ ready ($how, $((SECONDS - T0)) s)."
  echo "AMQP: $LQ_AMQP_URL"
  if [[ "$LQ_MGMT_USER:$LQ_MGMT_PASS" == "guest:guest" ]]; then
    echo "Management UI: $LQ_MGMT_URL (guest/guest)"
  else
    echo "Management UI: $LQ_MGMT_URL (user $LQ_MGMT_USER)"
  fi
  exit 0
}

fail_help() {
  lq_die "$1
  What to do: either start a RabbitMQ 3.10+ broker yourself and point LANEQUEUE_RABBITMQ_URL
  (and LANEQUEUE_RABBITMQ_MANAGEMENT_URL) at it, or start a Docker engine and re-run
  (docker compose up -d rabbitmq), or run this script as root on Debian/Ubuntu so it can
  apt-get install rabbitmq-server and start it. Logs: $LQ_STARTUP_LOG, /var/log/rabbitmq/."
}

wait_for_mgmt() {   # $1 = seconds
  local deadline=$((SECONDS + $1))
  until lq_mgmt_answers; do
    lq_die_if_mgmt_refuses
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# ---------------------------------------------------------------------------
use_running_broker() {
  if [[ "$IS_LOCAL" == 1 ]]; then
    lq_import_definitions_http || fail_help "the broker at $LQ_MGMT_URL refused the definitions import"
    lq_topology_present || fail_help "definitions imported but the topology is still incomplete"
  else
    lq_topology_present || lq_log "WARNING: remote broker lacks LaneQueue's topology; not importing into a non-local broker (see infra/rabbitmq/README.md)"
  fi
  echo "broker already answering at $LQ_AMQP_HOST:$LQ_AMQP_PORT (management: $LQ_MGMT_URL)"
  finish "existing broker"
}

# ---------------------------------------------------------------------------
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then echo "docker-compose"
  else return 1; fi
}

start_docker() {
  local compose cid status deadline
  compose="$(compose_cmd)" || fail_help "a Docker engine answers but neither 'docker compose' nor 'docker-compose' is installed"
  lq_log "starting RabbitMQ with $compose (docker-compose.yml, service rabbitmq)"
  (cd "$LQ_ROOT" && $compose up -d rabbitmq)
  cid="$(cd "$LQ_ROOT" && $compose ps -q rabbitmq)"
  [[ -n "$cid" ]] || fail_help "docker compose did not create the rabbitmq container"
  deadline=$((SECONDS + LQ_TIMEOUT))
  while :; do
    status="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$cid" 2>/dev/null || echo unknown)"
    [[ "$status" == healthy ]] && break
    if ((SECONDS >= deadline)); then
      docker logs --tail 40 "$cid" >&2 || true
      fail_help "rabbitmq container not healthy after ${LQ_TIMEOUT}s (status: $status)"
    fi
    sleep 2
  done
  wait_for_mgmt 30 || fail_help "container healthy but management API $LQ_MGMT_URL does not answer"
  lq_topology_present || fail_help "container up but topology missing (definitions.compose.json not loaded?)"
  finish "docker compose"
}

# ---------------------------------------------------------------------------
ensure_packages() {
  local need=()
  lq_have_rabbitmq || need+=(rabbitmq-server)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  ((${#need[@]} == 0)) && return 0
  [[ $EUID -eq 0 ]] || fail_help "${need[*]} missing and not root: cannot apt-get install"
  command -v apt-get >/dev/null 2>&1 || fail_help "${need[*]} missing and there is no apt-get"
  lq_log "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${need[@]}" >&2; then
    lq_log "apt-get install failed; running apt-get update and retrying"
    if ! { apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2; }; then
      fail_help "apt-get install ${need[*]} failed"
    fi
  fi
  hash -r
  lq_have_rabbitmq || fail_help "rabbitmq-server still missing after apt-get install"
}

install_config() {
  install -d -m 0755 -o rabbitmq -g rabbitmq "$LQ_STATE_DIR"
  install -m 0644 -o rabbitmq -g rabbitmq "$LQ_INFRA/rabbitmq.conf" "$LQ_INFRA/enabled_plugins" \
    "$LQ_INFRA/definitions.json" "$LQ_STATE_DIR/"
}

node_log() { echo "/var/log/rabbitmq/${RABBITMQ_NODENAME:-rabbit@$(hostname -s)}.log"; }

show_logs() {
  lq_log "--- tail of $LQ_STARTUP_LOG ---"; tail -n 30 "$LQ_STARTUP_LOG" >&2 2>/dev/null || true
  lq_log "--- tail of $(node_log) ---"; tail -n 30 "$(node_log)" >&2 2>/dev/null || true
}

start_node() {
  local pid deadline
  lq_log "starting local RabbitMQ node (config $RABBITMQ_CONFIG_FILE, output $LQ_STARTUP_LOG, log $(node_log))"
  mkdir -p "$(dirname "$LQ_STARTUP_LOG")"
  echo "=== $(date -Is) broker-up.sh: starting rabbitmq-server ===" >>"$LQ_STARTUP_LOG"
  # Debian's /usr/sbin/rabbitmq-server wrapper switches to user rabbitmq; setsid+nohup keep
  # the node alive after this script (and its session) ends.
  (cd / && exec setsid nohup rabbitmq-server >>"$LQ_STARTUP_LOG" 2>&1 </dev/null) &
  pid=$!
  deadline=$((SECONDS + LQ_TIMEOUT))
  until lq_node_pings; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_logs; fail_help "rabbitmq-server exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      show_logs; fail_help "local node did not come up within ${LQ_TIMEOUT}s"
    fi
    sleep 1
  done
  await_node
}

await_node() {
  rabbitmqctl -q await_startup --timeout "$LQ_TIMEOUT" >&2 \
    || { show_logs; fail_help "local node did not finish booting within ${LQ_TIMEOUT}s"; }
}

import_definitions_ctl() {
  rabbitmqctl -q import_definitions "$LQ_STATE_DIR/definitions.json" >&2 \
    || fail_help "rabbitmqctl import_definitions failed"
}

start_local() {
  local started=0
  ensure_packages
  [[ $EUID -eq 0 || "$(id -un)" == rabbitmq ]] || fail_help "starting the local node needs root (or user rabbitmq)"
  lq_setup_node_env
  install_config
  if lq_node_pings; then
    lq_log "local node ${RABBITMQ_NODENAME:-rabbit@$(hostname -s)} already running; waiting for it to finish booting"
    await_node
  else
    if lq_amqp_answers; then
      fail_help "port $LQ_AMQP_PORT answers but not from a RabbitMQ node this script can manage, and $LQ_MGMT_URL does not answer"
    fi
    start_node; started=1
  fi
  import_definitions_ctl
  if ! wait_for_mgmt $((started == 1 ? 30 : 10)); then
    if ((started == 0)); then
      # A node that was not started with our config (e.g. by the package's init script): restart it.
      lq_log "running node has no management API at $LQ_MGMT_URL; restarting it with LaneQueue's config"
      rabbitmqctl -q shutdown >&2 || true
      start_node
      import_definitions_ctl
      wait_for_mgmt 30 || { show_logs; fail_help "management API $LQ_MGMT_URL does not answer (wrong credentials? guest removed?)"; }
    else
      show_logs; fail_help "management API $LQ_MGMT_URL does not answer (wrong credentials? guest removed?)"
    fi
  fi
  lq_amqp_answers || fail_help "node up but AMQP port $LQ_AMQP_HOST:$LQ_AMQP_PORT does not answer"
  lq_topology_present || fail_help "node up but topology missing after import"
  finish "local node $(rabbitmqctl -q eval 'node().' 2>/dev/null || echo rabbit)"
}

# ---------------------------------------------------------------------------
case "$LQ_MODE" in auto|local|docker) ;; *) lq_die "LANEQUEUE_BROKER_MODE must be auto, local or docker (got $LQ_MODE)";; esac
lq_parse_amqp_url
if lq_is_local_host "$LQ_AMQP_HOST"; then IS_LOCAL=1; else IS_LOCAL=0; fi

if lq_amqp_answers; then
  lq_die_if_mgmt_refuses
  if lq_mgmt_answers; then
    use_running_broker
  elif [[ "$IS_LOCAL" == 0 ]]; then
    lq_log "WARNING: management API $LQ_MGMT_URL does not answer; cannot check the topology"
    echo "broker already answering at $LQ_AMQP_HOST:$LQ_AMQP_PORT"
    finish "existing broker"
  fi
  lq_log "AMQP port $LQ_AMQP_PORT answers but the management API does not (yet)"
elif [[ "$IS_LOCAL" == 0 ]]; then
  fail_help "the broker at $LQ_AMQP_HOST:$LQ_AMQP_PORT (LANEQUEUE_RABBITMQ_URL) does not answer; this script only starts brokers on localhost"
fi

if [[ "$LQ_MODE" != local ]] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  start_docker
fi
[[ "$LQ_MODE" == docker ]] && fail_help "LANEQUEUE_BROKER_MODE=docker but no Docker engine answers (docker info failed)"
start_local
