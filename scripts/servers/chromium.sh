#!/usr/bin/env bash
# Headless Chromium for the browser tests: Debian's `chromium` and `chromium-driver`
# packages (apt-get, needs root; skipped when both are installed), and a chromedriver on
# 127.0.0.1. The tests ask chromedriver for one browser per session, each with a fresh
# profile and the flags that keep an offline Chromium from hanging (tests/it/browser.rs).
#
#   scripts/servers/chromium.sh        install if missing, start chromedriver (nothing if already
#                                      running), wait until ready; the LAST line is
#                                      PICKET_TEST_CHROMEDRIVER=http://127.0.0.1:PORT
#   scripts/servers/chromium.sh stop   stop chromedriver and any browser it left running
set -euo pipefail

PORT=${PICKET_CHROMEDRIVER_PORT:-15400}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/chromium"
DIR=$(cd "$BASE/chromium" && pwd)
URL="http://127.0.0.1:$PORT"
PIDFILE="$DIR/chromedriver.pid"

ready() { curl -sf --max-time 2 "$URL/status" | grep -q '"ready": *true'; }
alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  if alive; then
    pid=$(cat "$PIDFILE")
    # chromedriver runs in its own process group (setsid below), with the browsers it
    # started: signalling the group ends a browser a crashed test left open too.
    if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then kill -- "-$pid"; else kill "$pid"; fi
    for _ in $(seq 1 50); do alive || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "stopped" >&2
  exit 0
fi

if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver (apt-get)..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi

if alive && ready; then echo "PICKET_TEST_CHROMEDRIVER=$URL"; exit 0; fi
if ready; then
  echo "something else already answers on $URL; set PICKET_CHROMEDRIVER_PORT" >&2
  exit 1
fi

# chromedriver listens on loopback only unless told otherwise (--allowed-ips).
setsid nohup chromedriver --port="$PORT" --log-level=WARNING \
  >"$DIR/chromedriver.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
for _ in $(seq 1 100); do
  ready && { echo "PICKET_TEST_CHROMEDRIVER=$URL"; exit 0; }
  alive || break
  sleep 0.1
done
echo "chromedriver did not start; see $DIR/chromedriver.log" >&2
tail -n 20 "$DIR/chromedriver.log" >&2 || true
exit 1
