#!/usr/bin/env bash
# A real Nostr relay for tests: the PyPI `nostr-relay` (pinned in nostr-relay/requirements.txt,
# SQLite storage) on 127.0.0.1, in a venv under ${PICKET_SERVERS_DIR:-.servers}/nostr-relay.
#
#   scripts/servers/nostr-relay.sh        start (does nothing if already running); the LAST
#                                         line is PICKET_TEST_NOSTR_RELAY=ws://127.0.0.1:PORT
#   scripts/servers/nostr-relay.sh stop   stop it (its data is kept)
#
# PICKET_NOSTR_RELAY_PORT picks the port (default 16969). Each port is its own instance
# (own database, log and pid file) sharing one venv, so a test can start and stop a
# second relay without disturbing the one other tests use.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PICKET_NOSTR_RELAY_PORT:-16969}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/nostr-relay"
ROOT=$(cd "$BASE/nostr-relay" && pwd)
INST=$ROOT/$PORT
PIDFILE=$INST/relay.pid
URL="ws://127.0.0.1:$PORT"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  if running; then
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$PIDFILE"
  echo "stopped" >&2
  exit 0
fi

if [ ! -x "$ROOT/venv/bin/nostr-relay" ]; then
  echo "installing nostr-relay (PyPI) into $ROOT/venv..." >&2
  python3 -m venv "$ROOT/venv" >&2
  "$ROOT/venv/bin/pip" install -q -r "$HERE/nostr-relay/requirements.txt" >&2
fi

if running; then echo "PICKET_TEST_NOSTR_RELAY=$URL"; exit 0; fi

mkdir -p "$INST"
CFG=$("$ROOT/venv/bin/python" -c 'import nostr_relay,os; print(os.path.join(os.path.dirname(nostr_relay.__file__),"config.yaml"))')
# The packaged config binds 127.0.0.1:6969 with a database in the working directory.
sed -e "s#sqlite+aiosqlite:///nostr.sqlite3#sqlite+aiosqlite:///$INST/nostr.sqlite3#" \
    -e "s#127.0.0.1:6969#127.0.0.1:$PORT#" -e "s#localhost:6969#localhost:$PORT#" \
    -e "s#port: 6969#port: $PORT#" "$CFG" > "$INST/config.yaml"
(cd "$INST" && exec setsid "$ROOT/venv/bin/nostr-relay" -c config.yaml serve > relay.log 2>&1 < /dev/null) &
echo $! > "$PIDFILE"
for _ in $(seq 1 150); do
  if curl -sf -H 'Accept: application/nostr+json' "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then
    echo "PICKET_TEST_NOSTR_RELAY=$URL"
    exit 0
  fi
  running || { echo "nostr-relay exited; see $INST/relay.log" >&2; tail -20 "$INST/relay.log" >&2; exit 1; }
  sleep 0.1
done
echo "nostr-relay did not answer on $URL within 15 s; see $INST/relay.log" >&2
exit 1
