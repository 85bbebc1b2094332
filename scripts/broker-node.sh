#!/usr/bin/env bash
# Start, stop or kill an extra, throw-away RabbitMQ node of this machine's Debian rabbitmq-server, with its
# own node name, ports and directories: for fault tests (restart, kill -9, TLS) and scripts/cluster.sh.
# It never touches the default node (rabbit@<host>, port 5672) that scripts/broker-up.sh starts.
#
#   broker-node.sh start   NAME PORT [options]   start (or keep) node NAME@localhost on 127.0.0.1:PORT
#   broker-node.sh stop    NAME                  graceful shutdown (data kept)
#   broker-node.sh kill    NAME                  kill -9 the node's OS process (data kept)
#   broker-node.sh destroy NAME                  stop (or kill) it and delete its directory
#   broker-node.sh status  NAME                  exit 0 when the node answers
#   broker-node.sh ctl     NAME ARGS...          rabbitmqctl -n NAME@localhost ARGS...
#   broker-node.sh reap    -                     destroy every node whose --owner process has exited
#
# start options:
#   --mgmt-port P     management HTTP API on 127.0.0.1:P   [PORT + 10000]
#   --dist-port P     Erlang distribution port             [PORT + 20000]
#   --tls-port P      also listen for AMQPS on 127.0.0.1:P (needs --tls-dir)
#   --tls-dir D       D/ca.pem, D/server.pem, D/server.key; --verify-peer makes client certificates mandatory
#   --no-tcp          no plain AMQP listener (TLS only); PORT is then only the base of the defaults
#   --conf LINE       extra rabbitmq.conf line (repeatable)
#   --fresh           delete the node's data first
#   --owner PID       the process the node belongs to (a test run): 'reap' destroys the node once PID has exited
#   --timeout S       seconds to wait for the node to boot [90]
#
# Names must start with "lq-" (so nothing here can ever address the shared default node). Everything binds
# to 127.0.0.1. Directory: $LANEQUEUE_NODE_BASE/NAME [/tmp/lanequeue-nodes/NAME], owned by user rabbitmq
# (Debian's wrapper runs the server as that user); the Erlang cookie is rabbitmq's own
# (/var/lib/rabbitmq/.erlang.cookie), shared by all nodes of this machine, so clustering and rabbitmqctl work.
# Needs root (or user rabbitmq) and Debian's rabbitmq-server (scripts/broker-up.sh installs it).
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

BASE="${LANEQUEUE_NODE_BASE:-/tmp/lanequeue-nodes}"
log() { printf '[broker-node] %s\n' "$*" >&2; }
die() {
  printf '[broker-node] ERROR: %s\n' "$*" >&2
  exit 1
}

usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 2 ]] || usage
CMD="$1"
NAME="$2"
shift 2
if [[ "$CMD" == reap ]]; then
  # Nodes left behind by test runs that died before cleaning up: destroy those whose owner is gone (bounded: one pass).
  for owner in "$BASE"/lq-*/owner.pid; do
    [[ -e "$owner" ]] || continue
    pid="$(cat "$owner" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      bash "${BASH_SOURCE[0]}" destroy "$(basename "$(dirname "$owner")")" || true
    fi
  done
  exit 0
fi
[[ "$NAME" =~ ^lq-[A-Za-z0-9_-]+$ ]] || die "node name must match lq-[A-Za-z0-9_-]+ (got '$NAME')"
NODE="$NAME@localhost"
DIR="$BASE/$NAME"

if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1; then
  die "rabbitmq-server is not installed: run 'bash scripts/broker-up.sh' (installs Debian's package) or 'apt-get install -y rabbitmq-server'"
fi
if [[ $EUID -ne 0 && "$(id -un)" != rabbitmq ]]; then
  die "must run as root or as user rabbitmq (Debian's rabbitmq-server runs the node as user rabbitmq)"
fi

ctl() { timeout 60 rabbitmqctl -q -n "$NODE" "$@"; }
pings() { timeout 15 rabbitmq-diagnostics -q -n "$NODE" ping -t 10 >/dev/null 2>&1; }
beam_pid() { [[ -s "$DIR/node.pid" ]] && cat "$DIR/node.pid"; }
alive() { local p; p="$(beam_pid)" && [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; }

as_rabbitmq() {   # run "$@" as user rabbitmq, keeping the environment
  if [[ "$(id -un)" == rabbitmq ]]; then "$@"; else
    local q; printf -v q '%q ' "$@"
    su rabbitmq -s /bin/bash -c "$q"
  fi
}

kill_node() {
  local p
  if p="$(beam_pid)" && [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
    log "kill -9 $NODE (pid $p)"
    kill -9 "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$DIR/node.pid"
}

stop_node() {
  if pings; then
    log "stopping $NODE"
    ctl shutdown >/dev/null 2>&1 || true
  fi
  local deadline=$((SECONDS + 30))
  while alive && ((SECONDS < deadline)); do sleep 0.2; done
  alive && kill_node
  rm -f "$DIR/node.pid"
  return 0
}

start_node() {
  local port="" mgmt="" dist="" tls_port="" tls_dir="" verify=0 tcp=1 fresh=0 timeout=90 owner=""
  local extra=()
  port="${1:-}"; shift || true
  [[ "$port" =~ ^[0-9]+$ ]] || die "start needs NAME PORT"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --mgmt-port) mgmt="$2"; shift 2 ;;
      --dist-port) dist="$2"; shift 2 ;;
      --tls-port) tls_port="$2"; shift 2 ;;
      --tls-dir) tls_dir="$2"; shift 2 ;;
      --verify-peer) verify=1; shift ;;
      --no-tcp) tcp=0; shift ;;
      --conf) extra+=("$2"); shift 2 ;;
      --fresh) fresh=1; shift ;;
      --timeout) timeout="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  mgmt="${mgmt:-$((port + 10000))}"
  dist="${dist:-$((port + 20000))}"
  ((port != 5672 && mgmt != 15672)) || die "ports 5672/15672 belong to the shared default node"

  if pings; then
    if ((fresh)); then stop_node; else log "$NODE already running"; return 0; fi
  fi
  alive && kill_node
  if ((fresh)); then rm -rf "$DIR"; fi
  install -d -m 0755 -o rabbitmq -g rabbitmq "$BASE" 2>/dev/null || install -d -m 0755 "$BASE"
  install -d -m 0750 -o rabbitmq -g rabbitmq "$DIR" "$DIR/mnesia" "$DIR/log" "$DIR/conf"
  if [[ -n "$owner" ]]; then echo "$owner" >"$DIR/owner.pid"; fi

  {
    echo "# written by scripts/broker-node.sh for $NODE"
    if ((tcp)); then echo "listeners.tcp.default = 127.0.0.1:$port"; else echo "listeners.tcp = none"; fi
    if [[ -n "$tls_port" ]]; then
      [[ -r "$tls_dir/ca.pem" && -r "$tls_dir/server.pem" && -r "$tls_dir/server.key" ]] \
        || die "--tls-port needs --tls-dir with ca.pem, server.pem, server.key"
      install -m 0640 -o rabbitmq -g rabbitmq "$tls_dir/ca.pem" "$tls_dir/server.pem" "$tls_dir/server.key" "$DIR/conf/"
      echo "listeners.ssl.default = 127.0.0.1:$tls_port"
      echo "ssl_options.cacertfile = $DIR/conf/ca.pem"
      echo "ssl_options.certfile = $DIR/conf/server.pem"
      echo "ssl_options.keyfile = $DIR/conf/server.key"
      echo "ssl_options.versions.1 = tlsv1.3"
      echo "ssl_options.versions.2 = tlsv1.2"
      if ((verify)); then
        echo "ssl_options.verify = verify_peer"
        echo "ssl_options.fail_if_no_peer_cert = true"
      else
        echo "ssl_options.verify = verify_none"
        echo "ssl_options.fail_if_no_peer_cert = false"
      fi
    fi
    echo "management.tcp.ip = 127.0.0.1"
    echo "management.tcp.port = $mgmt"
    echo "loopback_users.guest = true"
    echo "log.file.level = info"
    echo "log.console = false"
    echo "collect_statistics_interval = 1000"
    for line in ${extra[@]+"${extra[@]}"}; do echo "$line"; done
  } >"$DIR/conf/rabbitmq.conf"
  echo "[rabbitmq_management]." >"$DIR/conf/enabled_plugins"
  chown rabbitmq:rabbitmq "$DIR/conf/rabbitmq.conf" "$DIR/conf/enabled_plugins" 2>/dev/null || true

  log "starting $NODE: AMQP $( ((tcp)) && echo "127.0.0.1:$port" || echo none)${tls_port:+, AMQPS 127.0.0.1:$tls_port}, management 127.0.0.1:$mgmt, dist $dist, dir $DIR"
  (
    export RABBITMQ_NODENAME="$NODE" RABBITMQ_USE_LONGNAME=false \
      RABBITMQ_CONFIG_FILE="$DIR/conf/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/conf/enabled_plugins" \
      RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/conf/advanced.config" \
      RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log" RABBITMQ_PID_FILE="$DIR/node.pid" \
      RABBITMQ_DIST_PORT="$dist" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      HOME=/var/lib/rabbitmq
    cd /
    exec setsid nohup bash -c "$(declare -f as_rabbitmq); as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server" \
      >>"$DIR/log/startup.log" 2>&1 </dev/null
  ) &
  local deadline=$((SECONDS + timeout))
  until [[ -s "$DIR/node.pid" ]] && pings; do
    if ((SECONDS >= deadline)); then
      tail -n 40 "$DIR/log/startup.log" "$DIR/log/$NODE.log" >&2 2>/dev/null || true
      kill_node
      die "$NODE did not come up within ${timeout}s (logs: $DIR/log). Is port $port, $mgmt or $dist taken?"
    fi
    sleep 0.5
  done
  ctl await_startup --timeout "$timeout" >/dev/null \
    || { tail -n 40 "$DIR/log/$NODE.log" >&2 || true; die "$NODE did not finish booting"; }
  log "$NODE ready (pid $(beam_pid))"
}

case "$CMD" in
  start) start_node "$@" ;;
  stop) stop_node ;;
  kill) kill_node ;;
  destroy) stop_node; rm -rf "$DIR" ;;
  status) pings ;;
  ctl) ctl "$@" ;;
  *) usage ;;
esac
