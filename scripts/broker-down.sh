#!/usr/bin/env bash
# Stop the broker that scripts/broker-up.sh started on this machine (local RabbitMQ node,
# or the compose `rabbitmq` service). Harmless when none is running. Data (mnesia) is kept.
set -euo pipefail

# shellcheck source=scripts/lib/broker-common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/broker-common.sh"

stopped=0
if lq_have_rabbitmq; then
  lq_setup_node_env
  if lq_node_pings; then
    lq_log "stopping local RabbitMQ node ${RABBITMQ_NODENAME:-rabbit@$(hostname -s)}"
    # `shutdown` returns once the node's OS process has exited.
    rabbitmqctl -q shutdown >&2
    stopped=1
  fi
fi

if [[ "${LANEQUEUE_BROKER_MODE:-auto}" != local ]] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if docker compose version >/dev/null 2>&1; then compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
  else compose=(); fi
  if ((${#compose[@]})) && [[ -n "$(cd "$LQ_ROOT" && "${compose[@]}" ps -q rabbitmq 2>/dev/null)" ]]; then
    lq_log "stopping compose service rabbitmq"
    (cd "$LQ_ROOT" && "${compose[@]}" stop rabbitmq) >&2
    stopped=1
  fi
fi

if ((stopped)); then echo "broker stopped"; else echo "no locally started broker is running"; fi
