#!/usr/bin/env bash
# The sample application (samples/LaneQueue.Sample) built from freshly packed LaneQueue packages and run against the
# broker in a vhost of its own, which is deleted afterwards. Exit code = the sample's: 0 when urgent-query started
# before background-analysis and the sample's own MassTransit consumer received its message.
#
#   bash scripts/sample.sh
#
# 1. scripts/pack.sh packs into artifacts/packages, the local feed samples/nuget.config names.
# 2. The sample restores with a NuGet package cache of its own (artifacts/sample/nuget-packages) from which the LaneQueue
#    packages are removed first, so it always gets the ones just packed, never a stale copy of the same version; other
#    packages (MassTransit, ...) stay cached there between runs. The script checks they came from the local feed.
# 3. The sample runs against LANEQUEUE_RABBITMQ_URL's broker (default amqp://guest:guest@localhost:5672/) in a fresh
#    vhost made through the management API (LANEQUEUE_RABBITMQ_MANAGEMENT_URL, default http://localhost:15672).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

step() { printf '== %s\n' "$*"; }

# No build server outlives this script: a caller reading its output (the test suite) would otherwise wait for them too.
export MSBUILDDISABLENODEREUSE=1 UseSharedCompilation=false

step "broker"
bash scripts/broker-up.sh
MGMT="${LANEQUEUE_RABBITMQ_MANAGEMENT_URL:-http://localhost:15672}"
MGMT_AUTH="${LANEQUEUE_RABBITMQ_MANAGEMENT_USER:-guest}:${LANEQUEUE_RABBITMQ_MANAGEMENT_PASSWORD:-guest}"
BASE="${LANEQUEUE_RABBITMQ_URL:-amqp://guest:guest@localhost:5672/}"

step "pack"
feed="$root/artifacts/packages"
bash scripts/pack.sh "$feed"
version="$(dotnet msbuild src/Contracts/LaneQueue.Contracts.csproj -nologo -getProperty:Version)"

step "build samples/LaneQueue.Sample against LaneQueue $version from $feed"
export NUGET_PACKAGES="$root/artifacts/sample/nuget-packages"
mkdir -p "$NUGET_PACKAGES"
rm -rf "$NUGET_PACKAGES"/lanequeue.* samples/LaneQueue.Sample/bin samples/LaneQueue.Sample/obj
dotnet build samples/LaneQueue.Sample -c Release -nologo -v quiet -p:LaneQueueVersion="$version"
for id in lanequeue.contracts lanequeue.producer lanequeue.consumer; do
  source_of="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("source",""))' "$NUGET_PACKAGES/$id/$version/.nupkg.metadata")"
  if [[ "$(realpath -m "$source_of")" != "$feed" ]]; then
    echo "sample.sh: $id $version was restored from '$source_of', not from the local feed $feed" >&2
    exit 1
  fi
done
echo "LaneQueue $version packages restored from $feed"

step "run"
vhost="lanequeue-sample-$$-$RANDOM"
url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme,p.netloc,"/"+sys.argv[2],"","")))' "$BASE" "$vhost")"
user="$(python3 -c 'import sys,urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1]).username or "guest"))' "$BASE")"
cleanup() { curl -fsS -u "$MGMT_AUTH" -X DELETE "$MGMT/api/vhosts/$vhost" >/dev/null 2>&1 || true; }
trap cleanup EXIT
curl -fsS -u "$MGMT_AUTH" -X PUT "$MGMT/api/vhosts/$vhost" >/dev/null
curl -fsS -u "$MGMT_AUTH" -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$MGMT/api/permissions/$vhost/$user" >/dev/null
echo "vhost: $vhost"

status=0
timeout 300 dotnet samples/LaneQueue.Sample/bin/Release/net10.0/LaneQueue.Sample.dll --LaneQueue:RabbitMqUrl="$url" || status=$?
echo "sample exit code: $status"
exit "$status"
