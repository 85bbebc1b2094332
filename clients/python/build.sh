#!/usr/bin/env bash
# Builds the lanequeue wheel offline with Debian's hatchling and prints its path (the only line on stdout).
# The version is LaneQueue's, <Version> in Directory.Build.props at the top of the repository (stamped into the copy
# that is built; src/lanequeue/__init__.py's __version__ is used outside the repository).
# Usage: clients/python/build.sh [outdir]   (default: clients/python/dist)
# Needs: apt-get install python3-hatchling (python3-aio-pika to use the wheel). LANEQUEUE_BUILD_PYTHON overrides /usr/bin/python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)"
python="${LANEQUEUE_BUILD_PYTHON:-/usr/bin/python3}"
if ! "$python" -c 'import hatchling' 2>/dev/null; then
  echo "build.sh: $python has no hatchling: apt-get install python3-hatchling" >&2
  exit 1
fi
props="$here/../../Directory.Build.props"
if [[ -f "$props" ]]; then
  version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$props" | head -n 1)"
else
  version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$here/src/lanequeue/__init__.py")"
fi
[[ -n "$version" ]] || { echo "build.sh: no version found" >&2; exit 1; }
# Built from a copy, so that the source tree gets no build output or cache.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/pyproject.toml" "$here/README.md" "$here/src" "$work/"
sed -i "s/^__version__ = \".*\"/__version__ = \"$version\"/" "$work/src/lanequeue/__init__.py"
rm -f "$out/lanequeue-$version-py3-none-any.whl"
(cd "$work" && PYTHONDONTWRITEBYTECODE=1 "$python" -m hatchling build -t wheel -d "$out" >&2)
echo "$out/lanequeue-$version-py3-none-any.whl"
