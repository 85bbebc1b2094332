#!/usr/bin/env bash
# Packs LaneQueue into a local NuGet feed folder: the libraries LaneQueue.Contracts, LaneQueue.Producer,
# LaneQueue.Consumer and LaneQueue.Dashboard, and the lanequeue tool LaneQueue.Cli, each a .nupkg with its .snupkg (symbols);
# beside them the clients: the Python wheel (clients/python/build.sh: Debian's hatchling) and the TypeScript tarball
# (clients/typescript/build.sh: npm ci, tsc, npm pack).
#
#   bash scripts/pack.sh [OUT]        OUT: the feed folder (default artifacts/packages)
#
# Then, e.g.: dotnet add package LaneQueue.Consumer --version <v> --source OUT
#             dotnet tool install LaneQueue.Cli --tool-path ~/.lanequeue --add-source OUT --version <v>
#             pip install --no-index OUT/lanequeue-<v>-py3-none-any.whl     (a venv made with --system-site-packages)
#             npm install OUT/lanequeue-client-<v>.tgz
# The build is its own (artifacts/pack-build), Release and deterministic, so it neither uses nor disturbs the bin/ and
# obj/ of your ordinary builds and tests. The version is Directory.Build.props' <Version>.
#
# Environment: LANEQUEUE_REPOSITORY_URL  the repository URL to record in the packages (default: the clone's origin
#              when that is a network URL; a clone of a local folder records none).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

out="${1:-artifacts/packages}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

version="$(dotnet msbuild src/Contracts/LaneQueue.Contracts.csproj -nologo -getProperty:Version)"
[[ -n "$version" ]] || { echo "pack.sh: could not read the version from Directory.Build.props" >&2; exit 1; }

args=(-c Release -nologo -v quiet --artifacts-path "$root/artifacts/pack-build" -o "$out")
[[ -n "${LANEQUEUE_REPOSITORY_URL:-}" ]] && args+=("-p:RepositoryUrl=$LANEQUEUE_REPOSITORY_URL")

packages=(LaneQueue.Contracts LaneQueue.Producer LaneQueue.Consumer LaneQueue.Dashboard LaneQueue.Cli)
for id in "${packages[@]}"; do rm -f "$out/$id.$version.nupkg" "$out/$id.$version.snupkg"; done

echo "packing LaneQueue $version into $out"
dotnet pack LaneQueue.sln "${args[@]}"

missing=0
for id in "${packages[@]}"; do
  for ext in nupkg snupkg; do
    file="$out/$id.$version.$ext"
    if [[ -f "$file" ]]; then
      printf '  %-40s %8s bytes\n' "$(basename "$file")" "$(stat -c %s "$file")"
    else
      echo "pack.sh: $(basename "$file") was not made" >&2
      missing=1
    fi
  done
done
((missing == 0)) || exit 1

wheel="$(bash clients/python/build.sh "$out" | tail -n 1)"
tarball="$(bash clients/typescript/build.sh "$out" | tail -n 1)"
for file in "$wheel" "$tarball"; do
  [[ "$(basename "$file")" == *"$version"* && -f "$file" ]] || { echo "pack.sh: client package $file missing or not version $version" >&2; exit 1; }
  printf '  %-40s %8s bytes\n' "$(basename "$file")" "$(stat -c %s "$file")"
done
echo "feed: $out (version $version)"
