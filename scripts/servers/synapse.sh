#!/usr/bin/env bash
# A real Matrix homeserver for tests: Synapse from PyPI (pinned in synapse/requirements.txt,
# SQLite storage) on 127.0.0.1, in a venv under ${PICKET_SERVERS_DIR:-.servers}/synapse.
#
#   scripts/servers/synapse.sh        start (does nothing if already running); the LAST
#                                     line is PICKET_TEST_MATRIX_URL=http://127.0.0.1:PORT
#   scripts/servers/synapse.sh stop   stop it (its data is kept)
#
# PICKET_SYNAPSE_PORT picks the port (default 16008). Registration is open without
# verification (tests register their own users over the client API) and rate limits are
# raised, so parallel tests are not throttled; federation is off.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PICKET_SYNAPSE_PORT:-16008}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/synapse"
ROOT=$(cd "$BASE/synapse" && pwd)
INST=$ROOT/$PORT
PIDFILE=$INST/synapse.pid
URL="http://127.0.0.1:$PORT"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  if running; then
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$PIDFILE"
  echo "stopped" >&2
  exit 0
fi

if ! { [ -x "$ROOT/venv/bin/python" ] && "$ROOT/venv/bin/python" -c 'import synapse' 2>/dev/null; }; then
  echo "installing matrix-synapse (PyPI) into $ROOT/venv..." >&2
  python3 -m venv "$ROOT/venv" >&2
  "$ROOT/venv/bin/pip" install -q -r "$HERE/synapse/requirements.txt" >&2
fi

if running; then echo "PICKET_TEST_MATRIX_URL=$URL"; exit 0; fi

mkdir -p "$INST"
if [ ! -f "$INST/homeserver.yaml" ]; then
  (cd "$INST" && "$ROOT/venv/bin/python" -m synapse.app.homeserver --server-name localhost \
    --config-path homeserver.yaml --generate-config --report-stats=no >/dev/null)
  "$ROOT/venv/bin/python" - "$INST/homeserver.yaml" "$PORT" <<'PY'
import sys
path, port = sys.argv[1], sys.argv[2]
s = open(path).read()
# The generated file listens on 8008 on ::1 and 127.0.0.1 and trusts matrix.org's keys.
s = s.replace('port: 8008', 'port: ' + port).replace("    - ::1\n", '')
s = s.replace('trusted_key_servers:\n  - server_name: "matrix.org"\n', 'trusted_key_servers: []\n')
s += '''
suppress_key_server_warning: true
enable_registration: true
enable_registration_without_verification: true
federation_domain_whitelist: []
url_preview_enabled: false
presence: {enabled: false}
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login: {address: {per_second: 1000, burst_count: 1000}, account: {per_second: 1000, burst_count: 1000}, failed_attempts: {per_second: 1000, burst_count: 1000}}
rc_joins: {local: {per_second: 1000, burst_count: 1000}}
'''
open(path, 'w').write(s)
PY
fi
(cd "$INST" && exec setsid "$ROOT/venv/bin/python" -m synapse.app.homeserver \
  --config-path homeserver.yaml > synapse.out 2>&1 < /dev/null) &
echo $! > "$PIDFILE"
for _ in $(seq 1 600); do
  if curl -sf "$URL/_matrix/client/versions" >/dev/null 2>&1; then
    echo "PICKET_TEST_MATRIX_URL=$URL"
    exit 0
  fi
  running || { echo "synapse exited; see $INST/synapse.out" >&2; tail -20 "$INST/synapse.out" >&2; exit 1; }
  sleep 0.1
done
echo "synapse did not answer on $URL within 60 s; see $INST/synapse.out" >&2
exit 1
