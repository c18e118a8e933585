#!/usr/bin/env bash
# aiosmtpd (PyPI, pinned): a real SMTP server (the asyncio successor of Python's smtpd)
# with its built-in Mailbox handler, which stores every message it receives, whatever the
# recipient, in a Maildir. The mail tests send through it and read what arrived.
#
#   scripts/servers/smtp-sink.sh        install if missing, start on 127.0.0.1 (nothing if
#                                       already running), wait until ready; the LAST line is
#                                       PICKET_TEST_SMTP=127.0.0.1:PORT PICKET_TEST_SMTP_MAILDIR=DIR
#   scripts/servers/smtp-sink.sh stop   stop it
#
# Messages land in DIR/new/, one file each; nothing is ever relayed.
set -euo pipefail

VERSION=1.4.6
PORT=${PICKET_SMTP_SINK_PORT:-15525}
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/smtp-sink"
DIR=$(cd "$BASE/smtp-sink" && pwd)
MAILDIR="$DIR/maildir"
PIDFILE="$DIR/smtp-sink.pid"
LINE="PICKET_TEST_SMTP=127.0.0.1:$PORT PICKET_TEST_SMTP_MAILDIR=$MAILDIR"

# A greeting and a clean QUIT: the server speaks SMTP, not merely listens.
ready() {
  "$DIR/venv/bin/python" -c "import smtplib; smtplib.SMTP('127.0.0.1', $PORT, timeout=2).quit()" 2>/dev/null
}
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

installed=$("$DIR/venv/bin/pip" show aiosmtpd 2>/dev/null || true)
if [ ! -x "$DIR/venv/bin/python" ] || ! grep -qx "Version: $VERSION" <<<"$installed"; then
  echo "installing aiosmtpd==$VERSION (PyPI) into $DIR/venv ..." >&2
  python3 -m venv "$DIR/venv" >&2
  "$DIR/venv/bin/pip" install -q -r "$(dirname "$0")/smtp-sink/requirements.txt" >&2
fi

if alive && ready; then echo "$LINE"; exit 0; fi
if ready; then
  echo "something else already answers SMTP on 127.0.0.1:$PORT; set PICKET_SMTP_SINK_PORT" >&2
  exit 1
fi

# Python's Maildir writes into tmp/ and moves to new/; it does not create them itself.
mkdir -p "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
nohup "$DIR/venv/bin/python" -m aiosmtpd --nosetuid --listen "127.0.0.1:$PORT" \
  --class aiosmtpd.handlers.Mailbox "$MAILDIR" >"$DIR/smtp-sink.log" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 150); do
  ready && { echo "$LINE"; exit 0; }
  alive || break
  sleep 0.1
done
echo "aiosmtpd did not start; see $DIR/smtp-sink.log" >&2
tail -n 20 "$DIR/smtp-sink.log" >&2 || true
exit 1
