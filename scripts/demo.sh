#!/usr/bin/env bash
# Loads the demo industrial park through the HTTP API: master data, then a year of events
# (deterministic: re-running adds nothing, every event is a duplicate).
set -euo pipefail
cd "$(dirname "$0")/.."
url=$1 key=$2
exec bin/circa demo --url "$url" --key "$key" --events "${CIRCA_DEMO_EVENTS:-20000}"
