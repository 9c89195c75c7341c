#!/bin/bash
# Azurite's blob service (npm azurite@3.35.0, pinned by tests/npm/package-lock.json) on loopback
# for the azure-blob plugin's tests. Not a product part.
#   azurite.sh NPM_DIR DATA_DIR PORT_FILE PORT
# Writes PORT to PORT_FILE once the port accepts connections, and becomes azurite (exec), so
# the test's pid is azurite's. Always --disableTelemetry. Azurite checks Shared Key signatures
# and SAS tokens of its default account devstoreaccount1.
set -euo pipefail
npm=$1 data=$2 port_file=$3 port=$4
mkdir -p "$data"
(
  for _ in $(seq 600); do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port" >"$port_file.tmp"; mv "$port_file.tmp" "$port_file"; exit 0; fi
    sleep 0.05
  done
) &
exec node "$npm/node_modules/azurite/dist/src/blob/main.js" --blobHost 127.0.0.1 --blobPort "$port" --location "$data" \
  --silent --disableTelemetry --debug "$data/debug.log"
