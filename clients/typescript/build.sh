#!/usr/bin/env bash
# Builds the @lanequeue/client tarball: npm ci, the ESM and CommonJS builds (tsc), npm pack into <outdir>.
# Prints the tarball's path as its last line (everything else goes to stderr).
#
#   bash clients/typescript/build.sh /tmp/out    # -> /tmp/out/lanequeue-client-1.4.0.tgz
#   npm install /tmp/out/lanequeue-client-1.4.0.tgz
set -euo pipefail

out="${1:?usage: build.sh <outdir>}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build.sh: $tool is not on PATH; install Node.js 18+ with npm (Debian: apt-get install nodejs npm)" >&2
    exit 2
  fi
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here"
npm ci --no-audit --no-fund >&2
npm run build >&2
# Built just above: --ignore-scripts skips prepack's second build.
tarball="$(npm pack --ignore-scripts --silent --pack-destination "$out" | tail -n 1)"
echo "$out/$tarball"
