#!/usr/bin/env bash
# Builds the lanequeue wheel offline with Debian's hatchling and prints its path.
# Usage: clients/python/build.sh [outdir]   (default: clients/python/dist)
# Needs: apt-get install python3-hatchling python3-pip (and python3-aio-pika to use the wheel).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)"
python="${LANEQUEUE_BUILD_PYTHON:-/usr/bin/python3}"
if ! "$python" -c 'import hatchling' 2>/dev/null; then
  echo "build.sh: $python has no hatchling: apt-get install python3-hatchling python3-pip" >&2
  exit 1
fi
# Built from a copy, so that the source tree gets no build/ or cache left behind.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/pyproject.toml" "$here/README.md" "$here/src" "$work/"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml")"
rm -f "$out/lanequeue-$version-py3-none-any.whl"
PYTHONDONTWRITEBYTECODE=1 "$python" -m pip wheel --no-deps --no-build-isolation --no-index --quiet -w "$out" "$work" >&2
echo "$out/lanequeue-$version-py3-none-any.whl"
