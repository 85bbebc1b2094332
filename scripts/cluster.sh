#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this one machine, from Debian's rabbitmq-server (scripts/broker-node.sh), for trying
# and testing LaneQueue against a distributed broker. Nodes lq-c1@localhost .. lq-c3@localhost on 127.0.0.1 only:
#
#   node    AMQP   management  Erlang distribution
#   lq-c1   5711   15711       25711
#   lq-c2   5712   15712       25712
#   lq-c3   5713   15713       25713
#
#   cluster.sh up          start the three nodes (fresh), join lq-c2 and lq-c3 to lq-c1, create vhost lanequeue
#   cluster.sh down        stop the three nodes and delete their data
#   cluster.sh status      rabbitmqctl cluster_status
#   cluster.sh stop N      stop node lq-cN (graceful)      cluster.sh kill N   kill -9 node lq-cN
#   cluster.sh start N     start node lq-cN again with its data (it rejoins the cluster)
#
# Clients list every node in one URL (see README "Distributed broker"), with quorum lane queues:
#   LaneQueue:RabbitMqUrl=amqp://USER:PASS@127.0.0.1:5711,127.0.0.1:5712,127.0.0.1:5713/lanequeue
#   LaneQueue:QuorumQueues=true
# The built-in guest user works here only because every connection is from loopback: create real users with
# LANEQUEUE_RABBITMQ_MANAGEMENT_URL=http://localhost:15711 bash scripts/broker-users.sh
# Environment: LANEQUEUE_CLUSTER_BASE_PORT [5711] (ports are BASE, BASE+1, BASE+2; +10000 management, +20000 dist).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_SH="$HERE/broker-node.sh"
BASE_PORT="${LANEQUEUE_CLUSTER_BASE_PORT:-5711}"
VHOST=lanequeue

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

port_of() { echo $((BASE_PORT + $1 - 1)); }
node_ctl() { bash "$NODE_SH" ctl "lq-c$1" "${@:2}"; }
# The broker-side body limit of infra/rabbitmq/rabbitmq.conf (max_message_size), so the cluster refuses what a single broker does.
MAX_MESSAGE_SIZE_LINE="$(grep -E '^max_message_size *=' "$HERE/../infra/rabbitmq/rabbitmq.conf" | tail -n 1)"
start_one() { bash "$NODE_SH" start "lq-c$1" "$(port_of "$1")" ${MAX_MESSAGE_SIZE_LINE:+--conf "$MAX_MESSAGE_SIZE_LINE"} "${@:2}"; }

check_n() { [[ "${1:-}" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3"; }

up() {
  local n
  for n in 1 2 3; do start_one "$n" --fresh; done
  for n in 2 3; do
    log "joining lq-c$n to lq-c1"
    node_ctl "$n" stop_app >/dev/null
    node_ctl "$n" reset >/dev/null
    node_ctl "$n" join_cluster lq-c1@localhost >/dev/null || die "lq-c$n could not join lq-c1 (see $(dirname "$NODE_SH"))"
    node_ctl "$n" start_app >/dev/null
  done
  node_ctl 1 await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || true
  node_ctl 1 add_vhost "$VHOST" >/dev/null 2>&1 || true
  node_ctl 1 set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
  local running
  running="$(node_ctl 1 eval 'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -d '[:space:]')"
  [[ "$running" == 3 ]] || die "cluster formed with $running running node(s) instead of 3"
  log "cluster up: 3 nodes running"
  echo "amqp://guest:guest@127.0.0.1:$(port_of 1),127.0.0.1:$(port_of 2),127.0.0.1:$(port_of 3)/$VHOST"
}

down() {
  local n
  for n in 3 2 1; do bash "$NODE_SH" destroy "lq-c$n" || true; done
  log "cluster down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) node_ctl 1 cluster_status 2>/dev/null || node_ctl 2 cluster_status 2>/dev/null || node_ctl 3 cluster_status ;;
  stop) check_n "${2:-}"; bash "$NODE_SH" stop "lq-c$2" ;;
  kill) check_n "${2:-}"; bash "$NODE_SH" kill "lq-c$2" ;;
  start) check_n "${2:-}"; start_one "$2" ;;
  *) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
