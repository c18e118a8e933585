#!/usr/bin/env bash
# mastodon_mock (PyPI, pinned): a THIRD-PARTY IMITATION of the Mastodon client API
# (FastAPI + SQLite, tested by its authors against Mastodon.py). No real Mastodon-API
# server installs from the registries this project may use; picket's client follows the
# documented API (see the adapter's docs), not this imitation's quirks.
#
#   scripts/servers/mastodon-mock.sh        install if missing, start on 127.0.0.1 (nothing if
#                                           already running), wait until ready; the LAST line is
#                                           PICKET_TEST_MASTODON_URL=http://127.0.0.1:PORT
#   scripts/servers/mastodon-mock.sh stop   stop it
#
# State lives in memory: a restart forgets every account and post.
set -euo pipefail

VERSION=0.6.1
PORT=${PICKET_MASTODON_PORT:-15300}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/mastodon-mock"
DIR=$(cd "$BASE/mastodon-mock" && pwd)
URL="http://127.0.0.1:$PORT"
PIDFILE="$DIR/mastodon-mock.pid"

ready() { curl -sf -o /dev/null --max-time 2 "$URL/api/v1/instance"; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  if alive; then
    kill "$(cat "$PIDFILE")"
    for _ in $(seq 1 50); do alive || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "stopped" >&2
  exit 0
fi

installed=$("$DIR/venv/bin/pip" show mastodon_mock 2>/dev/null || true)
if [ ! -x "$DIR/venv/bin/mastodon_mock" ] || ! grep -qx "Version: $VERSION" <<<"$installed"; then
  echo "installing mastodon_mock==$VERSION (PyPI) into $DIR/venv ..." >&2
  python3 -m venv "$DIR/venv" >&2
  "$DIR/venv/bin/pip" install -q -r "$(dirname "$0")/mastodon-mock/requirements.txt" >&2
fi

if alive && ready; then echo "PICKET_TEST_MASTODON_URL=$URL"; exit 0; fi
if ready; then
  echo "something else already answers on $URL; set PICKET_MASTODON_PORT" >&2
  exit 1
fi

mkdir -p "$DIR/tmp"
TMPDIR="$DIR/tmp" nohup "$DIR/venv/bin/mastodon_mock" serve --in-memory --host 127.0.0.1 --port "$PORT" \
  --log-level warning >"$DIR/mastodon-mock.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 150); do
  ready && { echo "PICKET_TEST_MASTODON_URL=$URL"; exit 0; }
  alive || break
  sleep 0.1
done
echo "mastodon_mock did not start; see $DIR/mastodon-mock.log" >&2
tail -n 20 "$DIR/mastodon-mock.log" >&2 || true
exit 1
