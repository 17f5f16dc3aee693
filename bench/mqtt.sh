#!/usr/bin/env bash
# bench/mqtt.sh — MQTT adapter throughput: N QoS 1 weighbridge messages published with
# `mosquitto_pub -l` to a private Mosquitto, timed from the first publish until every event is
# committed in PostgreSQL (broker → spool fsync → PUBACK → ingest → COMMIT).
#   BENCH_MQTT_MESSAGES  messages (default 20000)
# Uses its own cluster (var/bench-mqtt, port 54358), broker and circad; stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
export CIRCA_DATA_DIR=$PWD/var/bench-mqtt CIRCA_PG_PORT=54358
N=${BENCH_MQTT_MESSAGES:-20000}
MQ_PORT=18883 LISTEN=127.0.0.1:18098 NAME=bench$(date +%s)
DIR=$CIRCA_DATA_DIR/mqtt; mkdir -p "$DIR/adapters"
# Adapters of earlier runs would subscribe to the same topic and compete (each refused as a
# conflict, one event at a time, since their ids come back with another time): one per run.
rm -f "$DIR/adapters/"*.json
BROKER_PID= CIRCAD_PID=
cleanup() {
  [ -n "$CIRCAD_PID" ] && kill "$CIRCAD_PID" 2>/dev/null && wait "$CIRCAD_PID" 2>/dev/null
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  scripts/pg.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/pg.sh start >/dev/null
export DATABASE_URL; DATABASE_URL=$(scripts/pg.sh url)
bin/circa migrate >/dev/null
psql() { scripts/pg.sh psql -tAq "$@"; }
[ "$(psql -c "SELECT count(*) FROM tenant WHERE id = 'bench'")" = 1 ] || bin/circa tenants create bench --name Bench >/dev/null
KEY=$(bin/circa keys create --tenant bench --role admin | tail -1)

printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n%s' "$MQ_PORT" \
  "$([ "$(id -u)" = 0 ] && echo 'user root')" >"$DIR/mosquitto.conf"
/usr/sbin/mosquitto -c "$DIR/mosquitto.conf" >"$DIR/mosquitto.log" 2>&1 & BROKER_PID=$!
CIRCA_LISTEN=$LISTEN CIRCA_ADAPTERS_DIR=$DIR/adapters CIRCA_LOG=warn bin/circad 2>"$DIR/circad.log" & CIRCAD_PID=$!
for _ in $(seq 100); do curl -sf "http://$LISTEN/readyz" >/dev/null && break; sleep 0.1; done
api() { curl -sf -X POST "http://$LISTEN$1" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$2" >/dev/null || true; }
api /v1/parties '{"code":"BP","name":"Bench party","roles":["generator"]}'
api /v1/sites '{"code":"BS","party":"BP","name":"Bench site","kind":"factory"}'
api /v1/materials '{"code":"PET","name":"PET","category":"plastic"}'
cat >"$DIR/adapters/$NAME.json" <<JSON
{"name": "$NAME", "kind": "mqtt", "tenant": "bench", "broker": "mqtt://127.0.0.1:$MQ_PORT",
 "client_id": "circad-$NAME", "protocol": 5,
 "subscriptions": [{"topic": "bench/+/weighbridge", "profile": "weighbridge", "qos": 1}],
 "devices": {"WB-01": {"site": "BS", "material": "PET", "ewc": "150102", "type": "waste_generated"}}}
JSON
kill -HUP "$CIRCAD_PID"
sleep 1   # the adapter connects and subscribes
T=$(date -u +%Y-%m-%dT%H:%M:%SZ)
seq "$N" | awk -v t="$T" '{printf "{\"device\":\"WB-01\",\"ticket\":\"T-%07d\",\"time\":\"%s\",\"gross\":12.5,\"tare\":8.3,\"unit\":\"t\"}\n", $1, t}' >"$DIR/msgs.txt"
start=$(date +%s.%N)
mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -q 1 -t bench/WB-01/weighbridge -l <"$DIR/msgs.txt"
pub_done=$(date +%s.%N)
while [ "$(psql -c "SELECT count(*) FROM event WHERE tenant_id = 'bench' AND id LIKE '$NAME:%'")" -lt "$N" ]; do sleep 0.05; done
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v p="$pub_done" -v e="$end" 'BEGIN {
  printf "mqtt: %d QoS 1 messages, published in %.2f s, all committed after %.2f s: %.0f messages/s broker to commit\n", n, p - s, e - s, n / (e - s) }'
