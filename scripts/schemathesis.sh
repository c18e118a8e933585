#!/usr/bin/env bash
# schemathesis (PyPI, pinned with its dependencies in scripts/schemathesis/requirements.txt):
# a third-party fuzzer that reads /api/v1/openapi.json and sends the JSON API requests the
# document allows and forbids. Run against a real `picket serve` (the bundled campaign, a
# fresh database, rate limits off so the requests reach the handlers), it fails on any 5xx
# and on any answer the document does not describe (status, content type, body shape).
#
#   scripts/schemathesis.sh        install if missing, build picket if missing, run
#
# PICKET_BIN names the picket binary (default target/debug/picket, built if absent);
# PICKET_SCHEMATHESIS_EXAMPLES the examples per operation (default 150);
# PICKET_SCHEMATHESIS_CHECKS the checks (default all: server errors, statuses, content
# types, headers and bodies as documented, schema-valid requests accepted, invalid ones
# refused);
# PICKET_SCHEMATHESIS_SEED the seed (default: fixed, so runs are reproducible).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
BASE=${PICKET_SERVERS_DIR:-.servers}
mkdir -p "$BASE/schemathesis"
DIR=$(cd "$BASE/schemathesis" && pwd)

installed=$("$DIR/venv/bin/pip" show schemathesis 2>/dev/null || true)
if [ ! -x "$DIR/venv/bin/st" ] || ! grep -qx "Version: $VERSION" <<<"$installed"; then
  echo "installing schemathesis==$VERSION (PyPI) into $DIR/venv ..." >&2
  python3 -m venv "$DIR/venv" >&2
  "$DIR/venv/bin/pip" install -q -r scripts/schemathesis/requirements.txt >&2
fi

BIN=${PICKET_BIN:-target/debug/picket}
if [ ! -x "$BIN" ]; then
  cargo build --quiet
fi

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/campaigns"
cp campaigns/social-media-strike.toml campaigns/declaration.md "$work/campaigns/"
PICKET_RATE_LIMITS=off PICKET_LOG=info NO_COLOR=1 "$BIN" \
  --database-url "sqlite://$work/picket.db" --campaigns "$work/campaigns" \
  serve --bind 127.0.0.1:0 >/dev/null 2>"$work/serve.log" &
pid=$!
addr=
for _ in $(seq 1 300); do
  addr=$(sed 's/\x1b\[[0-9;]*m//g' "$work/serve.log" | grep -o 'picket is ready address=[0-9.:]*' | head -n 1 | cut -d= -f2 || true)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "picket serve did not start:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi

status=0
"$DIR/venv/bin/st" run "http://$addr/api/v1/openapi.json" \
  --checks "${PICKET_SCHEMATHESIS_CHECKS:-all}" \
  --max-examples "${PICKET_SCHEMATHESIS_EXAMPLES:-150}" \
  --seed "${PICKET_SCHEMATHESIS_SEED:-20261206}" \
  --workers 1 \
  --request-timeout 10 \
  --report junit --report-dir "$work/report" || status=$?
# Still answering after all that.
if ! curl -fsS "http://$addr/healthz" >/dev/null; then
  echo "picket stopped answering /healthz" >&2
  status=1
fi
if grep -q "panicked" "$work/serve.log"; then
  echo "picket panicked while fuzzed:" >&2
  grep -A3 "panicked" "$work/serve.log" >&2
  status=1
fi
exit $status
