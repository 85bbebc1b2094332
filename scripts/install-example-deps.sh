#!/usr/bin/env bash
# Installs what the any-language examples in examples/ (and their tests) need; safe to re-run.
#   Debian packages: python3-pika (for /usr/bin/python3), curl, jq; nodejs + npm only when no node is on PATH;
#   for the Python client (clients/python): python3-aio-pika, python3-hatchling, python3-pip, python3-pytest, python3-venv;
#   chromium for the dashboard's browser tests (tests/LaneQueue.Tests/Dashboard; Playwright drives /usr/bin/chromium).
#   examples/node/node_modules: amqplib as package-lock.json pins it (npm ci), skipped when already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || python3 -c 'import pika' >/dev/null 2>&1 || need+=(python3-pika)
/usr/bin/python3 -c 'import aio_pika' >/dev/null 2>&1 || need+=(python3-aio-pika)
/usr/bin/python3 -c 'import hatchling' >/dev/null 2>&1 || need+=(python3-hatchling)
/usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || need+=(python3-pytest)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[[ -x /usr/bin/chromium ]] || need+=(chromium)

if ((${#need[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-example-deps: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "install-example-deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${need[@]}"; }
fi

lock=examples/node/package-lock.json
installed=examples/node/node_modules/.package-lock.json
if [[ ! -f examples/node/node_modules/amqplib/package.json || ! -f "$installed" || "$lock" -nt "$installed" ]]; then
  echo "install-example-deps: npm ci in examples/node"
  (cd examples/node && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-example-deps: python3-pika, python3-aio-pika, python3-hatchling, python3-pip, python3-pytest, python3-venv, curl, jq, node, chromium and examples/node/node_modules are in place"
