#!/usr/bin/env bash
# Installs the Debian 12 packages circa needs that are not installed yet.
# Runs apt-get update once, before the first install; does nothing when all are present.
set -euo pipefail
PKGS=(build-essential pkg-config postgresql-15 libpq-dev libuv1-dev libcjson-dev
      libcurl4-openssl-dev libcmocka-dev libhttp-parser-dev libmosquitto-dev
      mosquitto mosquitto-clients libssl-dev curl procps
      chromium python3 python3-yaml python3-jsonschema)  # HTML report, compose, OpenAPI tests
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
